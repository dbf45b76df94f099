"""Answering governance staff's questions from a trail, and explaining a past decision again."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from engine.service.audit.entries import DECISION
from engine.service.audit.policies import policy_sources
from engine.service.audit.trails import entries, policy_document

COLUMNS = ["time", "date", "decision", "requester", "role", "agency", "resource", "owner", "category",
           "action", "purpose", "rules", "caller", "decision_id"]


@dataclass(frozen=True)
class Filters:
    """What to look for; None matches anything."""

    resource: str | None = None
    requester: str | None = None
    agency: str | None = None
    owner: str | None = None
    since: str | None = None
    until: str | None = None
    decision: str | None = None


def _get(data: Any, *path: str) -> Any:
    for part in path:
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def row(entry: dict[str, Any]) -> dict[str, Any]:
    """The columns of one decision entry, as governance staff read them."""
    request = entry.get("request")
    return {
        "time": entry.get("time"), "date": entry.get("date"), "decision": entry.get("decision"),
        "requester": _get(request, "requester", "id"), "role": _get(request, "requester", "role"),
        "agency": _get(request, "requester", "agency"), "resource": _get(request, "resource", "id"),
        "owner": _get(request, "resource", "owner"), "category": _get(request, "resource", "category"),
        "action": _get(request, "action"), "purpose": _get(request, "purpose"),
        "rules": " ".join(entry.get("reasons") or []), "caller": entry.get("caller"),
        "decision_id": entry.get("decision_id"),
    }


def matches(values: dict[str, Any], filters: Filters) -> bool:
    wanted = {"resource": filters.resource, "requester": filters.requester, "agency": filters.agency,
              "owner": filters.owner, "decision": filters.decision}
    if any(want is not None and str(values[name]) != want for name, want in wanted.items()):
        return False
    when = str(values["time"] or "")
    if filters.since and when < filters.since:
        return False
    return not (filters.until and when[: len(filters.until)] > filters.until)


def query(location: str, filters: Filters) -> Iterator[dict[str, Any]]:
    """The decisions of a trail matching the filters, as rows, in the order written."""
    for entry in entries(location):
        if entry.get("kind", DECISION) == DECISION:
            values = row(entry)
            if matches(values, filters):
                yield values


def find(location: str, decision_id: str) -> dict[str, Any] | None:
    for entry in entries(location):
        if entry.get("decision_id") == decision_id and entry.get("kind", DECISION) == DECISION:
            return entry
    return None


class ExplainError(Exception):
    """A past decision that cannot be explained (not found, its policy version not kept)."""


@dataclass(frozen=True)
class Explained:
    entry: dict[str, Any]
    decision: Any  # the engine Decision made again
    same: bool


def explain(location: str, decision_id: str) -> Explained:
    """Decide a past decision again with the policy version and the date that made it."""
    from engine.policy import from_sources

    entry = find(location, decision_id)
    if entry is None:
        raise ExplainError(f"no decision {decision_id} in {location}")
    version = entry.get("policy_version")
    document = policy_document(location, str(version))
    if document is None:
        raise ExplainError(f"policy version {version} of decision {decision_id} was not kept beside the trail")
    policy = from_sources(policy_sources(document), cache_size=0)
    request = dict(entry.get("request") or {})
    context = dict(request.get("context") or {})
    context.setdefault("date", entry.get("date") or _day(entry.get("time")))
    request["context"] = context
    decision = policy.decide(request, use_cache=False)
    return Explained(entry, decision, decision.decision == entry.get("decision")
                     and [reason.rule for reason in decision.reasons] == entry.get("reasons"))


def _day(when: Any) -> str:
    return str(when)[:10] if when else dt.date.today().isoformat()


def as_rows(rows: Iterable[dict[str, Any]]) -> list[list[str]]:
    return [["" if row[column] is None else str(row[column]) for column in COLUMNS] for row in rows]
