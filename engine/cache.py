"""The decision cache: cachetools TTLCache behind a lock, and its key functions.

A decision depends only on the attributes the policy reads (plus the
built-ins a summary names), so the key is the request's projection onto
those: `requester.id`, `resource.id` and unread attributes do not split the
cache. The key is built from the request's raw values, before validation, by
a function generated for the policy; it also vouches, cheaply, that the
parts of the request outside the key are valid, so a hit needs no further
checking. When it cannot vouch (an odd shape, a value of the wrong type) it
returns None and the request takes the full validation path, whose key
(`project`) is the same tuple. The policy version and FORMAT start every key.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any, Callable

from cachetools import TTLCache

from engine.request import RequestSchema, parse_date, today

# Bump when the shape of a cached Decision changes.
FORMAT = "decision-1"

_SECTIONS = ("requester", "resource", "context")
_TOP = frozenset(("requester", "resource", "context", "action", "purpose"))


class DecisionCache:
    """A bounded, expiring map from key to decision, with hit and miss counts."""

    def __init__(self, maxsize: int = 10_000, ttl: float = 300.0, timer: Callable[[], float] = time.monotonic):
        self.maxsize = maxsize
        self.ttl = ttl
        self._cache: TTLCache | None = TTLCache(maxsize, ttl, timer) if maxsize > 0 and ttl > 0 else None
        # cachetools caches are not thread-safe: even a read reorders the LRU links.
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self._cache is not None

    def get(self, key: tuple) -> Any:
        """The cached value or None; raises TypeError for an unhashable key."""
        with self._lock:
            try:
                value = self._cache[key]
            except KeyError:
                self.misses += 1
                return None
            self.hits += 1
            return value

    def put(self, key: tuple, value: Any) -> None:
        with self._lock:
            self._cache[key] = value

    def clear(self) -> None:
        with self._lock:
            if self._cache is not None:
                self._cache.clear()

    def stats(self) -> dict:
        with self._lock:
            size = len(self._cache) if self._cache is not None else 0
        return {"hits": self.hits, "misses": self.misses, "size": size, "maxsize": self.maxsize, "ttl": self.ttl}


class KeyFunctions:
    """`fast(request)` -> key or None before validation; `project(request)` -> key after it."""

    def __init__(self, schema: RequestSchema, paths: list[str], tag: str):
        self.paths = tuple(paths)
        self.tag = tag
        self._parts = tuple(tuple(p.split(".")) for p in self.paths)
        self._date = self.paths.index("context.date") if "context.date" in self.paths else -1
        self.fast = _generate(schema, self.paths, tag)

    def project(self, request: dict) -> tuple:
        """The key of a request already validated."""
        values = [self.tag]
        for parts in self._parts:
            node: Any = request
            for part in parts:
                node = node.get(part) if isinstance(node, dict) else None
            values.append(node)
        if self._date >= 0 and values[self._date + 1] is None:
            values[self._date + 1] = today()
        return tuple(values)


def key_paths(schema: RequestSchema, reads: frozenset[str], always: tuple[str, ...]) -> list[str]:
    """The attribute paths a key holds: `always`, then what the policy reads, in schema order."""
    wanted = set(reads) | set(always)
    return [path for path in schema.specs if path in wanted]


# --- the generated key function -------------------------------------------------------

_CHECKS = {
    # How the fast key checks a value it does not put in the key ({v} the value, {t} its table).
    "vocab": "{v} not in {t}",
    "bool": "{v}.__class__ is not bool",
    "number": "({v}.__class__ is not int and {v}.__class__ is not float or not _finite({v}))",
    "string": "{v}.__class__ is not str",
    "date": "_date({v}) is None",
}
# ... and the values it does put in the key: only those Python would let collide with a valid one.
_GUARDS = {
    "bool": "{v}.__class__ is not bool",
    "number": "{v}.__class__ is not int and {v}.__class__ is not float",
}


def _check_kind(spec) -> str:
    kind = spec.attribute.kind
    if spec.table is not None:
        return "vocab"
    return kind if kind in _CHECKS else "string"


def _generate(schema: RequestSchema, paths: tuple[str, ...], tag: str) -> Callable[[Any], tuple | None]:
    specs = schema.specs
    if any(len(p.split(".")) > 2 or (len(p.split(".")) == 1 and p not in _TOP) for p in specs):
        return lambda request: None  # deep attribute paths: always validate in full
    namespace: dict[str, Any] = {"_TAG": tag, "_EMPTY": {}, "_today": today, "_date": parse_date,
                                 "_finite": math.isfinite, "_TOP": _TOP}
    lines = ["def fast_key(r):",
             "    if r.__class__ is not dict or not r.keys() <= _TOP: return None"]
    for n, section in enumerate(_SECTIONS):
        allowed = frozenset(p.split(".")[1] for p in specs if p.startswith(section + "."))
        namespace[f"_K{n}"] = allowed
        lines.append(f"    s{n} = r.get({section!r})")
        lines.append(f"    if s{n} is None: s{n} = _EMPTY")
        lines.append(f"    elif s{n}.__class__ is not dict or not s{n}.keys() <= _K{n}: return None")
    key_values = []
    for i, (path, spec) in enumerate(specs.items()):
        parts = path.split(".")
        source = f"r.get({parts[0]!r})" if len(parts) == 1 else f"s{_SECTIONS.index(parts[0])}.get({parts[1]!r})"
        v = f"v{i}"
        lines.append(f"    {v} = {source}")
        kind = _check_kind(spec)
        if path in paths:
            guard = _GUARDS.get(kind)
            if guard:
                lines.append(f"    if {v} is not None and {guard.format(v=v)}: return None")
            if path == "context.date":
                lines.append(f"    if {v} is None: {v} = _today()")
            key_values.append((paths.index(path), v))
            continue
        namespace[f"_T{i}"] = spec.table
        check = _CHECKS[kind].format(v=v, t=f"_T{i}")
        if spec.attribute.required:
            lines.append(f"    if {v} is None or {check}: return None")
        else:
            lines.append(f"    if {v} is not None and {check}: return None")
    ordered = ", ".join(v for _, v in sorted(key_values))
    lines.append(f"    return (_TAG, {ordered},)")
    exec("\n".join(lines), namespace)  # noqa: S102 - our own generated text, no request data
    return namespace["fast_key"]
