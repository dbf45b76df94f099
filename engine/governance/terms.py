"""Rules as terms: set reasoning over the closed vocabulary.

`Compiler` turns each rule into small hashable terms, and `reduce` simplifies
a term as request values become known, with the three-valued logic of
docs/language.md, "How decisions are made". The access matrix (matrix.py), the diff (diff.py) and
the rule analysis (analysis.py) all reason about requests with them.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from engine import ast
from engine.durations import shift
from engine.symbols import NameLookupError, Vocabulary

# The request attributes every request gives: the dimensions of the matrix.
DIMENSIONS = (
    "action", "requester.role", "requester.agency", "purpose",
    "resource.category", "resource.classification", "resource.owner",
)
DIMENSION_KINDS = {
    "action": "action", "requester.role": "role", "requester.agency": "agency", "purpose": "purpose",
    "resource.category": "category", "resource.classification": "classification", "resource.owner": "agency",
}
_TREES = ("role", "purpose", "category")


# --- terms ------------------------------------------------------------------
#
# A term is a tuple whose first item names it:
#   ("k", tag, value)          a constant; tag b bool, n number, s name or string,
#                              d date, m missing (no value, no default), u unknown
#   ("a", path)                an attribute's value
#   ("has", path)              the request gave the attribute
#   ("and", terms) ("or", terms) ("not", term) ("truthy", term)
#   ("eq", l, r) ("ne", l, r)  exact equality
#   ("ord", op, l, r, ranks)   < <= > >=; ranks orders classifications, else ()
#   ("in", term, typed values) membership; values are (tag, value) pairs
#   ("under", agreements)      the under clause until the date is known
#   ("pair", pairs)            (requester agency, owner) pairs that share
#   ("shift", term, op, n, unit)  a date moved by a duration (unknown outside the calendar)
#   ("member", term, set term) `x in S` for a `set of` attribute; a set constant is
#                              ("k", "S", frozenset of (tag, value) pairs)


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()

Term = tuple[Any, ...]  # a nested tuple: ("k", kind, value), ("a", path), (op, args) ...
TRUE: Term = ("k", "b", True)
FALSE: Term = ("k", "b", False)
UNK: Term = ("k", "u", None)
MISS: Term = ("k", "m", None)


def const(value: Any) -> Term:
    """The constant term for a Python value (MISSING for an absent attribute)."""
    if value is MISSING:
        return MISS
    if isinstance(value, bool):
        return TRUE if value else FALSE
    if isinstance(value, (int, float)):
        return ("k", "n", value)
    if isinstance(value, dt.date):
        return ("k", "d", value)
    if isinstance(value, frozenset):
        return ("k", "S", frozenset(const(v)[1:] for v in value))
    return ("k", "s", value)


def reduce(term: Term, env: Mapping[Any, Any]) -> Term:
    """`term` with the attributes `env` gives substituted and simplified.

    `env` maps attribute paths to values (or MISSING), `("has", path)` to
    whether the request gave it, and "context.date" to the date. Equal results
    evaluate equally whatever is substituted later.
    """
    op = term[0]
    if op == "k":
        return term
    if op == "a":
        return const(env[term[1]]) if term[1] in env else term
    if op == "has":
        key = ("has", term[1])
        return const(env[key]) if key in env else term
    if op == "and" or op == "or":
        return junction(op, [reduce(t, env) for t in term[1]])
    if op == "not":
        inner = reduce(term[1], env)
        if inner[0] == "k":
            return inner if inner == UNK else (FALSE if inner == TRUE else TRUE)
        return ("not", inner)
    if op == "truthy":
        inner = reduce(term[1], env)
        if inner[0] == "k":
            return UNK if inner[1] in "mu" else (TRUE if inner[2] else FALSE)
        return ("truthy", inner)
    if op == "eq" or op == "ne":
        left, right = reduce(term[1], env), reduce(term[2], env)
        if left[0] == "k" and right[0] == "k":
            if left[1] in "mu" or right[1] in "mu":
                return UNK
            return TRUE if (left[1:] == right[1:]) == (op == "eq") else FALSE
        return (op, left, right)
    if op == "ord":
        return _order(term, reduce(term[2], env), reduce(term[3], env))
    if op == "in":
        inner = reduce(term[1], env)
        if inner[0] == "k":
            if inner[1] in "mu":
                return UNK
            return TRUE if inner[1:] in term[2] else FALSE
        return ("in", inner, term[2])
    if op == "shift":
        inner = reduce(term[1], env)
        if inner[0] != "k":
            return ("shift", inner, *term[2:])
        moved = shift(inner[2], term[2], term[3], term[4]) if inner[1] == "d" else None
        return UNK if moved is None else const(moved)
    if op == "member":
        inner, members = reduce(term[1], env), reduce(term[2], env)
        if inner[0] != "k" or members[0] != "k":
            return ("member", inner, members)
        if inner[1] in "mu" or members[1] in "mu":
            return UNK
        return TRUE if inner[1:] in members[2] else FALSE
    if op == "under":
        if "context.date" not in env:
            return term
        return reduce(("pair", agreement_pairs(term[1], env["context.date"])), env)
    if op == "pair":
        return _pair(term[1], env)
    raise ValueError(f"unknown term {op!r}")


def junction(op: str, parts: list[Term]) -> Term:
    """Three-valued and/or: the deciding constant wins, then unknown, then what is left."""
    wins, neutral = (FALSE, TRUE) if op == "and" else (TRUE, FALSE)
    kept: list[Term] = []
    unknown = False
    for part in parts:
        if part == wins:
            return wins
        if part == neutral:
            continue
        if part == UNK:
            unknown = True
        else:
            kept.append(part)
    if not kept:
        return UNK if unknown else neutral
    if unknown:
        kept.append(UNK)
    return kept[0] if len(kept) == 1 else (op, tuple(kept))


def _order(term: Term, left: Term, right: Term) -> Term:
    if left[0] != "k" or right[0] != "k":
        return ("ord", term[1], left, right, term[4])
    if left[1] in "mu" or right[1] in "mu":
        return UNK
    a, b = left[2], right[2]
    if term[4]:
        a, b = term[4].index(a), term[4].index(b)
    result = {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[term[1]]
    return TRUE if result else FALSE


def _pair(pairs: frozenset[Any], env: Mapping[Any, Any]) -> Term:
    agency, owner = env.get("requester.agency", MISSING), env.get("resource.owner", MISSING)
    if agency is not MISSING and owner is not MISSING:
        return TRUE if (agency, owner) in pairs else FALSE
    # Both are built-ins every request gives, so no partner at all is plainly false.
    if agency is not MISSING:
        owners = frozenset(("s", o) for a, o in pairs if a == agency)
        return ("in", ("a", "resource.owner"), owners) if owners else FALSE
    if owner is not MISSING:
        agencies = frozenset(("s", a) for a, o in pairs if o == owner)
        return ("in", ("a", "requester.agency"), agencies) if agencies else FALSE
    return ("pair", pairs) if pairs else FALSE


def agreement_pairs(agreements: tuple[Any, ...], date: dt.date | None) -> frozenset[Any]:
    """(requester agency, owner) pairs some agreement covers on `date` (any date if None)."""
    found: set[tuple[str, str]] = set()
    for parties, sources, recipients, start, end in agreements:
        if date is not None and start is not None and not start <= date <= end:
            continue
        if parties is not None:
            found.update(itertools.product(parties, parties))
        else:
            found.update(itertools.product(recipients or (), sources or ()))
    return frozenset(found)


@functools.lru_cache(maxsize=1 << 16)
def attributes_of(term: Term) -> frozenset[str]:
    """Every attribute path a term reads (the under clause reads agency, owner and the date)."""
    op = term[0]
    if op == "a" or op == "has":
        return frozenset((term[1],))
    if op == "under":
        return frozenset(("requester.agency", "resource.owner", "context.date"))
    if op == "pair":
        return frozenset(("requester.agency", "resource.owner"))
    if op in ("and", "or"):
        parts = term[1]
    elif op in ("not", "truthy", "in", "shift"):
        parts = (term[1],)
    elif op in ("eq", "ne", "member"):
        parts = term[1:3]
    elif op == "ord":
        parts = term[2:4]
    else:
        return frozenset()
    return frozenset().union(*(attributes_of(p) for p in parts))


# --- rules as terms -----------------------------------------------------------


class ObligationTerm(NamedTuple):
    name: str
    condition: Term  # TRUE when the obligation has no condition
    args: tuple[Term, ...]
    clause: ast.ObligationClause


class RuleTerm(NamedTuple):
    """A rule compiled to terms: one per clause, and their conjunction."""

    rule: ast.Rule
    permit: bool
    clauses: tuple[tuple[ast.Clause, Term], ...]
    term: Term
    obligations: tuple[ObligationTerm, ...]

    @property
    def id(self) -> str:
        return self.rule.id.text


class PolicyObligationTerm(NamedTuple):
    outcome: str  # permit, deny or any
    obligation: ObligationTerm


class Compiler:
    """Rules and expressions to terms, names resolved against one vocabulary.

    Raises NameLookupError for a name the vocabulary does not declare.
    """

    def __init__(self, vocab: Vocabulary):
        self.vocab = vocab
        self.ranks = tuple(sorted(vocab.classifications, key=vocab.classifications.__getitem__))
        self.held = held_term(vocab)

    def rule(self, rule: ast.Rule) -> RuleTerm:
        clauses = []
        obligations = []
        for clause in rule.clauses:
            if isinstance(clause, ast.ObligationClause):
                obligations.append(self.obligation(clause))
            elif isinstance(clause, (ast.MatchClause, ast.DataClause, ast.ConditionClause)):
                clauses.append((clause, self.clause(clause)))
        term = junction("and", [self.held] + [t for _c, t in clauses])
        return RuleTerm(rule, rule.effect is ast.Effect.PERMIT, tuple(clauses), term, tuple(obligations))

    def policy_obligation(self, decl: ast.PolicyObligation) -> PolicyObligationTerm:
        return PolicyObligationTerm(decl.outcome.value, self.obligation(decl.obligation))

    def obligation(self, clause: ast.ObligationClause) -> ObligationTerm:
        condition = self.clause(clause.condition) if clause.condition is not None else TRUE
        args = tuple(self._argument(a) for a in clause.args)
        return ObligationTerm(clause.name, condition, args, clause)

    def clause(self, clause: ast.Clause) -> Term:
        if isinstance(clause, ast.ConditionClause):
            inner = self.expr(clause.expr)
            return ("not", inner) if clause.negated else inner
        if isinstance(clause, ast.DataClause):
            parts = []
            if clause.categories:
                parts.append(_member("resource.category", self._below("category", clause.categories)))
            if clause.up_to is not None:
                limit = self.vocab.classifications.get(self._resolve("classification", clause.up_to.text))
                upto = [c for c, rank in self.vocab.classifications.items() if limit is not None and rank <= limit]
                parts.append(_member("resource.classification", upto))
            return ("and", tuple(parts)) if len(parts) > 1 else (parts[0] if parts else TRUE)
        assert isinstance(clause, ast.MatchClause)  # obligations and because are not conditions
        return self._match(clause)

    def _match(self, clause: ast.MatchClause) -> Term:
        kind = clause.kind
        if kind is ast.ClauseKind.ACTION:
            return _member("action", [self._resolve("action", v.text) for v in clause.values])
        if kind is ast.ClauseKind.ROLE:
            return _member("requester.role", self._below("role", clause.values))
        if kind is ast.ClauseKind.PURPOSE:
            return _member("purpose", self._below("purpose", clause.values))
        if kind is ast.ClauseKind.AGENCY:
            return _member("requester.agency", self._agencies(clause.values))
        if kind is ast.ClauseKind.OWNER:
            return _member("resource.owner", self._agencies(clause.values))
        agreements = []
        for value in clause.values:
            found = self.vocab.agreements.get(value.text)
            if found is None:
                raise NameLookupError(f"unknown agreement `{value.text}`")
            agreements.append((found.parties, found.sources, found.recipients, found.start, found.end))
        return ("under", tuple(agreements))

    def _resolve(self, kind: str, text: str) -> str:
        return self.vocab.resolve(kind, text)

    def _below(self, kind: str, names: Iterable[ast.Name]) -> set[str]:
        tree = self.vocab.tree(kind)
        found: set[str] = set()
        for name in names:
            found |= tree.descendants[tree.resolve(name.text)]
        return found

    def _agencies(self, names: Iterable[ast.Name]) -> set[str]:
        found: set[str] = set()
        for name in names:
            found |= self.vocab.agencies_named(name.text)
        return found

    # expressions, as the reference interpreter reads them

    def expr(self, expr: ast.Expr) -> Term:
        if isinstance(expr, ast.BoolOp):
            return (expr.op, tuple(self.expr(e) for e in expr.operands))
        if isinstance(expr, ast.Not):
            return ("not", self.expr(expr.operand))
        if isinstance(expr, ast.Has):
            return ("has", expr.path.text)
        if isinstance(expr, ast.Compare):
            kind = self._kind(expr.left) or self._kind(expr.right)
            left, right = self._operand(expr.left, kind), self._operand(expr.right, kind)
            if expr.op in ("==", "!="):
                return ("eq" if expr.op == "==" else "ne", left, right)
            return ("ord", expr.op, left, right, self.ranks if kind == "classification" else ())
        if isinstance(expr, ast.InSet):
            kind = self._kind(expr.operand)
            operand = self._operand(expr.operand, kind)
            values = [self._operand(v, kind) for v in expr.values]
            if all(v[0] == "k" for v in values):
                return ("in", operand, frozenset(v[1:] for v in values))
            return ("or", tuple(("eq", operand, v) for v in values))
        if isinstance(expr, ast.InGroup):
            return _member_term(self._operand(expr.operand, "agency"), self._agencies([expr.group]))
        if isinstance(expr, ast.Is):
            return self._is(expr)
        if isinstance(expr, ast.InAttribute):
            element = self.vocab.attributes[expr.set.text].element
            return ("member", self._operand(expr.operand, element), ("a", expr.set.text))
        return ("truthy", self._operand(expr, "bool"))

    def _is(self, expr: ast.Is) -> Term:
        kind = self._kind(expr.operand)
        operand = self._operand(expr.operand, kind)
        node = self._operand(expr.node, kind)
        if kind not in _TREES:
            return ("eq", operand, node)
        tree = self.vocab.tree(kind)
        if node[0] == "k":
            return _member_term(operand, tree.descendants[node[2]])
        # `x is <attribute>`: one branch per node the attribute could name.
        return ("or", tuple(("and", (("eq", node, const(n)), _member_term(operand, tree.descendants[n])))
                            for n in tree.names))

    def _kind(self, value: Any) -> str | None:
        if isinstance(value, ast.Name):
            attribute = self.vocab.attributes.get(value.text)
            return attribute.kind if attribute is not None else None
        return {ast.StringLit: "string", ast.NumberLit: "number", ast.BoolLit: "bool",
                ast.DateLit: "date"}.get(type(value), "bool")

    def _operand(self, value: Any, kind: str | None) -> Term:
        if isinstance(value, ast.Name):
            if value.text in self.vocab.attributes:
                return ("a", value.text)
            if kind in _TREES:
                return const(self.vocab.tree(kind).resolve(value.text))
            return const(value.text)
        if isinstance(value, (ast.StringLit, ast.NumberLit, ast.BoolLit, ast.DateLit)):
            return const(value.value)
        if isinstance(value, ast.Arithmetic) and isinstance(value.right, ast.DurationLit):
            return ("shift", self._operand(value.left, "date"), value.op, value.right.amount, value.right.unit)
        return self.expr(value)  # a parenthesised expression used as a value

    def _argument(self, value: ast.Value) -> Term:
        if isinstance(value, ast.Name):
            return ("a", value.text) if value.text in self.vocab.attributes else const(value.text)
        return const(value.value)


def held_term(vocab: Vocabulary) -> Term:
    """True where the requester's role may be held at their agency (roles `at` agencies):
    part of every rule's term, so the matrix, the diff and the analysis leave out the
    combinations that are denied as `role_not_held` whatever the rules say."""
    if not vocab.places:
        return TRUE
    free = [r for r in vocab.roles.names if r not in vocab.places]
    parts = [_member("requester.role", free)] if free else []
    for role, places in vocab.places.items():
        parts.append(("and", (_member("requester.role", [role]), _member("requester.agency", sorted(places)))))
    return junction("or", parts)


def _member(path: str, values: Iterable[str]) -> Term:
    return _member_term(("a", path), values)


def _member_term(operand: Term, values: Iterable[str]) -> Term:
    return ("in", operand, frozenset(("s", v) for v in values))


# --- request values known before any rule is evaluated -------------------------


def attribute_value(vocab: Vocabulary, path: str, raw: Any) -> Any:
    """A request value as terms compare it: tree names in full, dates as dates."""
    attribute = vocab.attributes[path]
    if attribute.kind == "set" and isinstance(raw, (list, tuple, frozenset, set)):
        return frozenset(_typed_value(vocab, attribute.element or "", item) for item in raw)
    return _typed_value(vocab, attribute.kind, raw)


def _typed_value(vocab: Vocabulary, kind: str, raw: Any) -> Any:
    if kind in _TREES:
        return vocab.tree(kind).resolve(str(raw))
    if kind == "date" and isinstance(raw, str):
        return dt.date.fromisoformat(raw)
    return raw


def default_value(vocab: Vocabulary, path: str) -> Any:
    """The declared default of an attribute, or MISSING."""
    default = vocab.attributes[path].default
    if default is None:
        return MISSING
    if isinstance(default, ast.SetLit):
        return attribute_value(vocab, path, [v.text if isinstance(v, ast.Name) else v.value for v in default.values])
    raw = default.text if isinstance(default, ast.Name) else default.value
    return attribute_value(vocab, path, raw)


def context_env(vocab: Vocabulary, given: Mapping[str, Any], date: dt.date) -> dict[str, Any]:
    """Everything but the dimensions: given values, defaults, MISSING; and what `has` sees."""
    env: dict[Any, Any] = {"context.date": date, ("has", "context.date"): True}
    for path in vocab.attributes:
        if path in DIMENSION_KINDS:
            env[("has", path)] = True
        elif path != "context.date":
            env[path] = given[path] if path in given else default_value(vocab, path)
            env[("has", path)] = path in given
    return env
