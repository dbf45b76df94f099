"""Decisions to JSON bytes, reusing the text of decisions answered from the cache.

A decision answered from the engine's cache is a copy of the cached one with a
new `decision_id`: it shares the very same reasons, obligations, near misses
and summary objects. So its JSON is the cached decision's JSON with another
id spliced in. The memo below is keyed by the identities of those objects and
holds references to them, so an identity cannot be reused by a different
object while its entry lives; all of them are immutable, so equal identities
mean equal text. A freshly computed decision simply misses the memo.
"""

from __future__ import annotations

import datetime as dt
import json
from json.encoder import encode_basestring
from typing import Any

MEMO_SIZE = 20_000


def json_default(value: Any) -> Any:
    """JSON for the values obligations may carry beyond JSON's own: dates, tuples, sets."""
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    return str(value)


def dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=json_default)


class DecisionEncoder:
    """`encode(decision)` -> the JSON text of Decision.to_dict()."""

    def __init__(self, maxsize: int = MEMO_SIZE):
        self.maxsize = maxsize
        self._memo: dict[tuple[Any, ...], tuple[str, str, tuple[Any, ...]]] = {}

    def encode(self, decision: Any) -> str:
        key = (id(decision.reasons), id(decision.obligations), id(decision.near_misses), id(decision.summary),
               decision.decision, decision.policy_version, decision.title, decision.label)
        parts = self._memo.get(key)
        if parts is None:
            parts = self._parts(decision)
            if len(self._memo) >= self.maxsize:
                self._memo.clear()  # simple and bounded; the busy entries come straight back
            self._memo[key] = parts
        prefix, rest, _ = parts
        return prefix + encode_basestring(decision.decision_id) + rest

    @staticmethod
    def _parts(decision: Any) -> tuple[str, str, tuple[Any, ...]]:
        data = decision.to_dict()
        head = dumps(data.pop("decision"))
        data.pop("decision_id")
        body = dumps(data)[1:-1]
        prefix = '{"decision":' + head + ',"decision_id":'
        rest = "," + body + "}"
        # Keep the keyed objects alive, so that their identities stay theirs.
        keep = (decision.reasons, decision.obligations, decision.near_misses, decision.summary)
        return prefix, rest, keep

    def __len__(self) -> int:
        return len(self._memo)
