"""`POST /decide` through the lane answers exactly as through the FastAPI route: status, headers, body,
metrics, spans and audit entries, for every outcome; and the lane stands aside when it cannot stand in."""

# ruff: noqa: F811  (pytest fixtures imported from test_server are parameters here)

from __future__ import annotations

import json
import socket
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.middleware.gzip import GZipMiddleware
from test_server import MARKETING, PERMITTED, policy_dir  # noqa: F401

from engine.service.app import create_app
from engine.service.audit import verify
from engine.service.deciding import AdmittedBodies
from engine.service.fastpath import DecideLane, framework_telemetry_off
from engine.service.telemetry import Telemetry

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

UNDATED = {**PERMITTED, "context": {"risk_of_harm": True}}
JSON = {"content-type": "application/json"}
KEYS = {"api_keys": "case=k-case,portal=k-portal"}


def _body(value: Any) -> bytes:
    return json.dumps(value).encode()


# (id, create_app settings, request: body bytes, headers, query string)
CASES: list[tuple[str, dict[str, Any], bytes, dict[str, Any], str]] = [
    ("permit", {"date_callers": "*"}, _body(PERMITTED), JSON, ""),
    ("deny", {"date_callers": "*"}, _body(MARKETING), JSON, ""),
    ("the service's date", {}, _body(UNDATED), JSON, ""),
    ("a date without leave", {}, _body(PERMITTED), JSON, ""),
    ("content type with charset", {}, _body(UNDATED), {"content-type": "application/json; charset=utf-8"}, ""),
    ("vendor json type", {}, _body(UNDATED), {"content-type": "application/vnd.case+json"}, ""),
    ("not json", {}, b'{"requester": ', JSON, ""),
    ("duplicate key", {}, b'{"action": "view", "action": "share"}', JSON, ""),
    ("utf-16 body", {}, _body(UNDATED).decode().encode("utf-16"), JSON, ""),
    ("not utf-8 body", {}, b'{"action": "\xff"}', JSON, ""),
    ("NaN", {}, b'{"action": NaN}', JSON, ""),
    ("an array", {}, b"[1, 2]", JSON, ""),
    ("empty body", {}, b"", JSON, ""),
    ("missing fields", {}, b"{}", JSON, ""),
    ("wrong type", {}, _body({**UNDATED, "requester": {"role": 7, "agency": "council"}}), JSON, ""),
    ("unknown role", {}, _body({**UNDATED, "requester": {"role": "social_wrker", "agency": "council"}}), JSON, ""),
    ("context not an object", {}, _body({**UNDATED, "context": [1]}), JSON, ""),
    ("lone surrogate", {}, b'{"action": "\\ud800"}', JSON, ""),
    ("string too long", {"max_string": 10}, _body(UNDATED), JSON, ""),
    ("no content type", {}, _body(UNDATED), {}, ""),
    ("text/plain", {}, _body(UNDATED), {"content-type": "text/plain"}, ""),
    ("latin-1 charset", {}, _body(UNDATED), {"content-type": "application/json; charset=latin-1"}, ""),
    ("too large", {"max_body": 64}, _body(UNDATED), JSON, ""),
    ("header not utf-8", {}, _body(UNDATED), {**JSON, "x-note": b"caf\xe9"}, ""),
    ("query not utf-8", {}, _body(UNDATED), JSON, "note=%FF"),
    ("query too long", {"max_string": 10}, _body(UNDATED), JSON, "note=" + "x" * 20),
    ("key missing", KEYS, _body(UNDATED), JSON, ""),
    ("key wrong", KEYS, _body(UNDATED), {**JSON, "x-api-key": "k-nope"}, ""),
    ("key right", KEYS, _body(UNDATED), {**JSON, "x-api-key": "k-case"}, ""),
    ("bearer key", KEYS, _body(UNDATED), {**JSON, "authorization": "Bearer k-portal"}, ""),
    ("agency not the key's", {**KEYS, "key_agencies": "case=police"}, _body(UNDATED),
     {**JSON, "x-api-key": "k-case"}, ""),
    ("agency the key's", {**KEYS, "key_agencies": "case=council"}, _body(UNDATED),
     {**JSON, "x-api-key": "k-case"}, ""),
    ("revision not served", {}, _body(UNDATED), {**JSON, "x-policy-revision": "sha256:0"}, ""),
]


def _seen(response: Any) -> tuple[int, list[tuple[str, str]], Any]:
    headers = sorted((k, v) for k, v in response.headers.items() if k not in ("date", "server"))
    try:
        body = response.json()
    except ValueError:
        return response.status_code, headers, response.content
    if isinstance(body, dict):
        body.pop("decision_id", None)
    return response.status_code, headers, body


