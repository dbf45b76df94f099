"""Reference interpreter: decide straight from the language contract, slowly and plainly.

Nothing in the engine calls this module. It is the yardstick the compiled,
indexed and cached fast path is tested against, so it is written to be read
beside LANGUAGE.md sections 3 and 4 rather than to be quick: every rule is
evaluated on the raw request, every clause of it, with three-valued logic.

It shares no code with the compiler or the decision module. It reads the
syntax tree, the declared vocabulary (symbols.build_vocabulary) and the
request as given, and it assumes the request is valid (the fast path
validates requests; this module does not repeat that).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from engine import ast
from engine.symbols import Hierarchy, Vocabulary

# Truth values are True, False and UNKNOWN (a condition needing an omitted
# attribute that has no default).
UNKNOWN = "unknown"


class _Missing:
    """The value of an attribute the request omits and that has no default."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()

_TREES = ("role", "purpose", "category")


@dataclass(frozen=True)
class RefDecision:
    """What the reference decides: the outcome, the deciding rule ids, the obligations.

    `missing` maps each reason that only might apply to the omitted attributes
    its unknown conditions read; `near_misses` lists (rule id, kinds of the
    clauses that failed) when the decision is deny because no rule applied.
    """

    decision: str
    reasons: list[str] = field(default_factory=list)
    obligations: list[tuple[str, tuple, str, tuple]] = field(default_factory=list)
    missing: dict[str, list[str]] = field(default_factory=dict)
    near_misses: list[tuple[str, list[str]]] = field(default_factory=list)
    denied_by: str | None = None


def reference_decide(policy_set: ast.PolicySet, vocab: Vocabulary, request: dict) -> RefDecision:
    """Decide `request` against `policy_set` exactly as LANGUAGE.md section 4 says."""
    return _Reference(policy_set, vocab, request).decide()


