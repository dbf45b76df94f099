"""The decision cache: a cachetools FIFOCache of (expiry, decision), and its key functions.

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

import datetime as dt
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from cachetools import FIFOCache

from engine._codegen import define
from engine.request import (
    _BOOL,
    _DATE,
    _NUMBER,
    _SET,
    _VOCAB,
    CHECKS,
    SECTIONS,
    TOP_KEYS,
    RequestSchema,
    item_of,
    members_reader,
    parse_date,
    required_sections,
    section_keys,
    simple_shape,
    source_of,
    today,
)

# Bump when the shape of a cached Decision changes.
FORMAT = "decision-3"


class _Entries(FIFOCache[tuple[Any, ...], Any]):
    """A FIFOCache whose missing keys read as None (cachetools' `__missing__` hook), not KeyError."""

    def __missing__(self, key: Any) -> None:
        return None


class DecisionCache:
    """A bounded, expiring map from key to decision, with hit and miss counts.

    Entries are `(expires_at, decision)` in a cachetools FIFOCache: reading one
    never reorders anything (an LRU or TTL cache relinks on every read), so
    reads need no lock and a hit costs one dict lookup and a clock reading.
    Writes take the lock. When full, the oldest entry goes first; an expired
    entry stays (counted in `size`) until it is evicted or its key is decided
    again, and is never served.
    """

    def __init__(self, maxsize: int = 10_000, ttl: float = 300.0, timer: Callable[[], float] = time.monotonic):
        self.maxsize = maxsize
        self.ttl = ttl
        self.enabled = maxsize > 0 and ttl > 0
        self._cache = _Entries(maxsize if self.enabled else 1)
        self._timer = timer
        self._lock = threading.Lock()
        # Plain counters: `+= 1` on an attribute does not let another thread in between
        # under CPython's GIL, and an exact count is not worth a lock on the hit path.
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[Any, ...]) -> Any:
        """The cached value, or None when absent or expired; raises TypeError for an unhashable key."""
        entry = self._cache[key]
        if entry is not None and entry[0] > self._timer():
            self.hits += 1
            return entry[1]
        self.misses += 1
        return None

    def put(self, key: tuple[Any, ...], value: Any) -> None:
        entry = (self._timer() + self.ttl, value)
        with self._lock:
            self._cache[key] = entry

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    def stats(self) -> dict[str, Any]:
        size = len(self._cache) if self.enabled else 0
        return {"hits": self.hits, "misses": self.misses, "size": size, "maxsize": self.maxsize, "ttl": self.ttl}


class KeyFunctions:
    """`fast(request)` -> key or None before validation; `project(request)` -> key after it."""

    def __init__(self, schema: RequestSchema, paths: list[str], tag: str):
        self.paths = tuple(paths)
        self.tag = tag
        self._parts = tuple(tuple(p.split(".")) for p in self.paths)
        self._date = self.paths.index("context.date") if "context.date" in self.paths else -1
        self.fast = _generate(schema, self.paths, tag)

    def project(self, request: dict[str, Any]) -> tuple[Any, ...]:
        """The key of a request already validated."""
        values: list[Any] = [self.tag]
        for parts in self._parts:
            node: Any = request
            for part in parts:
                node = node.get(part) if isinstance(node, dict) else None
            values.append(frozenset(node) if isinstance(node, list) else node)  # a set: order and repeats aside
        if self._date >= 0 and values[self._date + 1] is None:
            values[self._date + 1] = today()
        return tuple(values)


def key_paths(schema: RequestSchema, reads: frozenset[str], always: tuple[str, ...]) -> list[str]:
    """The attribute paths a key holds: `always`, then what the policy reads, in schema order."""
    wanted = set(reads) | set(always)
    return [path for path in schema.specs if path in wanted]


# --- the generated key function -------------------------------------------------------


