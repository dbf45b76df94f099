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

from engine import ast, clock, reuse
from engine.bitsets import mask_of
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
        return _ranges(self.unders, pair)

    def pairs(self) -> Iterable[tuple[tuple[str, str], tuple[Any, ...]]]:
        """Each (agency, owner) the region admits on some date, with those dates."""
        agencies, owners = self.sets["requester.agency"], self.sets["resource.owner"]
        if not self.unders:
            return ((pair, _ALWAYS) for pair in itertools.product(agencies, owners))
        return _pairs(self.unders, agencies, owners)

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


@dataclass(frozen=True)
class _Study:
    """What the analysis finds of one rule alone: kept between loads (engine/reuse.py)."""

    term: RuleTerm | None  # None: a name does not resolve (the checker reports it); not analysed
    region: Region | None
    never: Diagnostic | None  # why it never applies; None when it might
    dead: tuple[Diagnostic, ...]  # its obligations that never apply (of a rule that might)
    conditions: frozenset[Any] = frozenset()  # its when/unless clauses, and its obligations: what
    obligations: frozenset[Any] = frozenset()  # a rule covering it must share (see covered)
    kind: tuple[Any, ...] = ()  # what rules of one kind share (see _KindIndex)


# Equal sets of conditions (or obligations) of different rules, made one object: look-ups then
# match them by identity, not by comparing syntax trees. Kept from the last analysis, so that a
# rule studied in a reload shares the objects of the rules whose studies it keeps.
_interned: dict[frozenset[Any], frozenset[Any]] = {}