class _Reference:
    def __init__(self, policy_set: ast.PolicySet, vocab: Vocabulary, request: dict):
        self.policy_set = policy_set
        self.vocab = vocab
        self.request = request

    # --- combining (section 4) ----------------------------------------------

    def decide(self) -> RefDecision:
        if not self.role_held():
            # Section 2: deny, no reasons, the policy-wide deny obligations, no near misses.
            return RefDecision("deny", [], self.obligations("deny", []), {}, [], "role_not_held")
        rules = [d for d in self.policy_set.declarations() if isinstance(d, ast.Rule)]
        applying = [rule for rule in rules if self.counts_as_applying(rule)]
        permits = [r for r in applying if r.effect is ast.Effect.PERMIT]
        denies = [r for r in applying if r.effect is ast.Effect.DENY]
        combine = self.combine()
        if combine is ast.Combine.FIRST_APPLICABLE:
            reasons = applying[:1]
            outcome = reasons[0].effect.value if reasons else "deny"
        elif combine is ast.Combine.PERMIT_OVERRIDES:
            if permits:
                outcome, reasons = "permit", permits
            else:
                outcome, reasons = "deny", denies
        else:
            if denies:
                outcome, reasons = "deny", denies
            else:
                outcome, reasons = ("permit", permits) if permits else ("deny", [])
        missing = {r.id.text: self.missing(r) for r in reasons if self.status(r) is UNKNOWN}
        near = self.near_misses(rules) if not reasons else []
        return RefDecision(outcome, [r.id.text for r in reasons], self.obligations(outcome, reasons), missing, near)

    def role_held(self) -> bool:
        """Section 2: the role may be held only where its own `at` and every ancestor's allow."""
        role, agency = self.attribute("requester.role"), self.attribute("requester.agency")
        for decl in self.policy_set.declarations():
            if isinstance(decl, ast.RolesDecl):
                for item in decl.items:
                    if item.places and _at_or_below(self.vocab.roles, role, item.name.text) \
                            and self.declared_first(item) and agency not in self.agencies([p.text for p in item.places
                                                                                     if p.text in self.vocab.agencies
                                                                                     or p.text in self.vocab.groups]):
                        return False
        return True

    def declared_first(self, item: ast.RoleItem) -> bool:
        """The first declaration of a role name is the one that counts."""
        return self.vocab.roles.spans.get(item.name.text) == item.name.span

    def combine(self) -> ast.Combine:
        for decl in self.policy_set.declarations():
            if isinstance(decl, ast.PolicyHeader):
                return decl.combine or ast.Combine.DENY_OVERRIDES
        return ast.Combine.DENY_OVERRIDES

    def status(self, rule: ast.Rule):
        """True when every clause holds, False when one fails, else UNKNOWN (the rule might apply)."""
        return _all([self.clause_holds(c) for c in rule.clauses])

    def counts_as_applying(self, rule: ast.Rule) -> bool:
        """Fail closed: a deny rule that might apply applies, a permit that might apply does not."""
        status = self.status(rule)
        if rule.effect is ast.Effect.DENY:
            return status is not False
        return status is True

    # --- explanations (section 4) ----------------------------------------------

    def missing(self, rule: ast.Rule) -> list[str]:
        """Omitted attributes (no default) read by the rule's unknown conditions, as written."""
        found: list[str] = []
        for clause in rule.clauses:
            if isinstance(clause, ast.ConditionClause) and self.clause_holds(clause) is UNKNOWN:
                for path in _read_paths(clause.expr):
                    if self.is_attribute(path) and self.attribute(path) is MISSING and path not in found:
                        found.append(path)
        return found

    def near_misses(self, rules: list[ast.Rule]) -> list[tuple[str, list[str]]]:
        """The permit rules with the fewest failed clauses (unknown counts as failed), ties in
        set order, at most three; each with the kinds of its failed clauses, as written."""
        scored = []
        for order, rule in enumerate(rules):
            if rule.effect is ast.Effect.PERMIT:
                failed = [_kind(c) for c in rule.clauses if _kind(c) and self.clause_holds(c) is not True]
                scored.append((len(failed), order, rule.id.text, failed))
        return [(rule_id, failed) for _, _, rule_id, failed in sorted(scored)[:3]]

    # --- obligations (section 4) --------------------------------------------

    def obligations(self, outcome: str, reasons: list[ast.Rule]) -> list[tuple[str, tuple, str, tuple]]:
        """The reasons' obligations and the outcome's policy-wide ones, in set order, once each:
        (name, args, status, needs). One whose condition is unknown, or whose argument is an
        omitted attribute, is "undetermined" and needs those attributes; listed both ways, it
        counts once, as "applies", where it was first listed."""
        found: list[tuple[str, tuple, str, tuple]] = []
        at: dict = {}
        deciding = {id(rule) for rule in reasons}
        for decl in self.policy_set.declarations():
            if isinstance(decl, ast.PolicyObligation) and decl.outcome.value in (outcome, "any"):
                candidates = [decl.obligation]
            elif isinstance(decl, ast.Rule) and id(decl) in deciding:
                candidates = [c for c in decl.clauses if isinstance(c, ast.ObligationClause)]
            else:
                continue
            for obligation in candidates:
                needs: list[str] = []
                if obligation.condition is not None:
                    holds = self.clause_holds(obligation.condition)
                    if holds is False:
                        continue
                    if holds is UNKNOWN:
                        needs = [p for p in _read_paths(obligation.condition.expr)
                                 if self.is_attribute(p) and self.attribute(p) is MISSING]
                for value in obligation.args:
                    if isinstance(value, ast.Name) and self.is_attribute(value.text) \
                            and self.attribute(value.text) is MISSING:
                        needs.append(value.text)
                args = tuple(self.argument(a) for a in obligation.args)
                key = (obligation.name, tuple(_identity(a) for a in args))
                entry = (obligation.name, args, "undetermined" if needs else "applies", tuple(dict.fromkeys(needs)))
                if key not in at:
                    at[key] = len(found)
                    found.append(entry)
                elif not needs and found[at[key]][2] == "undetermined":
                    found[at[key]] = entry
        return found

    def argument(self, value: ast.Value) -> Any:
        """An obligation argument as a decision reports it: a literal, or an attribute's
        value (None when omitted); dates as ISO text, the form they take in JSON."""
        if isinstance(value, ast.Name) and self.is_attribute(value.text):
            got = self.attribute(value.text)
            got = None if got is MISSING else got
        elif isinstance(value, ast.Name):
            got = value.text
        else:
            got = value.value
        return got.isoformat() if isinstance(got, dt.date) else got

    # --- clauses (section 3 table) ------------------------------------------

    def clause_holds(self, clause: ast.Clause):
        if isinstance(clause, ast.MatchClause):
            return self.match_holds(clause)
        if isinstance(clause, ast.DataClause):
            return self.data_holds(clause)
        if isinstance(clause, ast.ConditionClause):
            value = self.truth(clause.expr)
            return _not(value) if clause.negated else value
        return True  # obligation and because clauses are not conditions

    def match_holds(self, clause: ast.MatchClause) -> bool:
        names = [v.text for v in clause.values]
        kind = clause.kind
        if kind is ast.ClauseKind.ACTION:
            return self.attribute("action") in names
        if kind is ast.ClauseKind.ROLE:
            role = self.attribute("requester.role")
            return any(_at_or_below(self.vocab.roles, role, _node(self.vocab.roles, n)) for n in names)
        if kind is ast.ClauseKind.PURPOSE:
            purpose = self.attribute("purpose")
            return any(_at_or_below(self.vocab.purposes, purpose, _node(self.vocab.purposes, n)) for n in names)
        if kind is ast.ClauseKind.AGENCY:
            return self.attribute("requester.agency") in self.agencies(names)
        if kind is ast.ClauseKind.OWNER:
            return self.attribute("resource.owner") in self.agencies(names)
        if kind is ast.ClauseKind.UNDER:
            return any(self.agreement_covers(self.vocab.agreements[n]) for n in names)
        raise AssertionError(f"unknown clause kind {kind}")

    def data_holds(self, clause: ast.DataClause) -> bool:
        if clause.categories:
            category = self.attribute("resource.category")
            tree = self.vocab.categories
            if not any(_at_or_below(tree, category, _node(tree, c.text)) for c in clause.categories):
                return False
        if clause.up_to is not None:
            ranks = self.vocab.classifications
            return ranks[self.attribute("resource.classification")] <= ranks[clause.up_to.text]
        return True

    def agencies(self, names: list[str]) -> set[str]:
        """Agencies named directly or through groups."""
        found: set[str] = set()
        for name in names:
            found |= set(self.vocab.groups[name]) if name in self.vocab.groups else {name}
        return found

    def agreement_covers(self, agreement) -> bool:
        requester, owner = self.attribute("requester.agency"), self.attribute("resource.owner")
        if agreement.start is not None and not agreement.start <= self.attribute("context.date") <= agreement.end:
            return False
        if agreement.parties is not None:
            return requester in agreement.parties and owner in agreement.parties
        return owner in (agreement.sources or ()) and requester in (agreement.recipients or ())

    # --- expressions (section 3, three-valued per section 4) -----------------

    def truth(self, expr: ast.Expr):
        if isinstance(expr, ast.BoolOp):
            values = [self.truth(e) for e in expr.operands]
            return _all(values) if expr.op == "and" else _any(values)
        if isinstance(expr, ast.Not):
            return _not(self.truth(expr.operand))
        if isinstance(expr, ast.Has):
            return _given(self.request, expr.path.text)
        if isinstance(expr, ast.Compare):
            return self.compare(expr)
        if isinstance(expr, ast.InSet):
            # Needs its operand (section 4): unknown without it, even for `in {}`.
            kind = self.kind_of(expr.operand)
            left = self.operand(expr.operand, kind)
            if left is MISSING:
                return UNKNOWN
            return _any([_equal(left, self.operand(v, kind)) for v in expr.values])
        if isinstance(expr, ast.InGroup):
            left = self.operand(expr.operand, "agency")
            return UNKNOWN if left is MISSING else left in self.agencies([expr.group.text])
        if isinstance(expr, ast.InAttribute):
            # Section 3: exact membership; unknown when either side is missing.
            members = self.attribute(expr.set.text)
            left = self.operand(expr.operand, self.vocab.attributes[expr.set.text].element)
            if left is MISSING or members is MISSING:
                return UNKNOWN
            return any(_equal(left, m) is True for m in members)
        if isinstance(expr, ast.Is):
            return self.is_node(expr)
        value = self.operand(expr, "bool")
        return UNKNOWN if value is MISSING else bool(value)

    def compare(self, expr: ast.Compare):
        kind = self.kind_of(expr.left) or self.kind_of(expr.right)
        left, right = self.operand(expr.left, kind), self.operand(expr.right, kind)
        if left is MISSING or right is MISSING:
            return UNKNOWN
        if expr.op == "==":
            return _equal(left, right)
        if expr.op == "!=":
            return not _equal(left, right)
        if kind == "classification":
            left, right = self.vocab.classifications[left], self.vocab.classifications[right]
        return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[expr.op]

    def is_node(self, expr: ast.Is):
        kind = self.kind_of(expr.operand)
        value = self.operand(expr.operand, kind)
        if value is MISSING:
            return UNKNOWN
        node = self.operand(expr.node, kind)
        if kind in _TREES:
            return _at_or_below(self.vocab.hierarchy(kind), value, node)
        return _equal(value, node)

    def kind_of(self, value: ast.Value) -> str | None:
        """The type of an operand when it says so itself: an attribute or a literal."""
        if isinstance(value, ast.Arithmetic):
            return "date"
        if isinstance(value, ast.Name):
            return self.vocab.attributes[value.text].kind if self.is_attribute(value.text) else None
        return {ast.StringLit: "string", ast.NumberLit: "number", ast.BoolLit: "bool",
                ast.DateLit: "date"}[type(value)]

    def operand(self, value: ast.Value, kind: str | None) -> Any:
        """An attribute's value (or MISSING), or a literal; a bare name is a value of `kind`."""
        if isinstance(value, ast.Arithmetic):
            date = self.operand(value.left, "date")
            return MISSING if date is MISSING else _moved(date, value.op, value.right)
        if isinstance(value, ast.Name):
            if self.is_attribute(value.text):
                return self.attribute(value.text)
            return _node(self.vocab.hierarchy(kind), value.text) if kind in _TREES else value.text
        return value.value

    # --- the request (section 2 attributes, section 4 defaults) --------------

    def is_attribute(self, path: str) -> bool:
        return path in self.vocab.attributes

    def attribute(self, path: str) -> Any:
        """The request's value, else the default, else MISSING; tree values by full name."""
        declared = self.vocab.attributes[path]
        raw = _raw(self.request, path)
        if raw is MISSING:
            if path == "context.date":
                return dt.date.today()
            if declared.default is None:
                return MISSING
            raw = _default(declared.default)
        return self.normalised(declared.kind, raw, declared.element)

    def normalised(self, kind: str, raw: Any, element: str | None = None) -> Any:
        if kind == "set":
            return [self.normalised(element or "", item) for item in raw]
        if kind in _TREES:
            return _node(self.vocab.hierarchy(kind), raw)
        if kind == "date" and isinstance(raw, str):
            return dt.date.fromisoformat(raw)
        return raw


