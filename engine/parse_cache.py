"""Each policy file's parse, kept by its name and content, so a reload parses only the files that changed.

Parsing is most of loading a large set (BENCHMARKS.md). When one file of a
set of a hundred changes, the other ninety-nine give the same syntax tree as
last time: their trees (or their syntax errors) are taken from here, keyed
by the file's name as shown and a hash of its text. The trees are frozen, so
two loaded versions may share them safely.

The cache holds the files of the set parsed last, no more: a process that
serves one set keeps one set's trees, and loading another set simply parses
it. Nothing is kept between processes; a cold start parses every file.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable

from engine import ast
from engine.errors import Diagnostic
from engine.source import Source

Parsed = ast.PolicyFile | Diagnostic

_lock = threading.Lock()
_last: dict[tuple[str, str], Parsed] = {}


def _key(source: Source) -> tuple[str, str]:
    return source.path, hashlib.sha256(source.text.encode("utf-8", "surrogatepass")).hexdigest()


def parse_each(sources: list[Source], parse: Callable[[Source], Parsed]) -> list[Parsed]:
    """Each source's tree or syntax error, in order: from the last set's files where one is unchanged."""
    global _last
    with _lock:
        before = _last
    found: dict[tuple[str, str], Parsed] = {}
    results = []
    for source in sources:
        key = _key(source)
        result = found.get(key)
        if result is None:
            result = before.get(key)
        if result is None:
            result = parse(source)
        found[key] = result
        results.append(result)
    with _lock:
        _last = found
    return results


def clear() -> None:
    """Forget every kept parse (for tests and benchmarks of a cold load)."""
    global _last
    with _lock:
        _last = {}
