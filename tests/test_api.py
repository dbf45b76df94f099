import json
import warnings
from pathlib import Path

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from engine.service.app import create_app
from engine.service.audit import verify
from engine.errors import PolicyError

VOCABULARY = """\
policy "Test sharing set" {
  version "1"
}
actions { view, share }
roles {
  social_worker "Social worker"
  senior_social_worker : social_worker
  police_officer
}
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
  obligation audit
  because "Children Act 1989 s.47"
}

deny no_marketing "Never for marketing" {
  purpose marketing
  because "UK GDPR Art. 21(3)"
}
"""

PERMITTED = {
    "requester": {"id": "u-17", "role": "senior_social_worker", "agency": "council"},
    "action": "share",
    "resource": {"id": "r-9", "category": "health", "classification": "official", "owner": "nhs"},
    "purpose": "safeguarding.children",
    "context": {"date": "2025-06-01", "risk_of_harm": True},
}


def _with(request: dict, **changes: object) -> dict:
    copy = json.loads(json.dumps(request))
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = copy
        for part in parents:
            node = node[part]
        if value is None:
            del node[last]
        else:
            node[last] = value
    return copy


DENIED = _with(PERMITTED, context__risk_of_harm=False)
MARKETING = _with(PERMITTED, purpose="marketing")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ENGINE_ADMIN_TOKEN", "ENGINE_API_KEYS", "ENGINE_AUDIT_LOG", "ENGINE_MAX_BODY_BYTES",
                 "OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "policies"
    directory.mkdir()
    (directory / "10_vocabulary.policy").write_text(VOCABULARY, encoding="utf-8")
    (directory / "20_rules.policy").write_text(RULES, encoding="utf-8")
    return directory


@pytest.fixture
def make_client(policy_dir: Path):
    clients = []

    def make(**options: object) -> TestClient:
        options.setdefault("watch", False)
        options.setdefault("date_callers", "*")  # the tables below decide as of fixed dates
        client = TestClient(create_app(policy_dir, **options), raise_server_exceptions=False)
        clients.append(client.__enter__())
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()


def _assert_error_shape(body: dict) -> None:
    assert set(body) <= {"code", "message", "field", "location", "help", "diagnostics", "rendered"}
    assert isinstance(body["code"], str) and isinstance(body["message"], str)
    assert ("field" in body) != ("location" in body)
    assert "Traceback" not in json.dumps(body)


# --- deciding ---------------------------------------------------------------------


def test_decide_permits_with_reasons_and_obligations(client: TestClient) -> None:
    response = client.post("/decide", json=PERMITTED)
    assert response.status_code == 200
    body = response.json()
    assert body["decision"] == "permit"
    assert body["policy_version"].startswith("sha256:")
    assert body["policy"] == {"title": "Test sharing set", "version": "1"}
    assert [reason["rule"] for reason in body["reasons"]] == ["child_protection"]
    assert body["reasons"][0]["because"] == "Children Act 1989 s.47"
    assert [obligation["name"] for obligation in body["obligations"]] == ["audit"]
    assert body["summary"]


def test_decide_denies_with_near_misses(client: TestClient) -> None:
    body = client.post("/decide", json=DENIED).json()
    assert body["decision"] == "deny"
    assert body["reasons"] == []
    assert body["near_misses"][0]["rule"] == "child_protection"


def test_a_repeated_request_is_answered_from_the_cache_under_its_own_id(client: TestClient) -> None:
    first = client.post("/decide", json=MARKETING).json()
    second = client.post("/decide", json=MARKETING).json()
    assert first["decision_id"] != second["decision_id"]
    assert {**first, "decision_id": None} == {**second, "decision_id": None}
    assert "engine_cache_hits_total 1.0\n" in client.get("/metrics").text


def test_batch_answers_in_order_with_one_version(client: TestClient) -> None:
    requests = [PERMITTED, DENIED, MARKETING] * 30
    response = client.post("/decide/batch", json={"requests": requests})
    assert response.status_code == 200
    decisions = response.json()["decisions"]
    assert [d["decision"] for d in decisions] == ["permit", "deny", "deny"] * 30
    assert decisions[2]["reasons"][0]["rule"] == "no_marketing"
    assert len({d["policy_version"] for d in decisions}) == 1
    assert len({d["decision_id"] for d in decisions}) == 90


