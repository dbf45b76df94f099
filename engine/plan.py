"""Query plans: which resources may this requester see, for this purpose?

`Policy.plan(partial_request)` takes a request without its `resource` (the
requester, action, purpose and context) and answers for every resource at
once: `always_allowed`, `always_denied`, or `conditional` with a condition
over the resource's fields (conditions.py) that holds exactly for the
resources `Policy.decide` would permit.

It reuses the rules-as-terms reduction of the matrix and the diff
(governance/terms.py): each rule's term is reduced by everything the request
gives, leaving a term over `resource.*`. That term is three-valued (a field
the resource omits and that has no default is unknown), so it is lowered to
two two-valued conditions, where it is certainly true and where it is
certainly false, and the combining algorithm is applied to those:
a permit rule permits where it is true; a deny rule stops a permit unless it
is certainly false (one that might apply applies, docs/language.md, "How decisions are made").

Term forms the lowering does not know (new language forms) raise PlanError:
a plan never guesses. Adding one is a case in `_Lowering.lower` and, when it
needs a new condition node, a node in conditions.py.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine import ast
from engine.conditions import (
    FALSE,
    NEGATED,
    TRUE,
    Compare,
    Condition,
    Const,
    Field,
    In,
    Not,
    Operand,
    PlanError,
    Present,
    Shift,
    Value,
    all_of,
    any_of,
    condition_from_dict,
    fields_typed,
    operand_from_dict,
    operand_value,
)
from engine.errors import RequestError
from engine.governance import terms
from engine.governance.terms import MISSING

Term = tuple[Any, ...]  # a term of governance/terms.py

if TYPE_CHECKING:
    from engine.policy import Policy

ALWAYS_ALLOWED = "always_allowed"
ALWAYS_DENIED = "always_denied"
CONDITIONAL = "conditional"

# The request paths a plan's index lookups may read: everything but the resource.
_KNOWN = frozenset(("action", "requester.role", "requester.agency", "purpose"))
_ORDER = {"<": "lt", "<=": "le", ">": "gt", ">=": "ge"}
_RANKED: dict[str, Callable[[int, int], bool]] = {"lt": lambda a, b: a < b, "le": lambda a, b: a <= b, "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b}
# Resource built-ins every resource gives: never absent.
_REQUIRED = frozenset(("resource.category", "resource.classification", "resource.owner"))


@dataclass(frozen=True)
class PlanObligation:
    """An obligation a permitted resource may carry: `when` says for which resources.

    `when` holds where the obligation applies or is undetermined (it needs a
    field the resource omits): a caller treats an undetermined obligation as
    applying (docs/language.md, "How decisions are made").
    """

    name: str
    args: tuple[Operand, ...]
    when: Condition = TRUE

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "args": [a.to_dict() for a in self.args], "when": self.when.to_dict()}


@dataclass(frozen=True)
class Branch:
    """One permit rule that permits some resources: where it does, and what it brings."""

    rule: str
    condition: Condition
    obligations: tuple[PlanObligation, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "condition": self.condition.to_dict(),
                "obligations": [o.to_dict() for o in self.obligations]}


@dataclass(frozen=True)
class Plan:
    """The answer for every resource at once.

    `kind` is always_allowed, always_denied or conditional; `condition` holds
    exactly for the resources `decide` permits; `branches` are the permit rules
    behind it, each with where it permits and its obligations; `denied_by` the
    deny rules that refuse some resources; `obligations` the policy-wide ones
    of a permit.
    """

    kind: str
    condition: Condition
    branches: tuple[Branch, ...]
    obligations: tuple[PlanObligation, ...]
    denied_by: tuple[str, ...]
    policy_version: str
    _canonical: Callable[[Any], dict[str, Any]] = field(repr=False, compare=False)

    def matches(self, resource: Mapping[str, Any]) -> bool:
        """Whether `decide` permits this resource (the `resource` part of a request, as JSON gives it).

        RequestError names the field when it is not a valid resource.
        """
        return self.condition.holds(self._canonical(resource))

    def filter(self, resources: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """The resources the plan permits, in order."""
        if self.kind == ALWAYS_DENIED:
            return []
        return [r for r in resources if self.matches(r)]

    def obligations_for(self, resource: Mapping[str, Any]) -> list[tuple[str, tuple[Any, ...]]]:
        """The obligations (name, args) that come with a permitted resource: its branches' and the
        policy-wide ones, once each, undetermined ones included."""
        values = self._canonical(resource)
        found: list[tuple[str, tuple[Any, ...]]] = []
        rules = [b.obligations for b in self.branches if b.condition.holds(values)]
        for obligation in [o for obligations in rules for o in obligations] + list(self.obligations):
            if obligation.when.holds(values):
                item = (obligation.name, tuple(_words(a, values) for a in obligation.args))
                if item not in found:
                    found.append(item)
        return found

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "condition": self.condition.to_dict(),
                "branches": [b.to_dict() for b in self.branches],
                "obligations": [o.to_dict() for o in self.obligations],
                "denied_by": list(self.denied_by), "policy_version": self.policy_version}


def plan_from_dict(data: Mapping[str, Any]) -> Plan:
    """A plan from its `to_dict()` form (what `POST /plan` answers), ready to `matches`.

    Without the policy at hand, resources are compared as given: tree values
    by their full names (`special_category.health`), dates as ISO text or dates.
    """
    def obligation(item: Mapping[str, Any]) -> PlanObligation:
        return PlanObligation(item["name"], tuple(operand_from_dict(a) for a in item.get("args", ())),
                              condition_from_dict(item.get("when", {"op": "true"})))

    branches = tuple(Branch(b["rule"], condition_from_dict(b["condition"]),
                            tuple(obligation(o) for o in b.get("obligations", ())))
                     for b in data.get("branches", ()))
    condition = condition_from_dict(data["condition"])
    return Plan(data["kind"], condition, branches, tuple(obligation(o) for o in data.get("obligations", ())),
                tuple(data.get("denied_by", ())), data.get("policy_version", ""), _as_given(condition))


def _as_given(condition: Condition) -> Callable[[Any], dict[str, Any]]:
    dates = {f.path for f in fields_typed(condition) if f.kind == "date"}

    def canonical(resource: Any) -> dict[str, Any]:
        if not isinstance(resource, Mapping):
            raise RequestError("resource", "expected an object of resource fields")
        found: dict[str, Any] = {}
        for key, value in resource.items():
            path = key if key.startswith("resource.") else f"resource.{key}"
            if value is None:
                continue
            if path in dates and isinstance(value, str):
                try:
                    value = dt.date.fromisoformat(value)
                except ValueError:
                    raise RequestError(path, f"expected a date like 2025-06-01, got {value!r}") from None
            found[path] = value
        return found

    return canonical


class Planner:
    """Plans for one loaded policy: rules as terms, prepared once."""

    def __init__(self, policy: Policy):
        compiled = policy.compiled
        self.vocab = vocab = compiled.vocab
        self.schema = compiled.schema
        self.version = policy.version
        self.combine = compiled.combine
        self.class_names = compiled.class_names
        compiler = terms.Compiler(vocab)
        self.rules = [compiler.rule(rule) for rule in vocab.rules]
        if [r.id for r in self.rules] != [r.id for r in compiled.rules]:  # pragma: no cover - a broken invariant
            raise AssertionError("rule order differs between the terms and the compiled policy")
        self.policy_wide = [compiler.policy_obligation(d) for d in vocab.policy_obligations
                            if d.outcome.value in ("permit", "any")]
        # The index positions that read only what a partial request gives: they narrow the rules.
        self.dimensions = [d for d in compiled.dimensions
                           if d.under is None and all(path in _KNOWN for path, _table in d.lookups)]
        self.everyone = compiled.everyone
        self.placeholder = {"category": vocab.categories.names[0],
                            "classification": next(iter(vocab.classifications)),
                            "owner": next(iter(vocab.agencies))}
        self.resource_paths = [p for p in vocab.attributes if p.startswith("resource.")]
        self.lowering = _Lowering(vocab)
        # The rules with an `under` clause: the conjunction's parts, or the whole term (compiler.rule).
        self.under = {i for i, rule in enumerate(self.rules)
                      if rule.term[0] == "under" or rule.term[0] == "and" and any(t[0] == "under" for t in rule.term[1])}
        self._owners: dict[tuple[Any, dt.date, str], Term] = {}

    # --- the request ------------------------------------------------------------------

    def environment(self, partial: Any) -> tuple[dict[str, Any], dict[Any, Any]]:
        """The validated request (index form) and what terms read (names, MISSING, `has`)."""
        if not isinstance(partial, dict):
            raise RequestError("", "expected a request object without a resource")
        if "resource" in partial:
            raise RequestError("resource", "a plan leaves the resource open",
                               "remove `resource`: the plan answers for every resource")
        env = self.schema.validate({**partial, "resource": self.placeholder})
        raw = partial
        known: dict[Any, Any] = {"context.date": env["context.date"]}
        for path, attribute in self.vocab.attributes.items():
            if path.startswith("resource."):
                continue
            if path in env:
                value = env[path]
                if attribute.kind == "classification":
                    value = self.class_names[value]
                elif attribute.kind == "set" and attribute.element == "classification":
                    value = frozenset(self.class_names[v] for v in value)  # ranks, as the request check keeps them
                known[path] = value
            else:
                known[path] = MISSING
            known[("has", path)] = _given(raw, path)
        return env, known

    def canonical(self, resource: Any) -> dict[str, Any]:
        """A resource's fields as plans compare them (full tree names, classification names, dates)."""
        if not isinstance(resource, Mapping):
            raise RequestError("resource", "expected an object of resource fields")
        found: dict[str, Any] = {}
        for key, value in resource.items():
            path = f"resource.{key}"
            spec = self.schema.specs.get(path)
            if spec is None:
                raise RequestError(path, "is not a declared attribute")
            if value is None:
                continue
            canonical = self.schema._value(spec, value)
            if spec.attribute.kind == "classification":
                canonical = self.class_names[canonical]
            found[path] = canonical
        for path in _REQUIRED:
            if path not in found:
                raise RequestError(path, "required field is missing")
        return found

    # --- the plan -------------------------------------------------------------------------

    def plan(self, partial: Any) -> Plan:
        env, known = self.environment(partial)
        bits = self.everyone
        for dimension in self.dimensions:
            bits &= dimension.hold(env)
        lower = self.lowering
        branches: list[Branch] = []
        denied_by: list[str] = []
        guard: Condition = TRUE  # where no deny rule met so far applies or might
        first = self.combine is ast.Combine.FIRST_APPLICABLE
        date, agency = known["context.date"], known["requester.agency"]
        for index in _ascending(bits):
            rule = self.rules[index]
            term = rule.term
            if index in self.under:
                term = self._settle_under(term, date, agency)
            term = terms.reduce(term, known)
            if rule.permit:
                holds = lower.lower(term, True)
                if holds != FALSE:
                    where = all_of([guard, holds]) if first else holds
                    if where != FALSE:
                        branches.append(Branch(rule.id, where, self._obligations(rule.obligations, known)))
            else:
                fails = lower.lower(term, False)
                if fails != TRUE:
                    denied_by.append(rule.id)
                    if self.combine is not ast.Combine.PERMIT_OVERRIDES:
                        guard = all_of([guard, fails])
                if first and guard == FALSE:
                    break
        permitted = any_of([b.condition for b in branches])
        if self.combine is ast.Combine.DENY_OVERRIDES:
            condition = all_of([guard, permitted])
            branches = [Branch(b.rule, all_of([guard, b.condition]), b.obligations) for b in branches]
        else:
            condition = permitted
        branches = [b for b in branches if b.condition != FALSE]
        kind = ALWAYS_ALLOWED if condition == TRUE else ALWAYS_DENIED if condition == FALSE else CONDITIONAL
        if kind == ALWAYS_DENIED:
            branches = []
        policy_wide = self._obligations([p.obligation for p in self.policy_wide], known) \
            if kind != ALWAYS_DENIED else ()
        return Plan(kind, condition, tuple(branches), policy_wide, tuple(denied_by), self.version, self.canonical)

    def _settle_under(self, term: Term, date: dt.date, agency: str) -> Term:
        """A rule's term with each `under` clause (a part of the rule's conjunction) replaced by
        the owners its agreements let `agency` receive from on `date` (terms.reduce would list
        every pair of agencies first)."""
        if term[0] == "under":
            return self._under(term, date, agency)
        return ("and", tuple(self._under(t, date, agency) if t[0] == "under" else t for t in term[1]))

    def _under(self, term: Term, date: dt.date, agency: str) -> Term:
        key = (term[1], date, agency)
        found = self._owners.get(key)
        if found is None:
            if len(self._owners) > 100_000:
                self._owners.clear()
            found = self._owners[key] = _owners_for(term[1], date, agency)
        return found

    def _obligations(self, obligations: Any, known: dict[Any, Any]) -> tuple[PlanObligation, ...]:
        found = []
        for obligation in obligations:
            # Applies or undetermined: wherever the condition is not certainly false.
            when = _negate(self.lowering.lower(terms.reduce(obligation.condition, known), False))
            if when == FALSE:
                continue
            args = tuple(self.lowering.argument(terms.reduce(a, known)) for a in obligation.args)
            found.append(PlanObligation(obligation.name, args, when))
        return tuple(found)


