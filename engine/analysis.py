"""Rule analysis, the checker's last pass: rules that never apply, never take effect, or repeat another.

`analyse` reads each rule's match clauses as sets over the declared
vocabulary (terms.py gives the rules as terms) and reports what no request
could reach.

Conditions (`when`/`unless`) are treated conservatively: a rule with
conditions covers another only when its conditions are among the other's,
word for word. A warning that is missed costs less than a false one.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from engine import ast, clock
from engine.errors import Diagnostic, warning
from engine.governance.terms import (
    DIMENSION_KINDS,
    DIMENSIONS,
    FALSE,
    TRUE,
    Compiler,
    RuleTerm,
    Term,
    agreement_pairs,
    attributes_of,
    junction,
    reduce,
)
from engine.symbols import NameLookupError, Vocabulary

_ALWAYS = ((dt.date.min, dt.date.max),)


@dataclass(frozen=True)
class Region:
    """The requests a rule's match clauses admit, as sets over the vocabulary.

    `sets` holds a set of values per dimension; each of `unders` (one per
    `under` clause) lists agreements of which one must cover the requester's
    agency and the owner on the request's date.
    """

    sets: dict[str, frozenset[str]]
    unders: tuple[tuple[Any, ...], ...]

    def ranges(self, pair: tuple[str, str]) -> tuple[Any, ...]:
        """The dates on which the `under` clauses admit (agency, owner), as sorted ranges."""
        ranges = _ALWAYS
        for agreements in self.unders:
            ranges = _intersect(ranges, _covering(agreements, pair))
            if not ranges:
                break
        return ranges

    def pairs(self) -> Iterable[tuple[tuple[str, str], tuple[Any, ...]]]:
        """Each (agency, owner) the region admits on some date, with those dates."""
        agencies, owners = self.sets["requester.agency"], self.sets["resource.owner"]
        if not self.unders:
            for pair in itertools.product(agencies, owners):
                yield pair, _ALWAYS
            return
        candidates = frozenset().union(*(_pairs_of(a) for a in self.unders[0]))
        for pair in candidates:
            if pair[0] in agencies and pair[1] in owners:
                ranges = self.ranges(pair)
                if ranges:
                    yield pair, ranges

    def within(self, other: Region) -> bool:
        """Every request this region admits, `other` admits too."""
        if any(not values <= other.sets[d] for d, values in self.sets.items()):
            return False
        if not other.unders:
            return True
        return all(_ranges_within(ranges, other.ranges(pair)) for pair, ranges in self.pairs())


def analyse(policy_set: ast.PolicySet, vocabulary: Vocabulary, *, today: dt.date | None = None) -> list[Diagnostic]:
    """Warnings about rules that never apply, never take effect, or repeat another.

    Agreements are judged expired against `today` (default: the real date), so
    the checker's own date reaches the rules that rely on them too.
    """
    return _Analysis(vocabulary, today or clock.today()).run()


class _Analysis:
    def __init__(self, vocab: Vocabulary, today: dt.date):
        self.vocab = vocab
        self.today = today
        self.compiler = Compiler(vocab)
        self.rules: list[RuleTerm] = []
        for rule in vocab.rules:
            try:
                self.rules.append(self.compiler.rule(rule))
            except (NameLookupError, KeyError, ValueError, TypeError):
                continue  # the checker reports the name; this rule is not analysed
        self.regions = {id(r): self.region(r) for r in self.rules}
        # Conditions repeat across rules, so reductions and their verdicts do too.
        self.memo: dict[tuple[Any, ...], Term] = {}
        self.holds: dict[tuple[Any, ...], bool] = {}

    def run(self) -> list[Diagnostic]:
        found: list[Diagnostic] = []
        live: list[RuleTerm] = []
        for rule in self.rules:
            never = self.never_applies(rule)
            if never is not None:
                found.append(never)
            else:
                live.append(rule)
                found.extend(self.dead_obligations(rule))
        found.extend(self.covered(live))
        found.extend(self.dead_policy_obligations())
        return found

    # regions

    def region(self, rule: RuleTerm) -> Region:
        sets = {d: frozenset(self.vocab.values_of(DIMENSION_KINDS[d])) for d in DIMENSIONS}
        unders: list[tuple[Any, ...]] = []
        for clause, term in rule.clauses:
            if isinstance(clause, ast.ConditionClause):
                continue
            for part in (term[1] if term[0] == "and" else (term,)):
                if part[0] == "in" and part[1][0] == "a" and part[1][1] in sets:
                    sets[part[1][1]] &= frozenset(v for _tag, v in part[2])
                elif part[0] == "under":
                    unders.append(part[1])
        return Region(sets, tuple(unders))

    # rules that never apply

    def never_applies(self, rule: RuleTerm) -> Diagnostic | None:
        region = self.regions[id(rule)]
        span = rule.rule.id.span
        name = f"{rule.rule.effect.value} rule `{rule.id}`"
        for path, values in region.sets.items():
            if not values:
                kind = _CLAUSE_NAMES[path]
                return warning("rule_never_applies",
                               f"{name} can never apply: its `{kind}` clauses have no value in common",
                               span, f"a request has one {DIMENSION_KINDS[path]}; merge the `{kind}` clauses")
        ends = [ranges[-1][1] for _pair, ranges in region.pairs()] if region.unders else [dt.date.max]
        if not ends:
            return warning("rule_never_applies", f"{name} can never apply: {self._no_pairs(rule)}", span,
                           "check the rule's `agency`, `owner` and `under` clauses against the agreement's parties")
        if max(ends) < self.today:
            return warning("agreement_expired",
                           f"{name} can no longer apply: its agreements ended by {max(ends).isoformat()}", span,
                           "renew the agreement's `valid` dates or retire the rule")
        if not self._can_hold(region, [t for c, t in rule.clauses if isinstance(c, ast.ConditionClause)]):
            return warning("rule_never_applies",
                           f"{name} can never apply: its conditions never hold where its other clauses do",
                           span, "the `when`/`unless` conditions contradict the rule's other clauses")
        return None

    def _no_pairs(self, rule: RuleTerm) -> str:
        for clause, _term in rule.clauses:
            if isinstance(clause, ast.MatchClause) and clause.kind is ast.ClauseKind.UNDER:
                names = ", ".join(v.text for v in clause.values)
                return (f"no agreement in `under {names}` covers one of the rule's requester agencies "
                        f"together with one of its owners")
        return "its `agency` or `owner` clauses have no agency in common"

    def _can_hold(self, region: Region, terms: list[Term]) -> bool:
        """Whether the conjunction of `terms` might hold somewhere in `region`.

        The dimensions the terms read are substituted one at a time, keeping
        the distinct results; anything else stays unknown, which counts as
        "might hold". Agency and owner are taken independently (a superset of
        the region's pairs), so this errs towards "might hold".
        """
        term = junction("and", terms)
        paths = [p for p in DIMENSIONS if p in attributes_of(term)]
        key = (term, tuple(region.sets[p] for p in paths))
        if key not in self.holds:
            self.holds[key] = self._might_hold(term, paths, region)
        return self.holds[key]

    def _might_hold(self, term: Term, paths: list[str], region: Region) -> bool:
        residuals = {term}
        given = {("has", p): True for p in DIMENSION_KINDS}
        budget = 4000  # reductions; past it, say "might hold" rather than spend the time
        for path in paths:
            budget -= len(residuals) * len(region.sets[path])
            if budget < 0:
                return True
            residuals = {self._reduce(t, given, path, v) for t in residuals for v in region.sets[path]}
            residuals.discard(FALSE)
            if not residuals:
                return False
        return bool(residuals - {FALSE})

    def _reduce(self, term: Term, given: dict[Any, Any], path: str, value: str) -> Term:
        key = (term, path, value)
        found = self.memo.get(key)
        if found is None:
            found = self.memo[key] = reduce(term, {**given, path: value})
        return found

    # obligations that never apply

    def dead_obligations(self, rule: RuleTerm) -> list[Diagnostic]:
        found = []
        region = self.regions[id(rule)]
        for obligation in rule.obligations:
            if obligation.condition != TRUE and not self._can_hold(region, [obligation.condition]):
                found.append(warning(
                    "obligation_never_applies",
                    f"obligation `{obligation.name}` of rule `{rule.id}` never applies: "
                    f"its condition never holds for a request the rule applies to",
                    obligation.clause.span,
                    "compare the condition with the rule's `action`, `role`, `purpose` and `data` clauses"))
        return found

    def dead_policy_obligations(self) -> list[Diagnostic]:
        everywhere = Region({d: frozenset(self.vocab.values_of(DIMENSION_KINDS[d])) for d in DIMENSIONS}, ())
        found = []
        for decl in self.vocab.policy_obligations:
            try:
                obligation = self.compiler.obligation(decl.obligation)
            except (NameLookupError, KeyError, ValueError, TypeError):
                continue
            if obligation.condition != TRUE and not self._can_hold(everywhere, [obligation.condition]):
                found.append(warning(
                    "obligation_never_applies",
                    f"policy-wide obligation `{obligation.name}` never applies: its condition never holds",
                    decl.obligation.span, None))
        return found

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


_CLAUSE_NAMES = {"action": "action", "requester.role": "role", "purpose": "purpose",
                 "resource.category": "data", "resource.classification": "data",
                 "requester.agency": "agency", "resource.owner": "owner"}


def _conditions(rule: RuleTerm) -> frozenset[Any]:
    return frozenset(c for c, _t in rule.clauses if isinstance(c, ast.ConditionClause))


def _obligations(rule: RuleTerm) -> frozenset[Any]:
    return frozenset(o.clause for o in rule.obligations)


# date ranges: sorted tuples of disjoint (start, end), both ends included


@functools.lru_cache(maxsize=4096)
def _pairs_of(agreement: tuple[Any, ...]) -> frozenset[Any]:
    return agreement_pairs((agreement,), None)


@functools.lru_cache(maxsize=65536)
def _covering(agreements: tuple[Any, ...], pair: tuple[str, str]) -> tuple[Any, ...]:
    ranges = []
    for agreement in agreements:
        if pair in _pairs_of(agreement):
            start, end = agreement[3], agreement[4]
            ranges.append((start, end) if start is not None else _ALWAYS[0])
    return _normalise(ranges)


def _normalise(ranges: list[Any]) -> tuple[Any, ...]:
    merged: list[list[dt.date]] = []
    for start, end in sorted(ranges):
        if merged and start <= _next_day(merged[-1][1]):
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return tuple((s, e) for s, e in merged)


def _next_day(day: dt.date) -> dt.date:
    return day if day == dt.date.max else day + dt.timedelta(days=1)


def _intersect(a: tuple[Any, ...], b: tuple[Any, ...]) -> tuple[Any, ...]:
    found = []
    for s1, e1 in a:
        for s2, e2 in b:
            start, end = max(s1, s2), min(e1, e2)
            if start <= end:
                found.append((start, end))
    return _normalise(found)


def _ranges_within(inner: tuple[Any, ...], outer: tuple[Any, ...]) -> bool:
    return all(any(s2 <= s1 and e1 <= e2 for s2, e2 in outer) for s1, e1 in inner)
