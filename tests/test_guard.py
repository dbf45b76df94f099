"""The FastAPI dependency and the obligation registry, in a small case-management app."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from conftest import policy as small_policy
from conftest import rule
from apps.case_app import create_app

from engine.decision import Decision
from engine.integrations.fastapi import Guard, ObligationCall, Obligations

RULES = (rule("role gp\n  purpose direct_care\n  data health up to official\n  obligation audit", name="gp_care")
         + rule("role lead\n  purpose direct_care\n  data education\n  obligation notify_school resource.owner",
                name="school_records"))
POLICY = small_policy(RULES)
GP = {"x-role": "gp", "x-agency": "nhs", "x-user": "dr-1"}
LEAD = {"x-role": "lead", "x-agency": "council"}


def _app(handled: tuple[str, ...] = ("audit",)) -> tuple[TestClient, Guard, list[str]]:
    app, guard, audited = create_app(POLICY, handled)
    return TestClient(app), guard, audited


def test_a_permit_reaches_the_route_with_its_decision_and_obligations_are_carried_out() -> None:
    client, _guard, audited = _app()
    response = client.get("/cases/c-1", headers=GP)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["case"] == "c-1" and len(body["decision_id"]) == 32
    assert audited == [f"audit {body['decision_id']} /cases/c-1"]


def test_a_deny_is_403_with_the_summary() -> None:
    client, _guard, audited = _app()
    response = client.get("/cases/c-2", headers=GP)  # secret: above `up to official`
    assert response.status_code == 403
    detail = response.json()["detail"]
    assert detail["decision"] == "deny"
    assert detail["summary"] == POLICY.decide({
        "requester": {"role": "gp", "agency": "nhs", "id": "dr-1"}, "action": "view", "purpose": "direct_care",
        "resource": {"id": "c-2", "category": "health", "classification": "secret", "owner": "nhs"}}).summary
    assert audited == []


def test_an_obligation_without_a_handler_denies() -> None:
    client, _guard, _audited = _app()
    response = client.get("/cases/c-3", headers=LEAD)
    assert response.status_code == 403
    assert "no handler for obligation `notify_school`" in response.json()["detail"]["summary"]
    handled, _guard, _audited = _app(("audit", "notify_school"))
    assert handled.get("/cases/c-3", headers=LEAD).status_code == 200


def test_start_up_report_names_the_unhandled_obligations(caplog: pytest.LogCaptureFixture) -> None:
    _client, guard, _audited = _app()
    with caplog.at_level(logging.WARNING, logger="engine.integrations"):
        report = asyncio.run(guard.obligation_report())
    assert report.handled == ["audit"] and report.unhandled == ["notify_school"] and not report.complete
    assert "notify_school" in caplog.text


def test_an_undetermined_obligation_goes_to_its_handler_as_applying() -> None:
    seen: list[ObligationCall] = []
    obligations = Obligations()
    obligations.register("inform_adult", seen.append)
    undetermined = SimpleNamespace(name="inform_adult", args=(), status="undetermined",
                                   needs=["resource.lacks_capacity"])
    decision = Decision(decision="permit", decision_id="d-1", policy_version="v", title=None, label=None,
                        reasons=(), obligations=(undetermined,), near_misses=(), summary="Permitted.")  # type: ignore[arg-type]

    class Stub:
        def decide(self, body: dict[str, Any]) -> Decision:
            return decision

    guard = Guard(Stub(), requester=lambda request: {"role": "gp", "agency": "nhs"}, obligations=obligations)
    from fastapi import Depends, FastAPI

    app = FastAPI()

    @app.get("/x")
    async def route(d: Decision = Depends(guard.require("view", "direct_care",  # noqa: B008
                                                        resource=lambda request: {}))) -> str:
        return d.decision_id

    assert TestClient(app).get("/x").json() == "d-1"
    assert [(c.name, c.undetermined, c.needs) for c in seen] == [("inform_adult", True, ("resource.lacks_capacity",))]


def test_a_list_page_shows_only_what_the_plan_permits() -> None:
    client, _guard, _audited = _app()
    assert client.get("/cases", headers=GP).json() == {"kind": "conditional", "cases": ["c-1"]}
    assert client.get("/cases", headers={"x-role": "police_officer", "x-agency": "police"}).json() \
        == {"kind": "always_denied", "cases": []}


@pytest.mark.slow
def test_client_script_and_test_app_pass_mypy_strict() -> None:
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{root / 'tests'}"}
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", "--no-error-summary",
         "tests/apps/case_app.py", "tests/apps/client_script.py"],
        check=False, cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""