def test_a_refused_batch_decides_and_audits_nothing(policy_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "decisions.audit.jsonl"
    with TestClient(create_app(policy_dir, watch=False, audit_log=log, date_callers="*")) as client:
        bad = {"requests": [PERMITTED] * 150 + [_with(PERMITTED, action="sing")]}
        assert client.post("/decide/batch", json=bad).status_code == 422
        assert 'engine_decisions_total{decision="permit"} 0.0' in client.get("/metrics").text
    assert log.read_bytes() == b""


def test_empty_batch_is_answered(client: TestClient) -> None:
    assert client.post("/decide/batch", json={"requests": []}).json() == {"decisions": []}


# --- errors: one shape, never a traceback --------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "field", "help"),
    [
        ("/decide", _with(PERMITTED, requester__role="social_wroker"), "requester.role", "social_worker"),
        ("/decide", _with(PERMITTED, action=None), "action", None),
        ("/decide", _with(PERMITTED, context__risk_of_harm="yes"), "context.risk_of_harm", None),
        ("/decide", _with(PERMITTED, context__mood="calm"), "context.mood", None),
        ("/decide/batch", {"requests": [PERMITTED, _with(PERMITTED, purpose="marketting")]},
         "requests[1].purpose", "marketing"),
        ("/decide/batch", {"requests": [PERMITTED] * 150 + [_with(PERMITTED, requester__agency="polise")]},
         "requests[150].requester.agency", "police"),
        ("/decide/batch", {"requests": [PERMITTED] * 1001}, "requests", None),
        ("/decide/batch", {"request": [PERMITTED]}, "request", None),
        ("/decide/batch", {"requests": PERMITTED}, "requests", None),
        ("/decide/batch", {"requests": [PERMITTED, "share"]}, "requests[1]", None),
    ],
    ids=["misspelt-role", "missing-action", "wrong-type", "undeclared-attribute", "batch-item",
         "batch-item-in-a-later-slice", "batch-too-long", "batch-wrong-key", "batch-not-list", "batch-item-not-object"],
)
def test_invalid_request_is_422_naming_the_field(client: TestClient, path: str, body: dict, field: str,
                                                  help: str | None) -> None:
    response = client.post(path, json=body)
    assert response.status_code == 422
    error = response.json()
    _assert_error_shape(error)
    assert error["code"] == "invalid_request"
    assert error["field"] == field
    if help:
        assert "did you mean" in error["help"] and help in error["help"]


