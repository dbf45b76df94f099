"""Property-based fuzzing of the served OpenAPI document with schemathesis (positive and negative data).

Every operation the document lists is called with generated requests, valid
and invalid; the service must never answer 5xx, and every answer must match
the document. Bounded to 30 examples an operation (about 300 requests, well
under a minute on an idle machine), with a fixed seed so a failure repeats.
"""

# ruff: noqa: F811  (pytest fixtures imported from test_server are parameters here)

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_server import _environment, policy_dir, serve  # noqa: F401

pytest.importorskip("schemathesis")


@pytest.mark.slow
def test_fuzzing_the_served_openapi_document_finds_no_5xx_and_no_schema_violation(
        serve, policy_dir: Path, tmp_path: Path) -> None:
    server = serve(str(policy_dir), "--no-watch", env={"ENGINE_ADMIN_TOKEN": "admin"})
    # The command sits beside the interpreter running the tests, whether or not that is on PATH.
    beside = str(Path(sys.executable).parent)
    command = shutil.which("st", path=beside) or shutil.which("st") or shutil.which("schemathesis")
    assert command, "schemathesis is installed but its command is not on PATH"
    result = subprocess.run(
        [command, "run", f"{server.url}/openapi.json",
         "--checks", "not_a_server_error,response_schema_conformance", "--mode", "all",
         "--phases", "examples,coverage,fuzzing", "--max-examples", "30", "--seed", "12",
         "--request-timeout", "10", "--no-color", "--report-dir", str(tmp_path)],
        check=False, capture_output=True, text=True, timeout=120, env=_environment({}), cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " generated, " in result.stdout and "failed" not in result.stdout.split("Test cases:")[-1]
    assert "Traceback" not in server.output()