# --- small pure helpers ---------------------------------------------------------


def _default(value: Any) -> Any:
    if isinstance(value, ast.SetLit):
        return [_default(v) for v in value.values]
    return value.text if isinstance(value, ast.Name) else value.value


def _moved(date: dt.date, op: str, duration: ast.DurationLit) -> Any:
    """Section 3: days and weeks exactly; months and years by the calendar, keeping the day or
    taking the month's last day. Outside the calendar the result is unknown (MISSING)."""
    sign = 1 if op == "+" else -1
    try:
        if duration.unit in ("day", "week"):
            return date + dt.timedelta(days=sign * duration.amount * (7 if duration.unit == "week" else 1))
        months = date.year * 12 + date.month - 1 + sign * duration.amount * (12 if duration.unit == "year" else 1)
        year, month = months // 12, months % 12 + 1
        day = date.day
        while True:
            try:
                return dt.date(year, month, day)
            except ValueError:
                if day <= 28 or not 1 <= year <= 9999:
                    raise
                day -= 1
    except (OverflowError, ValueError):
        return MISSING


def _kind(clause: ast.Clause) -> str | None:
    """The keyword of a clause that is a condition; None for obligation and because."""
    if isinstance(clause, ast.MatchClause):
        return clause.kind.value
    if isinstance(clause, ast.DataClause):
        return "data"
    if isinstance(clause, ast.ConditionClause):
        return "unless" if clause.negated else "when"
    return None


