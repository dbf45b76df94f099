"""Invalid requests are reported so the caller can fix them in one go: every missing
required field at once, and an attribute under the wrong section named where it belongs."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

import engine
from engine.commands.main import main
from engine.service.app import create_app

EXAMPLES = Path(__file__).resolve().parent.parent / "policies"
MISSING = ["requester.agency", "action", "purpose", "resource.category", "resource.classification",
           "resource.owner"]
HALF = {"requester": {"role": "gp"}}
WRONG_SECTION = {"requester": {"role": "gp", "agency": "mft"}, "action": "view", "purpose": "research",
                 "resource": {"category": "health", "classification": "official", "owner": "mft",
                              "consent": "given"}}


@pytest.fixture(scope="module")
def policy():
    return engine.load(EXAMPLES)


def test_every_missing_required_field_is_reported_at_once(policy):
    with pytest.raises(engine.RequestError) as caught:
        policy.decide(HALF)
    error = caught.value.to_json()
    assert error["field"] == "requester.agency"  # the first, as before
    assert [e["field"] for e in error["errors"]] == MISSING
    assert {e["message"] for e in error["errors"]} == {"required field is missing"}


def test_one_missing_field_has_no_list(policy):
    request = {**WRONG_SECTION, "resource": {"category": "health", "classification": "official"}}
    with pytest.raises(engine.RequestError) as caught:
        policy.decide(request)
    assert caught.value.to_json() == {"code": "invalid_request", "message": "required field is missing",
                                      "field": "resource.owner"}


def test_an_attribute_under_the_wrong_section_is_named_where_it_belongs(policy):
    with pytest.raises(engine.RequestError) as caught:
        policy.decide(WRONG_SECTION)
    assert caught.value.field == "resource.consent"
    assert caught.value.help == "did you mean `context.consent`? `consent` is declared under `context`"


def test_a_batch_names_the_request_in_each_error(policy):
    with pytest.raises(engine.RequestError) as caught:
        policy.decide_many([HALF])
    assert [e.field for e in caught.value.errors] == [f"requests[0].{f}" for f in MISSING]


def test_the_command_line_prints_each_missing_field(tmp_path, capsys):
    path = tmp_path / "request.json"
    path.write_text(json.dumps(HALF), encoding="utf-8")
    assert main(["decide", "--policy", str(EXAMPLES), str(path)]) == 1
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if line.startswith("invalid request:")] == [
        f"invalid request: {field}: required field is missing" for field in MISSING]


@pytest.mark.parametrize(("path", "body", "prefix"), [
    ("/decide", HALF, ""),
    ("/decide/batch", {"requests": [HALF]}, "requests[0]."),
])
def test_the_service_lists_every_missing_field_beside_the_first(monkeypatch, path, body, prefix):
    for name in ("ENGINE_API_KEYS", "ENGINE_ADMIN_TOKEN", "ENGINE_AUDIT_LOG"):
        monkeypatch.delenv(name, raising=False)
    with TestClient(create_app(str(EXAMPLES), watch=False)) as client:
        response = client.post(path, json=body)
    assert response.status_code == 422
    error = response.json()
    assert error["field"] == f"{prefix}requester.agency"
    assert [e["field"] for e in error["errors"]] == [prefix + f for f in MISSING]
