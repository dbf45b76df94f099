"""The decision service under hostile callers and awkward deployments, over real HTTP.

Each test starts `engine serve` on a free loopback port (see test_server.py).
"""

# ruff: noqa: F811  (pytest fixtures imported from test_server are parameters here)

import datetime as dt
import json
import os
import socket
import time
import uuid
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
import test_server
from test_server import (  # noqa: F401
    MARKETING,
    PERMITTED,
    RULES,
    VOCABULARY,
    Server,
    _environment,
    _replace,
    _wait_for,
    policy_dir,
    serve,
)

import engine
from engine.service.admission import Admission

# A rule that holds only for requests dated before 2025: a caller choosing the date could reach it.
DATED = """\
permit old_arrangement "An arrangement that ended in 2024" {
  action view
  role police_officer
  purpose safeguarding.children
  data health up to official
  when context.date <= 2024-12-31
  because "Old arrangement"
}
"""
OLD_REQUEST = {
    "requester": {"role": "police_officer", "agency": "police"},
    "action": "view",
    "resource": {"category": "health", "classification": "official", "owner": "nhs"},
    "purpose": "safeguarding.children",
}


def _undated(request: dict) -> dict:
    return {**request, "context": {k: v for k, v in request.get("context", {}).items() if k != "date"}}


@pytest.fixture
def dated_dir(policy_dir: Path) -> Path:
    (policy_dir / "30_dated.policy").write_text(DATED, encoding="utf-8")
    return policy_dir


@pytest.mark.slow
def test_the_service_decides_as_of_its_own_date(serve, dated_dir: Path) -> None:
    keys = {"ENGINE_API_KEYS": "app=k-app,replay=k-replay", "ENGINE_DATE_CALLERS": "replay"}
    server = serve(str(dated_dir), "--no-watch", env=keys)
    app, replay = {"X-API-Key": "k-app"}, {"X-API-Key": "k-replay"}
    with httpx.Client(base_url=server.url, timeout=5) as http:
        assert http.post("/decide", json=OLD_REQUEST, headers=app).json()["decision"] == "deny"
        back_dated = {**OLD_REQUEST, "context": {"date": "2024-12-01"}}
        refused = http.post("/decide", json=back_dated, headers=app)
        assert refused.status_code == 422 and refused.json()["field"] == "context.date"
        batch = http.post("/decide/batch", json={"requests": [OLD_REQUEST, back_dated]}, headers=app)
        assert batch.status_code == 422 and batch.json()["field"] == "requests[1].context.date"
        # The caller named in ENGINE_DATE_CALLERS replays a past case as of its date.
        assert http.post("/decide", json=back_dated, headers=replay).json()["decision"] == "permit"
        assert http.post("/decide", json={**OLD_REQUEST, "context": None}, headers=app).status_code == 200


@pytest.mark.slow
def test_without_api_keys_only_a_star_lets_callers_set_dates(serve, dated_dir: Path) -> None:
    back_dated = {**OLD_REQUEST, "context": {"date": "2024-12-01"}}
    closed = serve(str(dated_dir), "--no-watch", env={"ENGINE_DATE_CALLERS": ""})
    assert httpx.post(f"{closed.url}/decide", json=back_dated, timeout=5).status_code == 422
    opened = serve(str(dated_dir), "--no-watch", env={"ENGINE_DATE_CALLERS": "*"})
    assert httpx.post(f"{opened.url}/decide", json=back_dated, timeout=5).json()["decision"] == "permit"


def test_the_date_is_today_in_the_configured_time_zone() -> None:
    # Twenty-six hours apart, these two zones never share a date.
    east = Admission(zone=ZoneInfo("Pacific/Kiritimati")).today()
    west = Admission(zone=ZoneInfo("Etc/GMT+12")).today()
    assert east != west
    assert Admission().today() == dt.datetime.now(ZoneInfo("Europe/London")).date().isoformat()


GROUPED = VOCABULARY.replace("agencies { council, police, nhs }",
                             "agencies { council, police, nhs }\ngroup local_authority = { council }")


