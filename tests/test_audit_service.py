"""The trail under a real server: killed under load, poisoned, unable to write; on a file and on PostgreSQL."""

import json
import resource
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import test_server
from test_server import PERMITTED, RULES, Server

from engine.commands.main import main
from engine.service.audit.query import Filters, query
from engine.service.audit.trails import entries, verify_trail

pytestmark = pytest.mark.slow
policy_dir = test_server.policy_dir  # the server tests' policy set, as a fixture here too

KEY = "an audit key for the tests"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
# A valid request but for a lone UTF-16 surrogate in a free-text field: it must be refused alone.
POISON = json.dumps({**PERMITTED, "requester": {**PERMITTED["requester"], "id": "X"}}).replace('"X"', '"\\ud800"').encode()


def _database() -> Iterator[str]:
    psycopg = pytest.importorskip("psycopg")
    name = f"engine_audit_{secrets.token_hex(6)}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.Error as err:
        pytest.skip(f"no PostgreSQL server at 127.0.0.1:5432: {err}")
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(params=["file", "postgresql"])
def trail(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "file":
        yield str(tmp_path / "decisions.jsonl")
    else:
        yield from _database()


class Load:
    """Threads posting /decide as fast as they can; every answer kept (status, decision id)."""

    def __init__(self, url: str, threads: int = 4, poison_every: int = 0):
        self.url = url
        self.answers: list[tuple[int, str | None, bool]] = []
        self.stop = threading.Event()
        self.poison_every = poison_every
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(threads)]
        for thread in self.threads:
            thread.start()

    def _run(self, number: int) -> None:
        count = 0
        with httpx.Client(base_url=self.url, timeout=5) as http:
            while not self.stop.is_set():
                count += 1
                poison = bool(self.poison_every) and count % self.poison_every == number % self.poison_every
                body = POISON if poison else json.dumps({**PERMITTED, "requester": {
                    **PERMITTED["requester"], "id": f"u{number}-{count}"}}).encode()
                try:
                    answer = http.post("/decide", content=body, headers={"content-type": "application/json"})
                except httpx.HTTPError:
                    continue  # the server was killed mid-request: no answer, nothing promised
                identity = answer.json().get("decision_id") if answer.status_code == 200 else None
                self.answers.append((answer.status_code, identity, poison))

    def finish(self) -> list[tuple[int, str | None, bool]]:
        self.stop.set()
        for thread in self.threads:
            thread.join(10)
        return self.answers

    def wait_for(self, count: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while len(self.answers) < count and time.monotonic() < deadline:
            time.sleep(0.02)


def _start(policy_dir: Path, trail: str, tmp_path: Path, name: str, limit: int | None = None) -> Server:
    env = {"ENGINE_AUDIT_KEY": KEY, "ENGINE_AUDIT_CHECKPOINT_SECONDS": "0.2"}
    if limit is None:
        server = Server([str(policy_dir), "--no-watch", "--audit-log", trail], env, tmp_path / f"{name}.log")
    else:
        server = _limited_server(policy_dir, trail, env, tmp_path / f"{name}.log", limit)
    server.wait_ready()
    return server


def _limited_server(policy_dir: Path, trail: str, env: dict, log: Path, limit: int) -> Server:
    """A server whose files may not grow beyond `limit` bytes (RLIMIT_FSIZE): a disk that fills up."""
    original = subprocess.Popen

    def popen(*args, **kwargs):
        kwargs["preexec_fn"] = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
        return original(*args, **kwargs)

    subprocess.Popen = popen  # type: ignore[misc]
    try:
        return Server([str(policy_dir), "--no-watch", "--audit-log", trail], env, log)
    finally:
        subprocess.Popen = original  # type: ignore[misc]


def _verify(trail: str) -> None:
    report = verify_trail(trail, KEY.encode())
    assert report.intact, report.problems[:5]


def _recorded(trail: str) -> set[str]:
    return {entry["decision_id"] for entry in entries(trail) if entry.get("kind") == "decision"}


def test_killed_under_load_nothing_answered_is_missing(policy_dir: Path, trail: str, tmp_path: Path) -> None:
    answered: list[str] = []
    for round_number in range(3):
        server = _start(policy_dir, trail, tmp_path, f"kill-{round_number}")
        load = Load(server.url, threads=4)
        load.wait_for(60 + 30 * round_number)
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(10)
        answers = load.finish()
        ok = [identity for status, identity, _ in answers if status == 200]
        assert len(ok) >= 60
        answered += [identity for identity in ok if identity]
    missing = set(answered) - _recorded(trail)
    assert not missing, f"{len(missing)} of {len(answered)} decisions answered 200 are not in the trail"
    _verify(trail)


def test_poison_requests_lose_no_other_entry(policy_dir: Path, trail: str, tmp_path: Path) -> None:
    server = _start(policy_dir, trail, tmp_path, "poison")
    load = Load(server.url, threads=4, poison_every=5)
    load.wait_for(200)
    answers = load.finish()
    server.stop()
    poisoned = [status for status, _, poison in answers if poison]
    assert poisoned and set(poisoned) == {422}
    answered = {identity for status, identity, poison in answers if status == 200 and identity}
    assert answered and answered <= _recorded(trail)
    _verify(trail)


def _refused_then_recovered(server: Server, fill, free) -> tuple[list, list]:
    load = Load(server.url, threads=4)
    load.wait_for(50)
    fill()
    deadline = time.monotonic() + 20
    while not any(status == 503 for status, _, _ in load.answers) and time.monotonic() < deadline:
        time.sleep(0.05)
    readiness = []
    for _ in range(100):  # writing may succeed now and then near the limit: readiness flips with it
        readiness.append(httpx.get(f"{server.url}/readyz", timeout=5))
        if readiness[-1].status_code == 503:
            break
    during = load.answers[:]
    free()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if load.answers[-1][0] == 200 and len(load.answers) > len(during) + 100:
            break
        time.sleep(0.05)
    answers = load.finish()
    assert any(status == 503 for status, _, _ in during), "the full trail refused nothing"
    assert readiness[-1].status_code == 503 and readiness[-1].json()["code"] == "audit_unavailable"
    assert answers[-1][0] == 200, "deciding did not resume by itself"
    refused = [answer for answer in answers if answer[0] == 503]
    return answers, refused


def test_a_full_disk_refuses_with_503_and_recovers_by_itself(policy_dir: Path, tmp_path: Path) -> None:
    trail = str(tmp_path / "decisions.jsonl")
    server = _start(policy_dir, trail, tmp_path, "full", limit=96 * 1024)
    pid = server.process.pid
    answers, refused = _refused_then_recovered(
        server, fill=lambda: None,  # the limit fills by itself within a few hundred entries
        free=lambda: resource.prlimit(pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY)))
    server.stop()
    assert refused
    answered = {identity for status, identity, _ in answers if status == 200 and identity}
    assert answered <= _recorded(trail)
    recovered = [entry for entry in entries(trail) if entry.get("kind") == "recovered"]
    assert recovered and "File too large" in recovered[0]["note"]
    _verify(trail)


