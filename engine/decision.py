"""Decide: combine the rules that apply, gather obligations, find near misses.

`Decider.decide(env)` follows LANGUAGE.md section 4 on a compiled policy. The
index (compiler.py) narrows the rules to those whose value clauses hold; only
their `when`/`unless` clauses run here. A deny rule that *might* apply (no
clause false, some unknown) counts as applying and its reason names what was
missing; a permit rule that might apply does not count.
"""

from __future__ import annotations

import bisect
import dataclasses
from dataclasses import dataclass
from typing import Any, Iterator

from engine import ast, explain
from engine.compiler import CompiledClause, CompiledObligation, CompiledPolicy, CompiledRule
from engine.request import RAW

PERMIT = "permit"
DENY = "deny"
_MAX_NEAR_MISSES = 3
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

    def to_dict(self) -> dict:
        data = {"rule": self.rule, "effect": self.effect, "description": self.description,
                "because": self.because, "file": self.file, "line": self.line}
        if self.missing:
            data["missing"] = list(self.missing)
        return data


@dataclass(frozen=True, slots=True)
class Obligation:
    name: str
    args: tuple = ()

    def to_dict(self) -> dict:
        return {"name": self.name, "args": list(self.args)}


@dataclass(frozen=True, slots=True)
class FailedClause:
    """A clause of a near miss that did not hold: what it needed, what the request had."""

    clause: str
    needed: str
    had: str
    text: str

    def to_dict(self) -> dict:
        return {"clause": self.clause, "needed": self.needed, "had": self.had, "text": self.text}


@dataclass(frozen=True, slots=True)
class NearMiss:
    rule: str
    description: str | None
    file: str
    line: int
    failed: tuple[FailedClause, ...]

    def to_dict(self) -> dict:
        return {"rule": self.rule, "description": self.description, "file": self.file, "line": self.line,
                "failed": [f.to_dict() for f in self.failed]}


@dataclass(frozen=True)
class Decision:
    """The answer to one request, with everything needed to explain it.

    Not slotted on purpose: a cached decision is re-issued with a fresh
    `decision_id` by copying its `__dict__`, which is much cheaper than
    `dataclasses.replace`.
    """

    decision: str
    decision_id: str
    policy_version: str
    title: str | None
    label: str | None
    reasons: tuple[Reason, ...]
    obligations: tuple[Obligation, ...]
    near_misses: tuple[NearMiss, ...]
    summary: str

    @property
    def permitted(self) -> bool:
        return self.decision == PERMIT

    def to_dict(self) -> dict:
        data: dict[str, Any] = {"decision": self.decision, "decision_id": self.decision_id,
                                "policy_version": self.policy_version}
        if self.title is not None:
            data["policy"] = {"title": self.title, "version": self.label}
        data["reasons"] = [r.to_dict() for r in self.reasons]
        data["obligations"] = [o.to_dict() for o in self.obligations]
        data["near_misses"] = [n.to_dict() for n in self.near_misses]
        data["summary"] = self.summary
        return data


_new = object.__new__
_set = object.__setattr__


def issue(outcome: str, decision_id: str, version: str, title: str | None, label: str | None,
          reasons: tuple, obligations: tuple, near_misses: tuple, summary: str) -> Decision:
    """A Decision built without the frozen-dataclass __init__ (a third of the cost); same fields."""
    decision = _new(Decision)
    _set(decision, "__dict__", {"decision": outcome, "decision_id": decision_id, "policy_version": version,
                                "title": title, "label": label, "reasons": reasons, "obligations": obligations,
                                "near_misses": near_misses, "summary": summary})
    return decision


def with_id(decision: Decision, decision_id: str) -> Decision:
    """The same decision under a new id (the fast equivalent of dataclasses.replace)."""
    issued = _new(Decision)
    fields = issued.__dict__
    fields.update(decision.__dict__)
    fields["decision_id"] = decision_id
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