def _read_paths(expr) -> list[str]:
    """Names in an expression, left to right (`has` only asks whether one was given)."""
    if isinstance(expr, ast.BoolOp):
        return [p for e in expr.operands for p in _read_paths(e)]
    if isinstance(expr, ast.Not):
        return _read_paths(expr.operand)
    if isinstance(expr, ast.Compare):
        return _read_paths(expr.left) + _read_paths(expr.right)
    if isinstance(expr, ast.InSet):
        return _read_paths(expr.operand) + [p for v in expr.values for p in _read_paths(v)]
    if isinstance(expr, (ast.InGroup, ast.Is)):
        return _read_paths(expr.operand)
    if isinstance(expr, ast.InAttribute):
        return _read_paths(expr.operand) + [expr.set.text]
    if isinstance(expr, ast.Arithmetic):
        return _read_paths(expr.left)
    if isinstance(expr, ast.Name):
        return [expr.text]
    return []


def _all(values: list):
    """Three-valued `and`: false wins, then unknown."""
    if False in values:
        return False
    return UNKNOWN if UNKNOWN in values else True


def _any(values: list):
    """Three-valued `or`: true wins, then unknown."""
    if True in values:
        return True
    return UNKNOWN if UNKNOWN in values else False


def _not(value):
    return UNKNOWN if value is UNKNOWN else not value


