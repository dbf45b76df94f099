"""The context as axes: every value of every attribute beyond the seven dimensions, in cases.

The matrix and the diff decide every combination of the vocabulary; the
context (consent, emergency, ages, dates, the request's date itself) is
explored the same way, not held at its defaults. Each attribute becomes an
axis of the walk with a few *cases* that between them cover every value it
can take:

- booleans, `one of`, vocabulary types: each value, and "not given";
- strings: each string a rule compares with, "any other", and "not given";
- numbers and dates: the intervals the policy's own comparisons cut the
  line into (a date moved by `+ 28 days` cuts where the moved date meets the
  constant; agreements' `valid` ranges cut `context.date`), and "not given";
- sets: given or not given.

What no single attribute's cases can say is made an axis of its own, true,
false or unknown: a comparison between two attributes (`context.date <=
resource.discharged_on + 28 days`) and membership of a set (`purpose in
context.consented_purposes`). Rules are rewritten to read those axes, so
within one combination of cases every condition of every rule has one truth
value, and one request stands for them all. `witness` finds that request:
values inside each case that give every such axis its case, or None when
no request has them all (that combination is left out).
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine import clock
from engine.durations import duration_text
from engine.governance.table import union_in_order
from engine.governance.terms import DIMENSION_KINDS, MISSING, UNK, Term, attributes_of, default_value, reduce
from engine.symbols import Attribute, Vocabulary

OMIT = object()  # a request that leaves the attribute out
_LINE = ("number", "date")
_COMPARISONS = ("eq", "ne", "ord")
_FIRST, _LAST = dt.date(1, 1, 2).toordinal(), dt.date(9999, 12, 30).toordinal()
_SEARCH = 20_000  # candidate combinations tried for one witness


_GAVE_UP: Any = object()  # a search that gave up, remembered as such
_ABSENT: Any = object()  # a value the request's values so far do not give


class Unsettled(Exception):
    """The search for a request inside a combination of cases gave up before it could tell
    whether one exists: its combinations are neither shown nor said to be impossible."""


@dataclass(frozen=True)
class Case:
    """One case of an axis: what the walk substitutes, and what a request gives."""

    key: str  # unique on its axis
    env: Mapping[Any, Any]  # attribute path (and ("has", path)) -> value for terms.reduce
    value: Any  # the value as terms compare it, MISSING when not given
    request: Any  # the value as a request gives it (JSON), OMIT when not given
    order: int  # position along the axis; adjacent line cases merge into ranges
    low: Any = None  # a line case: its bounds as (value, included), None for unbounded
    high: Any = None


@dataclass
class Axis:
    """An attribute of the context, or a condition no attribute alone decides, with its cases."""

    path: str
    kind: str  # an attribute kind, or "condition" for a comparison or membership made an axis
    cases: list[Case]
    words: str  # how a row names it: the attribute path, or the condition as written
    term: Term | None = None  # a condition axis: the condition
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def keys(self) -> list[str]:
        return [case.key for case in self.cases]

    def case(self, key: str) -> Case:
        return self._by_key[key]

    def __post_init__(self) -> None:
        self._by_key = {case.key: case for case in self.cases}


class Space:
    """The context axes of one or more versions of a policy set, and requests inside them.

    `vocabs` are the versions' vocabularies (their attributes, values and
    agreements); `terms` every version's rule and obligation terms, already
    reduced by what is fixed (`--context`, `--date`); `fixed` the attribute
    paths that are fixed, so no axis is made for them.
    """

    def __init__(self, vocabs: Sequence[Vocabulary], terms: Iterable[Term], fixed: Iterable[str]):
        self.vocabs = vocabs
        fixed = set(fixed)
        terms = list(terms)
        self.schema: dict[str, Attribute] = {}
        for vocab in vocabs:
            for path, attribute in vocab.attributes.items():
                if path not in DIMENSION_KINDS and path not in fixed:
                    self.schema.setdefault(path, attribute)
        self.conditions: dict[Term, str] = {}  # a condition made an axis -> its axis path
        for term in terms:
            self._find_conditions(term)
        points: dict[str, set[Any]] = {p: set() for p, a in self.schema.items() if a.kind in _LINE}
        strings: dict[str, set[str]] = {p: set() for p, a in self.schema.items() if a.kind == "string"}
        for term in terms:
            self._collect(self.rewrite(term), points, strings)
        for vocab in vocabs:
            if "context.date" in points:
                for agreement in vocab.agreements.values():
                    if agreement.start is not None and agreement.end is not None:
                        points["context.date"].update((agreement.start.toordinal(), agreement.end.toordinal() + 1))
        self.axes: list[Axis] = []
        dated = ["context.date"] if "context.date" in self.schema else []
        for path in dated + [p for p in self.schema if p != "context.date"]:
            self.axes.append(self._axis(path, points.get(path, set()), strings.get(path, set())))
        for term, path in self.conditions.items():
            self.axes.append(Axis(path, "condition", _condition_cases(path), show_term(term), term))
        self.by_path = {axis.path: axis for axis in self.axes}
        # What a witness depends on: the conditions' axes and every attribute they read.
        self.witnessed = self._witnessed_paths()
        relations = [(t, p) for t, p in self.conditions.items() if t[0] != "member"]
        compared = sorted(frozenset().union(*(attributes_of(t) for t, _p in relations)))
        self._solving = sorted({p for _t, p in relations}.union(compared) & set(self.by_path))
        self._solved: dict[tuple[str, ...], dict[str, Any] | None] = {}
        # What the comparisons read from a request: each attribute, and whether it was given.
        self._relation_env: list[Any] = [*compared, *(("has", a) for a in compared)]
        self._candidates: dict[tuple[Any, ...], tuple[dict[str, list[Any]], bool]] = {}
        self._truths: dict[tuple[Any, ...], Any] = {}  # (condition, attribute, value) -> its truth
        self._read = [a.path for a in self.axes if a.kind != "condition" and a.path in self.witnessed]
        self.plain = [a for a in self.axes if a.kind != "condition"]
        # What a request gives for each case of each attribute's axis (OMIT: leaves it out).
        self._requests = [(a.path, {c.key: c.request for c in a.cases}) for a in self.plain]
        # The values a witness gives depend on the dimensions conditions read (a set holds the
        # request's purpose), even where whether one exists does not.
        read = frozenset().union(*(attributes_of(t) for t in self.conditions))
        self._dimensions = [p for p in DIMENSION_KINDS if p in read]
        self._keyed = self._dimensions + [p for p in self.by_path if p in self.witnessed]
        self._witnessed: dict[tuple[str, ...], dict[str, Any] | None] = {}

    # conditions made axes

    def _find_conditions(self, term: Term) -> None:
        op = term[0]
        if op in ("and", "or"):
            for part in term[1]:
                self._find_conditions(part)
        elif op in ("not", "truthy"):
            self._find_conditions(term[1])
        elif self._is_condition(term):
            self.conditions.setdefault(term, f"?{len(self.conditions) + 1}")

    def _is_condition(self, term: Term) -> bool:
        if term[0] == "member":
            return bool(attributes_of(term[2]) & set(self.schema))
        if term[0] not in _COMPARISONS:
            return False
        sides = term[1:3] if term[0] != "ord" else term[2:4]
        read = [attributes_of(side) for side in sides]
        if not all(read) or any(r & set(DIMENSION_KINDS) for r in read):
            return False
        kinds = {self.schema[p].kind for r in read for p in r if p in self.schema}
        return bool(kinds & {"number", "date", "string"})

    def _witnessed_paths(self) -> frozenset[str]:
        """The axes whose cases decide whether a request exists for a combination: the
        conditions' own, and what they read, but for a dimension a membership reads when
        that membership alone cannot make a combination impossible (one element term per
        set, and a default that is empty or absent)."""
        found: set[str] = set(self.conditions.values())
        elements: dict[Term, set[Term]] = {}
        for term in self.conditions:
            if term[0] == "member":
                elements.setdefault(term[2], set()).add(term[1])
                found |= attributes_of(term[2])
                found |= attributes_of(term[1]) - set(DIMENSION_KINDS)
            else:
                found |= attributes_of(term)
        for members, terms in elements.items():
            defaults = [self._default(p) for p in attributes_of(members)]
            if len(terms) > 1 or any(d is not MISSING and d for d in defaults):
                found.update(*(attributes_of(t) for t in terms))
        return frozenset(found)

    def rewrite(self, term: Term) -> Term:
        """`term` reading the condition axes in place of the conditions they stand for."""
        if not self.conditions:
            return term
        return self._rewrite(term)

    def _rewrite(self, term: Term) -> Term:
        path = self.conditions.get(term)
        if path is not None:
            return ("truthy", ("a", path))
        op = term[0]
        if op in ("and", "or"):
            return (op, tuple(self._rewrite(t) for t in term[1]))
        if op in ("not", "truthy"):
            return (op, self._rewrite(term[1]))
        return term

    # cutting lines

    def _collect(self, term: Term, points: dict[str, set[Any]], strings: dict[str, set[str]]) -> None:
        """The points where a comparison with a constant changes its truth, per attribute."""
        op = term[0]
        if op in ("and", "or"):
            for part in term[1]:
                self._collect(part, points, strings)
            return
        if op in ("not", "truthy"):
            self._collect(term[1], points, strings)
            return
        pairs: list[tuple[Term, Term]] = []
        if op in ("eq", "ne"):
            pairs = [(term[1], term[2]), (term[2], term[1])]
        elif op == "ord":
            pairs = [(term[2], term[3]), (term[3], term[2])]
        elif op == "in":
            pairs = [(term[1], ("k",) + value) for value in term[2]]
        for side, other in pairs:
            if other[0] != "k" or other[1] in "mu":
                continue
            read = attributes_of(side)
            if len(read) != 1:
                continue
            path = next(iter(read))
            if path in strings and side == ("a", path) and other[1] == "s":
                strings[path].add(other[2])
            elif path in points and other[1] in "nd":
                points[path].update(_cuts(side, path, other[2], self.schema[path].kind))

    def _axis(self, path: str, points: set[Any], strings: set[str]) -> Axis:
        attribute = self.schema[path]
        words = self._words(path)
        kind = attribute.kind
        cases: list[Case]
        if kind == "date":
            cases = _date_cases(path, sorted(points))
        elif kind == "number":
            cases = _number_cases(path, sorted(points))
        elif kind == "bool":
            cases = [_value_case(path, v, v, i) for i, v in enumerate((True, False))]
        elif kind == "one_of":
            values = union_in_order(list(a.values) for a in self._schemas(path))
            cases = [_value_case(path, v, v, i) for i, v in enumerate(values)]
        elif kind == "string":
            other = "other"
            while other in strings:
                other += "_"
            cases = [_value_case(path, v, v, i) for i, v in enumerate(sorted(strings))]
            cases.append(Case(f"{path}=*", {path: other, ("has", path): True}, other, other, len(cases),
                              low=frozenset(strings)))
        elif kind == "set":
            cases = [Case(f"{path}=given", {path: frozenset(), ("has", path): True}, frozenset(), [], 0)]
        else:  # a vocabulary type: every declared value
            values = union_in_order(vocab.values_of(kind) for vocab in self.vocabs if path in vocab.attributes)
            cases = [_value_case(path, v, v, i) for i, v in enumerate(values)]
        if path != "context.date":
            default = self._default(path)
            env: dict[Any, Any] = {("has", path): False, path: default}
            cases.append(Case(f"{path}=(none)", env, default, OMIT, len(cases)))
        return Axis(path, kind, cases, words, labels={c.key: _case_words(kind, c) for c in cases})

    def _words(self, path: str) -> str:
        """The attribute as the policy labels it (the newer version's label first), else its path."""
        labels = [a.label for a in self._schemas(path) if a.label]
        return labels[-1] if labels else path

    def _schemas(self, path: str) -> list[Attribute]:
        return [vocab.attributes[path] for vocab in self.vocabs if path in vocab.attributes]

    def _default(self, path: str) -> Any:
        for vocab in self.vocabs:
            if path in vocab.attributes:
                return default_value(vocab, path)
        return MISSING

    # which cases a version accepts

    def accepts(self, vocab: Vocabulary, path: str) -> list[str]:
        """The keys of `path`'s cases a request to `vocab` may carry (a value it declares)."""
        axis = self.by_path[path]
        attribute = vocab.attributes.get(path)
        if axis.kind == "condition" or attribute is None:
            return axis.keys
        if attribute.kind != axis.kind:
            return [c.key for c in axis.cases if c.request is OMIT]
        if attribute.kind == "one_of":
            return [c.key for c in axis.cases if c.request is OMIT or c.value in attribute.values]
        if attribute.kind in DIMENSION_KINDS.values():
            declared = set(vocab.values_of(attribute.kind))
            return [c.key for c in axis.cases if c.request is OMIT or c.value in declared]
        return axis.keys

    # one request inside a combination of cases

    def witness(self, cell: Mapping[str, str], env: Mapping[Any, Any]) -> dict[str, Any] | None:
        """Request values (path -> JSON, OMIT) inside the cell's cases that give every condition
        axis its case; None when no request does. `env` holds the fixed values; the
        dimensions' values are the cell's. Raises Unsettled when the search gave up."""
        found = {path: requests[cell[path]] for path, requests in self._requests}
        if not self.conditions:
            return found
        key = tuple(cell[p] for p in self._keyed)
        if key not in self._witnessed:
            self._witnessed[key] = self._values(cell, env)
        values = self._witnessed[key]
        if values is None:
            return None
        found.update(values)
        return found

    def _values(self, cell: Mapping[str, str], env: Mapping[Any, Any]) -> dict[str, Any] | None:
        """The values of what conditions read, chosen so that each condition has its case."""
        full, cases, wanted = self._start(cell, env)
        solved = self._solve(cell, full, cases, wanted)
        if solved is None:
            return None
        full.update(solved)
        self._sets(full, wanted)
        for term, path in self.conditions.items():
            if _truth(reduce(term, full)) != wanted[path]:
                return None
        return {path: _json(full[path]) for path, case in cases.items()
                if case.request is not OMIT and self.by_path[path].kind in _LINE + ("set",)}

    def _start(self, cell: Mapping[str, str], env: Mapping[Any, Any]) -> tuple[dict[Any, Any], dict[str, Case], dict[str, Any]]:
        """The values conditions read: the fixed ones, the dimensions', and their cases'."""
        full: dict[Any, Any] = dict(env)
        full.update((p, cell[p]) for p in self._dimensions)
        cases: dict[str, Case] = {}
        for path in self._read:
            case = cases[path] = self.by_path[path].case(cell[path])
            full.update(case.env)
        wanted = {path: self.by_path[path].case(cell[path]).value for path in self.conditions.values()}
        return full, cases, wanted

    def _solve(self, cell: Mapping[str, str], full: dict[Any, Any], cases: dict[str, Case],
               wanted: dict[str, Any]) -> dict[str, Any] | None:
        """Raises Unsettled (each time it is asked again) when the search gave up."""
        key = tuple(cell[p] for p in self._solving)
        if key not in self._solved:
            trial = dict(full)
            try:
                found = self._search(trial, cases, wanted)
            except Unsettled:
                self._solved[key] = _GAVE_UP
                raise
            self._solved[key] = {p: trial[p] for p in self._free_paths(cases) if p in trial} if found else None
        solved = self._solved[key]
        if solved is _GAVE_UP:
            raise Unsettled
        return solved

    def _free_paths(self, cases: Mapping[str, Case]) -> list[str]:
        return sorted({a for t, _p in self.conditions.items() if t[0] != "member" for a in attributes_of(t)
                       if a in cases})

    def _search(self, full: dict[Any, Any], cases: dict[str, Case], wanted: dict[str, Any]) -> bool:
        """Choose values inside their intervals for the line attributes that conditions compare
        with each other, so that every such condition has its case. True when found."""
        relations = [(t, p) for t, p in self.conditions.items() if t[0] != "member"]
        free = sorted({a for t, _p in relations for a in attributes_of(t)
                       if a in cases and cases[a].request is not OMIT and self.schema[a].kind in _LINE + ("string",)})
        if not free:
            return True
        # The candidates depend on the free attributes' cases and on the other values the
        # comparisons read, not on which case each condition must have: searches that differ
        # only in that (most of them) share one list.
        key = (tuple(free), tuple(cases[a].key for a in free),
               tuple(full.get(k, _ABSENT) for k in self._relation_env if k not in free))
        known = self._candidates.get(key)
        if known is None:
            known = self._candidates[key] = self._candidates_for(free, relations, full, cases)
        candidates, cut = known
        found = _backtrack(free, candidates, relations, wanted, full, self.schema, self._truths)
        if found is None:
            if cut:
                raise Unsettled
            return False
        full.update(found)
        return True

    def _candidates_for(self, free: list[str], relations: list[tuple[Term, str]], full: dict[Any, Any],
                        cases: dict[str, Case]) -> tuple[dict[str, list[Any]], bool]:
        """Values to try for each free attribute, and whether some were not worked out
        (finding none among them then proves nothing)."""
        candidates = {a: _inside(cases[a], self.schema[a].kind) for a in free}
        cut = [False]
        fixed = {k: v for k, v in full.items() if k not in candidates}  # what no candidate changes
        for _round in range(2):  # values where one side meets the other's candidates
            more = {a: set(c) for a, c in candidates.items()}
            for term, _path in relations:
                sides = term[1:3] if term[0] != "ord" else term[2:4]
                for side, other in (sides, sides[::-1]):
                    read = attributes_of(side)
                    if len(read) != 1 or next(iter(read)) not in candidates:
                        continue
                    path = next(iter(read))
                    rest = reduce(other, fixed)
                    for values in _assignments(other, candidates, self.schema, 64, cut):
                        target = reduce(rest, values)
                        if target[0] == "k" and target[1] in "nds":
                            more[path].update(v for v in _near(side, path, target, self.schema[path].kind)
                                              if _within(cases[path], v, self.schema[path].kind))
            candidates = {a: sorted(v, key=_sort_key) for a, v in more.items()}
        return candidates, cut[0]

    def _sets(self, full: dict[Any, Any], wanted: dict[str, Any]) -> bool:
        """Sets holding exactly what the membership conditions ask of them."""
        members: dict[str, set[Any]] = {}
        for term, path in self.conditions.items():
            if term[0] != "member" or term[2][0] != "a":
                continue
            set_path = term[2][1]
            if full.get(("has", set_path)) is False:
                continue  # not given: the default decides, checked with the rest
            element = reduce(term[1], full)
            if element[0] != "k" or element[1] in "mu":
                continue
            if wanted[path] is True:
                members.setdefault(set_path, set()).add(element[1:])
            else:
                members.setdefault(set_path, set())
        for set_path in {t[2][1] for t in self.conditions if t[0] == "member" and t[2][0] == "a"}:
            if full.get(("has", set_path)) is True:
                full[set_path] = frozenset(v for _tag, v in members.get(set_path, set()))
        return True

    def locate(self, env: Mapping[Any, Any]) -> dict[str, str]:
        """The case of every axis that a request's values fall in. `env` is what terms read:
        path -> value (dates as dates, MISSING when not given, the default then applying)
        and ("has", path) -> whether the request gave it."""
        found: dict[str, str] = {}
        for axis in self.axes:
            if axis.kind == "condition":
                assert axis.term is not None
                truth = _truth(reduce(axis.term, env))
                found[axis.path] = next(c.key for c in axis.cases if c.value is truth or c.value == truth
                                        and isinstance(truth, bool))
                continue
            given = env.get(("has", axis.path), True)
            value = env.get(axis.path, MISSING)
            for case in axis.cases:
                if case.request is OMIT:
                    if not given:
                        found[axis.path] = case.key
                        break
                    continue
                if not given:
                    continue
                if axis.kind in _LINE:
                    point = value.toordinal() if axis.kind == "date" else value
                    if _within(case, point, axis.kind):
                        found[axis.path] = case.key
                        break
                elif axis.kind == "string":
                    if _within(case, value, axis.kind):
                        found[axis.path] = case.key
                        break
                elif axis.kind == "set" or case.value == value:
                    found[axis.path] = case.key
                    break
        return found

    # words

    def when(self, sets: Sequence[frozenset[str]]) -> list[str]:
        """A row's context columns (one set of case keys per axis, in axis order) in words."""
        found = (self.describe(axis.path, keys) for axis, keys in zip(self.axes, sets))
        return [words for words in found if words is not None]

    def describe(self, path: str, keys: frozenset[str]) -> str | None:
        """The cases `keys` of one axis in words, or None when they are every case."""
        axis = self.by_path[path]
        if len(keys) == len(axis.cases):
            return None
        chosen = [c for c in axis.cases if c.key in keys]
        if axis.kind == "condition":
            truth = {c.value for c in chosen}
            if truth == {True}:
                return axis.words
            if truth == {False}:
                return f"not ({axis.words})"
            if truth == {True, False}:
                return f"{axis.words} is known (true or false)"
            parts = {True: "true", False: "false", MISSING: "unknown (an attribute it reads is not given)"}
            return f"{axis.words} is " + " or ".join(parts[t] for t in (True, False, MISSING) if t in truth)
        given = [c for c in chosen if c.request is not OMIT]
        absent = len(given) < len(chosen)
        words: list[str]
        if axis.kind in _LINE:
            words = [_range_words(run, axis.kind) for run in _runs(given)]
        else:
            values = [c for c in axis.cases if c.request is not OMIT]
            others = [axis.labels[c.key] for c in values if c not in given]
            if not others:  # every value, but not "not given" (all of them would be every case)
                return f"{axis.words} is given"
            if len(given) > 2 and len(others) < len(given):  # say what it is not, when that is shorter
                words = ["anything but " + " or ".join(others)]
            else:
                words = [axis.labels[c.key] for c in given]
        if absent:
            words.append("not given")
        if path == "context.date":
            return "date " + " or ".join(words)
        verb = "is " if axis.kind not in _LINE else ""
        return f"{axis.words} {verb}" + " or ".join(words)


def _value_case(path: str, value: Any, request: Any, order: int) -> Case:
    word = str(value).lower() if isinstance(value, bool) else str(value)
    return Case(f"{path}={word}", {path: value, ("has", path): True}, value, request, order)


def _condition_cases(path: str) -> list[Case]:
    return [Case(f"{path}={word}", {path: value}, value, OMIT, order)
            for order, (word, value) in enumerate((("true", True), ("false", False), ("unknown", MISSING)))]


def _case_words(kind: str, case: Case) -> str:
    if case.request is OMIT:
        return "not given"
    if kind == "string":
        return "something else" if case.key.endswith("=*") else f'"{case.value}"'
    if kind == "bool":
        return "true" if case.value else "false"
    if kind == "set":
        return "given"
    return str(case.value)


def _truth(term: Term) -> Any:
    if term == ("k", "b", True):
        return True
    if term == ("k", "b", False):
        return False
    return MISSING if term == UNK or term[0] != "k" or term[1] in "mu" else term


# --- lines: numbers and dates ---------------------------------------------------------


def _cuts(side: Term, path: str, constant: Any, kind: str) -> list[Any]:
    """Where `side` (a line attribute, perhaps moved by durations) crosses `constant`:
    dates as the first days on which it is >= and > the constant; numbers as the point."""
    if kind == "number":
        return [constant] if isinstance(constant, (int, float)) and not isinstance(constant, bool) else []
    if not isinstance(constant, dt.date):
        return []
    move = _mover(side, path)
    target = constant.toordinal()
    return [_first(lambda x: _at_least(move(x), target, 0)), _first(lambda x: _at_least(move(x), target, 1))]


def _mover(side: Term, path: str) -> Callable[[int], int | None]:
    def move(ordinal: int) -> int | None:
        found = reduce(side, {path: dt.date.fromordinal(ordinal)})
        return found[2].toordinal() if found[0] == "k" and found[1] == "d" else None

    return move


def _at_least(value: int | None, target: int, more: int) -> bool:
    return value is not None and value >= target + more


def _first(holds: Callable[[int], bool]) -> int:
    """The first day (ordinal) on which a monotone condition holds (one past the calendar if none)."""
    low, high = _FIRST, _LAST + 1
    while low < high:
        middle = (low + high) // 2
        if holds(middle):
            high = middle
        else:
            low = middle + 1
    return low


def _date_cases(path: str, cuts: list[int]) -> list[Case]:
    """Days between consecutive cuts: [.., c1 - 1], [c1, c2 - 1], ..., [ck, ..]."""
    cuts = [c for c in cuts if _FIRST < c <= _LAST]
    bounds = [None, *cuts, None]
    cases: list[Case] = []
    for order, (start, stop) in enumerate(itertools.pairwise(bounds)):
        low = start
        high = stop - 1 if stop is not None else None
        if low is not None and high is not None and low > high:
            continue
        value = _middle_day(low, high)
        date = dt.date.fromordinal(value)
        cases.append(Case(f"{path}@{order}", {path: date, ("has", path): True}, date, date.isoformat(),
                          len(cases), None if low is None else (low, True), None if high is None else (high, True)))
    return cases


def _middle_day(low: int | None, high: int | None) -> int:
    if low is not None and high is not None:
        return (low + high) // 2
    if low is not None:
        return min(low + 366, _LAST)
    if high is not None:
        return max(high - 366, _FIRST)
    return clock.today().toordinal()


def _number_cases(path: str, points: list[Any]) -> list[Case]:
    """Below the first point, each point, between points, above the last."""
    cases: list[Case] = []

    def add(value: Any, low: Any, high: Any) -> None:
        cases.append(Case(f"{path}@{len(cases)}", {path: value, ("has", path): True}, value, value, len(cases),
                          low, high))

    if not points:
        add(0, None, None)
        return cases
    add(points[0] - 1, None, (points[0], False))
    for index, point in enumerate(points):
        add(point, (point, True), (point, True))
        if index + 1 < len(points):
            after = points[index + 1]
            middle = point + 1 if isinstance(point, int) and isinstance(after, int) and after - point >= 2 \
                else (point + after) / 2
            add(middle, (point, False), (after, False))
    add(points[-1] + 1, (points[-1], False), None)
    return cases


def _runs(cases: list[Case]) -> Iterator[list[Case]]:
    run: list[Case] = []
    for case in sorted(cases, key=lambda c: c.order):
        if run and case.order != run[-1].order + 1:
            yield run
            run = []
        run.append(case)
    if run:
        yield run


def _day(ordinal: int) -> str:
    return dt.date.fromordinal(ordinal).isoformat()


def _number(value: Any) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _range_words(run: list[Case], kind: str) -> str:
    low, high = run[0].low, run[-1].high
    if kind == "date":
        if low is None and high is None:
            return "any"
        if low is None:
            return f"up to {_day(high[0])}"
        if high is None:
            return f"from {_day(low[0])}"
        if low[0] == high[0]:
            return f"on {_day(low[0])}"
        return f"from {_day(low[0])} to {_day(high[0])}"
    if low is None and high is None:
        return "any number"
    if low is not None and high is not None and low[0] == high[0]:
        return _number(low[0])
    parts = []
    if low is not None:
        parts.append(f"{_number(low[0])} or more" if low[1] else f"more than {_number(low[0])}")
    if high is not None:
        parts.append(f"{_number(high[0])} or less" if high[1] else f"less than {_number(high[0])}")
    return " and ".join(parts)


def _inside(case: Case, kind: str) -> list[Any]:
    """A few values inside a case: its ends, one step in, and its middle (dates as ordinals)."""
    if kind == "string":
        return [case.value, case.value + "~"] if case.key.endswith("=*") else [case.value]
    if kind == "date":
        low = case.low[0] if case.low else None
        high = case.high[0] if case.high else None
        middle = case.value.toordinal()
        found = {middle}
        for value in (low, high):
            if value is not None:
                found.update((value, value + 1, value - 1))
        if low is None:
            found.update(middle - d for d in (400, 4000))
        if high is None:
            found.update(middle + d for d in (400, 4000))
        return sorted(v for v in found if _within(case, v, kind))
    found = {case.value}
    for bound in (case.low, case.high):
        if bound is not None:
            found.update((bound[0], bound[0] + 0.5, bound[0] - 0.5))
    return sorted(v for v in found if _within(case, v, kind))


def _within(case: Case, value: Any, kind: str) -> bool:
    if kind == "string":
        return value not in case.low if case.key.endswith("=*") else bool(value == case.value)
    if kind == "date" and not _FIRST <= value <= _LAST:
        return False
    if case.low is not None and (value < case.low[0] or (value == case.low[0] and not case.low[1])):
        return False
    return not (case.high is not None and (value > case.high[0] or (value == case.high[0] and not case.high[1])))


@functools.lru_cache(maxsize=1 << 16)
def _near(side: Term, path: str, target: Term, kind: str) -> list[Any]:
    """Values of `path` at which `side` meets `target`, and either side of it."""
    if kind == "date" and target[1] == "d":
        move = _mover(side, path)
        goal = target[2].toordinal()
        first = _first(lambda x: _at_least(move(x), goal, 0))
        after = _first(lambda x: _at_least(move(x), goal, 1))
        return [first - 1, first, after - 1, after]
    if kind == "number" and target[1] == "n" and side == ("a", path):
        value = target[2]
        return [value - 1, value - 0.5, value, value + 0.5, value + 1]
    if kind == "string" and target[1] == "s" and side == ("a", path):
        return [target[2]]
    return []


def _backtrack(free: list[str], candidates: Mapping[str, list[Any]], relations: list[tuple[Term, str]],
               wanted: Mapping[str, Any], full: Mapping[Any, Any],
               schema: Mapping[str, Attribute], truths: dict[tuple[Any, ...], Any]) -> dict[str, Any] | None:
    """Values for `free` that give every condition its case, or None when no choice among the
    candidates does; raises Unsettled when the search spent its budget first. One value is
    chosen at a time, the attribute most conditions read first,
    and each condition is checked as soon as what it reads is chosen; attributes that no
    unchosen condition links are then solved apart (a star of comparisons with the request's
    date is solved one arm at a time, not as a product)."""
    reads = [(term, path, frozenset(attributes_of(term)) & set(free)) for term, path in relations]
    if not all(_truth(reduce(t, full)) == wanted[p] for t, p, read in reads if not read):
        return None
    budget = [_SEARCH]

    def holds(term: Term, hub: str, value: Any) -> Any:
        """The truth of `term` with the hub's value put in: the same checks recur from search to search."""
        key = (term, hub, value)
        found = truths.get(key, _ABSENT)
        if found is _ABSENT:
            found = truths[key] = _truth(reduce(term, {hub: value}))
        return found

    def solve(group: frozenset[str], chosen: dict[Any, Any]) -> dict[str, Any] | None:
        found: dict[str, Any] = {}
        for part in _components(group, [read for _t, _p, read in reads]):
            solved = solve_part(part, chosen)
            if solved is None:
                return None
            found.update(solved)
        return found

    def solve_part(part: frozenset[str], chosen: dict[Any, Any]) -> dict[str, Any] | None:
        hub = max(sorted(part), key=lambda a: sum(1 for _t, _p, read in reads if a in read))
        rest = part - {hub}
        # The conditions that the hub settles, with everything else they read put in once:
        # each candidate then substitutes the hub alone.
        without = {k: v for k, v in chosen.items() if k != hub}
        checks = [(reduce(t, without), p) for t, p, read in reads if hub in read and not read & rest]
        kind = schema[hub].kind
        for value in candidates[hub]:
            budget[0] -= 1
            if budget[0] < 0:
                raise Unsettled
            typed = _as_value(value, kind)
            if not all(holds(t, hub, typed) == wanted[p] for t, p in checks):
                continue
            solved = solve(rest, {**chosen, hub: typed}) if rest else {}
            if solved is not None:
                return {hub: typed, **solved}
        return None

    return solve(frozenset(free), dict(full))


def _components(group: frozenset[str], links: list[frozenset[str]]) -> list[frozenset[str]]:
    """The parts of `group` that links (each a set of attributes read together) join."""
    parts: list[set[str]] = [{a} for a in sorted(group)]
    for link in links:
        inside = link & group
        if len(inside) < 2:
            continue
        joined = [p for p in parts if p & inside]
        merged = set().union(*joined)
        parts = [p for p in parts if not p & inside] + [merged]
    return [frozenset(p) for p in parts]


def _assignments(term: Term, candidates: Mapping[str, list[Any]], schema: Mapping[str, Attribute],
                 limit: int, cut: list[bool]) -> Iterator[dict[str, Any]]:
    """Up to `limit` choices of candidates for what `term` reads; `cut[0]` is set when there were more."""
    read = [a for a in sorted(attributes_of(term)) if a in candidates]
    for count, chosen in enumerate(itertools.product(*(candidates[a] for a in read))):
        if count >= limit:
            cut[0] = True
            return
        yield {a: _as_value(v, schema[a].kind) for a, v in zip(read, chosen)}


def _as_value(value: Any, kind: str) -> Any:
    return dt.date.fromordinal(value) if kind == "date" and isinstance(value, int) else value


def _sort_key(value: Any) -> tuple[int, Any]:
    return (0, value) if not isinstance(value, str) else (1, value)


def _json(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, frozenset):
        return sorted(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# --- a condition as the policy language writes it ------------------------------------------


def show_term(term: Term) -> str:
    """A comparison, membership or value as policy text (`context.date <= resource.x + 28 days`)."""
    op = term[0]
    if op == "a":
        return str(term[1])
    if op == "k":
        value = term[2]
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, dt.date):
            return value.isoformat()
        return f'"{value}"' if term[1] == "s" and not str(value).replace("_", "").replace(".", "").isalnum() \
            else str(value)
    if op == "shift":
        return f"{show_term(term[1])} {term[2]} {duration_text(term[3], term[4])}"
    if op in ("eq", "ne"):
        return f"{show_term(term[1])} {'==' if op == 'eq' else '!='} {show_term(term[2])}"
    if op == "ord":
        return f"{show_term(term[2])} {term[1]} {show_term(term[3])}"
    if op == "member":
        return f"{show_term(term[1])} in {show_term(term[2])}"
    if op == "truthy":
        return show_term(term[1])
    if op == "not":
        return f"not {show_term(term[1])}"
    if op in ("and", "or"):
        return f" {op} ".join(show_term(t) for t in term[1])
    return str(term)


def fixed_env(vocab: Vocabulary, given: Mapping[str, Any], date: dt.date | None) -> dict[Any, Any]:
    """What a walk knows before it starts: the fixed values, and that every dimension is given."""
    env: dict[Any, Any] = {("has", path): True for path in DIMENSION_KINDS}
    if date is not None:
        env["context.date"] = date
        env[("has", "context.date")] = True
    for path, value in given.items():
        env[path] = value
        env[("has", path)] = True
    return env