def _status(rule: CompiledRule, env: dict) -> Any:
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
        self.rules = compiled.rules
        self.reasons = tuple(_reason(rule) for rule in compiled.rules)
        self.phrases = tuple(explain.rule_phrase(reason) for reason in self.reasons)
        self.rule_obligations = tuple(tuple(map(_entry, rule.obligations)) for rule in compiled.rules)
        self.policy_wide = {outcome: tuple(map(_entry, obligations))
                            for outcome, obligations in compiled.obligations.items()}
        # Near misses repeat: their failed clauses and the near misses themselves are kept,
        # keyed by the values the explanation depends on.
        self._values_of = tuple(
            tuple(sorted(set().union(*(c.reads for c in rule.clauses))))
            if not any(c.asks for c in rule.clauses) else None
            for rule in self.rules)
        self._explained: dict[tuple, Any] = {}

    # --- combining ------------------------------------------------------------

    def decide(self, env: dict, decision_id: str = "") -> Decision:
        """The decision for a validated request environment."""
        compiled = self.compiled
        bits = compiled.candidates(env)
        if compiled.combine is ast.Combine.FIRST_APPLICABLE:
            outcome, reasons = self._first(bits, env)
        elif compiled.combine is ast.Combine.PERMIT_OVERRIDES:
            outcome, reasons = PERMIT, self._permits(bits, env)
            if not reasons:
                outcome, reasons = DENY, self._denies(bits, env)
        else:
            outcome, reasons = DENY, self._denies(bits, env)
            if not reasons:
                reasons = self._permits(bits, env)
                outcome = PERMIT if reasons else DENY
        obligations = self._obligations(outcome, reasons, env)
        if not reasons:
            near = self._near_misses(env)
            return issue(outcome, decision_id, self.version, self.title, self.label, (), obligations, near,
                         explain.summary(outcome, (), near, env[RAW]))
        if len(reasons) == 1 and reasons[0][1] is True:
            index = reasons[0][0]
            reason_list = (self.reasons[index],)
            summary = explain.summary(outcome, reason_list, (), env[RAW], self.phrases[index])
        else:
            reason_list = tuple([self._reason_for(i, status, env) for i, status in reasons])
            summary = explain.summary(outcome, reason_list, (), env[RAW])
        return issue(outcome, decision_id, self.version, self.title, self.label, reason_list, obligations, (),
                     summary)

    def _denies(self, bits: int, env: dict) -> list[tuple[int, Any]]:
        """Deny rules that apply (True) or might apply (None): both count, failing closed."""
        found = []
        rules = self.rules
        for i in _indices(bits & self.compiled.denies):
            status = True
            for test in rules[i].conditions:
                value = test(env)
                if value is False:
                    break
                if value is None:
                    status = None
            else:
                found.append((i, status))
        return found

    def _permits(self, bits: int, env: dict) -> list[tuple[int, Any]]:
        """Permit rules that apply: every condition true (unknown does not count)."""
        found = []
        rules = self.rules
        for i in _indices(bits & self.compiled.permits):
            for test in rules[i].conditions:
                if test(env) is not True:
                    break
            else:
                found.append((i, True))
        return found

    def _first(self, bits: int, env: dict) -> tuple[str, list[tuple[int, Any]]]:
        for i in _indices(bits):
            rule = self.rules[i]
            status = _status(rule, env)
            if status is True or (status is None and rule.effect is ast.Effect.DENY):
                return rule.effect.value, [(i, status)]
        return DENY, []

    def _reason_for(self, index: int, status: Any, env: dict) -> Reason:
        reason = self.reasons[index]
        if status is None:
            return dataclasses.replace(reason, missing=missing_attributes(self.rules[index], env))
        return reason

    # --- obligations ------------------------------------------------------------

    def _obligations(self, outcome: str, reasons: list[tuple[int, Any]], env: dict) -> tuple[Obligation, ...]:
        """The reasons' obligations and the outcome's policy-wide ones: in set order, once each."""
        pending = self.policy_wide[outcome]
        if reasons:
            pending = list(pending)
            for i, _ in reasons:
                pending += self.rule_obligations[i]
            pending.sort()  # by seq, which no two entries share: the tuples never compare further
        found: list[Obligation] = []
        seen: set = set()
        for _, obligation, key, compiled in pending:
            if compiled.condition is not None and compiled.condition(env) is not True:
                continue  # unknown counts as not holding
            if obligation is None:
                obligation = Obligation(compiled.name, tuple(arg(env) for arg in compiled.args))
                key = _identity(obligation)
            if key not in seen:
                seen.add(key)
                found.append(obligation)
        return tuple(found)

    # --- near misses --------------------------------------------------------------

    def _near_misses(self, env: dict) -> tuple[NearMiss, ...]:
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
        return tuple(self._near_miss(rules[i], env) for _, i in best)

    def _near_miss(self, rule: CompiledRule, env: dict) -> NearMiss:
        """The rule's failed clauses; remembered by the values of the attributes the rule reads."""
        paths = self._values_of[rule.index]
        if paths is None:  # it explains what the request gave (`has`): not remembered
            return self._explain_near_miss(rule, env)
        key = (rule.index, tuple(map(env.get, paths)))
        near = self._explained.get(key)
        if near is None:
            near = self._remember(key, self._explain_near_miss(rule, env))
        return near

    def _explain_near_miss(self, rule: CompiledRule, env: dict) -> NearMiss:
        failed = tuple([self._failed(clause, env) for clause in rule.clauses if clause.test(env) is not True])
        reason = self.reasons[rule.index]
        return NearMiss(reason.rule, reason.description, reason.file, reason.line, failed)

    def _failed(self, clause: CompiledClause, env: dict) -> FailedClause:
        """How a clause failed; remembered by its words and the values it read, across rules."""
        if clause.asks:
            return FailedClause(clause.kind, *explain.failure(clause, env, self.compiled.vocab))
        key = (clause.kind, clause.needed, tuple(map(env.get, clause.reads)))
        found = self._explained.get(key)
        if found is None:
            found = self._remember(key, FailedClause(clause.kind, *explain.failure(clause, env, self.compiled.vocab)))
        return found

    def _remember(self, key: tuple, value: Any) -> Any:
        if len(self._explained) > 50_000:
            self._explained.clear()
        self._explained[key] = value
        return value


def _reason(rule: CompiledRule) -> Reason:
    span = rule.rule.span
    return Reason(rule.id, rule.effect.value, rule.rule.description, rule.because, span.path, span.line)


def _entry(ob: CompiledObligation) -> tuple:
    """(seq, Obligation or None, its identity, the compiled obligation): prepared once."""
    if ob.static is None:
        return ob.seq, None, None, ob
    obligation = Obligation(*ob.static)
    return ob.seq, obligation, _identity(obligation), ob


def _identity(obligation: Obligation) -> tuple:
    """Name and arguments; true and 1 are different arguments (1 and 1.0 are not), though
    Python says true == 1."""
    return obligation.name, tuple((a.__class__ is bool, a) for a in obligation.args)


def missing_attributes(rule: CompiledRule, env: dict) -> tuple[str, ...]:
    """The omitted attributes that left a rule's conditions unknown, in the order they are written."""
    found: list[str] = []
    for clause in rule.clauses:
        if clause.kind in ("when", "unless") and clause.test(env) is None:
            for path in clause.reads:
                if path not in env and path not in found:
                    found.append(path)
    return tuple(found)