@pytest.mark.slow
def test_a_key_speaks_only_for_its_own_agencies(serve, policy_dir: Path, tmp_path: Path) -> None:
    (policy_dir / "10_vocabulary.policy").write_text(GROUPED, encoding="utf-8")
    log = tmp_path / "audit.jsonl"
    env = {"ENGINE_API_KEYS": "case_system=k-case,police_portal=k-police",
           "ENGINE_KEY_AGENCIES": "case_system=local_authority;police_portal=police"}
    server = serve(str(policy_dir), "--no-watch", "--audit-log", str(log), env=env)
    as_police = {**PERMITTED, "requester": {"role": "social_worker", "agency": "police"}}
    with httpx.Client(base_url=server.url, timeout=5) as http:
        assert http.post("/decide", json=PERMITTED, headers={"X-API-Key": "k-case"}).status_code == 200
        refused = http.post("/decide", json=as_police, headers={"X-API-Key": "k-case"})
        assert refused.status_code == 403 and refused.json()["field"] == "requester.agency"
        batch = http.post("/decide/batch", json={"requests": [PERMITTED]}, headers={"X-API-Key": "k-police"})
        assert batch.status_code == 403 and batch.json()["field"] == "requests[0].requester.agency"
        assert http.post("/decide", json=as_police, headers={"X-API-Key": "k-police"}).status_code == 200
    server.stop()
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    refusals = [(e["caller"], e["code"], e["field"], e["request"]["requester"]["agency"]) for e in entries
                if e.get("kind") == "refusal"]
    assert refusals == [("case_system", "forbidden_agency", "requester.agency", "police"),
                        ("police_portal", "forbidden_agency", "requests[0].requester.agency", "council")]


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _post(path: str, body: bytes, content_type: str = "application/json", extra: bytes = b"") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n").encode() + extra + b"\r\n" + body


