import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPLICATION = ROOT / "tests" / "fixtures" / "typed" / "application.py"


@pytest.mark.slow
def test_an_application_using_the_library_type_checks_strictly(tmp_path):
    pytest.importorskip("mypy")
    shutil.copy(APPLICATION, tmp_path)
    # As mypy sees an installed, typed package: its types used, its own findings not shown.
    env = {**os.environ, "MYPYPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", "--cache-dir", str(tmp_path / "cache"),
         "application.py"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300, check=False,
    )
    assert (result.returncode, result.stdout) == (0, "Success: no issues found in 1 source file\n")
