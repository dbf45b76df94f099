import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import httpx
import pytest

REPO = Path(__file__).resolve().parent.parent

VOCABULARY = """\
policy "Server test set" {
  version "1"
}
actions { view, share }
roles { social_worker, police_officer }
purposes {
  safeguarding { children, adults }
  marketing
}
categories { health, social_care }
classifications public < official < official_sensitive
agencies { council, police, nhs }
attributes {
  context.risk_of_harm bool default false
}
"""

RULES = """\
permit child_protection "Share for child protection" {
  action view, share
  role social_worker
  purpose safeguarding.children
  data social_care, health up to official_sensitive
  when context.risk_of_harm
  because "Children Act 1989 s.47"
}

deny no_marketing "Never for marketing" {
  purpose marketing
  because "UK GDPR Art. 21(3)"
}
"""

PERMITTED = {
    "requester": {"role": "social_worker", "agency": "council"},
    "action": "share",
    "resource": {"category": "health", "classification": "official", "owner": "nhs"},
    "purpose": "safeguarding.children",
    "context": {"date": "2025-06-01", "risk_of_harm": True},
}
MARKETING = {**PERMITTED, "purpose": "marketing"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _environment(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENGINE_", "OTEL_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["ENGINE_DATE_CALLERS"] = "*"  # the requests here decide as of a fixed date
    env.update(extra)
    return env


class Server:
    """`python -m engine serve` in a child process, on a free loopback port."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "engine", "serve", *args, "--port", str(self.port)],
                stdout=out, stderr=subprocess.STDOUT, env=_environment(env), cwd=REPO)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the server exited with {self.process.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        pytest.fail(f"the server was not ready within {timeout}s:\n{self.output()}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "policies"
    directory.mkdir()
    (directory / "10_vocabulary.policy").write_text(VOCABULARY, encoding="utf-8")
    (directory / "20_rules.policy").write_text(RULES, encoding="utf-8")
    return directory


@pytest.fixture
def serve(tmp_path: Path):
    servers: list[Server] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Server:
        server = Server(list(args), env or {}, tmp_path / f"server-{len(servers)}.log")
        servers.append(server)
        server.wait_ready()
        return server

    yield start
    for server in servers:
        server.stop()


def _replace(path: Path, text: str) -> None:
    """Write a policy file the way a deployment should: elsewhere first, then rename over it."""
    staging = path.parent.parent / f".{path.name}.new"
    staging.write_text(text, encoding="utf-8")
    os.replace(staging, path)


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def test_serves_decisions_over_http(serve, policy_dir: Path) -> None:
    server = serve(str(policy_dir), "--no-watch")
    with httpx.Client(base_url=server.url, timeout=5) as http:
        decision = http.post("/decide", json=PERMITTED).json()
        assert decision["decision"] == "permit"
        assert decision["reasons"][0]["rule"] == "child_protection"
        batch = http.post("/decide/batch", json={"requests": [PERMITTED, MARKETING]}).json()["decisions"]
        assert [d["decision"] for d in batch] == ["permit", "deny"]
        assert http.get("/policy").json()["version"] == decision["policy_version"]
        error = http.post("/decide", json={**PERMITTED, "action": "shar"})
        assert error.status_code == 422 and error.json()["field"] == "action"
        assert 'engine_decisions_total{decision="permit"} 2.0' in http.get("/metrics").text


def test_a_broken_set_is_not_served(tmp_path: Path, policy_dir: Path) -> None:
    (policy_dir / "20_rules.policy").write_text(RULES.replace("role social_worker", "role social_wrker"))
    result = subprocess.run([sys.executable, "-m", "engine", "serve", str(policy_dir), "--port", str(_free_port())],
                            capture_output=True, text=True, env=_environment({}), cwd=REPO, timeout=60)
    assert result.returncode == 2
    assert "20_rules.policy:3:" in result.stderr and "social_wrker" in result.stderr
    assert "could not be loaded" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


class _Traffic(threading.Thread):
    """Decisions sent one after another while the policy files change underneath."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url = url
        self.stopping = threading.Event()
        self.answers: list[tuple[int, list[str], list[str]]] = []  # status, versions, decisions

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as http:
            while not self.stopping.is_set():
                for response in (http.post("/decide", json=PERMITTED),
                                 http.post("/decide/batch", json={"requests": [PERMITTED, MARKETING] * 10})):
                    body = response.json()
                    decisions = body.get("decisions", [body]) if response.status_code == 200 else []
                    self.answers.append((response.status_code, [d["policy_version"] for d in decisions],
                                         [d["decision"] for d in decisions]))


def test_policy_changes_are_picked_up_and_broken_ones_refused(serve, policy_dir: Path) -> None:
    server = serve(str(policy_dir))
    http = httpx.Client(base_url=server.url, timeout=5)
    first = http.get("/policy").json()["version"]
    traffic = _Traffic(server.url)
    traffic.start()
    try:
        _wait_for(lambda: len(traffic.answers) > 10, 10, "traffic")
        _replace(policy_dir / "20_rules.policy", RULES.replace("role social_worker", "role social_wrker"))
        _wait_for(lambda: 'engine_policy_reloads_total{result="failed"} 1.0' in http.get("/metrics").text, 15,
                  "the broken set to be refused")
        assert http.get("/policy").json()["version"] == first
        assert http.post("/decide", json=PERMITTED).json()["policy_version"] == first

        _replace(policy_dir / "20_rules.policy", RULES.replace("role social_worker", "role police_officer"))
        _wait_for(lambda: http.get("/policy").json()["version"] != first, 15, "the good change to be served")
        second = http.get("/policy").json()["version"]
        count = len(traffic.answers)
        _wait_for(lambda: len(traffic.answers) > count + 6, 10, "traffic on the new version")
    finally:
        traffic.stopping.set()
        traffic.join(15)
        http.close()
    assert "refused the policy set" in server.output()
    answers = traffic.answers
    assert all(status == 200 for status, _, _ in answers)
    assert all(len(set(versions)) == 1 for _, versions, _ in answers), "a response mixed policy versions"
    order = [versions[0] for _, versions, _ in answers]
    assert set(order) == {first, second}
    switched = order.index(second)
    assert set(order[switched:]) == {second}, "the old version answered after the new one"
    for _, versions, decisions in answers:
        expected = "permit" if versions[0] == first else "deny"
        assert decisions[0] == expected


def test_api_keys_and_audit_trail_on_a_real_server(serve, policy_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "decisions.audit.jsonl"
    keys = {"ENGINE_API_KEYS": "case_system=k-case,portal=k-portal"}
    server = serve(str(policy_dir), "--no-watch", "--audit-log", str(log), env=keys)
    with httpx.Client(base_url=server.url, timeout=5) as http:
        assert http.post("/decide", json=PERMITTED).status_code == 401
        assert http.post("/decide", json=PERMITTED, headers={"X-API-Key": "wrong"}).status_code == 401
        for _ in range(3):
            assert http.post("/decide", json=PERMITTED, headers={"X-API-Key": "k-case"}).status_code == 200
        batch = http.post("/decide/batch", json={"requests": [MARKETING] * 4},
                          headers={"Authorization": "Bearer k-portal"})
        assert batch.status_code == 200
    assert server.stop() in (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM once it has shut down

    again = serve(str(policy_dir), "--no-watch", "--audit-log", str(log), env=keys)
    with httpx.Client(base_url=again.url, timeout=5) as http:
        http.post("/decide", json=MARKETING, headers={"Authorization": "Bearer k-case"})
    again.stop()

    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["caller"] for e in entries] == ["case_system"] * 3 + ["portal"] * 4 + ["case_system"]
    assert [e["decision"] for e in entries] == ["permit"] * 3 + ["deny"] * 5
    verified = subprocess.run([sys.executable, "-m", "engine", "audit", "verify", str(log)],
                              capture_output=True, text=True, env=_environment({}), cwd=REPO, timeout=60)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "8 entries verified" in verified.stdout


def test_several_workers_serve_the_same_set_and_share_one_audit_chain(serve, policy_dir: Path,
                                                                      tmp_path: Path) -> None:
    log = tmp_path / "decisions.audit.jsonl"
    server = serve(str(policy_dir), "--workers", "2", "--no-watch", "--audit-log", str(log))
    with httpx.Client(base_url=server.url, timeout=5) as http:
        # A new connection each time, so that both workers take a share.
        versions = {httpx.post(f"{server.url}/decide", json=PERMITTED).json()["policy_version"] for _ in range(20)}
        http.post("/decide/batch", json={"requests": [MARKETING] * 30})
        assert versions == {http.get("/policy").json()["version"]}
    server.stop()
    verified = subprocess.run([sys.executable, "-m", "engine", "audit", "verify", str(log)],
                              capture_output=True, text=True, env=_environment({}), cwd=REPO, timeout=60)
    assert verified.returncode == 0, verified.stdout
    assert "50 entries verified" in verified.stdout


def test_one_call_to_the_reload_endpoint_reloads_every_worker(serve, policy_dir: Path) -> None:
    server = serve(str(policy_dir), "--workers", "2", "--no-watch", env={"ENGINE_ADMIN_TOKEN": "admin"})

    def versions() -> set[str]:  # a new connection each time, so that both workers answer
        return {httpx.get(f"{server.url}/policy", timeout=5).json()["version"] for _ in range(16)}

    first = versions()
    assert len(first) == 1
    _replace(policy_dir / "20_rules.policy", RULES.replace("role social_worker", "role police_officer"))
    answer = httpx.post(f"{server.url}/policy/reload", headers={"Authorization": "Bearer admin"}, timeout=30)
    assert answer.status_code == 200 and answer.json()["status"] == "reloaded"
    second = answer.json()["policy"]["version"]
    _wait_for(lambda: versions() == {second}, 15, "every worker to serve the reloaded set")
    assert "another worker's reload endpoint" in server.output()


@pytest.mark.parametrize(
    ("env", "args", "message"),
    [
        ({"ENGINE_API_KEYS": "portal"}, [], "not of the form name=key"),
        ({"ENGINE_MAX_BODY_BYTES": "lots"}, [], "ENGINE_MAX_BODY_BYTES"),
        ({}, ["--workers", "0"], "--workers"),
        ({"ENGINE_TIMEZONE": "Mars/Olympus"}, [], "unknown time zone"),
        ({"ENGINE_API_KEYS": "a=k", "ENGINE_KEY_AGENCIES": "b=police"}, [], "ENGINE_KEY_AGENCIES"),
        ({"ENGINE_DATE_CALLERS": "nobody"}, [], "ENGINE_DATE_CALLERS"),
        ({"ENGINE_HEADER_TIMEOUT": "0"}, [], "ENGINE_HEADER_TIMEOUT"),
        ({}, ["--audit-log", "{tmp}/no/such/dir/audit.jsonl"], "cannot open audit log"),
        ({}, ["--audit-log", "{tmp}/audit.jsonl", "--audit-rotate-size", "lots"], "ENGINE_AUDIT_ROTATE_SIZE"),
        ({"ENGINE_AUDIT_ON_FAILURE": "shrug"}, ["--audit-log", "{tmp}/audit.jsonl"], "ENGINE_AUDIT_ON_FAILURE"),
    ],
    ids=["api-keys", "max-body", "workers", "timezone", "key-agencies", "date-callers", "header-timeout",
         "audit-dir", "audit-rotate", "audit-on-failure"],
)
def test_settings_that_cannot_work_exit_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
                                          tmp_path: Path, policy_dir: Path, env: dict, args: list,
                                          message: str) -> None:
    from engine.commands.main import main

    for name in ("ENGINE_AUDIT_LOG", "ENGINE_AUDIT_ROTATE_SIZE", "ENGINE_AUDIT_ON_FAILURE"):
        monkeypatch.setenv(name, "")  # `engine serve` puts its flags into the environment: restore it after
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    assert main(["serve", str(policy_dir), "--port", "1", *args]) == 2
    assert message in capsys.readouterr().err
