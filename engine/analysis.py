"""Rule analysis: set reasoning over the closed vocabulary, and the warnings it finds.

Two halves. The first turns rules into small hashable terms (`compile_rules`)
and reduces them as request values become known (`reduce`), with the
three-valued logic of LANGUAGE.md section 4; the access matrix and the diff
enumerate requests with it. The second (`analyse`, the checker's last pass)
reads each rule's match clauses as sets over the declared vocabulary and
reports rules that can never apply, never take effect, or repeat another.

Conditions (`when`/`unless`) are treated conservatively: a rule with
conditions covers another only when its conditions are among the other's,
word for word. A warning that is missed costs less than a false one.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, NamedTuple

from engine import ast
from engine.errors import Diagnostic, warning
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


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()

Term = tuple
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
    return ("k", "s", value)


def is_const(term: Term) -> bool:
    return term[0] == "k"


def reduce(term: Term, env: Mapping) -> Term:
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
        return _junction(op, [reduce(t, env) for t in term[1]])
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
    if op == "under":
        if "context.date" not in env:
            return term
        return reduce(("pair", agreement_pairs(term[1], env["context.date"])), env)
    if op == "pair":
        return _pair(term[1], env)
    raise ValueError(f"unknown term {op!r}")


def _junction(op: str, parts: list[Term]) -> Term:
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


def _pair(pairs: frozenset, env: Mapping) -> Term:
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


def agreement_pairs(agreements: tuple, date: dt.date | None) -> frozenset:
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
    """Every attribute path a term reads (the under clause reads agency and owner)."""
    op = term[0]
    if op == "a" or op == "has":
        return frozenset((term[1],))
    if op in ("under", "pair"):
        return frozenset(("requester.agency", "resource.owner"))
    if op in ("and", "or"):
        parts = term[1]
    elif op in ("not", "truthy", "in"):
        parts = (term[1],)
    elif op in ("eq", "ne"):
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

    def rule(self, rule: ast.Rule) -> RuleTerm:
        clauses = []
        obligations = []
        for clause in rule.clauses:
            if isinstance(clause, ast.ObligationClause):
                obligations.append(self.obligation(clause))
            elif isinstance(clause, (ast.MatchClause, ast.DataClause, ast.ConditionClause)):
                clauses.append((clause, self.clause(clause)))
        term = _junction("and", [t for _c, t in clauses])
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
                upto = [c for c, rank in self.vocab.classifications.items() if rank <= limit]
                parts.append(_member("resource.classification", upto))
            return ("and", tuple(parts)) if len(parts) > 1 else (parts[0] if parts else TRUE)
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
        tree = self.vocab.hierarchy(kind)
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
        return ("truthy", self._operand(expr, "bool"))

    def _is(self, expr: ast.Is) -> Term:
        kind = self._kind(expr.operand)
        operand = self._operand(expr.operand, kind)
        node = self._operand(expr.node, kind)
        if kind not in _TREES:
            return ("eq", operand, node)
        tree = self.vocab.hierarchy(kind)
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
                return const(self.vocab.hierarchy(kind).resolve(value.text))
            return const(value.text)
        if isinstance(value, (ast.StringLit, ast.NumberLit, ast.BoolLit, ast.DateLit)):
            return const(value.value)
        return self.expr(value)  # a parenthesised expression used as a value

    def _argument(self, value: ast.Value) -> Term:
        if isinstance(value, ast.Name):
            return ("a", value.text) if value.text in self.vocab.attributes else const(value.text)
        return const(value.value)


def _member(path: str, values: Iterable[str]) -> Term:
    return _member_term(("a", path), values)


def _member_term(operand: Term, values: Iterable[str]) -> Term:
    return ("in", operand, frozenset(("s", v) for v in values))


# --- request values known before any rule is evaluated -------------------------


def attribute_value(vocab: Vocabulary, path: str, raw: Any) -> Any:
    """A request value as terms compare it: tree names in full, dates as dates."""
    kind = vocab.attributes[path].kind
    if kind in _TREES:
        return vocab.hierarchy(kind).resolve(str(raw))
    if kind == "date" and isinstance(raw, str):
        return dt.date.fromisoformat(raw)
    return raw


def default_value(vocab: Vocabulary, path: str) -> Any:
    """The declared default of an attribute, or MISSING."""
    default = vocab.attributes[path].default
    if default is None:
        return MISSING
    raw = default.text if isinstance(default, ast.Name) else default.value
    return attribute_value(vocab, path, raw)


def context_env(vocab: Vocabulary, given: Mapping[str, Any], date: dt.date) -> dict:
    """Everything but the dimensions: given values, defaults, MISSING; and what `has` sees."""
    env: dict = {"context.date": date, ("has", "context.date"): True}
    for path in vocab.attributes:
        if path in DIMENSION_KINDS:
            env[("has", path)] = True
        elif path != "context.date":
            env[path] = given[path] if path in given else default_value(vocab, path)
            env[("has", path)] = path in given
    return env


# --- the analysis pass ------------------------------------------------------------


_ALWAYS = ((dt.date.min, dt.date.max),)


@dataclass(frozen=True)
class Region:
    """The requests a rule's match clauses admit, as sets over the vocabulary.

    `sets` holds a set of values per dimension; each of `unders` (one per
    `under` clause) lists agreements of which one must cover the requester's
    agency and the owner on the request's date.
    """

    sets: dict[str, frozenset[str]]
    unders: tuple[tuple, ...]

    def ranges(self, pair: tuple[str, str]) -> tuple:
        """The dates on which the `under` clauses admit (agency, owner), as sorted ranges."""
        ranges = _ALWAYS
        for agreements in self.unders:
            ranges = _intersect(ranges, _covering(agreements, pair))
            if not ranges:
                break
        return ranges

    def pairs(self) -> Iterable[tuple[tuple[str, str], tuple]]:
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

    def within(self, other: "Region") -> bool:
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
    return _Analysis(vocabulary, today or dt.date.today()).run()


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
        self.memo: dict[tuple, Term] = {}
        self.holds: dict[tuple, bool] = {}

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
        unders: list[tuple] = []
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
        term = _junction("and", terms)
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

    def _reduce(self, term: Term, given: dict, path: str, value: str) -> Term:
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


def _conditions(rule: RuleTerm) -> frozenset:
    return frozenset(c for c, _t in rule.clauses if isinstance(c, ast.ConditionClause))


def _obligations(rule: RuleTerm) -> frozenset:
    return frozenset(o.clause for o in rule.obligations)


# date ranges: sorted tuples of disjoint (start, end), both ends included


@functools.lru_cache(maxsize=4096)
def _pairs_of(agreement: tuple) -> frozenset:
    return agreement_pairs((agreement,), None)


@functools.lru_cache(maxsize=65536)
def _covering(agreements: tuple, pair: tuple[str, str]) -> tuple:
    ranges = []
    for agreement in agreements:
        if pair in _pairs_of(agreement):
            start, end = agreement[3], agreement[4]
            ranges.append((start, end) if start is not None else _ALWAYS[0])
    return _normalise(ranges)


def _normalise(ranges: list) -> tuple:
    merged: list[list[dt.date]] = []
    for start, end in sorted(ranges):
        if merged and start <= _next_day(merged[-1][1]):
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return tuple((s, e) for s, e in merged)


def _next_day(day: dt.date) -> dt.date:
    return day if day == dt.date.max else day + dt.timedelta(days=1)


def _intersect(a: tuple, b: tuple) -> tuple:
    found = []
    for s1, e1 in a:
        for s2, e2 in b:
            start, end = max(s1, s2), min(e1, e2)
            if start <= end:
                found.append((start, end))
    return _normalise(found)


def _ranges_within(inner: tuple, outer: tuple) -> bool:
    return all(any(s2 <= s1 and e1 <= e2 for s2, e2 in outer) for s1, e1 in inner)
