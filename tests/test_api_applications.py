"""What the service tells an application: plans, the vocabulary, an API document that works offline."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from test_api import PERMITTED, RULES, VOCABULARY

from engine.policy import from_sources
from engine.service.app import create_app
from engine.source import Source

KEY = {"X-API-Key": "k-1"}
PARTIAL = {k: v for k, v in PERMITTED.items() if k != "resource"}


@pytest.fixture
def client(tmp_path: Path):
    (tmp_path / "set.policy").write_text(VOCABULARY + RULES, encoding="utf-8")
    app = create_app(tmp_path, api_keys={"app": "k-1"}, watch=False, date_callers="app")
    with TestClient(app) as test_client:
        yield test_client


def test_plan_endpoint_answers_as_the_library_does(client: TestClient) -> None:
    response = client.post("/plan", json=PARTIAL, headers=KEY)
    assert response.status_code == 200, response.text
    body = response.json()
    library = from_sources([Source("set.policy", VOCABULARY + RULES)]).plan(PARTIAL).to_dict()
    assert body == library
    assert body["kind"] == "always_allowed"  # every category and classification the set declares
    assert body["branches"][0]["rule"] == "child_protection"
    assert client.post("/plan", json={**PARTIAL, "purpose": "marketing"}, headers=KEY).json()["kind"] \
        == "always_denied"


@pytest.mark.parametrize("body, field", [
    (PERMITTED, "resource"),
    ({**PARTIAL, "purpose": "safegarding"}, "purpose"),
])
def test_plan_endpoint_names_the_bad_field(client: TestClient, body: dict, field: str) -> None:
    response = client.post("/plan", json=body, headers=KEY)
    assert response.status_code == 422
    assert response.json()["field"] == field


def test_plan_and_vocabulary_need_a_key_when_keys_are_set(client: TestClient) -> None:
    assert client.post("/plan", json=PARTIAL).status_code == 401
    assert client.get("/policy/vocabulary").status_code == 401


def test_vocabulary_lists_names_not_counts(client: TestClient) -> None:
    body = client.get("/policy/vocabulary", headers=KEY).json()
    assert {"name": "social_worker", "label": "Social worker", "parents": []} in body["roles"]
    assert {"name": "senior_social_worker", "label": None, "parents": ["social_worker"]} in body["roles"]
    assert [c["name"] for c in body["classifications"]] == ["public", "official", "official_sensitive"]
    assert [p["name"] for p in body["purposes"]] == ["safeguarding", "safeguarding.children",
                                                     "safeguarding.adults", "marketing"]
    assert {"path": "context.risk_of_harm", "type": "bool", "label": None, "required": False,
            "default": False} in body["attributes"]
    assert body["obligations"] == [{"name": "audit", "uses": [
        {"from": "rule child_protection", "args": [], "conditional": False}]}]


def test_openapi_has_security_operation_ids_and_examples_from_the_served_set(client: TestClient) -> None:
    document = client.get("/openapi.json", headers=KEY).json()
    assert set(document["components"]["securitySchemes"]) == {"apiKey", "bearer"}
    ids = {path: next(iter(ops.values()))["operationId"] for path, ops in document["paths"].items()}
    assert ids["/decide"] == "decide" and ids["/decide/batch"] == "decideBatch" and ids["/plan"] == "plan"
    assert ids["/policy/vocabulary"] == "policyVocabulary"
    decide = document["paths"]["/decide"]["post"]
    assert decide["security"] == [{"apiKey": []}, {"bearer": []}]
    example = decide["requestBody"]["content"]["application/json"]["example"]
    assert example["requester"]["role"] == "social_worker"  # the first permit rule's, not a made-up name
    assert example["purpose"] == "safeguarding.children"
    assert "PlanRequest" in document["components"]["schemas"]


def test_docs_page_loads_nothing_from_the_internet(client: TestClient) -> None:
    page = client.get("/docs", headers=KEY)  # with keys set, the docs need one
    assert page.status_code == 200
    assert "/docs/assets/swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower()
    script = client.get("/docs/assets/swagger-ui-bundle.js")
    assert script.status_code == 200 and len(script.content) > 100_000


def test_vocabulary_lists_sets_and_where_roles_are_held() -> None:
    import engine
    from engine.names import vocabulary_listing

    listing = vocabulary_listing(engine.load())
    assert {"name": "gp", "label": "General practitioner", "parents": [], "held_at": ["ardwick_gp", "levenshulme_gp"]} \
        in listing["roles"]
    assert {"path": "context.consented_purposes", "type": "set", "label": "purposes the person consented to",
            "required": False, "of": "purpose", "default": []} in listing["attributes"]