class _Analysis:
    def __init__(self, vocab: Vocabulary, today: dt.date):
        self.vocab = vocab
        self.today = today
        self.compiler = Compiler(vocab)
        # Conditions repeat across rules, so reductions and their verdicts do too.
        self.memo: dict[tuple[Any, ...], Term] = {}
        self.holds: dict[tuple[Any, ...], bool] = {}
        self.regions: dict[int, Region] = {}
        self.everywhere = {d: frozenset(self.vocab.values_of(DIMENSION_KINDS[d])) for d in DIMENSIONS}
        self.sets: dict[frozenset[str], frozenset[str]] = {}
        # Each rule alone depends on the vocabulary and the date only: studied once while they stay.
        basis = vocab.basis.on(today) if vocab.basis is not None else None
        self.interned = dict(_interned)
        self.studies = reuse.each("analysis", basis, vocab.rules, self.study)
        _keep_interned(self.studies)
        self.rules: list[RuleTerm] = []
        self.studied: dict[int, _Study] = {}
        for study in self.studies:
            if study.term is not None and study.region is not None:
                self.rules.append(study.term)
                self.regions[id(study.term)] = study.region
                self.studied[id(study.term)] = study

    def study(self, rule: ast.Rule) -> _Study:
        try:
            term = self.compiler.rule(rule)
        except (NameLookupError, KeyError, ValueError, TypeError):
            return _Study(None, None, None, ())
        region = self.regions[id(term)] = self.region(term)
        never = self.never_applies(term)
        dead = () if never is not None else tuple(self.dead_obligations(term))
        conditions = self.interned.setdefault(_conditions(term), _conditions(term))
        obligations = self.interned.setdefault(_obligations(term), _obligations(term))
        kind = (term.permit, tuple(region.sets.items()), region.unders, conditions, obligations)
        return _Study(term, region, never, dead, conditions, obligations, kind)

    def run(self) -> list[Diagnostic]:
        found: list[Diagnostic] = []
        live: list[RuleTerm] = []
        for study in self.studies:
            if study.term is None:
                continue
            if study.never is not None:
                found.append(study.never)
            else:
                live.append(study.term)
                found.extend(study.dead)
        found.extend(self.covered(live))
        found.extend(self.dead_policy_obligations())
        return found

    # regions

    def region(self, rule: RuleTerm) -> Region:
        sets = dict(self.everywhere)
        unders: list[tuple[Any, ...]] = []
        for clause, term in rule.clauses:
            if isinstance(clause, ast.ConditionClause):
                continue
            for part in (term[1] if term[0] == "and" else (term,)):
                if part[0] == "in" and part[1][0] == "a" and part[1][1] in sets:
                    sets[part[1][1]] &= frozenset(v for _tag, v in part[2])
                elif part[0] == "under":
                    unders.append(part[1])
        # Rules share most of their sets (every agency, say): one object each, which regions
        # kept between loads hold in less memory and the indexes below compare by identity.
        return Region({d: self.sets.setdefault(values, values) for d, values in sets.items()}, tuple(unders))

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
        everywhere = Region(self.everywhere, ())
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

        Rules alike in everything the checks read (effect, value sets, `under`
        clauses, conditions and obligations) are one kind, and kinds are compared, not
        rules: a thousand exact repeats are one kind, found by hashing. A kind's
        candidates come from bit masks over kinds: those whose value sets hold
        every value of its own, whose conditions are among its own (looked up
        by the subsets of its conditions) and, for repeats, whose obligations
        include its own. Kinds are numbered by their first rule, so the first
        kind that covers another names the same rule a rule-by-rule scan in the
        set's order would: the first one placed.
        """
        index = _KindIndex(rules, [self.studied[id(r)] for r in rules])
        combine = self.vocab.combine
        found = []
        if combine is ast.Combine.FIRST_APPLICABLE:
            shadowing = [self._shadowing(index, n) for n in range(len(index.kinds))]
            for position, rule in enumerate(rules):
                other = shadowing[index.kind_of[position]]
                if other is not None and other < position:
                    found.append(_shadowed(rule, rules[other]))
            return found
        overriding = [self._overriding(index, n, combine) for n in range(len(index.kinds))]
        repeating = [(None, None) if over is not None else self._repeating(index, n)
                     for n, over in enumerate(overriding)]
        for position, rule in enumerate(rules):
            kind = index.kind_of[position]
            over, (repeated, wider) = overriding[kind], repeating[kind]
            if over is not None:
                found.append(_ineffective(rule, rules[over]))
            elif repeated is not None and repeated < position:
                found.append(warning("duplicate_rule", f"rule `{rule.id}` repeats rule `{rules[repeated].id}`",
                                     rule.rule.id.span, f"remove one of `{rules[repeated].id}` and `{rule.id}`"))
            elif wider is not None:
                found.append(warning(
                    "subsumed_rule",
                    f"rule `{rule.id}` adds nothing: rule `{rules[wider].id}` applies to every request it does, "
                    f"with the same effect and obligations",
                    rule.rule.id.span, f"remove `{rule.id}` or narrow `{rules[wider].id}`"))
        return found

    def _shadowing(self, index: _KindIndex, number: int) -> int | None:
        """The first rule placed of the first kind that decides every request kind `number` applies to.

        A rule of the kind is shadowed when that rule comes before it.
        """
        kind = index.kinds[number]
        around = index.around(number)
        candidates = around & index.conditions_among(number)
        if not kind.permit:
            # a deny that might apply is not stopped by a permit that might
            candidates = (candidates & index.denies) | (around & index.permits & index.unconditional)
        return self._first_inside(index, number, candidates)

    def _overriding(self, index: _KindIndex, number: int, combine: ast.Combine) -> int | None:
        """The first rule placed of the first kind of the other effect that overrides kind `number` everywhere."""
        kind = index.kinds[number]
        if combine is ast.Combine.DENY_OVERRIDES and kind.permit:
            candidates = index.around(number) & index.denies & index.conditions_among(number)
        elif combine is ast.Combine.PERMIT_OVERRIDES and not kind.permit:
            candidates = index.around(number) & index.permits & index.unconditional
        else:
            return None
        return self._first_inside(index, number, candidates)

    def _repeating(self, index: _KindIndex, number: int) -> tuple[int | None, int | None]:
        """Of the kinds that cover kind `number` with the same effect and obligations, the first rules placed
        of the first identical one (the rules of kind `number` placed after it repeat it) and of the first wider one.

        Only identical kinds that come before the first wider one are looked at: later ones name later rules.
        """
        kind = index.kinds[number]
        candidates = index.around(number) & (index.permits if kind.permit else index.denies) \
            & index.conditions_among(number) & index.obligations_among(number)
        repeated = None
        for other_number in _bits(candidates):
            other = index.kinds[other_number]
            if other_number == number:  # the kind itself: its rules repeat its first
                if repeated is None:
                    repeated = other.first
                continue
            if not kind.region.within(other.region):
                continue
            if other.conditions == kind.conditions and other.obligations == kind.obligations \
                    and other.region.within(kind.region):
                if repeated is None:
                    repeated = other.first
                continue
            return repeated, other.first
        return repeated, None

    def _first_inside(self, index: _KindIndex, number: int, candidates: int) -> int | None:
        region = index.kinds[number].region
        for other_number in _bits(candidates):
            other = index.kinds[other_number]
            if other_number == number or region.within(other.region):
                return other.first
        return None


def _shadowed(rule: RuleTerm, other: RuleTerm) -> Diagnostic:
    return warning("rule_shadowed",
                   f"rule `{rule.id}` never decides: the earlier rule `{other.id}` applies to "
                   f"every request it does, and the set combines first-applicable",
                   rule.rule.id.span, f"move `{rule.id}` above `{other.id}`, or remove it")


def _ineffective(rule: RuleTerm, other: RuleTerm) -> Diagnostic:
    if rule.permit:
        return warning("permit_never_effective",
                       f"permit rule `{rule.id}` never takes effect: deny rule `{other.id}` applies to "
                       f"every request it does, and deny overrides",
                       rule.rule.id.span, f"narrow `{other.id}` or remove `{rule.id}`")
    return warning("deny_never_effective",
                   f"deny rule `{rule.id}` never takes effect: permit rule `{other.id}` applies to "
                   f"every request it does, and permit overrides",
                   rule.rule.id.span, f"narrow `{other.id}` or remove `{rule.id}`")


@dataclass
class _Kind:
    """Rules alike in effect, region, conditions and obligations; `first` is the position of the first placed."""

    permit: bool
    region: Region
    conditions: frozenset[Any]
    obligations: frozenset[Any]
    first: int


class _KindIndex:
    """A set's rules sorted into kinds, numbered in the order of their first rules, with bit masks over kinds.

    `kind_of` gives each rule's kind by its position.
    """

    SUBSETS_UP_TO = 6  # conditions of a kind: past this many, scan the condition sets rather than enumerate subsets

    def __init__(self, rules: list[RuleTerm], studies: list[_Study]):
        self.kinds: list[_Kind] = []
        self.kind_of: list[int] = []
        numbers: dict[tuple[Any, ...], int] = {}
        for position, (rule, study) in enumerate(zip(rules, studies, strict=True)):
            # A rule's kind is made with its study, which a reload keeps; its sets of conditions
            # and obligations are shared objects (_interned), matched by identity.
            number = numbers.setdefault(study.kind, len(self.kinds))
            if number == len(self.kinds):
                assert study.region is not None  # only rules with terms are compared
                self.kinds.append(_Kind(rule.permit, study.region, study.conditions, study.obligations, position))
            self.kind_of.append(number)
        self.cover = _CoverIndex([k.region for k in self.kinds])
        everything = (1 << len(self.kinds)) - 1
        self.permits = mask_of(n for n, k in enumerate(self.kinds) if k.permit)
        self.denies = everything & ~self.permits
        self.everything = everything
        by_conditions: dict[frozenset[Any], list[int]] = {}
        by_obligation: dict[Any, list[int]] = {}
        for number, kind in enumerate(self.kinds):
            by_conditions.setdefault(kind.conditions, []).append(number)
            for obligation in kind.obligations:
                by_obligation.setdefault(obligation, []).append(number)
        self.by_conditions = {conditions: mask_of(numbers) for conditions, numbers in by_conditions.items()}
        self.by_obligation = {obligation: mask_of(numbers) for obligation, numbers in by_obligation.items()}
        self.unconditional = self.by_conditions.get(frozenset(), 0)
        self._around: list[int | None] = [None] * len(self.kinds)
        self._conditions_among: dict[frozenset[Any], int] = {}
        self._obligations_among: dict[frozenset[Any], int] = {}

    def around(self, number: int) -> int:
        """The kinds whose every value set includes those of kind `number` (itself among them)."""
        found = self._around[number]
        if found is None:
            found = self._around[number] = self.cover.containing(number)
        return found

    def conditions_among(self, number: int) -> int:
        """The kinds whose conditions are all among those of kind `number`."""
        conditions = self.kinds[number].conditions
        found = self._conditions_among.get(conditions)
        if found is None:
            found = 0
            if len(conditions) <= self.SUBSETS_UP_TO:
                for size in range(len(conditions) + 1):
                    for subset in itertools.combinations(conditions, size):
                        found |= self.by_conditions.get(frozenset(subset), 0)
            else:
                for others, mask in self.by_conditions.items():
                    if others <= conditions:
                        found |= mask
            self._conditions_among[conditions] = found
        return found

    def obligations_among(self, number: int) -> int:
        """The kinds whose obligations include all those of kind `number`."""
        obligations = self.kinds[number].obligations
        found = self._obligations_among.get(obligations)
        if found is None:
            found = self.everything
            for obligation in obligations:
                found &= self.by_obligation[obligation]
            self._obligations_among[obligations] = found
        return found


class _CoverIndex:
    """For each dimension and value, a bit mask of the regions whose set holds the value.

    Regions share many of their sets (every agency, say), so masks are made, and
    looked up, once for each distinct set of a dimension.
    """

    def __init__(self, regions: list[Region]):
        self.regions = regions
        self.masks: dict[str, dict[str, int]] = {d: {} for d in DIMENSIONS}
        having: dict[str, dict[frozenset[str], list[int]]] = {d: {} for d in DIMENSIONS}
        for position, region in enumerate(regions):
            for path, values in region.sets.items():
                having[path].setdefault(values, []).append(position)
        for path, sets in having.items():
            masks = self.masks[path]
            for values, positions in sets.items():
                mask = mask_of(positions)
                for value in values:
                    masks[value] = masks.get(value, 0) | mask
        self.including: dict[str, dict[frozenset[str], int]] = {d: {} for d in DIMENSIONS}

    def containing(self, position: int) -> int:
        """The regions whose every value set includes this region's."""
        everything = mask = (1 << len(self.regions)) - 1
        for path, values in self.regions[position].sets.items():
            including = self.including[path]
            found = including.get(values)
            if found is None:
                found = everything
                masks = self.masks[path]
                for value in values:
                    found &= masks[value]
                    if not found:
                        break
                including[values] = found
            mask &= found
            if not mask:
                return 0
        return mask


def _keep_interned(studies: list[_Study]) -> None:
    """Keep the sets of conditions and obligations of these studies for the next analysis (_interned)."""
    global _interned
    _interned = {sets: sets for study in studies for sets in (study.conditions, study.obligations)}


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


# Rules share their `under` clauses and agency and owner values: the pairs and dates those
# admit are worked out once for all the rules that share them.
@functools.lru_cache(maxsize=8192)
def _ranges(unders: tuple[tuple[Any, ...], ...], pair: tuple[str, str]) -> tuple[Any, ...]:
    ranges = _ALWAYS
    for agreements in unders:
        ranges = _intersect(ranges, _covering(agreements, pair))
        if not ranges:
            break
    return ranges


@functools.lru_cache(maxsize=1024)
def _pairs(unders: tuple[tuple[Any, ...], ...], agencies: frozenset[str],
           owners: frozenset[str]) -> tuple[tuple[tuple[str, str], tuple[Any, ...]], ...]:
    candidates = frozenset().union(*(_pairs_of(a) for a in unders[0]))
    found = ((pair, _ranges(unders, pair)) for pair in candidates if pair[0] in agencies and pair[1] in owners)
    return tuple((pair, ranges) for pair, ranges in found if ranges)


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
