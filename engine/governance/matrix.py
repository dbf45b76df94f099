"""The access matrix: every combination of the vocabulary decided, then compressed for people.

Deciding ~10^6-10^7 combinations one by one would be slow, so the space is
walked one dimension at a time (action, purpose, category, role,
classification, requester agency, owner). At each step the values of the
next dimension are grouped by what the still-applicable rules make of them
(terms.reduce): values in one group lead to the same decision whatever
comes later, so one representative of each group is decided by the engine
and stands for them all. A branch where no permit rule can apply any more is
refused without asking the engine (deny is the default in every combining
algorithm). The result is exact: every combination is decided, most of
them in bulk. The rows are compressed and worded by engine/table.py.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import math
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple, Protocol

from engine import clock
from engine.ast import Combine
from engine.errors import RequestError
from engine.governance.context import OMIT, Space, Unsettled, fixed_env
from engine.governance.table import (
    COLUMNS,
    UNDECLARED,
    Box,
    Legend,
    Outcome,
    cells_in,
    compress,
    row_cells,
    show_obligations,
    sort_rows,
    to_csv,
    to_html,
    to_markdown,
    union_in_order,
)
from engine.governance.terms import (
    DIMENSION_KINDS,
    DIMENSIONS,
    FALSE,
    TRUE,
    UNK,
    Compiler,
    Term,
    attribute_value,
    attributes_of,
    context_env,
    reduce,
)
from engine.pipeline import collector_paused
from engine.policy import load
from engine.symbols import NameLookupError, Vocabulary
from engine.wording import count

# The walk's order: the most selective dimensions first, agency just before owner
# so that `under` clauses resolve on the last step.
WALK = ("action", "purpose", "resource.category", "requester.role", "resource.classification",
        "requester.agency", "resource.owner")


_WITNESS_TRIES = 4096  # combinations of group members tried for a request that has them
_GAVE_UP: Any = object()  # a request search that gave up (Walk.unsettled)
_UNSET: Any = object()


class ContextError(ValueError):
    """A --date or --context value that does not fit the attribute schema."""


# --- one policy version, ready to be walked --------------------------------------


@dataclass
class Version:
    """A loaded policy set with its rules as terms; `date` and `given` fix what is fixed.

    Everything not fixed is explored: the walk takes every context attribute
    (and, without a date, the request's date) as an axis (context.py).
    """

    vocab: Vocabulary
    decide: Callable[[dict[str, Any]], Any]  # request -> Decision-like (decision, reasons, obligations)
    date: dt.date | None = None
    given: dict[str, Any] = field(default_factory=dict)  # attribute path -> JSON value
    restrict: dict[str, frozenset[str]] = field(default_factory=dict)  # dimension -> allowed values
    title: str | None = None
    label: str | None = None
    hash: str = ""
    warnings: list[Any] = field(default_factory=list)  # the checker's findings, for the diff's rule-level changes
    at_defaults: bool = False  # every attribute not given takes its default: nothing of the context explored

    def __post_init__(self) -> None:
        compiler = Compiler(self.vocab)
        self.rules = [compiler.rule(rule) for rule in self.vocab.rules]
        self.policy_obligations = [compiler.policy_obligation(d) for d in self.vocab.policy_obligations]
        typed = {p: attribute_value(self.vocab, p, v) for p, v in self.given.items()}
        if self.at_defaults:
            self.date = self.date or clock.today()
            self.env = context_env(self.vocab, typed, self.date)
        else:
            self.env = fixed_env(self.vocab, typed, self.date)
        self.combine = self.vocab.combine
        self._symbolic = _symbolic_arguments(self.rules, self.policy_obligations)
        self.space: Space | None = None

    @property
    def fixed(self) -> frozenset[str]:
        """The attribute paths the walk does not explore."""
        if self.at_defaults:
            return frozenset(self.vocab.attributes)
        return frozenset(self.given) | ({"context.date"} if self.date is not None else set())

    def terms(self) -> Iterator[Term]:
        """Every condition and argument of the rules and obligations, reduced by what is fixed."""
        for rule in self.rules:
            yield reduce(rule.term, self.env)
            for o in rule.obligations:
                yield from (reduce(t, self.env) for t in (o.condition, *o.args))
        for p in self.policy_obligations:
            yield from (reduce(t, self.env) for t in (p.obligation.condition, *p.obligation.args))

    def values(self, path: str) -> list[str]:
        if self.space is not None and path in self.space.by_path:
            return self.space.accepts(self.vocab, path)
        values = self.vocab.values_of(DIMENSION_KINDS[path])
        allowed = self.restrict.get(path)
        return values if allowed is None else [v for v in values if v in allowed]

    def start(self, step: _Step, permits_only: bool, space: Space) -> _State | None:
        """The walk's first state: every rule reduced by what is fixed, dead ones dropped.

        With `permits_only` (the matrix), what only matters for refusals is
        left out: deny rules' obligations and `on deny` obligations.
        """
        self.space = space

        def term(t: Term) -> int:
            return step.id(space.rewrite(reduce(t, self.env)))

        def obligation(o: Any) -> _Obligation:
            return _Obligation(o.name, term(o.condition), tuple(term(a) for a in o.args))

        rules = []
        for rule in self.rules:
            obligations = () if permits_only and not rule.permit else rule.obligations
            rules.append(_RuleItem(rule.id, rule.permit, term(rule.term), tuple(obligation(o) for o in obligations),
                                   step.paths))
        policy = tuple(_PolicyItem(p.outcome, *obligation(p.obligation), step.paths)
                       for p in self.policy_obligations if not (permits_only and p.outcome == "deny"))
        return step.state(_State(tuple(rules), policy), {}, ("context", id(self)))

    def request(self, cell: dict[str, str], context: Mapping[str, Any]) -> dict[str, Any]:
        """The request for one combination: the dimensions' values, what is fixed, and the
        context's values (`context`: path -> JSON value, OMIT when not given)."""
        built: dict[str, Any] = {
            "requester": {"role": cell["requester.role"], "agency": cell["requester.agency"]},
            "action": cell["action"],
            "purpose": cell["purpose"],
            "resource": {"category": cell["resource.category"],
                         "classification": cell["resource.classification"],
                         "owner": cell["resource.owner"]},
            "context": {},
        }
        if self.date is not None:
            built["context"]["date"] = self.date.isoformat()
        values = [(p, v) for p, v in context.items() if v is not OMIT and p in self.vocab.attributes]
        for path, value in [*self.given.items(), *values]:
            *parents, last = path.split(".")
            here = built
            for part in parents:
                here = here.setdefault(part, {})
            here[last] = value
        return built

    def judge(self, cell: dict[str, str], context: Mapping[str, Any]) -> tuple[Outcome, frozenset[Any]]:
        """The outcome as worded, and the obligations exactly as the engine gave them
        (wording may differ between versions where the obligations do not)."""
        try:
            decision = self.decide(self.request(cell, context))
        except RequestError:
            return UNDECLARED, frozenset()  # a value this version does not declare
        rules = tuple(_rule_id(r) for r in decision.reasons)
        obligations = tuple(self._show(_name(o), _args(o), cell, context) for o in decision.obligations)
        given = frozenset((_name(o), tuple(_literal(a) for a in _args(o))) for o in decision.obligations)
        return Outcome(decision.decision, rules, obligations), given

    def _show(self, name: str, args: Sequence[Any], cell: Mapping[str, str],
              context: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
        """An obligation's name and arguments as words; an argument that is an explored value
        is kept as the attribute (`resource.owner`), so rows can merge across its values."""
        shown = []
        for position, arg in enumerate(args):
            literal = _literal(arg)
            paths = self._symbolic.get((name, position), ())
            path = next((p for p in paths if p not in self.given and _literal(
                cell[p] if p in DIMENSION_KINDS else context.get(p)) == literal), None)
            shown.append(path or literal)
        return name, tuple(shown)


def _symbolic_arguments(rules: Sequence[Any], policy_obligations: Sequence[Any]) -> dict[tuple[str, int], tuple[str, ...]]:
    found: dict[tuple[str, int], set[str]] = {}
    obligations = [o for r in rules for o in r.obligations] + [p.obligation for p in policy_obligations]
    for obligation in obligations:
        for position, arg in enumerate(obligation.args):
            if arg[0] == "a":
                found.setdefault((obligation.name, position), set()).add(arg[1])
    return {key: tuple(sorted(paths)) for key, paths in found.items()}


def _rule_id(reason: Any) -> str:
    return reason if isinstance(reason, str) else getattr(reason, "rule", None) or reason["rule"]


def _name(obligation: Any) -> str:
    return str(obligation[0] if isinstance(obligation, tuple) else obligation.name)


def _args(obligation: Any) -> Sequence[Any]:
    args: Sequence[Any] = obligation[1] if isinstance(obligation, tuple) else obligation.args
    return args


def _literal(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dt.date,)):
        return value.isoformat()
    text = str(value)
    return text if _PLAIN.fullmatch(text) else json.dumps(text)


_PLAIN = re.compile(r"[\w.-]+")  # letters, digits (as str.isalnum has them), `_`, `.` and `-`


# --- reducing the state of the walk ------------------------------------------------


class _Obligation(NamedTuple):
    """An obligation of a rule in the walk: its terms interned as numbers (_Step)."""

    name: str
    condition: int
    args: tuple[int, ...]


class _RuleItem(NamedTuple):
    id: str
    permit: bool
    term: int
    obligations: tuple[_Obligation, ...]
    reads: frozenset[str]  # the dimensions the rule still depends on


class _PolicyItem(NamedTuple):
    """A policy-wide obligation (`on permit obligation ...`) in the walk."""

    outcome: str
    name: str
    condition: int
    args: tuple[int, ...]
    reads: frozenset[str]


class _State(NamedTuple):
    """What is left of one version at a point of the walk: its live rules and obligations."""

    rules: tuple[_RuleItem, ...]
    policy: tuple[_PolicyItem, ...]


class _Plan(NamedTuple):
    """A state about to take one dimension's values: the items that read it, and their columns."""

    state: _State
    rule_positions: list[int]
    policy_positions: list[int]
    columns: list[tuple[list[Any], list[int]]]  # per item: (reduced item per value, class per value)
    undeclared: frozenset[int]  # positions of values the version does not declare


_FALSE, _UNKNOWN, _TRUE = 0, 1, 2  # the numbers of the constant terms in every walk (_Step)


class _Step:
    """Reduces the items of a walk state by attribute values.

    Terms are interned as numbers, so items compare and hash quickly and
    each (term, value) pair is reduced once however many branches meet it.
    A rule item is (id, permit, term, obligations, reads), an obligation
    (name, condition, args), a policy-wide obligation item (outcome, name,
    condition, args, reads); `reads` holds the dimensions the item still
    depends on, so an item that does not read a dimension is passed over
    when that dimension's values are tried. One Step serves every version
    of a walk: reducing a term needs nothing but the term.
    """

    def __init__(self, paths: frozenset[str]) -> None:
        self.paths = paths  # the attributes the walk substitutes
        self.ids: dict[Term, int] = {}
        self.terms: list[Term] = []
        self.reads: list[frozenset[str]] = []
        self.memo: dict[tuple[Any, ...], int] = {}
        self.items: dict[tuple[Any, ...], Any] = {}
        self.told: dict[tuple[int, str], frozenset[str] | None] = {}
        for constant in (FALSE, UNK, TRUE):  # the first terms, so numbered alike in every walk
            self.id(constant)

    def id(self, term: Term) -> int:
        found = self.ids.get(term)
        if found is None:
            found = self.ids[term] = len(self.terms)
            self.terms.append(term)
            self.reads.append(attributes_of(term) & self.paths if term[0] != "k" else frozenset())
        return found

    def term(self, term: int, env: dict[str, Any], token: Any) -> int:
        key = (term, token)
        found = self.memo.get(key)
        if found is None:
            whole = self.terms[term]
            if "requester.agency" in env or "resource.owner" in env:
                whole = _narrow(whole, env)
            found = self.memo[key] = self.id(reduce(whole, env))
        return found

    def rule(self, item: _RuleItem, env: dict[str, Any], token: Any) -> _RuleItem | None:
        """The rule reduced, or None once it is dead: a permit rule when false or unknown
        (it cannot apply), a deny rule only when false (one that might apply applies)."""
        key = (item, token)
        if key in self.items:
            known: _RuleItem | None = self.items[key]
            return known
        rule_id, permit, term, obligations, _old = item
        reduced = self.term(term, env, token)
        if reduced == _FALSE or (permit and reduced == _UNKNOWN):
            found = None
        else:
            kept = self._obligations(obligations, env, token)
            reads = self.reads[reduced].union(*(self.reads[t] for o in kept for t in (o.condition, *o.args)))
            found = _RuleItem(rule_id, permit, reduced, kept, reads)
        self.items[key] = found
        return found

    def _obligations(self, obligations: tuple[_Obligation, ...], env: dict[str, Any],
                     token: Any) -> tuple[_Obligation, ...]:
        kept = []
        for name, condition, args in obligations:
            condition = self.term(condition, env, token)
            if condition == _FALSE:
                continue  # an unknown condition is kept: the obligation is listed as undetermined
            kept.append(_Obligation(name, condition, tuple(self.term(a, env, token) for a in args)))
        return tuple(kept)

    def policy(self, item: _PolicyItem, env: dict[str, Any], token: Any) -> _PolicyItem | None:
        outcome, name, condition, args, _old = item
        kept = self._obligations((_Obligation(name, condition, args),), env, token)
        if not kept:
            return None
        _name, condition, args = kept[0]
        return _PolicyItem(outcome, name, condition, args, self.reads[condition].union(*(self.reads[a] for a in args)))

    def told_apart(self, item: _RuleItem | _PolicyItem, path: str) -> frozenset[str] | None:
        """The values of `path` an item's terms tell apart from the rest: every other value
        reduces the item alike. None when any value may reduce it differently."""
        if isinstance(item, _RuleItem):
            terms = [item.term, *(t for o in item.obligations for t in (o.condition, *o.args))]
        else:
            terms = [item.condition, *item.args]
        told: set[str] = set()
        for term in terms:
            key = (term, path)
            if key not in self.told:
                self.told[key] = _told_apart(self.terms[term], path)
            found = self.told[key]
            if found is None:
                return None
            told |= found
        return frozenset(told)

    def state(self, state: _State, env: dict[str, Any], token: Any) -> _State:
        """Every item of a state reduced by `env`, dead ones dropped."""
        kept = (self.rule(r, env, token) for r in state.rules)
        obligations = (self.policy(p, env, token) for p in state.policy)
        return _State(tuple(r for r in kept if r is not None), tuple(p for p in obligations if p is not None))


_SIDES = ("requester.agency", "resource.owner")


def _told_apart(term: Term, path: str) -> frozenset[str] | None:
    """The values of a dimension a term tells apart: those its membership tests, comparisons
    with a constant, and (for the requester's agency and the owner) its pairs and
    agreements name. Any other value makes each of them false (or `!=` true), so reduces
    the term as every other does. None where the term reads `path` otherwise (ordered, as
    an obligation's argument, compared with another attribute), or `path` is not one of
    the dimensions: any value may differ."""
    if path not in DIMENSION_KINDS:
        return None
    side = _SIDES.index(path) if path in _SIDES else None
    told: set[str] = set()
    attribute = ("a", path)

    def visit(t: Term) -> bool:
        op = t[0]
        if op == "a":
            return bool(t[1] != path)
        if op in ("k", "has"):
            return True
        if op in ("and", "or"):
            return all(visit(part) for part in t[1])
        if op in ("not", "truthy"):
            return visit(t[1])
        if op in ("eq", "ne"):
            left, right = t[1], t[2]
            for one, other in ((left, right), (right, left)):
                if one == attribute and other[0] == "k":
                    told.add(other[2])
                    return True
            return visit(left) and visit(right)
        if op == "in":
            if t[1] == attribute:
                told.update(value for _tag, value in t[2])
                return True
            return visit(t[1])
        if op == "pair":  # reads the agencies only
            if side is not None:
                told.update(pair[side] for pair in t[1])
            return True
        if op == "under":  # reads the agencies and the date only
            if side is not None:
                for parties, sources, recipients, *_dates in t[1]:
                    told.update(parties or (), sources or (), recipients or ())
            return True
        return False  # an ordering, a shifted date, a set's members: not only by name

    return frozenset(told) if visit(term) else None


def _narrow(term: Term, env: Mapping[Any, Any]) -> Term:
    """`under` clauses narrowed to the agreements that cover the requester's agency or the
    owner `env` gives, before the date is known (false when none does): so agencies and
    owners group by the agreements they share, and the date is tried only where it matters."""
    op = term[0]
    if op == "under":
        if "context.date" in env:
            return term
        agency, owner = env.get("requester.agency"), env.get("resource.owner")
        if agency is None and owner is None:
            return term
        kept = tuple(a for a in term[1] if _covers_side(a, agency, owner))
        return ("under", kept) if kept else FALSE
    if op in ("and", "or"):
        return (op, tuple(_narrow(t, env) for t in term[1]))
    if op == "not":
        return ("not", _narrow(term[1], env))
    return term


def _covers_side(agreement: tuple[Any, ...], agency: str | None, owner: str | None) -> bool:
    """Whether an agreement (parties, sources, recipients, start, end) can cover the given side(s)."""
    parties, sources, recipients = agreement[0], agreement[1], agreement[2]
    if parties is not None:
        return (agency is None or agency in parties) and (owner is None or owner in parties)
    return (agency is None or agency in (recipients or ())) and (owner is None or owner in (sources or ()))


def has_permit(state: _State | None) -> bool:
    return state is not None and any(rule.permit for rule in state.rules)


def refusal(combine: Combine) -> Callable[[_State | None], bool]:
    """Whether every combination below a state is refused, by the combining algorithm: no
    permit rule is left, or a deny rule applies whatever comes (its term true, or unknown:
    a deny rule that might apply applies) and no permit rule can win over it."""
    settled = (_TRUE, _UNKNOWN)
    permit_first = combine != Combine.DENY_OVERRIDES  # a permit rule met before a deny rule may win
    deny_settles = combine != Combine.PERMIT_OVERRIDES  # a deny rule that applies decides

    def refused(state: _State | None) -> bool:
        if state is None:
            return True
        permits = False
        for rule in state.rules:
            if rule.permit:
                if permit_first:
                    return False
                permits = True
            elif deny_settles and rule.term in settled:
                return True
        return not permits

    return refused


# --- the walk -------------------------------------------------------------------------


class Meter(Protocol):
    """Counts the combinations walked so far (a command draws it as a progress bar)."""

    def advance(self, amount: int) -> None: ...


# Given the walk's total and a label, a context manager that meters the walk.
# Commands pass engine.commands.progress.Progress; the library stays silent.
ProgressHook = Callable[[int, str], contextlib.AbstractContextManager[Meter]]


class _Silent:
    def advance(self, amount: int) -> None:
        pass


@contextlib.contextmanager
def no_progress(total: int, label: str) -> Iterator[Meter]:
    """The default progress hook: counts nothing, shows nothing."""
    yield _Silent()


@dataclass
class Walk:
    """Walks the combinations of one or more versions' vocabularies and contexts.

    The request's date comes first, then the dimensions, then the rest of
    the context's axes (context.py).
    `prune(states, alike)` says a branch needs no more work; `alike` is
    whether the versions accept the same values for every axis still to
    come. `leaf(cell, states, context)` decides a representative combination
    (`context`: the request's context values inside the cell's cases) and
    returns what to keep, or None.
    """

    versions: Sequence[Version]
    permits_only: bool
    prune: Callable[[tuple[Any, ...], bool], bool]
    leaf: Callable[[dict[str, str], tuple[Any, ...], Mapping[str, Any]], Any]
    label: str = "deciding"
    progress: ProgressHook = no_progress
    cells: int = 0
    representatives: int = 0
    unsettled: int = 0  # combinations whose request search gave up: neither shown nor ruled out
    found: list[tuple[Box, Any]] = field(default_factory=list)

    def run(self) -> list[tuple[Box, Any]]:
        fixed = frozenset().union(*(v.fixed for v in self.versions))
        self.space = Space([v.vocab for v in self.versions],
                           itertools.chain.from_iterable(v.terms() for v in self.versions), fixed)
        # The dimensions first (`under` clauses narrow to the agreements of the agency and
        # owner, _narrow), then the context, so that rows differing only there merge as the
        # walk returns; the date first of the context, as agreements end on it.
        dated = [a.path for a in self.space.axes if a.path == "context.date"]
        self.paths = list(WALK) + dated + [a.path for a in self.space.axes if a.path != "context.date"]
        self.values: dict[str, list[str]] = {a.path: a.keys for a in self.space.axes}
        self.envs: dict[str, list[Mapping[Any, Any]]] = {a.path: [c.env for c in a.cases] for a in self.space.axes}
        for path in WALK:
            self.values[path] = union_in_order(v.values(path) for v in self.versions)
            self.envs[path] = [{path: value} for value in self.values[path]]
        self.step = _Step(frozenset(self.paths))
        states = tuple(v.start(self.step, self.permits_only, self.space) for v in self.versions)
        self.declared = [{p: frozenset(v.values(p)) for p in self.paths} for v in self.versions]
        self.columns: dict[tuple[Any, ...], tuple[list[Any], list[int]]] = {}
        self.undeclared = [{p: frozenset(i for i, v in enumerate(self.values[p]) if v not in d[p]) for p in self.paths}
                           for d in self.declared]
        self.skippable = [not any(u[p] for u in self.undeclared) for p in self.paths]
        levels = len(self.paths)
        self.below = [math.prod(len(self.values[p]) for p in self.paths[level:]) for level in range(levels + 1)]
        self.alike = [all(len({d[p] for d in self.declared}) == 1 for p in self.paths[level:])
                      for level in range(levels + 1)]
        self.total = self.below[0]
        self.bits = [1 << p for p in range(max(len(v) for v in self.values.values()))]
        self.everything = [(1 << len(self.values[p])) - 1 for p in self.paths]
        self.sets: list[dict[int, frozenset[str]]] = [{} for _path in self.paths]  # per level, by mask
        self.subtrees: dict[tuple[Any, ...], tuple[list[Any], int]] = {}  # (rows, unsettled per combination)
        self.leaves: dict[tuple[Any, ...], Any] = {}
        self.members: dict[str, list[str]] = {}  # the members of the group each axis is at
        self.assignments: dict[tuple[Any, ...], Any] = {}  # members that a request has
        self.witnessed_before = [[p for p in self.paths[:level + 1] if p in self.space.witnessed]
                                 for level in range(len(self.paths))]
        self.base = {k: v for k, v in self.versions[0].env.items()}
        # Rows are built from the last level up, each level putting its values in front of
        # the rows below: a row is interned as (values, the rest of the row), so putting
        # values in front and merging rows alike but for them cost the same at every level.
        # A level's values are a bit mask of their positions until the rows are boxed; the
        # rest after the last level is the outcome, as a number below zero (_tail).
        self.row_ids: dict[tuple[int, int], int] = {}
        self.outcomes: list[Any] = []  # what a leaf keeps, interned too: rows compare it at every level
        self.outcome_ids: dict[Any, int] = {}
        with self.progress(self.total, self.label) as self.meter:
            found = self._walk(0, states, {}, 1)
        where = {path: level for level, path in enumerate(self.paths)}
        self.box_order = [where[p] for p in DIMENSIONS] + [where[a.path] for a in self.space.axes]
        rows = list(self.row_ids)  # in the order of their numbers
        self.found = []
        for row in found:
            masks = []
            while row >= 0:
                values, row = rows[row]
                masks.append(values)
            self.found.append((self._box(masks), self.outcomes[_tail(row)]))
        # What only the walk needs is let go now, while the collector is paused (build_matrix):
        # once it runs again it would look through every object made since it last ran.
        self.subtrees, self.leaves, self.columns, self.assignments, self.row_ids = {}, {}, {}, {}, {}
        self.sets = []
        self.step = _Step(self.step.paths)
        return self.found

    def _outcome(self, kept: Any) -> int:
        found = self.outcome_ids.get(kept)
        if found is None:
            found = self.outcome_ids[kept] = len(self.outcomes)
            self.outcomes.append(kept)
        return found

    def _walk(self, level: int, states: tuple[Any, ...], cell: dict[str, Any], above: int) -> list[int]:
        """What the subtree keeps, as rows of value sets from this level on ending in their outcome.

        `above` is how many combinations the path to here stands for. Equal
        states lead to equal outcomes, so a subtree met again is not walked
        again.
        """
        skipped: list[int] = []
        reads = frozenset().union(*(item.reads for state in states if state is not None
                                    for item in (*state.rules, *state.policy)))
        while level + 1 < len(self.paths) and self.skippable[level] and self.paths[level] not in reads:
            # Nothing left reads this axis and every version takes all its values: on to the next.
            path = self.paths[level]
            skipped.append(self.everything[level])
            cell[path] = self.values[path][0]
            self.members[path] = self.values[path]
            above *= len(self.values[path])
            level += 1
        path = self.paths[level]
        plans = [self._plan(index, state, path) for index, state in enumerate(states)]
        groups: dict[tuple[Any, ...], list[int]] = {}
        count = len(self.values[path])
        for position, key in enumerate(zip(*(_classes(plan, count) for plan in plans))):
            groups.setdefault(key, []).append(position)
        # What each group keeps, by the row below this level and its outcome: groups
        # keeping the same row below merge into one row over their values together.
        heads: dict[int, int] = {}
        last = level + 1 == len(self.paths)
        named = self.values[path]
        cases_read = self.witnessed_before[level]
        for key, positions in groups.items():
            first = positions[0]
            after = tuple([_apply(plan, first) for plan in plans])
            combinations = above * len(positions)
            if self.prune(after, self.alike[level + 1]):
                self._count(combinations * self.below[level + 1])
                continue
            members = [named[p] for p in positions]
            cell[path] = members[0]
            self.members[path] = members
            values = sum(map(self.bits.__getitem__, positions))
            if not last:
                # Whether a request exists depends on the cases chosen for what conditions read,
                # not only on the states, so those cases are part of the key.
                memo = (level, after, tuple(tuple(self.members[p]) for p in cases_read)) if cases_read else \
                    (level, after)
                subtree = self.subtrees.get(memo)
                if subtree is None:
                    before = self.unsettled
                    rows = self._walk(level + 1, after, cell, combinations)
                    # Unsettled combinations per combination above: a subtree met again has as many.
                    subtree = self.subtrees[memo] = (rows, (self.unsettled - before) // combinations)
                else:
                    self._count(combinations * self.below[level + 1])
                    self.unsettled += subtree[1] * combinations
                heads = _merged(heads, subtree[0], values)
            else:
                self._count(combinations)
                witnessed = self._witness(cell)
                if witnessed is _GAVE_UP:
                    self.unsettled += combinations
                    continue
                if witnessed is None:
                    continue  # no request has any combination of these cases
                chosen, context = witnessed
                if after in self.leaves:
                    kept = self.leaves[after]  # the same rules left, with the same terms: the same outcome
                else:
                    self.representatives += 1
                    outcome = self.leaf(chosen, after, context)
                    kept = self.leaves[after] = None if outcome is None else self._outcome(outcome)
                if kept is not None:
                    heads[_tail(kept)] = heads.get(_tail(kept), 0) | values
        ids = self.row_ids
        found = [ids.setdefault((values, rest), len(ids)) for rest, values in heads.items()]
        for values in reversed(skipped):
            found = [ids.setdefault((values, rest), len(ids)) for rest in found]
        return found

    def _witness(self, cell: dict[str, Any]) -> Any:
        """A combination of the current groups' members that some request has, and that
        request's context values; None when none has, _GAVE_UP when the search gave up
        before it could tell. Members of a group lead to the same outcome, so any of them
        may stand for it; the first members are tried first."""
        choices = [(p, self.members[p]) for p in self.space.witnessed if p in self.members]
        key = tuple(tuple(members) for _p, members in choices)
        if key not in self.assignments:
            self.assignments[key] = self._assignment(cell, choices)
        assignment = self.assignments[key]
        if assignment is None or assignment is _GAVE_UP:
            return assignment
        chosen = {**cell, **assignment}
        context = self.space.witness(chosen, self.base)
        return (chosen, context) if context is not None else None

    def _assignment(self, cell: dict[str, Any], choices: list[tuple[str, list[str]]]) -> Any:
        """The first members that some request has (path -> member), None when no request
        has any, _GAVE_UP when some could not be settled and none was found."""
        gave_up = False
        for tried, values in enumerate(itertools.product(*(members for _p, members in choices))):
            if tried >= _WITNESS_TRIES:
                return _GAVE_UP
            assignment = {p: v for (p, _m), v in zip(choices, values)}
            try:
                if self.space.witness({**cell, **assignment}, self.base) is not None:
                    return assignment
            except Unsettled:
                gave_up = True
        return _GAVE_UP if gave_up else None

    def _plan(self, index: int, state: _State | None, path: str) -> _Plan | None:
        """A state, the positions of its items that read `path`, and their columns."""
        if state is None:
            return None
        rules, policy = state
        rule_positions = [i for i, r in enumerate(rules) if path in r.reads]
        policy_positions = [i for i, p in enumerate(policy) if path in p.reads]
        columns = [self._column(self.step.rule, rules[i], path) for i in rule_positions]
        columns += [self._column(self.step.policy, policy[i], path) for i in policy_positions]
        return _Plan(state, rule_positions, policy_positions, columns, self.undeclared[index][path])

    def _column(self, reduce_item: Callable[..., Any], item: _RuleItem | _PolicyItem,
                path: str) -> tuple[list[Any], list[int]]:
        """An item reduced by each value of `path` (None when dead), and a class number per
        value: values with one number leave the item alike. Items recur across branches."""
        key = (item, path)
        column = self.columns.get(key)
        if column is None:
            told = self.step.told_apart(item, path)
            reduced = []
            other: Any = _UNSET  # the item reduced by a value it does not tell apart: alike for all such
            for value, env in zip(self.values[path], self.envs[path]):
                if told is None or value in told:
                    reduced.append(reduce_item(item, env, (path, value)))
                else:
                    if other is _UNSET:
                        other = reduce_item(item, env, (path, value))
                    reduced.append(other)
            numbers: dict[Any, int] = {}
            column = self.columns[key] = (reduced, [numbers.setdefault(r, len(numbers)) for r in reduced])
        return column

    def _count(self, amount: int) -> None:
        self.cells += amount
        self.meter.advance(amount)

    def _box(self, masks: Sequence[int]) -> Box:
        """Value masks in walk order as a Box of value sets: the dimensions in DIMENSIONS order,
        then the context. Rows share most of their sets: each is made once (a mask is never 0)."""
        return tuple([self.sets[i].get(masks[i]) or self._set(i, masks[i]) for i in self.box_order])

    def _set(self, level: int, mask: int) -> frozenset[str]:
        values = self.values[self.paths[level]]
        found = self.sets[level][mask] = frozenset(v for p, v in enumerate(values) if mask >> p & 1)
        return found


def _tail(number: int) -> int:
    """An outcome's number as the end of a row, and back: numbers below zero, never a row's."""
    return -2 - number


def _merged(heads: dict[int, int], rows: list[int], values: int) -> dict[int, int]:
    """`heads` with `values` added to the mask of each of `rows`, new rows after the rest.

    Most rows are new to `heads`: they are added in bulk, and only the rows
    already there have their masks joined one by one.
    """
    if not heads:
        return dict.fromkeys(rows, values)
    common = heads.keys() & rows
    joined = {row: heads[row] | values for row in common}
    heads.update(dict.fromkeys(rows, values))
    heads.update(joined)
    return heads


def _classes(plan: _Plan | None, count: int) -> list[tuple[Any, ...] | None]:
    """What sets each value apart for one version: its class in every column that reads
    the dimension (None where the version does not declare the value)."""
    if plan is None:
        return [None] * count
    columns = [numbers for _reduced, numbers in plan.columns]
    keys: list[tuple[Any, ...] | None] = list(zip(*columns)) if columns else [()] * count
    for position in plan.undeclared:
        keys[position] = None
    return keys


def _apply(plan: _Plan | None, position: int) -> _State | None:
    """The state after the value at `position`: the plan's state with its changed items put back."""
    if plan is None or position in plan.undeclared:
        return None
    (rules, policy), rule_positions, policy_positions, columns, _undeclared = plan
    changed = [reduced[position] for reduced, _numbers in columns]
    split = len(rule_positions)
    return _State(_replace(rules, rule_positions, changed[:split]), _replace(policy, policy_positions, changed[split:]))


def _replace(items: tuple[Any, ...], positions: list[int], changed: list[Any]) -> tuple[Any, ...]:
    if not positions:
        return items
    updated = list(items)
    for position, item in zip(positions, changed):
        updated[position] = item
    if None in changed:
        return tuple([item for item in updated if item is not None])
    return tuple(updated)


# --- the matrix ------------------------------------------------------------------------


@dataclass
class Matrix:
    """The permitted combinations of one version, compressed into rows."""

    version: Version
    rows: list[tuple[Box, Outcome]]
    cells: int
    permitted: int
    representatives: int
    seconds: float
    space: Space
    unsettled: int = 0  # combinations whose request search gave up (Walk.unsettled)

    def when(self, box: Box) -> list[str]:
        """The context a row needs, in words (nothing when it needs none)."""
        return self.space.when(box[len(DIMENSIONS):])


def build_matrix(version: Version, progress: ProgressHook = no_progress) -> Matrix:
    """Decide every combination of the version's vocabulary; keep the permitted ones."""

    def leaf(cell: dict[str, str], states: tuple[Any, ...], context: Mapping[str, Any]) -> Outcome | None:
        outcome = version.judge(cell, context)[0]
        return outcome if outcome.decision == "permit" else None

    started = time.perf_counter()
    def prune(states: tuple[Any, ...], _alike: bool) -> bool:
        return refused(states[0])

    refused = refusal(version.combine)
    walk = Walk([version], True, prune, leaf, "matrix", progress)
    with collector_paused():
        rows = sort_rows(compress(walk.run()), version.vocab)
    permitted = sum(cells_in(box) for box, _o in rows)
    return Matrix(version, rows, walk.cells, permitted, walk.representatives,
                  time.perf_counter() - started, walk.space, walk.unsettled)


def render_matrix(matrix: Matrix, fmt: str) -> str:
    """The matrix as text, md, csv, html or json."""
    legend = Legend(matrix.version.vocab)
    table = [row_cells(legend, box) + [when_text(matrix.when(box)), ", ".join(o.rules),
                                       show_obligations(o.obligations, box)]
             for box, o in matrix.rows]
    headers = [COLUMNS[p] for p in DIMENSIONS] + ["When", "Permitted by", "Obligations"]
    title = _title(matrix.version)
    facts = _facts(matrix)
    if fmt == "json":
        rows = [{**{p: legend.show(p, s) for p, s in zip(DIMENSIONS, box)}, "when": matrix.when(box),
                 "rules": list(o.rules), "obligations": show_obligations(o.obligations, box).split("; ")
                 if o.obligations else []} for box, o in matrix.rows]
        return json.dumps({"title": title, "policy_version": matrix.version.hash, "fixed": _fixed(matrix.version),
                           "permitted": matrix.permitted, "combinations": matrix.cells,
                           "unsettled": matrix.unsettled, "rows": rows},
                          indent=2) + "\n"
    if fmt == "csv":
        return to_csv(headers, table)
    if fmt == "md":
        return f"# {title}\n\n{facts}\n\n{to_markdown(headers, table)}"
    if fmt == "html":
        expanded = [legend.expand(box) for box, _o in matrix.rows]
        return to_html(title, facts, headers, table, expanded, [legend.values[p] for p in DIMENSIONS])
    return _matrix_text(title, facts, headers, table)


def when_text(parts: list[str]) -> str:
    """A row's context conditions as one cell: `always` when it needs none."""
    return "; ".join(parts) if parts else "always"


def _fixed(version: Version) -> dict[str, Any]:
    fixed = dict(version.given)
    if version.date is not None:
        fixed["context.date"] = version.date.isoformat()
    return fixed


def _title(version: Version) -> str:
    name = version.title or "Policy set"
    label = f" {version.label}" if version.label else ""
    return f"Who can see what: {name}{label} ({version.hash})"


def covered(version: Version) -> str:
    """What was explored and what was fixed, in words."""
    fixed = _fixed(version)
    explored = "every combination of vocabulary values and context cases"
    if version.at_defaults:
        return f"every combination of vocabulary values, with every other attribute at its default " \
               f"and the date {version.date}"
    if not fixed:
        return f"{explored}: every context value and every date"
    shown = ", ".join(f"{k}={_word(v)}" for k, v in fixed.items())
    return f"{explored}, with {shown} fixed"


def _facts(matrix: Matrix) -> str:
    rest = "everything else is refused" if not matrix.unsettled else \
        f"everything else is refused, but for {unsettled_words(matrix.unsettled)}"
    return (f"Covered {covered(matrix.version)}. "
            f"{matrix.permitted:,} of {matrix.cells:,} combinations permitted, in {count_rows(len(matrix.rows))}; "
            f"{rest}. A role, purpose or category includes those below it; "
            f"`(only)` means the value alone.")


def unsettled_words(combinations: int) -> str:
    """What is said of combinations whose request search gave up: never passed over in silence."""
    return (f"{combinations:,} combinations that could not be settled (the search for a request with "
            f"their context values gave up; they are neither shown nor ruled out, and fixing "
            f"some context values settles them)")


def _matrix_text(title: str, facts: str, headers: list[str], table: list[list[str]]) -> str:
    lines = [title, "", facts, ""]
    width = max(len(h) for h in headers)
    for number, row in enumerate(table, 1):
        lines.append(f"{number}. permit")
        lines.extend(f"   {h.ljust(width)}  {v or '-'}" for h, v in zip(headers, row))
        lines.append("")
    if not table:
        lines.append("Nothing is permitted.")
    return "\n".join(lines).rstrip() + "\n"


# --- the command ------------------------------------------------------------------------


def parse_date(text: str | None) -> dt.date | None:
    if text is None:
        return None  # every date is explored
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ContextError(f"--date {text}: expected a date like 2025-06-01") from None


def parse_context(vocab: Vocabulary, items: Sequence[str]) -> tuple[dict[str, Any], dict[str, frozenset[str]]]:
    """`k=v` pairs typed by the attribute schema: request values, and dimensions to restrict.

    A key is an attribute path or any unique trailing part of one
    (`emergency` for `context.emergency`). Naming a dimension (`purpose=adults`)
    limits the matrix to that value and those below it.
    """
    given: dict[str, Any] = {}
    restrict: dict[str, frozenset[str]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep:
            raise ContextError(f"--context {item}: expected KEY=VALUE")
        path = _attribute_path(vocab, key.strip())
        if path == "context.date":
            raise ContextError(f"--context {item}: give the date with --date")
        value = _typed(vocab, path, text.strip())
        if path in DIMENSION_KINDS:
            tree = vocab.hierarchy(DIMENSION_KINDS[path])
            restrict[path] = tree.descendants[value] if tree is not None else frozenset((value,))
        else:
            given[path] = value
    return given, restrict


def _attribute_path(vocab: Vocabulary, key: str) -> str:
    if key in vocab.attributes:
        return key
    found = [p for p in vocab.attributes if p.endswith("." + key)]
    if len(found) == 1:
        return found[0]
    if found:
        raise ContextError(f"--context {key}: ambiguous, could be {', '.join(found)}")
    import difflib

    # Compare with whole paths and with their last parts, as keys may be given either way.
    spellings = {path: path for path in vocab.attributes}
    spellings.update((path.rsplit(".", 1)[-1], path) for path in vocab.attributes)
    close = difflib.get_close_matches(key, list(spellings), n=1, cutoff=0.6)
    hint = f" (did you mean `{spellings[close[0]]}`?)" if close else ""
    raise ContextError(f"--context {key}: no such attribute{hint}")


def _typed(vocab: Vocabulary, path: str, text: str, attribute: Any = None) -> Any:
    attribute = attribute or vocab.attributes[path]
    kind = attribute.kind
    problem = f"--context {path}={text}: "
    if kind == "set":  # members separated by commas (`direct_care,research`); nothing for the empty set
        member = replace(attribute, kind=attribute.element or "string")
        return [_typed(vocab, path, part.strip(), member) for part in text.split(",") if part.strip()]
    if kind == "bool":
        lowered = text.lower()
        if lowered in ("true", "yes", "1"):
            return True
        if lowered in ("false", "no", "0"):
            return False
        raise ContextError(problem + "expected true or false")
    if kind == "number":
        try:
            return int(text)
        except ValueError:
            try:
                return float(text)
            except ValueError:
                raise ContextError(problem + "expected a number") from None
    if kind == "date":
        try:
            return dt.date.fromisoformat(text).isoformat()
        except ValueError:
            raise ContextError(problem + "expected a date like 2025-06-01") from None
    if kind == "one_of":
        if text not in attribute.values:
            raise ContextError(problem + f"expected one of {', '.join(attribute.values)}")
        return text
    if kind == "agency" and text in vocab.groups:
        members = ", ".join(sorted(vocab.groups[text]))
        raise ContextError(problem + f"`{text}` is a group; name one agency ({members})")
    if kind in DIMENSION_KINDS.values():
        try:
            return vocab.resolve(kind, text)
        except NameLookupError as exc:
            raise ContextError(problem + exc.message + (f" ({exc.help})" if exc.help else "")) from None
    return text


def load_version(path: str | None, date: dt.date | None, context: Sequence[str]) -> Version:
    """Load a policy set with the engine and bind it to the date and context.

    Raises engine.PolicyLoadError or ContextError.
    """
    policy = load(path)
    given, restrict = parse_context(policy.vocabulary, context)
    return version_of(policy, date, given, restrict)


def version_of(policy: Any, date: dt.date | None, given: dict[str, Any] | None = None,
               restrict: dict[str, frozenset[str]] | None = None, at_defaults: bool = False) -> Version:
    """A loaded engine.Policy as a Version: decided by the engine, without its cache."""

    def decide(request: dict[str, Any]) -> Any:
        return policy.decide(request, use_cache=False)

    return Version(policy.vocabulary, decide, date, given or {}, restrict or {}, policy.title, policy.label,
                   policy.version, list(policy.warnings), at_defaults)


def _word(value: object) -> str:
    """A context value as the policy language writes it (`true`, not `True`)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def count_rows(rows: int) -> str:
    """`1 row`, `17 rows`."""
    return count(rows, "row", grouped=True)