def test_a_database_that_cannot_be_written_refuses_and_recovers(policy_dir: Path, tmp_path: Path) -> None:
    psycopg = pytest.importorskip("psycopg")
    for url in _database():
        server = _start(policy_dir, url, tmp_path, "pg-full")

        def alter(sql: str, url: str = url) -> None:
            with psycopg.connect(url, autocommit=True) as connection:
                connection.execute(sql)

        answers, refused = _refused_then_recovered(
            server, fill=lambda: alter("ALTER TABLE audit_entries RENAME TO audit_entries_away"),
            free=lambda: alter("ALTER TABLE audit_entries_away RENAME TO audit_entries"))
        server.stop()
        answered = {identity for status, identity, _ in answers if status == 200 and identity}
        assert refused and answered <= _recorded(url)
        _verify(url)


def test_query_and_explain_answer_from_the_trail(policy_dir: Path, trail: str, tmp_path: Path, capsys,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    server = _start(policy_dir, trail, tmp_path, "query")
    record = {**PERMITTED, "requester": {**PERMITTED["requester"], "id": "u-7"},
              "resource": {**PERMITTED["resource"], "id": "child-42"}}
    with httpx.Client(base_url=server.url, timeout=5) as http:
        permitted = http.post("/decide", json=record).json()
        denied = http.post("/decide", json={**record, "purpose": "marketing"}).json()
        http.post("/decide", json=PERMITTED)
    server.stop()
    # The policy changes afterwards: the past decision is still explained by the version that made it.
    (policy_dir / "20_rules.policy").write_text(RULES.replace("role social_worker", "role police_officer"))
    rows = list(query(trail, Filters(resource="child-42")))
    assert [(row["decision"], row["requester"], row["agency"]) for row in rows] == [
        ("permit", "u-7", "council"), ("deny", "u-7", "council")]
    assert [row["decision_id"] for row in query(trail, Filters(resource="child-42", decision="permit"))] == [
        permitted["decision_id"]]
    monkeypatch.setenv("ENGINE_AUDIT_KEY", KEY)
    assert main(["audit", "query", trail, "--requester", "u-7", "--format", "csv"]) == 0
    assert capsys.readouterr().out.count("child-42") == 2
    assert main(["audit", "explain", denied["decision_id"], "--trail", trail]) == 0
    shown = capsys.readouterr().out
    assert "no_marketing" in shown and "recorded deny" in shown
    assert main(["audit", "verify", trail]) == 0
    assert "3 entries verified" in capsys.readouterr().out