def _words(argument: Operand, values: Mapping[str, Any]) -> Any:
    """An obligation argument as a decision gives it: names in full, dates as ISO text."""
    found = operand_value(argument, values)
    return found.isoformat() if isinstance(found, dt.date) else found


def _owners_for(agreements: tuple[Any, ...], date: dt.date, agency: str) -> Term:
    """The `under` clause for a known requester agency and date: the owners it may receive from
    (docs/language.md, "Rules": both parties of a two-way agreement, `from` to `to` of a one-way one)."""
    owners: set[str] = set()
    for parties, sources, recipients, start, end in agreements:
        if start is not None and not start <= date <= end:
            continue
        if parties is not None:
            if agency in parties:
                owners.update(parties)
        elif recipients and agency in recipients:
            owners.update(sources or ())
    if not owners:
        return terms.FALSE
    return ("in", ("a", "resource.owner"), frozenset(("s", o) for o in owners))


def _ascending(bits: int) -> list[int]:
    """The set bits of `bits`, lowest (earliest rule) first."""
    found = []
    while bits:
        low = bits & -bits
        found.append(low.bit_length() - 1)
        bits ^= low
    return found


def _given(raw: Mapping[str, Any], path: str) -> bool:
    node: Any = raw
    for part in path.split("."):
        if not isinstance(node, dict):
            return False
        node = node.get(part)
    return node is not None