@pytest.mark.parametrize(
    ("content", "headers", "status", "code"),
    [
        (b'{"action": "share",\n "purpose": }', {"content-type": "application/json"}, 400, "invalid_json"),
        (b'{"action": NaN}', {"content-type": "application/json"}, 400, "invalid_json"),
        (b"", {"content-type": "application/json"}, 400, "invalid_json"),
        (b"\xff\xfe{", {"content-type": "application/json"}, 400, "invalid_json"),
        (b"[" * 100_000, {"content-type": "application/json"}, 400, "invalid_json"),
        (b"[1, 2]", {"content-type": "application/json"}, 422, "invalid_request"),
        (b"{}", {"content-type": "text/plain"}, 415, "unsupported_media_type"),
        (b"action=share", {"content-type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"),
        (b"{}", {}, 415, "unsupported_media_type"),
    ],
    ids=["syntax", "nan", "empty", "not-utf8", "too-deep", "array", "text", "form", "no-content-type"],
)
def test_bad_body_is_refused_with_its_location(client: TestClient, content: bytes, headers: dict,
                                               status: int, code: str) -> None:
    response = client.post("/decide", content=content, headers=headers)
    assert response.status_code == status
    error = response.json()
    _assert_error_shape(error)
    assert error["code"] == code
    assert error["location"]["in"] in ("body", "header")


@pytest.mark.parametrize("path", ["/decide", "/decide/batch"])
def test_a_key_given_twice_is_refused_naming_it(client: TestClient, path: str) -> None:
    body = b'{"requester": {"role": "social_worker"},\n "requester": {"role": "gp"}}'
    if path == "/decide/batch":
        body = b'{"requests": [' + body + b"]}"
    response = client.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    error = response.json()
    assert error["code"] == "invalid_json"
    assert "the key `requester` appears twice" in error["message"]
    assert error["location"]["line"] == 2


def test_json_syntax_error_names_line_and_column(client: TestClient) -> None:
    response = client.post("/decide", content=b'{"action": "share",\n "purpose": }',
                           headers={"content-type": "application/json; charset=utf-8"})
    assert response.json()["location"] == {"in": "body", "line": 2, "column": 13}


def test_body_over_the_limit_is_413(make_client) -> None:
    client = make_client(max_body=2048)
    big = _with(PERMITTED, requester__id="x" * 4096)
    response = client.post("/decide", json=big)
    assert response.status_code == 413
    _assert_error_shape(response.json())
    chunked = client.post("/decide", content=iter([b'{"a": "', b"x" * 4096, b'"}']),
                          headers={"content-type": "application/json"})
    assert chunked.status_code == 413
    assert client.post("/decide", json=PERMITTED).status_code == 200


@pytest.mark.parametrize(("method", "path", "status"), [("GET", "/nowhere", 404), ("GET", "/decide", 405),
                                                        ("DELETE", "/policy", 405)])
def test_unknown_route_answers_in_the_error_shape(client: TestClient, method: str, path: str, status: int) -> None:
    response = client.request(method, path)
    assert response.status_code == status
    error = response.json()
    _assert_error_shape(error)
    assert error["location"] == {"in": "path", "path": path}


def test_unexpected_failure_is_500_without_internals(client: TestClient) -> None:
    class Broken:
        version = "sha256:broken"

        def decide(self, request: dict) -> None:
            raise ZeroDivisionError("secret internals")

    client.app.state.service.holder.policy = Broken()
    response = client.post("/decide", json=PERMITTED)
    assert response.status_code == 500
    _assert_error_shape(response.json())
    assert "secret internals" not in response.text and "ZeroDivision" not in response.text


def test_a_policy_error_while_deciding_answers_in_the_error_shape(client: TestClient) -> None:
    class Failing:
        version = "sha256:failing"

        def decide(self, request: dict) -> None:
            raise PolicyError("the compiled rule cannot be evaluated", help="run engine check")

    client.app.state.service.holder.policy = Failing()
    response = client.post("/decide", json=PERMITTED)
    assert response.status_code == 422
    error = response.json()
    _assert_error_shape(error)
    assert (error["code"], error["location"], error["help"]) == ("policy_error", {"in": "policy"}, "run engine check")


def test_typed_parameters_of_added_routes_answer_in_the_error_shape(client: TestClient) -> None:
    @client.app.get("/probe")
    async def probe(limit: int) -> dict:
        return {"limit": limit}

    response = client.get("/probe", params={"limit": "many"})
    assert response.status_code == 422
    error = response.json()
    _assert_error_shape(error)
    assert error["field"] == "limit"


# --- the policy set ----------------------------------------------------------------


def test_policy_describes_the_served_set(client: TestClient, policy_dir: Path) -> None:
    info = client.get("/policy").json()
    assert info["version"].startswith("sha256:")
    assert info["title"] == "Test sharing set" and info["label"] == "1"
    assert len(info["files"]) == 2 and info["files"][0].endswith("10_vocabulary.policy")
    assert info["rules"] == 2
    assert info["vocabulary"]["roles"] == 3 and info["vocabulary"]["actions"] == 2
    assert info["loaded_at"]
    assert info["warnings"] == []


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["policy_version"].startswith("sha256:")


def test_metrics_count_decisions_cache_and_version(client: TestClient) -> None:
    client.post("/decide", json=PERMITTED)
    client.post("/decide", json=PERMITTED)
    client.post("/decide/batch", json={"requests": [DENIED, MARKETING]})
    client.post("/decide", json=_with(PERMITTED, action="sing"))
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    version = client.get("/policy").json()["version"]
    assert 'engine_decisions_total{decision="permit"} 2.0' in text
    assert 'engine_decisions_total{decision="deny"} 2.0' in text
    assert 'engine_requests_rejected_total{code="invalid_request"} 1.0' in text
    assert 'engine_decision_duration_seconds_count{endpoint="decide"} 2.0' in text
    assert 'engine_decision_duration_seconds_bucket{endpoint="batch",le="+Inf"} 1.0' in text
    assert "engine_cache_hits_total 1.0" in text
    misses = next(line for line in text.splitlines() if line.startswith("engine_cache_misses_total "))
    assert float(misses.split()[1]) >= 3
    assert 'engine_policy_reloads_total{result="failed"} 0.0' in text
    assert f'engine_policy_info{{label="1",title="Test sharing set",version="{version}"}} 1.0' in text


def test_openapi_documents_the_request_shape(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    decide = document["paths"]["/decide"]["post"]
    schema = decide["requestBody"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/DecisionRequest"}
    components = document["components"]["schemas"]
    assert {"DecisionRequest", "BatchRequest", "Requester", "Resource", "Decision", "ErrorBody"} <= set(components)
    assert "422" in decide["responses"] and "413" in decide["responses"]
    assert client.get("/docs").status_code == 200


# --- reloading ---------------------------------------------------------------------


def test_reload_endpoint_is_off_without_a_token(client: TestClient) -> None:
    response = client.post("/policy/reload", headers={"Authorization": "Bearer anything"})
    assert response.status_code == 403
    error = response.json()
    _assert_error_shape(error)
    assert "reload endpoint is off" in error["message"]


@pytest.mark.parametrize(("headers", "status"), [({}, 401), ({"Authorization": "Bearer wrong"}, 403),
                                                 ({"Authorization": "Basic s3cret"}, 401)],
                         ids=["none", "wrong", "not-bearer"])
def test_reload_needs_the_admin_token(make_client, headers: dict, status: int) -> None:
    client = make_client(admin_token="s3cret")
    response = client.post("/policy/reload", headers=headers)
    assert response.status_code == status
    _assert_error_shape(response.json())


def test_reload_swaps_in_a_good_set_and_refuses_a_broken_one(make_client, policy_dir: Path) -> None:
    client = make_client(admin_token="s3cret")
    admin = {"Authorization": "Bearer s3cret"}
    before = client.get("/policy").json()["version"]
    assert client.post("/policy/reload", headers=admin).json()["status"] == "unchanged"

    (policy_dir / "20_rules.policy").write_text(RULES.replace("role social_worker", "role police_officer"))
    response = client.post("/policy/reload", headers=admin)
    assert response.status_code == 200
    reloaded = response.json()
    assert reloaded["status"] == "reloaded" and reloaded["previous_version"] == before
    after = reloaded["policy"]["version"]
    assert after != before
    decision = client.post("/decide", json=PERMITTED).json()
    assert (decision["decision"], decision["policy_version"]) == ("deny", after)

    (policy_dir / "20_rules.policy").write_text(RULES.replace("role social_worker", "role social_wrker"))
    refused = client.post("/policy/reload", headers=admin)
    assert refused.status_code == 409
    error = refused.json()
    _assert_error_shape(error)
    assert after in error["message"]
    assert error["location"]["in"] == "policy" and error["location"]["file"].endswith("20_rules.policy")
    assert "social_wrker" in error["rendered"] and error["diagnostics"]
    assert client.post("/decide", json=PERMITTED).json()["policy_version"] == after
    assert 'engine_policy_reloads_total{result="failed"} 1.0' in client.get("/metrics").text


# --- callers and the audit trail ------------------------------------------------------


def test_api_keys_are_required_when_configured(make_client) -> None:
    client = make_client(api_keys="case_system=k-case,portal=k-portal")
    for headers in ({}, {"Authorization": "Bearer nope"}, {"X-API-Key": "k-cas"}):
        response = client.post("/decide", json=PERMITTED, headers=headers)
        assert response.status_code == 401
        _assert_error_shape(response.json())
        assert response.headers["www-authenticate"] == "Bearer"
    assert client.post("/decide", json=PERMITTED, headers={"Authorization": "Bearer k-case"}).status_code == 200
    assert client.post("/decide/batch", json={"requests": [PERMITTED]},
                       headers={"X-API-Key": "k-portal"}).status_code == 200
    assert client.post("/decide/batch", json={"requests": [PERMITTED]}).status_code == 401
    assert client.get("/healthz").status_code == 200


def test_api_keys_come_from_the_environment(make_client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGINE_API_KEYS", "portal=k-portal")
    client = make_client()
    assert client.post("/decide", json=PERMITTED).status_code == 401
    assert client.post("/decide", json=PERMITTED, headers={"X-API-Key": "k-portal"}).status_code == 200


def test_every_decision_is_audited_with_its_caller(policy_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "decisions.audit.jsonl"
    app = create_app(policy_dir, watch=False, api_keys="case_system=k-case,portal=k-portal", audit_log=log,
                     date_callers="*")
    with TestClient(app) as client:  # leaving the block shuts down, which flushes the trail
        one = client.post("/decide", json=PERMITTED, headers={"X-API-Key": "k-case"}).json()
        batch = client.post("/decide/batch", json={"requests": [DENIED, MARKETING]},
                            headers={"Authorization": "Bearer k-portal"}).json()["decisions"]
        client.post("/decide", json=_with(PERMITTED, action="sing"), headers={"X-API-Key": "k-case"})

    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["decision_id"] for e in entries] == [one["decision_id"]] + [d["decision_id"] for d in batch]
    assert [e["caller"] for e in entries] == ["case_system", "portal", "portal"]
    assert [e["decision"] for e in entries] == ["permit", "deny", "deny"]
    assert entries[0]["request"] == PERMITTED
    assert entries[0]["reasons"] == ["child_protection"] and entries[2]["reasons"] == ["no_marketing"]
    assert entries[0]["policy_version"] == one["policy_version"]
    assert verify(log.read_bytes()) == (3, [])


def test_without_a_path_the_example_policies_are_served() -> None:
    with TestClient(create_app(watch=False)) as client:
        info = client.get("/policy").json()
    assert info["rules"] > 0
    assert "00_vocabulary.policy" in info["files"]  # relative to the policy root, never a server path
