"""Rule analysis's covering checks as they were first written: every pair of rules compared.

The oracle for tests/test_analysis_index.py. `PairwiseAnalysis` is the engine's
analysis with `covered` as below, copied unchanged from the pairwise
implementation, so that the indexed one can be held to exactly its findings.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from engine import ast
from engine.analysis import Region, _Analysis
from engine.errors import Diagnostic, warning
from engine.governance.terms import DIMENSIONS, RuleTerm


class PairwiseAnalysis(_Analysis):
    # rules that another rule covers

    def covered(self, rules: list[RuleTerm]) -> list[Diagnostic]:
        """Rules another rule makes pointless, by the set's combining algorithm.

        Candidates come from bit masks (rules whose value sets hold every value
        of this rule's), so only a few region pairs are compared in full.
        """
        index = _CoverIndex([self.regions[id(r)] for r in rules])
        permits = sum(1 << i for i, r in enumerate(rules) if r.permit)
        combine = self.vocab.combine
        found = []
        for position, rule in enumerate(rules):
            around = index.containing(position) & ~(1 << position)
            if combine is ast.Combine.FIRST_APPLICABLE:
                found.extend(self._shadowed(rule, _members(rules, around & ((1 << position) - 1))))
                continue
            same = permits if rule.permit else ~permits
            found.extend(self._ineffective(rule, _members(rules, around & ~same), combine)
                         or self._repeated(rule, position, rules, around & same))
        return found

    def _shadowed(self, rule: RuleTerm, earlier: list[RuleTerm]) -> list[Diagnostic]:
        for other in earlier:
            conditions = _conditions(other)
            if not rule.permit and other.permit:
                ok = not conditions  # a deny that might apply is not stopped by a permit that might
            else:
                ok = conditions <= _conditions(rule)
            if ok and self._inside(rule, other):
                return [warning("rule_shadowed",
                                f"rule `{rule.id}` never decides: the earlier rule `{other.id}` applies to "
                                f"every request it does, and the set combines first-applicable",
                                rule.rule.id.span, f"move `{rule.id}` above `{other.id}`, or remove it")]
        return []

    def _ineffective(self, rule: RuleTerm, others: list[RuleTerm], combine: ast.Combine) -> list[Diagnostic]:
        for other in others:
            if combine is ast.Combine.DENY_OVERRIDES and rule.permit \
                    and _conditions(other) <= _conditions(rule) and self._inside(rule, other):
                return [warning("permit_never_effective",
                                f"permit rule `{rule.id}` never takes effect: deny rule `{other.id}` applies to "
                                f"every request it does, and deny overrides",
                                rule.rule.id.span, f"narrow `{other.id}` or remove `{rule.id}`")]
            if combine is ast.Combine.PERMIT_OVERRIDES and not rule.permit \
                    and not _conditions(other) and self._inside(rule, other):
                return [warning("deny_never_effective",
                                f"deny rule `{rule.id}` never takes effect: permit rule `{other.id}` applies to "
                                f"every request it does, and permit overrides",
                                rule.rule.id.span, f"narrow `{other.id}` or remove `{rule.id}`")]
        return []

    def _repeated(self, rule: RuleTerm, position: int, rules: list[RuleTerm], mask: int) -> list[Diagnostic]:
        for other_position in _bits(mask):
            other = rules[other_position]
            if not (_conditions(other) <= _conditions(rule) and _obligations(rule) <= _obligations(other)):
                continue
            if not self._inside(rule, other):
                continue
            same = _conditions(other) == _conditions(rule) and _obligations(other) == _obligations(rule) \
                and self._inside(other, rule)
            if same and other_position > position:
                continue  # the later of two identical rules is the one reported
            if same:
                return [warning("duplicate_rule", f"rule `{rule.id}` repeats rule `{other.id}`",
                                rule.rule.id.span, f"remove one of `{other.id}` and `{rule.id}`")]
            return [warning("subsumed_rule",
                            f"rule `{rule.id}` adds nothing: rule `{other.id}` applies to every request it does, "
                            f"with the same effect and obligations",
                            rule.rule.id.span, f"remove `{rule.id}` or narrow `{other.id}`")]
        return []

    def _inside(self, rule: RuleTerm, other: RuleTerm) -> bool:
        return self.regions[id(rule)].within(self.regions[id(other)])


class _CoverIndex:
    """For each dimension and value, a bit mask of the regions whose set holds the value."""

    def __init__(self, regions: list[Region]):
        self.regions = regions
        self.masks: dict[str, dict[str, int]] = {d: {} for d in DIMENSIONS}
        for position, region in enumerate(regions):
            bit = 1 << position
            for path, values in region.sets.items():
                masks = self.masks[path]
                for value in values:
                    masks[value] = masks.get(value, 0) | bit

    def containing(self, position: int) -> int:
        """The regions whose every value set includes this region's."""
        mask = (1 << len(self.regions)) - 1
        for path, values in self.regions[position].sets.items():
            masks = self.masks[path]
            for value in values:
                mask &= masks[value]
                if not mask:
                    return 0
        return mask


def _members(rules: list[RuleTerm], mask: int) -> list[RuleTerm]:
    return [rules[position] for position in _bits(mask)]


def _bits(mask: int) -> Iterable[int]:
    """The positions of the set bits of a non-negative mask, lowest first."""
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


def _conditions(rule: RuleTerm) -> frozenset[Any]:
    return frozenset(c for c, _t in rule.clauses if isinstance(c, ast.ConditionClause))


def _obligations(rule: RuleTerm) -> frozenset[Any]:
    return frozenset(o.clause for o in rule.obligations)
