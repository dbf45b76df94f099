"""An application's use of the client, type-checked with `mypy --strict` by the tests."""

from __future__ import annotations

import asyncio
from typing import Any

from engine.client import AsyncPolicyClient, ErrorDecision, PolicyClient
from engine.decision import Decision
from engine.plan import Plan

REQUEST: dict[str, Any] = {
    "requester": {"role": "social_worker", "agency": "council"}, "action": "share",
    "resource": {"category": "health", "classification": "official", "owner": "nhs"},
    "purpose": "safeguarding.children", "context": {"risk_of_harm": True},
}


def visible(url: str, key: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    with PolicyClient(url, api_key=key, timeout=2.0) as client:
        decision: Decision = client.decide(REQUEST)
        if isinstance(decision, ErrorDecision):
            print("could not decide:", decision.error)
        plan: Plan = client.plan({k: v for k, v in REQUEST.items() if k != "resource"})
        return [r for r in records if plan.matches(r)]


async def permitted(url: str, requests: list[dict[str, Any]]) -> list[bool]:
    async with AsyncPolicyClient(url) as client:
        decisions = await client.decide_many(requests)
        return [d.permitted for d in decisions]


if __name__ == "__main__":
    print(asyncio.run(permitted("http://127.0.0.1:8000", [REQUEST])))