def _answer(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


@pytest.mark.slow
def test_strings_must_be_bounded_unicode_and_bodies_utf8_json(serve, policy_dir: Path) -> None:
    server = serve(str(policy_dir), "--no-watch", env={"ENGINE_MAX_STRING": "200"})
    text = json.dumps(PERMITTED)
    surrogate = text.replace('"social_worker"', '"\\ud800"').encode()
    status, body = _answer(_raw(server.port, _post("/decide", surrogate)))
    assert (status, body["field"]) == (422, "requester.role")
    long = text.replace('"social_worker"', '"' + "x" * 201 + '"').encode()
    status, body = _answer(_raw(server.port, _post("/decide", long)))
    assert (status, body["field"]) == (422, "requester.role") and "200" in body["message"]
    status, body = _answer(_raw(server.port, _post("/decide", text.encode(), "application/json; charset=latin-1")))
    assert (status, body["location"]) == (415, {"in": "header", "name": "content-type"})
    status, body = _answer(_raw(server.port, _post("/decide", text.encode("utf-16"))))
    assert status == 400 and "UTF-16" in body["message"]
    status, body = _answer(_raw(server.port, _post("/decide?q=%ED%A0%80", text.encode())))
    assert (status, body["location"]) == (422, {"in": "query", "name": "q"})
    status, body = _answer(_raw(server.port, _post("/decide", text.encode(), extra=b"X-Note: \xff\xfe\r\n")))
    assert (status, body["location"]) == (422, {"in": "header", "name": "x-note"})
    # An unknown name ten thousand characters long is refused at once, not compared with every role.
    status, body = _answer(_raw(server.port, _post("/decide", text.replace("social_worker", "y" * 10_000).encode())))
    assert status == 422


@pytest.mark.slow
def test_malformed_http_gets_the_json_error_shape(serve, policy_dir: Path) -> None:
    server = serve(str(policy_dir), "--no-watch")
    status, body = _answer(_raw(server.port, b"NOT HTTP AT ALL\r\n\r\n"))
    assert status == 400 and body["code"] == "bad_request"


@pytest.mark.slow
def test_slow_clients_are_cut_off_and_cannot_crowd_out_others(serve, policy_dir: Path) -> None:
    env = {"ENGINE_HEADER_TIMEOUT": "1", "ENGINE_BODY_TIMEOUT": "1"}
    server = serve(str(policy_dir), "--no-watch", env=env)
    slow: list[socket.socket] = []
    try:
        for index in range(500):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            if index % 2:  # half stop halfway through the headers, half halfway through the body
                sock.sendall(b"POST /decide HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
            else:
                sock.sendall(b"POST /decide HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                             b"Content-Length: 500\r\n\r\n{\"requester\":")
            slow.append(sock)
        started = time.monotonic()
        answer = httpx.post(f"{server.url}/decide", json=PERMITTED, timeout=5)
        waited = time.monotonic() - started
        assert answer.status_code == 200 and waited < 1.0
        closed = 0
        for sock in slow:
            sock.settimeout(10)
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
            closed += 1
            assert data == b"" or b" 408 " in data.split(b"\r\n", 1)[0]
        assert closed == 500
    finally:
        for sock in slow:
            sock.close()


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.extend(int(child) for child in text)
    return found


def _running(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status  # a zombie has stopped; only its parent may reap it


@pytest.mark.slow
def test_workers_stop_when_engine_serve_is_killed_and_the_port_can_be_served_again(
        serve, policy_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = serve(str(policy_dir), "--workers", "2", "--no-watch")
    workers = [pid for pid in _children(server.process.pid)
               if "engine" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
               or "multiprocessing" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")]
    assert workers
    signal_dirs = list(Path(os.environ.get("TMPDIR", "/tmp")).glob(f"engine-reload-{server.process.pid}-*"))
    server.process.kill()
    server.process.wait()
    _wait_for(lambda: not any(_running(pid) for pid in workers), 4, "the orphaned workers to exit")
    assert not any(path.exists() for path in signal_dirs)
    monkeypatch.setattr(test_server, "_free_port", lambda: server.port)  # the same port again
    again = Server([str(policy_dir), "--no-watch"], {}, tmp_path / "again.log")
    try:
        again.wait_ready()
    finally:
        again.stop()


@pytest.mark.slow
def test_reload_converges_or_says_which_workers_did_not_when_the_signal_directory_vanishes(
        serve, policy_dir: Path) -> None:
    import shutil

    server = serve(str(policy_dir), "--workers", "2", "--no-watch", env={"ENGINE_ADMIN_TOKEN": "admin"})
    for path in Path(os.environ.get("TMPDIR", "/tmp")).glob(f"engine-reload-{server.process.pid}-*"):
        shutil.rmtree(path)
    _replace(policy_dir / "20_rules.policy", RULES.replace("role social_worker", "role police_officer"))
    answer = httpx.post(f"{server.url}/policy/reload", headers={"Authorization": "Bearer admin"}, timeout=30).json()
    new = answer["policy"]["version"]
    served = {httpx.get(f"{server.url}/policy", timeout=5).json()["version"] for _ in range(16)}
    if answer["status"] == "reloaded":
        assert served == {new}
    else:
        assert answer["status"] == "unconfirmed" and answer["unconfirmed_workers"]


def _counter(text: str, name: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


@pytest.mark.slow
def test_counters_add_up_across_workers_and_never_go_backwards(serve, policy_dir: Path) -> None:
    server = serve(str(policy_dir), "--workers", "2", "--no-watch")
    for _ in range(10):  # a new connection each time, so that both workers decide
        assert httpx.post(f"{server.url}/decide", json=PERMITTED, timeout=5).status_code == 200
    seen = []

    def scrape() -> float:
        seen.append(_counter(httpx.get(f"{server.url}/metrics", timeout=5).text, "engine_decisions_total{"))
        return seen[-1]

    _wait_for(lambda: scrape() == 10, 10, "both workers' decisions to be counted")
    for _ in range(10):
        scrape()
    assert seen == sorted(seen) and seen[-1] == 10


def _configmap(root: Path, stamp: str, files: dict[str, str]) -> None:
    """The layout kubelet makes: files in `..<stamp>/`, `..data` pointing at it, names pointing into `..data`."""
    data = root / f"..{stamp}"
    data.mkdir()
    for name, text in files.items():
        (data / name).write_text(text, encoding="utf-8")
    link = root / "..data_tmp"
    link.symlink_to(data.name)
    os.replace(link, root / "..data")
    for name in files:
        if not (root / name).is_symlink():
            (root / name).symlink_to(f"..data/{name}")


@pytest.mark.slow
def test_a_configmap_mount_loads_once_and_reloads_when_updated(serve, tmp_path: Path) -> None:
    root = tmp_path / "configmap"
    root.mkdir()
    _configmap(root, "2026_01_01_00_00_00.1", {"10_vocabulary.policy": VOCABULARY, "20_rules.policy": RULES})
    policy = engine.load(root)
    assert len(policy.rules) == 2 and policy.files == ["10_vocabulary.policy", "20_rules.policy"]
    server = serve(str(root))
    first = httpx.get(f"{server.url}/policy", timeout=5).json()["version"]
    _configmap(root, "2026_01_02_00_00_00.2", {"10_vocabulary.policy": VOCABULARY,
                                               "20_rules.policy": RULES.replace("social_worker", "police_officer")})
    _wait_for(lambda: httpx.get(f"{server.url}/policy", timeout=5).json()["version"] != first, 15,
              "the updated ConfigMap to be served")
    assert httpx.get(f"{server.url}/policy", timeout=5).json()["rules"] == 2


@pytest.mark.slow
def test_a_symlink_swapped_release_is_noticed(serve, tmp_path: Path) -> None:
    releases = tmp_path / "releases"
    for name, rules in (("v1", RULES), ("v2", RULES.replace("social_worker", "police_officer"))):
        (releases / name).mkdir(parents=True)
        (releases / name / "10_vocabulary.policy").write_text(VOCABULARY, encoding="utf-8")
        (releases / name / "20_rules.policy").write_text(rules, encoding="utf-8")
    current = tmp_path / "current"
    current.symlink_to(releases / "v1")
    server = serve(str(current))
    first = httpx.get(f"{server.url}/policy", timeout=5).json()["version"]
    staging = tmp_path / "current.new"
    staging.symlink_to(releases / "v2")
    os.replace(staging, current)  # what `ln -sfn releases/v2 current` does, atomically
    _wait_for(lambda: httpx.get(f"{server.url}/policy", timeout=5).json()["version"] != first, 15,
              "the swapped-in release to be served")


@pytest.mark.slow
def test_with_keys_set_strangers_see_nothing(serve, policy_dir: Path) -> None:
    env = {"ENGINE_API_KEYS": "app=k-app", "ENGINE_ADMIN_TOKEN": "admin"}
    server = serve(str(policy_dir), "--no-watch", env=env)
    with httpx.Client(base_url=server.url, timeout=5) as http:
        for path in ("/policy", "/openapi.json", "/docs"):
            assert http.get(path).status_code == 401, path
            assert http.get(path, headers={"X-API-Key": "k-app"}).status_code == 200, path
        assert http.get("/metrics").status_code == 401
        assert http.get("/metrics", headers={"Authorization": "Bearer k-app"}).status_code == 403
        assert http.get("/metrics", headers={"Authorization": "Bearer admin"}).status_code == 200
        info = http.get("/policy", headers={"X-API-Key": "k-app"}).json()
        assert info["files"] == ["10_vocabulary.policy", "20_rules.policy"]
        decision = http.post("/decide", json=PERMITTED, headers={"X-API-Key": "k-app"}).json()
        again = http.post("/decide", json=PERMITTED, headers={"X-API-Key": "k-app"}).json()
    # The library, the service and the commands name the rule's file alike.
    library = engine.load(policy_dir).decide(PERMITTED)
    assert decision["reasons"][0]["file"] == library.reasons[0].file == "20_rules.policy"
    ids = [uuid.UUID(decision["decision_id"]), uuid.UUID(again["decision_id"])]
    assert all(found.version == 4 for found in ids)
    assert abs(ids[0].int - ids[1].int) > 2 ** 64  # not a counter


def test_a_mounted_service_starts_with_its_parent(policy_dir: Path) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from engine.service import mount
    from engine.service.app import create_app

    parent = FastAPI()
    mount(parent, "/pdp", create_app(policy_dir, watch=False, date_callers="*"))
    with TestClient(parent) as client:
        assert client.get("/pdp/readyz").status_code == 200
        assert client.post("/pdp/decide", json=PERMITTED).json()["decision"] == "permit"
    plain = FastAPI()
    plain.mount("/pdp", create_app(policy_dir, watch=False))
    with TestClient(plain) as client:
        answer = client.post("/pdp/decide", json=_undated(PERMITTED))
        assert answer.status_code == 503 and "engine.service.mount" in answer.json()["message"]


def test_expiry_warnings_follow_the_service_date(policy_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    from engine.service.app import create_app

    (policy_dir / "30_agreement.policy").write_text(
        'agreement long_running "Runs until 2098" {\n  parties council, police\n  valid 2020-01-01 to 2098-12-31\n}\n',
        encoding="utf-8")
    with TestClient(create_app(policy_dir, watch=False)) as client:
        assert not [w for w in client.get("/policy").json()["warnings"] if w["code"] == "agreement_expired"]
        # The service runs on into 2099: the agreement has ended, and /policy says so.
        monkeypatch.setattr(Admission, "today", lambda self: "2099-01-01")
        expired = [w for w in client.get("/policy").json()["warnings"] if w["code"] == "agreement_expired"]
        assert expired and "long_running" in expired[0]["message"]