def _unknown(part: Any) -> bool:
    return isinstance(part, tuple) and len(part) == 3 and part[0] == "k" and part[1] in "mu"


def _negate(condition: Condition) -> Condition:
    if isinstance(condition, Const):
        return FALSE if condition.value else TRUE
    if isinstance(condition, Not):
        return condition.part
    return Not(condition)


class _Lowering:
    """Three-valued terms over `resource.*` to two-valued conditions."""

    def __init__(self, vocab: Any):
        self.vocab = vocab
        self.ranks = tuple(sorted(vocab.classifications, key=vocab.classifications.__getitem__))
        self.fields: dict[str, Field] = {}
        self.closed: dict[str, frozenset[Any] | None] = {}

    def lower(self, term: Term, want: bool) -> Condition:
        """Where `term` is certainly `want` (true or false); unknown is neither."""
        op = term[0]
        if op == "k":
            if term[1] == "b":
                return TRUE if term[2] is want else FALSE
            if term[1] in "mu":
                return FALSE
            raise PlanError(f"a {term[1]!r} constant where a condition belongs")
        if op == "and" or op == "or":
            parts = [self.lower(p, want) for p in term[1]]
            return all_of(parts) if (op == "and") == want else any_of(parts)
        if op == "not":
            return self.lower(term[1], not want)
        if op == "truthy":
            inner = term[1]
            if inner[0] == "a":
                return Compare("eq", self.field(inner[1]), Value(want))
            return self.lower(inner, want)
        if op in ("eq", "ne", "ord", "in", "member") and any(_unknown(t) for t in term[1:4]):
            return FALSE  # a comparison with a missing value is unknown: neither true nor false
        if op == "eq" or op == "ne":
            positive = (op == "eq") == want
            left, right = self.operand(term[1]), self.operand(term[2])
            return Compare("eq" if positive else "ne", left, right)
        if op == "ord":
            name = _ORDER[term[1]] if want else NEGATED[_ORDER[term[1]]]
            if term[4]:
                return self._ranked(name, term[2], term[3])
            return Compare(name, self.operand(term[2]), self.operand(term[3]))
        if op == "in" and isinstance(term[2], frozenset):
            operand = self.operand(term[1])
            values = frozenset(v for _tag, v in term[2])
            if want:
                return self._member(operand, values)
            return self._not_member(operand, values)
        if op == "member" and term[2][0] == "k" and term[2][1] == "S":
            # `resource.x in context.s`: the request gave the set, so it is a list of values.
            operand = self.operand(term[1])
            members = frozenset(v for _tag, v in term[2][2])
            return self._member(operand, members) if want else self._not_member(operand, members)
        if op == "has":
            present = self.present(term[1])
            return present if want else _negate(present)
        raise PlanError(f"query plans cannot yet handle the condition form `{op}`",
                        "decide such requests one by one with `decide`")

    def argument(self, term: Term) -> Operand:
        """An obligation argument: a value, a resource field, or None when it is missing."""
        if term[0] == "k":
            return Value(None if term[1] in "mu" else term[2])
        return self.operand(term)

    def operand(self, term: Term) -> Operand:
        # Extension point: a date-arithmetic term (`date + 28 days`) becomes a conditions.Shift
        # here, and the backends already evaluate Shift by the calendar; a set-valued field
        # (`x in S`) needs a node of its own in conditions.py and in each backend.
        if term[0] == "a" and term[1].startswith("resource."):
            return self.field(term[1])
        if term[0] == "shift":  # `resource.discharged_on + 28 days`
            _, inner, op, amount, unit = term
            sign = 1 if op == "+" else -1
            if unit in ("day", "week"):
                return Shift(self.operand(inner), sign * amount * (7 if unit == "week" else 1), "days")
            return Shift(self.operand(inner), sign * amount * (12 if unit == "year" else 1), "months")
        if term[0] == "k" and term[1] not in "mu":
            return Value(term[2])
        raise PlanError(f"query plans cannot yet compare the value form `{term[0]}`",
                        "decide such requests one by one with `decide`")

    def field(self, path: str) -> Field:
        found = self.fields.get(path)
        if found is None:
            attribute = self.vocab.attributes[path]
            default = terms.default_value(self.vocab, path)
            has_default = default is not MISSING
            found = self.fields[path] = Field(path, attribute.kind, default if has_default else None, has_default)
        return found

    def present(self, path: str) -> Condition:
        return TRUE if path in _REQUIRED else Present(path)

    def _always_there(self, operand: Operand) -> bool:
        return not isinstance(operand, Field) or operand.has_default or operand.path in _REQUIRED

    def _closed(self, operand: Operand) -> frozenset[Any] | None:
        """Every value a field may take, when its type is closed."""
        if not isinstance(operand, Field):
            return None
        if operand.path not in self.closed:
            attribute = self.vocab.attributes[operand.path]
            values: frozenset[Any] | None = None
            if attribute.kind == "one_of":
                values = frozenset(attribute.values)
            elif attribute.kind == "bool":
                values = frozenset((True, False))
            elif attribute.kind in ("action", "role", "agency", "purpose", "category", "classification"):
                values = frozenset(self.vocab.values_of(attribute.kind))
            self.closed[operand.path] = values
        return self.closed[operand.path]

    def _member(self, operand: Operand, values: frozenset[Any]) -> Condition:
        if not values:
            return FALSE
        closed = self._closed(operand)
        if closed is not None:
            if isinstance(operand, Field) and operand.kind == "bool":
                values = frozenset(v for v in values if v is True or v is False)
            else:  # names: a value outside the declared ones can never match
                values = values & closed
            if not values:
                return FALSE
            if len(values) == len(closed) and self._always_there(operand):
                return TRUE
        return In(operand, values)

    def _not_member(self, operand: Operand, values: frozenset[Any]) -> Condition:
        closed = self._closed(operand)
        if closed is not None:
            return self._member(operand, closed - values)
        there = Present(operand.path) if isinstance(operand, Field) and not self._always_there(operand) else TRUE
        return all_of([there, Not(In(operand, values))]) if values else there

    def _ranked(self, name: str, left: Term, right: Term) -> Condition:
        """A classification order, as membership in the classifications on the right side of it."""
        rank = self.ranks.index
        test = _RANKED[name]
        if left[0] == "k" and right[0] == "k":  # pragma: no cover - reduce settles constants
            return TRUE if test(rank(left[2]), rank(right[2])) else FALSE
        if right[0] == "k":
            return self._member(self.operand(left), frozenset(c for c in self.ranks if test(rank(c), rank(right[2]))))
        if left[0] == "k":
            return self._member(self.operand(right), frozenset(c for c in self.ranks if test(rank(left[2]), rank(c))))
        a, b = self.operand(left), self.operand(right)
        return any_of([all_of([In(a, frozenset((c,))),
                               self._member(b, frozenset(d for d in self.ranks if test(rank(c), rank(d))))])
                       for c in self.ranks])

