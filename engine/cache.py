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

from engine.request import (_BOOL, _DATE, _NUMBER, _VOCAB, CHECKS, SECTIONS, TOP_KEYS, RequestSchema, parse_date,
                            section_keys, simple_shape, source_of, today)

# Bump when the shape of a cached Decision changes.
FORMAT = "decision-1"



class DecisionCache:
    """A bounded, expiring map from key to decision, with hit and miss counts."""

    def __init__(self, maxsize: int = 10_000, ttl: float = 300.0, timer: Callable[[], float] = time.monotonic):
        self.maxsize = maxsize
        self.ttl = ttl
        self._cache: TTLCache | None = TTLCache(maxsize, ttl, timer) if maxsize > 0 and ttl > 0 else None
        self.enabled = self._cache is not None
        # cachetools caches are not thread-safe: even a read reorders the LRU links.
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple) -> Any:
        """The cached value or None; raises TypeError for an unhashable key."""
        lock = self._lock
        lock.acquire()  # not `with`: this is the cache-hit path, and acquire/release is 4x cheaper
        try:
            value = self._cache[key]
            self.hits += 1
            return value
        except KeyError:
            self.misses += 1
            return None
        finally:
            lock.release()

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


def _generate(schema: RequestSchema, paths: tuple[str, ...], tag: str) -> Callable[[Any], tuple | None]:
    """A straight-line `fast_key(request)` for this schema and these key paths.

    Values in the key need no checking: a wrong one makes a key no valid
    request was ever stored under, except where Python lets values of
    different types compare equal (True == 1), so bools and numbers are
    guarded. Values outside the key are checked here, but only when the
    request has any: a section whose keys are all in the key (or `id`)
    skips that entirely.
    """
    if not simple_shape(schema):
        return lambda request: None
    specs = schema.specs
    namespace: dict[str, Any] = {"_TAG": tag, "_today": today, "_date": parse_date, "_finite": math.isfinite}
    in_key = {section: frozenset(p.split(".")[1] for p in paths if p.startswith(section + "."))
              for section in SECTIONS}
    namespace.update(_TOP=TOP_KEYS, _EMPTY={})
    lines = ["def fast_key(r):", "    if r.__class__ is not dict or not r.keys() <= _TOP: return None"]
    required = [p for p in specs if specs[p].attribute.required and p not in paths]
    for n, section in enumerate(SECTIONS):
        always = {p.split(".")[1] for p in required if p.startswith(section + ".")}
        namespace[f"_K{n}"] = in_key[section] | always | ({"id"} if section != "context" else set())
        lines.append(f"    s{n} = r.get({section!r})")
        if section == "context":  # the only section a request may leave out
            lines += [f"    if s{n} is None: s{n} = _EMPTY", f"    elif s{n}.__class__ is not dict: return None"]
        else:
            lines.append(f"    if s{n}.__class__ is not dict: return None")
        lines.append(f"    if not s{n}.keys() <= _K{n}:")
        unread = [p for p in specs if p.startswith(section + ".") and p not in paths and p not in required
                  and not p.endswith(".id")]
        if not unread:
            lines.append("        return None")
            continue
        # Attributes outside the key: checked only when the section has any.
        namespace[f"_A{n}"] = section_keys(schema, section)
        lines.append(f"        if not s{n}.keys() <= _A{n}: return None")
        for i, path in enumerate(unread):
            lines += _check_lines(namespace, f"_T{n}_{i}", path, specs[path], "        ")
    for i, path in enumerate(required):  # built-ins every request gives, though no rule reads them
        lines += _check_lines(namespace, f"_R{i}", path, specs[path], "    ")
    for path in ("requester.id", "resource.id"):
        lines += [f"    v = {source_of(path)}", "    if v is not None and v.__class__ is not str: return None"]
    values = []
    for i, path in enumerate(paths):
        spec = specs[path]
        lines.append(f"    k{i} = {source_of(path)}")
        guard = _GUARDS.get(spec.check)
        if guard:
            lines.append(f"    if k{i} is not None and {guard.format(v=f'k{i}')}: return None")
        if path == "context.date":
            lines.append(f"    if k{i} is None: k{i} = _today()")
        values.append(f"k{i}")
    lines.append(f"    return (_TAG, {', '.join(values)},)")
    exec("\n".join(lines), namespace)  # noqa: S102 - our own generated text, no request data
    return namespace["fast_key"]


# Key values of a wrong type that Python would still call equal to a valid one (1 == true).
_GUARDS = {
    _BOOL: "{v}.__class__ is not bool",
    _NUMBER: "{v}.__class__ is not int and {v}.__class__ is not float",
}


def _check_lines(namespace: dict, table: str, path: str, spec, indent: str) -> list[str]:
    """Lines returning None unless the value at `path` is absent or valid (required ones must be there)."""
    lines = [f"{indent}v = {source_of(path)}"]
    if spec.check == _VOCAB:
        namespace[table] = spec.table
        bad = f"v not in {table}"
    elif spec.check == _DATE:
        bad = "_date(v) is None"
    else:
        bad = CHECKS[spec.check].format(v="v")
    absent = "v is None or " if spec.attribute.required else "v is not None and "
    return lines + [f"{indent}if {absent}{bad}: return None"]
