"""The README's two set-up commands work as written: the serve command in a fresh virtual
environment, the test command's checks in that environment too, and CI runs exactly the
test command (its own set-up included) on a clean clone."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def setup_commands() -> list[str]:
    """The two set-up commands: the `sh` blocks of the README's "Set-up" section that make a
    virtual environment (the others send requests to the service one of them starts)."""
    section = README.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)
    return [body.strip() for body in blocks if body.startswith("python3 -m venv")]


def test_the_readme_has_two_set_up_commands_each_making_its_virtual_environment():
    serve, test = setup_commands()
    for command in (serve, test):
        assert command.startswith("python3 -m venv .venv && .venv/bin/pip install ")
    assert serve.endswith(".venv/bin/engine serve")
    assert test.endswith(".venv/bin/python -m pytest")


def test_ci_runs_exactly_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
    assert ci[-1] == setup_commands()[1]


def test_the_virtual_environment_is_not_committed():
    assert ".venv/" in (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()


def _curl_body() -> dict:
    """The request the README sends to /decide with curl."""
    return json.loads(re.search(r"curl -s http://127\.0\.0\.1:8000/decide .*?-d '(.*?)'", README, re.DOTALL).group(1))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_the_readme_set_up_works_in_a_fresh_virtual_environment(tmp_path):
    work = tmp_path / "clone"
    shutil.copytree(ROOT, work, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis", "bench"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_PROGRESS_BAR="off")
    # `python3` is this interpreter (a virtual environment's, when the suite runs in one).
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python3").symlink_to(sys.executable)
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    serve, test = setup_commands()

    *install, start = serve.split(" && ")
    done = subprocess.run(" && ".join(install), shell=True, cwd=work, env=env, capture_output=True, text=True, check=False,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    port = _free_port()
    server = subprocess.Popen(f"exec {start} --port {port} --no-watch", shell=True, cwd=work, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        decision = _post_when_ready(port, _curl_body())
        assert decision["decision"] == "permit", decision
    finally:
        os.killpg(server.pid, signal.SIGINT)  # Ctrl-C, as the README says
        output, _ = server.communicate(timeout=30)
    assert server.returncode == 0, output
    assert "engine serve: serving policies (sha256:" in output

    # The test command's own set-up (its venv and `pip install -e '.[test]'`) is what CI runs
    # from a clean clone, exactly as written (test_ci_runs_exactly_the_readme_test_command):
    # here the steps after it run in the environment the serve command made.
    venv, install, *steps, pytest_step = test.split(" && ")
    assert (venv, install) == ("python3 -m venv .venv", ".venv/bin/pip install -e '.[test]'")
    assert pytest_step == ".venv/bin/python -m pytest"  # not run here: this test is part of it
    done = subprocess.run(" && ".join(steps), shell=True, cwd=work,
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "policies: ok (" in done.stdout and " passed, 0 failed" in done.stdout


def _post_when_ready(port: int, body: dict) -> dict:
    data = json.dumps(body).encode()
    deadline = time.monotonic() + 60
    while True:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/decide", data=data,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return json.loads(response.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_the_readme_request_is_permitted_by_the_example_set():
    import engine

    decision = engine.load(ROOT / "policies").decide(_curl_body())
    assert decision.decision == "permit", decision.summary
