# The package installed (not editable) in a fresh virtual environment, used from a project
# that has its own `api/` and `engine_tools/` packages: nothing of the engine's may collide.

import importlib.metadata
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOT_SHIPPED = shutil.ignore_patterns(
    ".git", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis", "tests", "bench", "docs"
)
APPLICATION = """\
import engine

policy = engine.load()
decision = policy.decide({
    "requester": {"role": "social_worker", "agency": "manchester_cs"},
    "action": "share", "purpose": "safeguarding.children.child_protection",
    "resource": {"category": "health", "classification": "official_sensitive", "owner": "mft"},
    "context": {"date": "2025-06-01", "risk_of_harm": True},
})
print(engine.__file__)
print(decision.decision)
"""


def _version(distribution: str) -> tuple[int, ...]:
    try:
        text = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return ()
    return tuple(int(part) for part in re.findall(r"\d+", text)[:2])


def _venv(where: Path) -> Path:
    """A fresh virtual environment that borrows the dependencies of the interpreter running
    the tests, whether that is a virtual environment itself or not."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    made = subprocess.run([base, "-m", "venv", "--without-pip", str(where)], capture_output=True, text=True, check=False,
                          timeout=120)
    if made.returncode != 0:
        pytest.skip(f"cannot create a virtual environment: {made.stderr.strip()}")
    python = where / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    own = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                         capture_output=True, text=True, check=True).stdout.strip()
    # A plain path in a .pth file: the directories are searched after the environment's own
    # packages, and their .pth files (such as an editable install of the engine) are not run.
    borrowed = [p for p in sys.path if p.endswith(("site-packages", "dist-packages")) and Path(p).is_dir()]
    Path(own, "borrowed_dependencies.pth").write_text("\n".join(borrowed) + "\n", encoding="utf-8")
    return python


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    scratch = tmp_path_factory.mktemp("install")
    source = scratch / "src"  # a copy, so the build leaves nothing in the working tree
    shutil.copytree(ROOT, source, ignore=NOT_SHIPPED)
    python = _venv(scratch / "venv")
    pip = [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check"]
    # Offline with the setuptools at hand when it builds wheels alone (70.1 on); else pip's
    # isolated build, which fetches one.
    offline = ["--no-index", "--no-build-isolation"] if _version("setuptools") >= (70, 1) else []
    done = subprocess.run([*pip, *offline, str(source)], capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr
    project = scratch / "project"
    for package in ("api", "engine_tools"):
        (project / package).mkdir(parents=True)
        (project / package / "__init__.py").write_text("raise ImportError('the application's own package')\n")
    (project / "api" / "server.py").write_text("")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return python, project, env


def run(installed, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
    python, project, env = installed
    return subprocess.run([str(python), *argv], capture_output=True, text=True, cwd=project, env=env,
                          timeout=timeout, check=False)


@pytest.mark.slow
def test_the_library_imports_and_decides(installed):
    result = run(installed, "-c", APPLICATION)
    assert result.returncode == 0, result.stderr
    where, decision = result.stdout.split()
    assert where.startswith(str(installed[0].parent.parent)) and decision == "permit"


@pytest.mark.slow
def test_engine_check_finds_the_embedded_examples(installed):
    result = run(installed, "-m", "engine", "check", "--example")
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("engine check: using the built-in example policy set (sha256:")
    assert result.stdout.startswith("the built-in example policy set: ok (")


@pytest.mark.slow
def test_engine_serve_answers_and_stops(installed):
    python, project, env = installed
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([str(python), "-m", "engine", "serve", "--port", str(port), "--no-watch"],
                              cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                    assert response.status == 200
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"engine serve did not answer:\n{server.communicate()[0]}")
                time.sleep(0.1)
    finally:
        server.terminate()
        output = server.communicate(timeout=15)[0]
    assert server.returncode in (0, -15), output
    assert "Traceback" not in output


@pytest.mark.slow
def test_the_parser_tables_ship_with_the_package(installed):
    result = run(installed, "-c", "import engine.syntax as s; print(s._grammar_file(s.TABLES) == "
                 f"open({str(ROOT / 'grammar' / 'policy.tables')!r}, 'rb').read())")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True"]