def _generate(schema: RequestSchema, paths: tuple[str, ...], tag: str) -> Callable[[Any], tuple[Any, ...] | None]:
    """A straight-line `fast_key(request)` for this schema and these key paths.

    Values in the key need no checking: a wrong one makes a key no valid
    request was ever stored under, except where Python lets values of
    different types compare equal (True == 1), so bools and numbers are
    guarded. A required value that is missing is such a wrong value (None),
    so it may be counted as present below.

    A request may hold nothing undeclared. Rather than compare each dict's keys
    with the allowed names (a set comparison per dict, a third of the cost),
    the function counts the values it read: a dict as long as that count holds
    nothing else. Otherwise it may hold attributes outside the key, which are
    then checked; a section with none declared sends the request to the careful
    path.
    """
    specs = schema.specs
    top = [k for k in TOP_KEYS if k not in SECTIONS]
    if not simple_shape(schema) or not all(k in specs and specs[k].attribute.required for k in top):
        return lambda request: None
    namespace: dict[str, Any] = {"_TAG": tag, "_today": today, "_date": parse_date, "_finite": math.isfinite,
                                 "_EMPTY": {}, "_TOP": TOP_KEYS}
    required = [p for p in specs if specs[p].attribute.required and p not in paths]
    needed = required_sections(schema)
    lines = ["def fast_key(r):", "    if r.__class__ is not dict: return None"]
    for n, section in enumerate(SECTIONS):
        lines.append(f"    s{n} = r.get({section!r})")
        if section in needed:
            lines.append(f"    if s{n}.__class__ is not dict: return None")
    present = len(needed) + len(top)  # required top-level attributes count as present (see above)
    optional = [n for n, section in enumerate(SECTIONS) if section not in needed]
    for n in optional:  # in practice only `context`
        lines += [f"    if s{n} is None: s{n} = _EMPTY",
                  f"    elif s{n}.__class__ is not dict: return None"]
    counted = " + ".join([str(present)] + [f"(s{n} is not _EMPTY)" for n in optional])
    lines.append(f"    if len(r) != {counted} and not r.keys() <= _TOP: return None")
    # Every value read, once: key values k<i>, ids and required attributes outside the key.
    names: dict[str, str] = {}
    for i, path in enumerate(paths):
        names[path] = f"k{i}"
    for j, path in enumerate([*_IDS, *required]):
        names.setdefault(path, f"x{j}")
    # Required values are read by subscript (a missing one: KeyError, the careful path).
    lines.append("    try:")
    lines += [f"        {name} = {item_of(path)}" for path, name in names.items() if specs[path].attribute.required]
    lines += ["    except KeyError:", "        return None"]
    lines += [f"    {name} = {source_of(path)}" for path, name in names.items() if not specs[path].attribute.required]
    for n, section in enumerate(SECTIONS):
        lines += _section_check(namespace, schema, n, section, names)
    for i, path in enumerate(required):  # built-ins every request gives, though no rule reads them
        lines += _check_lines(namespace, f"_R{i}", names[path], specs[path], "    ")
    lines.append(f"    return (_TAG, {', '.join(f'k{i}' for i in range(len(paths)))},)")
    key: Callable[[Any], tuple[Any, ...] | None] = define("fast_key", lines, namespace)
    return key


def _section_check(namespace: dict[str, Any], schema: RequestSchema, n: int, section: str, names: dict[str, str]) -> list[str]:
    """Lines counting the optional values read from section `n` (guarding those whose type
    Python would confuse), then making sure the section holds nothing undeclared and
    valid values outside the key."""
    specs = schema.specs
    read = [p for p in names if p.startswith(section + ".")]
    lines = [f"    n = {sum(1 for p in read if specs[p].attribute.required)}"]
    for path in read:
        if specs[path].attribute.required:
            continue
        name = names[path]
        if path == "context.date":
            lines += [f"    if {name} is None:", f"        {name} = _today()", "    else:", "        n += 1"]
            continue
        lines += [f"    if {name} is not None:", "        n += 1"]
        guard = "{v}.__class__ is not str" if path in _IDS else _GUARDS.get(specs[path].check)
        if guard:
            lines.append(f"        if {guard.format(v=name)}: return None")
        if specs[path].check == _SET:  # a list, as a frozenset of members Python will not confuse
            namespace[f"_SK_{name}"] = _set_key(specs[path])
            lines.append(f"        {name} = _SK_{name}({name})")
    # More than was read (or a null): its keys must be declared, and those outside the key valid.
    namespace[f"_A{n}"] = section_keys(schema, section)
    lines += [f"    if len(s{n}) != n:", f"        if not s{n}.keys() <= _A{n}: return None"]
    unread = [p for p in specs if p.startswith(section + ".") and p not in names]
    for i, path in enumerate(unread):
        lines += [f"        v = {source_of(path)}"] + _check_lines(namespace, f"_T{n}_{i}", "v", specs[path],
                                                                     "        ")
    return lines


def _members_valid(spec: Any) -> Callable[[Any], bool]:
    reader = members_reader(spec)

    def valid(value: Any) -> bool:
        try:
            reader(value)
        except (KeyError, ValueError, TypeError):
            return False
        return True

    return valid


# Read to check their type, though not part of the key.
_IDS = ("requester.id", "resource.id")
# Key values of a wrong type that Python would still call equal to a valid one (1 == true).
_GUARDS = {
    _BOOL: "{v}.__class__ is not bool",
    _NUMBER: "{v}.__class__ is not int and {v}.__class__ is not float",
}


def _set_key(spec: Any) -> Callable[[Any], frozenset[Any]]:
    """A set attribute's list as a key: a frozenset, or TypeError (the careful path) when a member
    is of a type that could pass for another in a frozenset (1 and true)."""
    allowed = {_NUMBER: (int, float), _BOOL: (bool,), _DATE: (str, dt.date)}.get(spec.member.check, (str,))

    def key(value: Any) -> frozenset[Any]:
        if value.__class__ is not list:
            raise TypeError(spec.path)
        for item in value:
            if item.__class__ not in allowed:
                raise TypeError(spec.path)
        return frozenset(value)

    return key


def _check_lines(namespace: dict[str, Any], table: str, v: str, spec: Any, indent: str) -> list[str]:
    """Lines returning None unless the value `v` is absent or valid (required ones must be there)."""
    if spec.check == _SET:
        namespace[table] = _members_valid(spec)
        bad = f"not {table}({v})"
    elif spec.check == _VOCAB:
        namespace[table] = spec.table
        bad = f"{v} not in {table}"
    elif spec.check == _DATE:
        bad = f"_date({v}) is None"
    else:
        bad = CHECKS[spec.check].format(v=v)
    absent = f"{v} is None or " if spec.attribute.required else f"{v} is not None and "
    return [f"{indent}if {absent}{bad}: return None"]
