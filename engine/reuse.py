"""Each rule's check, analysis and compile results, kept so a reload redoes only the rules that changed.

After parsing (kept by file, parse_cache.py), most of loading a large set is
per-rule work: checking a rule's names and expressions, reducing it to terms
for rule analysis, compiling its clauses. A rule's results depend on the rule
and on the vocabulary, that is on every declaration of the set that is not a
rule (actions, roles, ..., agreements, attributes, the header and policy-wide
obligations), and rule analysis also on today's date. A file unchanged since
the last load gives the very same objects, so a result is taken again only
when its rule is the same object (`is`) and the set's other declarations are
the same objects in the same order (a `Basis`); anything else is worked out
afresh. A result must not depend on the rule's place in the set: the stages
put each rule in its place after taking its result.

Each stage keeps the results of the set it ran on last, no more, as
parse_cache does: a process serving one set keeps one set's results.
Nothing is kept between processes; `clear()` makes the next load cold.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from engine import ast

T = TypeVar("T")


@dataclass(frozen=True, eq=False)
class Basis:
    """What every per-rule result depends on besides the rule: the other declarations, and the date."""

    declarations: tuple[Any, ...]  # every declaration that is not a rule, in set order
    today: dt.date | None = None  # for results that judge agreements expired

    def same(self, other: Basis) -> bool:
        """The same declaration objects in the same order, and the same date."""
        mine, theirs = self.declarations, other.declarations
        return (self.today == other.today and len(mine) == len(theirs)
                and all(a is b for a, b in zip(mine, theirs, strict=True)))

    def on(self, today: dt.date) -> Basis:
        return Basis(self.declarations, today)


_lock = threading.Lock()
# stage -> (the basis it ran on last, id(rule) -> (rule, result)); the rule is held so its id stays its own
_kept: dict[str, tuple[Basis, dict[int, tuple[ast.Rule, Any]]]] = {}
_counts: dict[str, tuple[int, int]] = {}


def taken(stage: str, basis: Basis | None, rules: Sequence[ast.Rule]) -> list[Any]:
    """Each rule's result of `stage` from the last run, in order; None where there is none to take.

    `basis` None (a vocabulary built by hand) takes nothing.
    """
    with _lock:
        last = _kept.get(stage)
    if basis is None or last is None or not basis.same(last[0]):
        return [None] * len(rules)
    kept = last[1]
    found = []
    for rule in rules:
        entry = kept.get(id(rule))
        found.append(entry[1] if entry is not None and entry[0] is rule else None)
    return found


def keep(stage: str, basis: Basis | None, rules: Sequence[ast.Rule], results: Sequence[Any], worked: int) -> None:
    """Keep this run's results of `stage` (replacing the last run's); `worked`: how many were worked out afresh."""
    if basis is None:
        return
    kept = {id(rule): (rule, result) for rule, result in zip(rules, results, strict=True)}
    with _lock:
        _kept[stage] = (basis, kept)
        _counts[stage] = (len(rules) - worked, worked)


def each(stage: str, basis: Basis | None, rules: Sequence[ast.Rule], work: Callable[[ast.Rule], T]) -> list[T]:
    """`work(rule)` for each rule, in order, taking the last run's result where the rule and basis are the same."""
    results: list[T] = taken(stage, basis, rules)
    worked = 0
    for position, result in enumerate(results):
        if result is None:
            results[position] = work(rules[position])
            worked += 1
    keep(stage, basis, rules, results, worked)
    return results


def counts() -> dict[str, tuple[int, int]]:
    """For each stage, (results taken again, results worked out) in its last run: what a reload saved."""
    with _lock:
        return dict(_counts)


def clear() -> None:
    """Forget every kept result (for tests and benchmarks of a cold load)."""
    with _lock:
        _kept.clear()
        _counts.clear()
