"""Decide: combine the rules that apply, gather obligations, find near misses.

`Decider.decide(env)` follows "How decisions are made" in docs/language.md on a compiled policy. The
index (compiler.py) narrows the rules to those whose value clauses hold; only
their `when`/`unless` clauses run here. A deny rule that *might* apply (no
clause false, some unknown) counts as applying and its reason names what was
missing; a permit rule that might apply does not count.

A decision's outcome, reasons and obligations are settled when it is made;
its near misses and summary sentence, which cost more than all of that and
which most callers never read, are computed when first read (Decision).
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from engine import ast, explain
from engine.compiler import CompiledClause, CompiledObligation, CompiledPolicy, CompiledRule
from engine.request import WORDS
from engine.shapes import DecisionDict, FailedClauseDict, NearMissDict, ObligationDict, ReasonDict

PERMIT = "permit"
DENY = "deny"
# `denied_by` of a requester holding a role at an agency where the policy says it is not held.
ROLE_NOT_HELD = "role_not_held"
_MAX_NEAR_MISSES = 3
T = TypeVar("T")
_CONDITIONS_COUNTED = 48  # up to this many distinct conditions, near misses count them as bitsets


@dataclass(frozen=True, slots=True)
class Reason:
    """A deciding rule; `missing` lists the attributes a fail-closed deny rule lacked."""

    rule: str
    effect: str
    description: str | None
    because: str | None
    file: str
    line: int
    missing: tuple[str, ...] = ()

    def to_dict(self) -> ReasonDict:
        data: ReasonDict = {"rule": self.rule, "effect": self.effect, "description": self.description,
                "because": self.because, "file": self.file, "line": self.line}
        if self.missing:
            data["missing"] = list(self.missing)
        return data


APPLIES = "applies"
UNDETERMINED = "undetermined"


@dataclass(frozen=True, slots=True)
class Obligation:
    """A duty that comes with the decision.

    `status` is "applies", or "undetermined" when its condition (or an argument)
    needs attributes the request omitted, which `needs` names: a caller that
    cannot settle them treats it as applying (docs/language.md, "Obligations on a decision").
    """

    name: str
    args: tuple[Any, ...] = ()
    status: str = APPLIES
    needs: tuple[str, ...] = ()

    def to_dict(self) -> ObligationDict:
        if self.status == APPLIES:
            return {"name": self.name, "args": list(self.args), "status": APPLIES}
        return {"name": self.name, "args": list(self.args), "status": self.status, "needs": list(self.needs)}


@dataclass(frozen=True, slots=True)
class FailedClause:
    """A clause of a near miss that did not hold: what it needed, what the request had."""

    clause: str
    needed: str
    had: str
    text: str

    def to_dict(self) -> FailedClauseDict:
        return {"clause": self.clause, "needed": self.needed, "had": self.had, "text": self.text}


@dataclass(frozen=True, slots=True)
class NearMiss:
    rule: str
    description: str | None
    file: str
    line: int
    failed: tuple[FailedClause, ...]

    def to_dict(self) -> NearMissDict:
        return {"rule": self.rule, "description": self.description, "file": self.file, "line": self.line,
                "failed": [f.to_dict() for f in self.failed]}


@dataclass(frozen=True)
class Decision:
    """The answer to one request, with everything needed to explain it.

    `near_misses` and `summary` are computed when first read (or by `to_dict()`,
    equality, `repr`), not when the request is decided: most callers never read
    them, and near misses are the dearest part of a decision. They are worked out
    from what the decision kept of its request (the validated values and the
    summary's words, taken when it was decided), so reading them late gives what
    reading them at once would have; they are then kept on the decision. Two
    threads reading at once may both compute them, and get equal answers.

    The id lives in a slot and every other field in `__dict__`, so a decision
    answered from the cache is a new object holding its own id and the cached
    decision's very `__dict__` (see `reissue`): nothing is copied, and the copies
    share one explanation, worked out once.
    """

    __slots__ = ("__dict__", "decision_id")

    decision: str
    decision_id: str
    policy_version: str
    title: str | None
    label: str | None
    reasons: tuple[Reason, ...]
    obligations: tuple[Obligation, ...]
    near_misses: tuple[NearMiss, ...]
    summary: str
    denied_by: str | None = None  # "role_not_held": refused before any rule, see Decider.not_held

    @property
    def permitted(self) -> bool:
        return self.decision == PERMIT

    def to_dict(self) -> DecisionDict:
        data = cast(DecisionDict, {"decision": self.decision, "decision_id": self.decision_id,
                                   "policy_version": self.policy_version})
        if self.title is not None:
            data["policy"] = {"title": self.title, "version": self.label}
        data["reasons"] = [r.to_dict() for r in self.reasons]
        data["obligations"] = [o.to_dict() for o in self.obligations]
        data["near_misses"] = [n.to_dict() for n in self.near_misses]
        data["summary"] = self.summary
        if self.denied_by is not None:
            data["denied_by"] = self.denied_by
        return data

    def __getstate__(self) -> dict[str, Any]:
        """Copies and pickles carry the explanation itself, not what it would be computed from."""
        return {name: getattr(self, name) for name in _FIELDS}

    def __setstate__(self, state: dict[str, Any]) -> None:
        fields = dict(state)
        _set(self, "decision_id", fields.pop("decision_id"))
        _set(self, "__dict__", fields)


_FIELDS = tuple(f.name for f in dataclasses.fields(Decision))
# Where an unexplained decision keeps what its explanation is computed from: (Decider, env).
_SOURCE = "_explain_from"


class _ComputedOnRead:
    """A Decision field computed the first time it is read, then kept in the instance's `__dict__`.

    A non-data descriptor: once the value is in `__dict__` (as it is from the start for a
    Decision built by its constructor), Python reads it from there without calling this.
    """

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __get__(self, decision: Decision | None, owner: type | None = None) -> Any:
        if decision is None:
            return self
        fields = decision.__dict__  # shared by a cached decision and its copies: worked out once for all
        decider, env = fields[_SOURCE]
        value = decider.explain(self.name, decision, env)
        fields[self.name] = value
        return value


Decision.near_misses = _ComputedOnRead("near_misses")  # type: ignore[assignment]
Decision.summary = _ComputedOnRead("summary")  # type: ignore[assignment]

_new = object.__new__
_set = object.__setattr__
_set_fields = vars(Decision)["__dict__"].__set__
_set_id = vars(Decision)["decision_id"].__set__


def reissuable(decision: Decision) -> dict[str, Any]:
    """What the cache keeps of a decision: every field but its id (its `__dict__`, shared, not copied)."""
    return decision.__dict__


def reissue(fields: dict[str, Any], decision_id: str) -> Decision:
    """A cached decision (`reissuable`) under a new id, sharing its fields and explanation."""
    issued = _new(Decision)
    _set_fields(issued, fields)
    _set_id(issued, decision_id)
    return issued


# Rule sets are Python ints used as bitsets, bit i for rule i. Negative ints
# (`~x`, `-x`) cost twice as much to combine, so these helpers never make one.


def _indices(bits: int) -> list[int]:
    """The set bits of `bits`, lowest (earliest rule) first.

    Taken from the top: bit_length is free and the int shrinks as it goes.
    """
    found = []
    while bits:
        i = bits.bit_length() - 1
        found.append(i)
        bits ^= 1 << i
    found.reverse()
    return found


def _ascending(bits: int) -> Iterator[int]:
    """The set bits of `bits`, lowest first, one at a time (for loops that stop early)."""
    while bits:
        below = bits - 1
        yield (bits ^ below).bit_length() - 1
        bits &= below


def _status(rule: CompiledRule, env: dict[str, Any]) -> Any:
    """True, False or None (unknown) for a rule whose indexed clauses hold."""
    unknown = False
    for test in rule.conditions:
        value = test(env)
        if value is False:
            return False
        if value is None:
            unknown = True
    return None if unknown else True


class Decider:
    """Decisions for one compiled policy; every per-rule answer is prepared once."""

    def __init__(self, compiled: CompiledPolicy, version: str, title: str | None, label: str | None):
        self.compiled = compiled
        self.version = version
        self.title = title
        self.label = label
        self.rules = rules = compiled.rules
        # Each rule's answers are prepared when a decision first needs them: a reload of a
        # large set does not pay for every rule again (_PerRule).
        self.reasons: _PerRule[Reason] = _PerRule(lambda i: _reason(rules[i]))
        self.rule_obligations: _PerRule[tuple[tuple[Any, ...], ...]] = _PerRule(
            lambda i: tuple(map(_entry, rules[i].obligations)))
        self.policy_wide = {outcome: tuple(map(_entry, obligations))
                            for outcome, obligations in compiled.obligations.items()}
        # What a decision needs, prepared once: the index, each rule's when/unless tests,
        # and the obligations of a decision with no reason or one (the usual cases).
        self._select = compiled.select
        self._permit_bits, self._deny_bits = compiled.permits, compiled.denies
        self._conditions = tuple(rule.conditions for rule in compiled.rules)
        self._outcomes: dict[tuple[Any, ...], tuple[Obligation, ...]] = {}
        self._alone = {outcome: _plan(entries, self._outcomes) for outcome, entries in self.policy_wide.items()}
        policy_wide, rule_obligations, outcomes = self.policy_wide, self.rule_obligations, self._outcomes
        self._single: _PerRule[tuple[Any, ...]] = _PerRule(lambda i: _plan(  # not `self`: no reference cycle
            sorted(policy_wide[rules[i].effect.value] + rule_obligations[i]), outcomes))
        # Near misses: each rule's clauses with the index dimension that tests each (None for
        # when/unless), so that a near miss reads which value clauses failed from the index.
        dimension = {d.name: n for n, d in enumerate(compiled.dimensions)}
        self._dimensions_of: _PerRule[tuple[int | None, ...]] = _PerRule(
            lambda i: _clause_dimensions(rules[i], dimension))
        # Failed clauses repeat across rules and requests: kept, keyed by their words and values.
        self._explained: dict[tuple[Any, ...], Any] = {}
        # `has` reads the request as given, which its owner may change after the decision:
        # near misses of a set whose permit rules ask `has` are found at once.
        self._near_misses_at_once = any(c.asks for r in compiled.rules if r.effect is ast.Effect.PERMIT
                                        for c in r.clauses)
        # Roles held only at some agencies: role -> those agencies (empty when no role says `at`).
        self._places = compiled.vocab.places

    # --- combining ------------------------------------------------------------

    def decide(self, env: dict[str, Any], decision_id: str = "") -> Decision:
        """The decision for a validated request environment; its explanation is computed when read."""
        if self._places:
            held = self._places.get(env["requester.role"])
            if held is not None and env["requester.agency"] not in held:
                return self.not_held(env, decision_id)
        bits = self._select(env)
        combine = self.compiled.combine
        if combine is ast.Combine.DENY_OVERRIDES:
            reasons = self._denies(bits & self._deny_bits, env)
            if reasons:
                outcome = DENY
            else:
                reasons = self._permits(bits & self._permit_bits, env)
                outcome = PERMIT if reasons else DENY
        elif combine is ast.Combine.PERMIT_OVERRIDES:
            reasons = self._permits(bits & self._permit_bits, env)
            if reasons:
                outcome = PERMIT
            else:
                outcome, reasons = DENY, self._denies(bits & self._deny_bits, env)
        else:
            outcome, reasons = self._first(bits, env)
        decision = _new(Decision)
        _set_id(decision, decision_id)
        if not reasons:
            _set_fields(decision, {
                "decision": outcome, "policy_version": self.version,
                "title": self.title, "label": self.label, "reasons": (),
                "obligations": _obligations(self._alone[outcome], env), _SOURCE: (self, env)})
            if self._near_misses_at_once:
                decision.__dict__["near_misses"] = self._near_misses(env)
            return decision
        if len(reasons) == 1:
            index, status = reasons[0]
            reason_list: tuple[Any, ...] = (self.reasons[index] if status is True else self._reason_for(index, status, env),)
            obligations = _obligations(self._single[index], env)
        else:
            reason_list = tuple([self._reason_for(i, status, env) for i, status in reasons])
            obligations = self._obligations(outcome, reasons, env)
        _set_fields(decision, {
            "decision": outcome, "policy_version": self.version,
            "title": self.title, "label": self.label, "reasons": reason_list, "obligations": obligations,
            "near_misses": (), _SOURCE: (self, env)})
        return decision

    def not_held(self, env: dict[str, Any], decision_id: str) -> Decision:
        """Deny a requester whose role is not held at their agency: no rule is consulted, so no
        reasons and no near misses; the policy-wide `on deny` and `on any` obligations apply."""
        role, agency = env[WORDS][0], env[WORDS][1]
        decision = _new(Decision)
        _set_id(decision, decision_id)
        _set_fields(decision, {
            "decision": DENY, "policy_version": self.version, "title": self.title, "label": self.label,
            "reasons": (), "obligations": _obligations(self._alone[DENY], env), "near_misses": (),
            "summary": explain.not_held_summary(role, agency), "denied_by": ROLE_NOT_HELD})
        return decision

    def explain(self, name: str, decision: Decision, env: dict[str, Any]) -> Any:
        """A decision's `near_misses` or `summary`, when first read."""
        if name == "near_misses":
            return self._near_misses(env) if not decision.reasons else ()
        return explain.summary(decision.decision, decision.reasons, decision.near_misses, env[WORDS],
                               decision.obligations, self.compiled.vocab)

    def _denies(self, bits: int, env: dict[str, Any]) -> list[tuple[int, Any]]:
        """Deny rules among `bits` that apply (True) or might apply (None): both count, failing closed."""
        found: list[tuple[int, Any]] = []
        conditions = self._conditions
        while bits:  # from the top: bit_length is free and the int shrinks as it goes
            i = bits.bit_length() - 1
            bits ^= 1 << i
            status: bool | None = True
            for test in conditions[i]:
                value = test(env)
                if value is False:
                    break
                if value is None:
                    status = None
            else:
                found.append((i, status))
        found.reverse()  # set order
        return found

    def _permits(self, bits: int, env: dict[str, Any]) -> list[tuple[int, Any]]:
        """Permit rules among `bits` that apply: every condition true (unknown does not count)."""
        found: list[tuple[int, Any]] = []
        conditions = self._conditions
        while bits:
            i = bits.bit_length() - 1
            bits ^= 1 << i
            for test in conditions[i]:
                if test(env) is not True:
                    break
            else:
                found.append((i, True))
        found.reverse()
        return found

    def _first(self, bits: int, env: dict[str, Any]) -> tuple[str, list[tuple[int, Any]]]:
        for i in _indices(bits):
            rule = self.rules[i]
            status = _status(rule, env)
            if status is True or (status is None and rule.effect is ast.Effect.DENY):
                return rule.effect.value, [(i, status)]
        return DENY, []

    def _reason_for(self, index: int, status: Any, env: dict[str, Any]) -> Reason:
        reason = self.reasons[index]
        if status is None:
            return Reason(reason.rule, reason.effect, reason.description, reason.because, reason.file, reason.line,
                          missing_attributes(self.rules[index], env))
        return reason

    # --- obligations ------------------------------------------------------------

    def _obligations(self, outcome: str, reasons: list[tuple[int, Any]], env: dict[str, Any]) -> tuple[Obligation, ...]:
        """The reasons' obligations and the outcome's policy-wide ones: in set order, once each."""
        pending = list(self.policy_wide[outcome])
        for i, _ in reasons:
            pending += self.rule_obligations[i]
        pending.sort()  # by seq, which no two entries share: the tuples never compare further
        return _obligations((None, None, tuple(pending), True), env)

    # --- near misses --------------------------------------------------------------

    def _near_misses(self, env: dict[str, Any]) -> tuple[NearMiss, ...]:
        """The permit rules with the fewest failed clauses (ties in set order), at most three.

        Counting every clause of every permit rule would cost as much as the
        set is large, so the index does it: per clause position, the permit
        rules it fails are added into a bit-sliced counter, giving each rule's
        number of failed value clauses at once. Rules are then visited by that
        count, lowest first, adding their failed `when`/`unless` clauses.
        """
        compiled = self.compiled
        permits = compiled.permits
        # Few distinct conditions (the usual case): test each once and count its failures
        # with the value clauses. Otherwise test conditions rule by rule, below.
        exact = len(compiled.condition_sets) <= _CONDITIONS_COUNTED
        failing = [permits ^ (permits & d.hold(env)) for d in compiled.dimensions]
        by_dimension = failing[:]  # the permit rules each value clause position fails
        if exact:
            failing += [permits & rules for test, rules in compiled.condition_sets if test(env) is not True]
        planes: list[int] = []  # bit i of a rule's count of failed clauses is in planes[i]
        for carry in failing:
            i = 0
            while carry:
                if i == len(planes):
                    planes.append(carry)
                    break
                plane = planes[i]
                planes[i] = plane ^ carry
                carry &= plane
                i += 1
        best: list[tuple[int, int]] = []  # (failed clauses, rule index), kept sorted
        rules, conditional = self.rules, 0 if exact else compiled.conditional
        for count in range(1 << len(planes)):
            if len(best) == _MAX_NEAR_MISSES and best[-1][0] < count:
                break
            level = permits  # the permit rules failing `count` clauses (value clauses only, if not exact)
            for i, plane in enumerate(planes):
                level = level & plane if count >> i & 1 else level ^ (level & plane)
            # Rules without when/unless fail exactly `count` clauses: take the first few of
            # them, then try only the conditional rules that could still come before them.
            waiting = level & conditional
            for n, i in enumerate(_ascending(level ^ waiting)):
                if n == _MAX_NEAR_MISSES:
                    break
                bisect.insort(best, (count, i))
            del best[_MAX_NEAR_MISSES:]
            for i in _ascending(waiting):
                if len(best) == _MAX_NEAR_MISSES and best[-1] < (count, i):
                    break
                failed = count
                for test in rules[i].conditions:
                    if test(env) is not True:
                        failed += 1
                bisect.insort(best, (failed, i))
                del best[_MAX_NEAR_MISSES:]
        return tuple(self._near_miss(rules[i], env, by_dimension) for _, i in best)

    def _near_miss(self, rule: CompiledRule, env: dict[str, Any], by_dimension: list[int]) -> NearMiss:
        """The rule's failed clauses, in the order written: value clauses as the index found
        them (`by_dimension`), when/unless clauses tested."""
        bit = 1 << rule.index
        failed = []
        for clause, dimension in zip(rule.clauses, self._dimensions_of[rule.index]):
            if clause.test(env) is not True if dimension is None else by_dimension[dimension] & bit:
                failed.append(self._failed(clause, env))
        reason = self.reasons[rule.index]
        return NearMiss(reason.rule, reason.description, reason.file, reason.line, tuple(failed))

    def _failed(self, clause: CompiledClause, env: dict[str, Any]) -> FailedClause:
        """How a clause failed; remembered by its words and the values it read, across rules."""
        if clause.asks:
            return FailedClause(clause.kind, *explain.failure(clause, env, self.compiled.vocab))
        key = (clause.kind, clause.needed, tuple(map(env.get, clause.reads)))
        found = self._explained.get(key)
        if found is None:
            found = self._remember(key, FailedClause(clause.kind, *explain.failure(clause, env, self.compiled.vocab)))
        return found

    def _remember(self, key: tuple[Any, ...], value: FailedClause) -> FailedClause:
        if len(self._explained) > 50_000:
            self._explained.clear()
        self._explained[key] = value
        return value


class _PerRule(dict[int, T]):
    """Rule index -> an answer about that rule, made by `make` when first asked for.

    Made at once for every rule, these answers cost a large set's load (and each
    reload) a pass over all its rules; most rules of such a set decide few requests.
    Two threads asking at once may both make an answer: they make the same one.
    """

    def __init__(self, make: Callable[[int], T]):
        super().__init__()
        self._make = make

    def __missing__(self, index: int) -> T:
        found = self[index] = self._make(index)
        return found


def _clause_dimensions(rule: CompiledRule, dimension: dict[tuple[str, int], int]) -> tuple[int | None, ...]:
    """For each clause of a rule, the index dimension testing it (compiler.py numbers a rule's
    clauses of one kind as the compiler does: the 2nd `purpose` is ("purpose", 1)); None for when/unless."""
    seen: dict[str, int] = {}
    found: list[int | None] = []
    for clause in rule.clauses:
        occurrence = seen.get(clause.kind, 0)
        seen[clause.kind] = occurrence + 1
        found.append(None if clause.kind in ("when", "unless") else dimension[(clause.kind, occurrence)])
    return tuple(found)


def _reason(rule: CompiledRule) -> Reason:
    span = rule.rule.span
    return Reason(rule.id, rule.effect.value, rule.rule.description, rule.because, span.path, span.line)


# A plan of obligations with fixed arguments and up to this many conditions has the answer
# ready for each set of conditions that may hold.
_CONDITIONS_PREPARED = 3


def _plan(entries: Sequence[tuple[Any, ...]], outcomes: dict[tuple[Any, ...], tuple[Obligation, ...]]) -> tuple[Any, ...]:
    """How to find the obligations of `entries` (in set order) for a request, prepared once:
    (conditions, answers, entries, whether any name repeats).

    When every argument is fixed and there are few conditions, `answers[mask]` is the
    answer when the conditions whose bits are in `mask` hold; otherwise answers is None
    and the entries are gone through. `outcomes` shares equal answers between plans.
    """
    entries = tuple(entries)
    names = [compiled.name for _, _, _, compiled in entries]
    repeats = len(set(names)) < len(names)
    conditions = tuple(compiled.condition for _, _, _, compiled in entries if compiled.condition is not None)
    if len(conditions) > _CONDITIONS_PREPARED or any(obligation is None for _, obligation, _, _ in entries):
        return conditions, None, entries, repeats
    answers = []
    for mask in range(1 << len(conditions)):
        found, seen, n = [], set(), 0
        for _, obligation, key, compiled in entries:
            if compiled.condition is not None:
                n += 1
                if not mask >> (n - 1) & 1:
                    continue
            if key not in seen:
                seen.add(key)
                found.append(obligation)
        answer = tuple(found)
        answers.append(outcomes.setdefault(tuple(map(_identity, answer)), answer))  # true is not 1 here
    return conditions, tuple(answers), entries, repeats


def _obligations(plan: tuple[Any, ...], env: dict[str, Any]) -> tuple[Obligation, ...]:
    """The obligations of a plan (`_plan`) whose conditions hold, in set order, once each;
    those whose condition is unknown are listed as undetermined (`_gather`)."""
    conditions, answers, entries, repeats = plan
    if answers is not None:
        mask, bit = 0, 1
        for condition in conditions:
            value = condition(env)
            if value is True:
                mask |= bit
            elif value is None:  # rare: a condition needs an omitted attribute
                return _gather(entries, env)
            bit <<= 1
        answer: tuple[Obligation, ...] = answers[mask]
        return answer
    if repeats:
        return _gather(entries, env)
    found: list[Obligation] = []
    for _, obligation, _, compiled in entries:
        if compiled.condition is not None:
            value = compiled.condition(env)
            if value is not True:
                if value is None:
                    return _gather(entries, env)
                continue
        if obligation is None:
            if any(path not in env for path in compiled.arg_reads):
                return _gather(entries, env)
            obligation = Obligation(compiled.name, tuple([arg(env) for arg in compiled.args]))
        found.append(obligation)
    return tuple(found)


def _gather(entries: tuple[Any, ...], env: dict[str, Any]) -> tuple[Obligation, ...]:
    """Every obligation whose condition holds or is unknown, in set order, once each.

    One whose condition is unknown, or whose argument names an omitted attribute,
    is undetermined, `needs` naming what was omitted; the same name and
    arguments listed both ways count once, as applying, in the first place.
    """
    found: list[Obligation] = []
    at: dict[tuple[Any, ...], int] = {}
    for _, obligation, _, compiled in entries:
        needs: tuple[str, ...] = ()
        if compiled.condition is not None:
            value = compiled.condition(env)
            if value is False:
                continue
            if value is None:
                needs = tuple(path for path in compiled.reads if path not in env)
        omitted = tuple(path for path in compiled.arg_reads if path not in env and path not in needs)
        needs += omitted
        args = tuple([arg(env) for arg in compiled.args]) if obligation is None else obligation.args
        obligation = Obligation(compiled.name, args, UNDETERMINED, needs) if needs else \
            (obligation or Obligation(compiled.name, args))
        key = _identity(obligation)
        place = at.get(key)
        if place is None:
            at[key] = len(found)
            found.append(obligation)
        elif not needs and found[place].status == UNDETERMINED:
            found[place] = obligation
    return tuple(found)


def _entry(ob: CompiledObligation) -> tuple[Any, ...]:
    """(seq, Obligation or None, its identity, the compiled obligation): prepared once."""
    if ob.static is None:
        return ob.seq, None, None, ob
    obligation = Obligation(*ob.static)
    return ob.seq, obligation, _identity(obligation), ob


def _identity(obligation: Obligation) -> tuple[Any, ...]:
    """Name and arguments; true and 1 are different arguments (1 and 1.0 are not), though
    Python says true == 1."""
    return obligation.name, tuple((a.__class__ is bool, a) for a in obligation.args)


def missing_attributes(rule: CompiledRule, env: dict[str, Any]) -> tuple[str, ...]:
    """The omitted attributes that left a rule's conditions unknown, in the order they are written."""
    found: list[str] = []
    for clause in rule.clauses:
        if clause.kind in ("when", "unless") and clause.test(env) is None:
            for path in clause.reads:
                if path not in env and path not in found:
                    found.append(path)
    return tuple(found)
