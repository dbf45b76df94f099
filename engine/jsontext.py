"""JSON text as the engine reads it: duplicate keys refused, not silently last-wins.

`{"requester": {...}, "requester": {...}}` is legal JSON to Python's parser,
which keeps the last value. A request written that way was almost certainly
meant differently, and deciding on a guess could grant access by mistake, so
every reader of requests (the service, `engine decide`) refuses it, as the
YAML test reader does.
"""

from __future__ import annotations

import json
from typing import Any


class DuplicateKeyError(ValueError):
    """A JSON object that names the same key twice."""

    def __init__(self, key: str):
        super().__init__(f"the key `{key}` appears twice in one object; give each key once")
        self.key = key


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKeyError(key)
            seen.add(key)
    return found


def loads(text: str | bytes, **options: Any) -> Any:
    """`json.loads`, refusing duplicate keys (DuplicateKeyError, a ValueError)."""
    return json.loads(text, object_pairs_hook=_unique, **options)


def key_position(text: str, key: str) -> tuple[int, int] | None:
    """Line and column (from 1) of the second time `"key"` is written as a key, if it can be found."""
    marker = json.dumps(key)
    first = text.find(marker)
    second = text.find(marker, first + 1) if first >= 0 else -1
    if second < 0:
        return None
    line = text.count("\n", 0, second) + 1
    return line, second - (text.rfind("\n", 0, second) + 1) + 1
