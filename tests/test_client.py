"""The client against a real server: the library's decisions, and a deny marked as an error whenever
the service cannot answer."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import free_port, serving
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from test_api import PERMITTED, RULES, VOCABULARY

import engine
from engine.client import (
    AsyncPolicyClient,
    ErrorDecision,
    ErrorPlan,
    PolicyClient,
    ServiceUnavailable,
)
from engine.errors import RequestError
from engine.service.app import create_app

pytestmark = pytest.mark.slow
KEY = "k-1"
DENIED = {**PERMITTED, "purpose": "marketing"}
PARTIAL = {k: v for k, v in PERMITTED.items() if k != "resource"}


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("set")
    (directory / "set.policy").write_text(VOCABULARY + RULES, encoding="utf-8")
    return directory


@pytest.fixture(scope="module")
def url(policy_dir: Path) -> Iterator[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with serving(create_app(policy_dir, api_keys={"app": KEY}, watch=False, date_callers="app")) as found:
            yield found


async def _slow(request: Request) -> Response:
    await asyncio.sleep(2)
    return JSONResponse({})


async def _broken(request: Request) -> Response:
    return JSONResponse({"code": "internal_error", "message": "the service could not answer"}, 500)


@pytest.fixture(scope="module")
def troubled() -> Iterator[str]:
    """`/slow/...` answers after 2 s; `/broken/...` answers 500."""
    routes = [Route(f"/{kind}/{path}", handler, methods=["POST", "GET"])
              for kind, handler in (("slow", _slow), ("broken", _broken))
              for path in ("decide", "decide/batch", "plan", "policy/vocabulary")]
    with serving(Starlette(routes=routes)) as found:
        yield found


def _same(decision: engine.Decision) -> dict:
    data = decision.to_dict()
    data.pop("decision_id")
    return data


def test_decisions_equal_the_librarys(url: str, policy_dir: Path) -> None:
    library = engine.load(policy_dir)
    requests = [PERMITTED, DENIED, {**PERMITTED, "context": {"date": "2025-06-01"}}]
    with PolicyClient(url, api_key=KEY) as client:
        for request in requests:
            got = client.decide(request)
            assert type(got) is engine.Decision
            assert _same(got) == _same(library.decide(request))
        assert [_same(d) for d in client.decide_many(requests)] == [_same(library.decide(r)) for r in requests]
        plan = client.plan(PARTIAL)
        assert plan.to_dict() == library.plan(PARTIAL).to_dict()
        assert plan.matches(PERMITTED["resource"])
        assert [r["name"] for r in client.vocabulary()["roles"]] == ["social_worker", "senior_social_worker",
                                                                     "police_officer"]


def test_async_client_decides_as_the_library_does(url: str, policy_dir: Path) -> None:
    library = engine.load(policy_dir)

    async def run() -> tuple[engine.Decision, list[engine.Decision]]:
        async with AsyncPolicyClient(url, api_key=KEY) as client:
            return await client.decide(PERMITTED), await client.decide_many([DENIED, PERMITTED])

    one, many = asyncio.run(run())
    assert _same(one) == _same(library.decide(PERMITTED))
    assert [d.decision for d in many] == ["deny", "permit"]


def test_batches_over_the_limit_are_split_and_come_back_in_order(url: str) -> None:
    requests = [dict(PERMITTED if n % 3 else DENIED, requester={**PERMITTED["requester"], "id": f"u-{n}"})
                for n in range(1001)]  # the service takes at most 1,000 at a time
    with PolicyClient(url, api_key=KEY) as client:
        decisions = client.decide_many(requests)
        assert [d.decision for d in decisions] == ["permit" if n % 3 else "deny" for n in range(1001)]
        small = PolicyClient(url, api_key=KEY, batch_limit=3)
        assert [d.decision for d in small.decide_many(requests[:7])] == [d.decision for d in decisions[:7]]
        small.close()
        bad = [*requests, {**PERMITTED, "purpose": "safegarding"}]  # at 1001, in the second call
        with pytest.raises(RequestError) as caught:
            client.decide_many(bad + requests[:1])
        assert caught.value.field == "requests[1001].purpose"


def test_an_invalid_request_raises_as_the_library_does(url: str) -> None:
    with PolicyClient(url, api_key=KEY) as client, pytest.raises(RequestError) as caught:
        client.decide({**PERMITTED, "purpose": "safegarding"})
    assert caught.value.field == "purpose"


@pytest.mark.parametrize("where, timeout, expected", [
    ("down", 1.0, "could not be reached"),
    ("slow", 0.2, "timed out"),
    ("broken", 1.0, "HTTP 500"),
    ("wrong key", 1.0, "HTTP 401"),
])
def test_a_service_that_cannot_answer_means_deny_marked_as_error(
        url: str, troubled: str, where: str, timeout: float, expected: str) -> None:
    base = {"down": f"http://127.0.0.1:{free_port()}", "slow": f"{troubled}/slow",
            "broken": f"{troubled}/broken", "wrong key": url}[where]
    with PolicyClient(base, api_key="wrong", timeout=timeout) as client:
        decision = client.decide(PERMITTED)
        assert isinstance(decision, ErrorDecision) and not decision.permitted
        assert expected in decision.error and "could not decide" in decision.summary
        batch = client.decide_many([PERMITTED, PERMITTED])
        assert [type(d) for d in batch] == [ErrorDecision, ErrorDecision]
        plan = client.plan(PARTIAL)
        assert isinstance(plan, ErrorPlan) and plan.kind == "always_denied"
        assert not plan.matches(PERMITTED["resource"])
    with PolicyClient(base, api_key="wrong", timeout=timeout, raise_errors=True) as client, \
            pytest.raises(ServiceUnavailable, match=expected):
        client.decide(PERMITTED)

    async def run() -> engine.Decision:
        async with AsyncPolicyClient(base, api_key="wrong", timeout=timeout) as client:
            return await client.decide(PERMITTED)

    assert isinstance(asyncio.run(run()), ErrorDecision)


def test_a_role_not_held_deny_keeps_its_denied_by() -> None:
    from engine.client import decision_from_dict

    decision = decision_from_dict({"decision": "deny", "decision_id": "d", "policy_version": "v", "reasons": [],
                                   "obligations": [], "near_misses": [], "denied_by": "role_not_held",
                                   "summary": "Denied: role gp is not held at agency gmp."})
    assert (decision.permitted, decision.denied_by, decision.to_dict()["denied_by"]) == (
        False, "role_not_held", "role_not_held")