def _answers(directory: Path, settings: dict[str, Any], requests: list[tuple[bytes, dict[str, Any], str]],
             *, lanes: bool, method: str = "POST", path: str = "/decide", started: bool = True,
             **client: Any) -> list[Any]:
    app = create_app(directory, watch=False, **settings)
    if not lanes:
        app.lanes.clear()
    test_client = TestClient(app, raise_server_exceptions=False, **client)
    if started:
        with test_client:
            return [_seen(test_client.request(method, f"{path}?{query}" if query else path, content=body,
                                              headers=headers)) for body, headers, query in requests]
    return [_seen(test_client.request(method, path, content=body, headers=headers))
            for body, headers, query in requests]


@pytest.mark.parametrize(("settings", "body", "headers", "query"), [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_the_lane_answers_as_the_route_does(policy_dir: Path, settings: dict[str, Any], body: bytes,
                                            headers: dict[str, Any], query: str) -> None:
    # Twice: the second answer of a body comes from what was admitted the first time.
    requests = [(body, headers, query)] * 2
    through_lane = _answers(policy_dir, settings, requests, lanes=True)
    assert through_lane == _answers(policy_dir, settings, requests, lanes=False)
    assert through_lane[0] == through_lane[1]


def test_refusals_name_the_field(policy_dir: Path) -> None:
    (status, _, body), = _answers(policy_dir, {}, [(_body({**UNDATED, "requester": {"role": 7}}), JSON, "")],
                                  lanes=True)
    assert status == 422 and body["field"] == "requester.role"


def test_before_the_policy_is_loaded_the_lane_answers_503_as_the_route(policy_dir: Path) -> None:
    requests = [(_body(UNDATED), JSON, "")]
    through_lane = _answers(policy_dir, {}, requests, lanes=True, started=False)
    assert through_lane == _answers(policy_dir, {}, requests, lanes=False, started=False)
    assert through_lane[0][0] == 503


@pytest.mark.parametrize(("method", "path"), [("GET", "/decide"), ("PUT", "/decide"), ("POST", "/decide/")])
def test_other_methods_and_paths_are_answered_by_the_application(policy_dir: Path, method: str, path: str) -> None:
    requests = [(_body(UNDATED), JSON, "")]
    assert _answers(policy_dir, {}, requests, lanes=True, method=method, path=path) == \
        _answers(policy_dir, {}, requests, lanes=False, method=method, path=path)


def test_an_unexpected_error_is_a_500_in_the_one_shape_and_reaches_the_server(policy_dir: Path,
                                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: Any, request: Any, **options: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr("engine.policy.Policy.decide", broken)
    requests = [(_body(UNDATED), JSON, "")]
    through_lane = _answers(policy_dir, {}, requests, lanes=True)
    assert through_lane == _answers(policy_dir, {}, requests, lanes=False)
    assert through_lane[0][0] == 500 and through_lane[0][2]["code"] == "internal_error"
    with TestClient(create_app(policy_dir, watch=False)) as client, pytest.raises(RuntimeError, match="a bug"):
        client.post("/decide", content=_body(UNDATED), headers=JSON)


def _metrics(directory: Path, lanes: bool) -> list[str]:
    app = create_app(directory, watch=False)
    if not lanes:
        app.lanes.clear()
    with TestClient(app) as client:
        for body in (UNDATED, UNDATED, {**UNDATED, "purpose": "marketing"}, PERMITTED, {"requester": 1}):
            client.post("/decide", json=body)
        client.post("/decide", content=b"{", headers=JSON)
        text = client.get("/metrics").text
    return [line for line in text.splitlines()
            if line.startswith(("engine_decisions_total", "engine_requests_rejected_total", "engine_cache_hits_total",
                                "engine_cache_misses_total", "engine_decision_duration_seconds_count"))]


def test_the_lane_counts_as_the_route_does(policy_dir: Path) -> None:
    counted = _metrics(policy_dir, lanes=True)
    assert counted == _metrics(policy_dir, lanes=False)
    assert 'engine_decisions_total{decision="permit"} 2.0' in counted
    assert 'engine_requests_rejected_total{code="date_not_allowed"} 1.0' in counted
    assert 'engine_requests_rejected_total{code="invalid_json"} 1.0' in counted
    assert 'engine_decision_duration_seconds_count{endpoint="decide"} 3.0' in counted


def _spans(directory: Path, lanes: bool) -> list[dict[str, Any]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = create_app(directory, watch=False, telemetry=Telemetry(provider))
    if not lanes:
        app.lanes.clear()
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with TestClient(app) as client:
        for _ in range(2):
            client.post("/decide", json=UNDATED, headers={"traceparent": parent})
    return [{"name": span.name, "trace": format(span.context.trace_id, "032x"),
             **{k: v for k, v in (span.attributes or {}).items() if k != "engine.decision_id"}}
            for span in exporter.get_finished_spans()]


def test_the_lane_traces_as_the_route_does(policy_dir: Path) -> None:
    traced = _spans(policy_dir, lanes=True)
    assert traced == _spans(policy_dir, lanes=False)
    assert [span["engine.cache_hit"] for span in traced] == [False, True]
    assert {span["trace"] for span in traced} == {"0af7651916cd43dd8448eb211c80319c"}


def test_the_lane_audits_each_answer(policy_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    with TestClient(create_app(policy_dir, watch=False, audit_log=log)) as client:
        answers = [client.post("/decide", json=UNDATED).json()["decision_id"] for _ in range(3)]
    assert len(set(answers)) == 3
    assert verify(log.read_bytes()) == (3, [])
    assert [json.loads(line)["decision_id"] for line in log.read_text().splitlines()] == answers


def test_each_answer_has_its_own_decision_id(policy_dir: Path) -> None:
    with TestClient(create_app(policy_dir, watch=False)) as client:
        ids = {client.post("/decide", json=UNDATED).json()["decision_id"] for _ in range(5)}
    assert len(ids) == 5


def test_the_lane_is_the_one_taken(policy_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    taken = []
    call = DecideLane.__call__

    async def spy(self: DecideLane, *args: Any) -> None:
        taken.append(True)
        await call(self, *args)

    monkeypatch.setattr(DecideLane, "__call__", spy)
    with TestClient(create_app(policy_dir, watch=False)) as client:
        assert client.post("/decide", json=UNDATED).status_code == 200
        assert client.get("/healthz").status_code == 200
    assert taken == [True]


def _taken(app: Any, monkeypatch: pytest.MonkeyPatch, **client: Any) -> tuple[list[bool], Any]:
    taken: list[bool] = []
    lane = app.lanes["/decide"]
    call = type(lane).__call__

    async def spy(self: DecideLane, *args: Any) -> None:
        taken.append(True)
        await call(self, *args)

    monkeypatch.setattr(type(lane), "__call__", spy)
    with TestClient(app, **client) as test_client:
        response = test_client.post("/decide", json=UNDATED, headers={"accept-encoding": "gzip"})
    return taken, response


def test_middleware_added_later_turns_the_lane_aside(policy_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(policy_dir, watch=False)
    app.add_middleware(GZipMiddleware, minimum_size=1)
    taken, response = _taken(app, monkeypatch)
    assert taken == [] and response.headers["content-encoding"] == "gzip"
    assert response.json()["decision"] == "permit"


def test_under_a_root_path_the_application_answers(policy_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    taken, response = _taken(create_app(policy_dir, watch=False), monkeypatch, root_path="/pdp")
    assert taken == [] and response.json()["decision"] == "permit"


def test_frameworks_own_request_spans_turn_the_lane_aside(policy_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(policy_dir, watch=False)
    assert framework_telemetry_off(app)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", provider)
    assert not framework_telemetry_off(app)
    taken, response = _taken(app, monkeypatch)
    assert taken == [] and response.status_code == 200
    routes = [span.attributes.get("http.route") for span in exporter.get_finished_spans() if span.attributes]
    assert "/decide" in routes  # FastAPI's server span, named by the route the router chose


def test_the_route_stays_in_the_openapi_document(policy_dir: Path) -> None:
    document = create_app(policy_dir, watch=False).openapi()
    assert document["paths"]["/decide"]["post"]["operationId"] == "decide"


def test_a_lane_is_not_added_over_middleware_it_does_not_stand_in_for(policy_dir: Path) -> None:
    app = create_app(policy_dir, watch=False)
    lane = app.lanes["/decide"]
    app.add_middleware(GZipMiddleware)
    with pytest.raises(ValueError, match="GZipMiddleware"):
        app.add_lane("/decide", lane)


def test_a_path_guarded_by_exposure_cannot_be_a_lane(policy_dir: Path) -> None:
    app = create_app(policy_dir, watch=False)
    lane = app.lanes["/decide"]
    with pytest.raises(ValueError, match="Exposure"):
        DecideLane(app, lane.deciding, 1000, path="/policy")


# --- what was admitted, kept by body -------------------------------------------------------------


def test_admitted_bodies_are_kept_per_policy_body_caller_and_date() -> None:
    bodies = AdmittedBodies(max_entries=2, max_body=100)
    policy, other = object(), object()
    bodies.put(policy, b"{}", None, "2026-01-01", {"a": 1})
    assert bodies.get(policy, b"{}", None, "2026-01-01") == {"a": 1}
    assert bodies.get(policy, b"{}", "case", "2026-01-01") is None
    assert bodies.get(policy, b"{}", None, "2026-01-02") is None
    assert bodies.get(other, b"{}", None, "2026-01-01") is None
    bodies.put(other, b"{}", None, "2026-01-01", {"b": 1})  # another set: the first one's entries go
    assert bodies.get(policy, b"{}", None, "2026-01-01") is None and len(bodies) == 1
    bodies.put(other, b"x" * 101, None, "2026-01-01", {})  # too large to keep
    assert len(bodies) == 1
    bodies.put(other, b"[]", None, "2026-01-01", {})
    bodies.put(other, b"[1]", None, "2026-01-01", {})  # full: emptied first
    assert len(bodies) == 1


def test_a_body_is_admitted_once_and_its_request_never_changed(policy_dir: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(policy_dir, watch=False)
    admission = app.state.service.admission
    admitted = []
    admit = type(admission).admit

    def counting(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        admitted.append(True)
        return admit(self, request, *args, **kwargs)

    monkeypatch.setattr(type(admission), "admit", counting)
    with TestClient(app) as client:
        for _ in range(3):
            assert client.post("/decide", json=UNDATED).status_code == 200
        for _ in range(2):  # a refusal is worked out every time
            assert client.post("/decide", json=PERMITTED).status_code == 422
    assert len(admitted) == 3
    kept = app.lanes["/decide"].deciding.bodies
    assert len(kept) == 1
    (request,) = kept._entries.values()
    assert request["context"] == {"risk_of_harm": True, "date": admission.today()}


def test_a_new_day_is_a_new_admission(policy_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(policy_dir, watch=False)
    with TestClient(app) as client:
        client.post("/decide", json=UNDATED)
        monkeypatch.setattr(type(app.state.service.admission), "today", lambda self: "2099-01-01")
        client.post("/decide", json=UNDATED)
    dates = sorted(request["context"]["date"] for request in app.lanes["/decide"].deciding.bodies._entries.values())
    assert len(dates) == 2 and dates[-1] == "2099-01-01"


def test_with_an_audit_trail_nothing_is_kept(policy_dir: Path, tmp_path: Path) -> None:
    app = create_app(policy_dir, watch=False, audit_log=tmp_path / "audit.jsonl")
    with TestClient(app) as client:
        client.post("/decide", json=UNDATED)
    assert len(app.lanes["/decide"].deciding.bodies) == 0


# --- over real HTTP --------------------------------------------------------------------------------


def _exchange(port: int, data: bytes, expected: int) -> list[bytes]:
    """Send raw bytes, read `expected` responses (head and body each)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        buffer, answers = b"", []
        while len(answers) < expected:
            while b"\r\n\r\n" not in buffer:
                buffer += sock.recv(65536)
            head, buffer = buffer.split(b"\r\n\r\n", 1)
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:")))
            while len(buffer) < length:
                buffer += sock.recv(65536)
            answers.append(head.split(b"\r\n")[0] + b"\r\n" + buffer[:length])
            buffer = buffer[length:]
        return answers


def _request(body: bytes, headers: str = "Content-Type: application/json\r\n") -> bytes:
    return (f"POST /decide HTTP/1.1\r\nHost: t\r\n{headers}Content-Length: {len(body)}\r\n\r\n").encode() + body


@pytest.mark.slow
def test_over_http_the_lane_answers_as_the_route_pipelined_and_split(policy_dir: Path) -> None:
    import threading

    import uvicorn

    from engine.service.connections import GuardedHttp

    requests = [_request(_body(UNDATED)), _request(b"{"), _request(_body({**UNDATED, "purpose": "marketing"})),
                _request(_body(UNDATED), "Content-Type: text/plain\r\n")]
    found = []
    for lanes in (True, False):
        app = create_app(policy_dir, watch=False)
        if not lanes:
            app.lanes.clear()
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                               http=GuardedHttp))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            while not server.started:
                time.sleep(0.01)
            pipelined = _exchange(port, b"".join(requests), len(requests))
            whole = b"".join(requests)
            split = []
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:  # a byte at a time at first
                for index in range(40):
                    sock.sendall(whole[index:index + 1])
                sock.sendall(whole[40:])
                buffer = b""
                while buffer.count(b"HTTP/1.1 ") < len(requests) or not buffer.endswith((b"}", b"]")):
                    buffer += sock.recv(65536)
                split.append(buffer.count(b"HTTP/1.1 200"))
            found.append(([_without_id(a) for a in pipelined], split))
        finally:
            server.should_exit = True
            thread.join(10)
    assert found[0] == found[1]
    statuses = [answer.split(b"\r\n")[0] for answer in found[0][0]]
    assert statuses == [b"HTTP/1.1 200 OK", b"HTTP/1.1 400 Bad Request", b"HTTP/1.1 200 OK",
                        b"HTTP/1.1 415 Unsupported Media Type"]


def _without_id(answer: bytes) -> bytes:
    status, body = answer.split(b"\r\n", 1)
    data = json.loads(body)
    data.pop("decision_id", None)
    return status + b"\r\n" + json.dumps(data).encode()