def _equal(left: Any, right: Any):
    if left is MISSING or right is MISSING:
        return UNKNOWN
    return _identity(left) == _identity(right)


def _identity(value: Any) -> tuple:
    """Booleans are never equal to numbers, though Python says True == 1."""
    return (isinstance(value, bool), value)


def _raw(request: dict, path: str) -> Any:
    here: Any = request
    for part in path.split("."):
        if not isinstance(here, dict) or part not in here:
            return MISSING
        here = here[part]
    return MISSING if here is None else here


def _given(request: dict, path: str) -> bool:
    return _raw(request, path) is not MISSING


def _node(tree: Hierarchy, text: str) -> str:
    """A tree node by full dotted name, or by the one node whose path ends in `text`."""
    if text in tree.parents:
        return text
    found = [name for name in tree.names if name.endswith("." + text)]
    if len(found) != 1:
        raise ValueError(f"`{text}` names {len(found)} {tree.kind} nodes")
    return found[0]


def _at_or_below(tree: Hierarchy, name: str, node: str) -> bool:
    """`name` is `node`, or inherits from it, or sits below it: walk up the parents."""
    seen, stack = {name}, [name]
    while stack:
        here = stack.pop()
        if here == node:
            return True
        for parent in tree.parents.get(here, ()):
            if parent not in seen:
                seen.add(parent)
                stack.append(parent)
    return False
