"""The JSON shapes of a decision: what `Decision.to_dict()` and its parts return, as TypedDicts.

An application type-checks what it reads from a decision against these:

    data: engine.DecisionDict = decision.to_dict()
    for reason in data["reasons"]:
        print(reason["rule"], reason["file"], reason["line"])
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict


class ReasonDict(TypedDict):
    rule: str
    effect: str  # "permit" or "deny"
    description: str | None
    because: str | None
    file: str
    line: int
    missing: NotRequired[list[str]]  # attributes a fail-closed deny rule lacked


class ObligationDict(TypedDict):
    name: str
    args: list[Any]  # values of the request or of the policy: str, int, float, bool, date text, or None
    status: str  # "applies", or "undetermined" when it needs facts the request left out
    needs: NotRequired[list[str]]  # only when undetermined: the attribute paths it needs


class FailedClauseDict(TypedDict):
    clause: str
    needed: str
    had: str
    text: str


class NearMissDict(TypedDict):
    rule: str
    description: str | None
    file: str
    line: int
    failed: list[FailedClauseDict]


class PolicyTitleDict(TypedDict):
    title: str
    version: str | None


class DecisionDict(TypedDict):
    decision: str  # "permit" or "deny"
    decision_id: str
    policy_version: str
    policy: NotRequired[PolicyTitleDict]  # when the set has a header with a title
    reasons: list[ReasonDict]
    obligations: list[ObligationDict]
    near_misses: list[NearMissDict]
    summary: str
    denied_by: NotRequired[str]  # "role_not_held": denied before any rule was consulted
