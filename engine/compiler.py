"""Compile a checked policy set into closures over frozensets, and an index over them.

Each rule becomes a tuple of clause closures (`test(env) -> True | False |
None`, None meaning unknown) that keep their clause for explanations. The
clauses that test a single built-in value (`action`, `role`, `agency`,
`purpose`, `data`, `owner`) and `under` are also folded into an index: for
every declared value, the bitset of rules whose clause holds for it (rules
without that clause are in every bucket). A request ANDs one bitset per
clause position (positions whose values combine into few enough pairs and
triples share one table of their ANDs) and evaluates `when`/`unless` only for
the rules left.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from engine import _expressions as expressions
from engine import ast, reuse
from engine._codegen import define
from engine._expressions import Env, Test, span_text
from engine.bitsets import mask_of
from engine.errors import PolicyError
from engine.request import RAW, SUMMARY_PATHS, RequestSchema
from engine.source import Span
from engine.symbols import Hierarchy, NameLookupError, Vocabulary
from engine.wording import or_list

# The built-in attribute each indexed clause kind reads.
_MATCH_PATHS = {
    ast.ClauseKind.ACTION: "action",
    ast.ClauseKind.ROLE: "requester.role",
    ast.ClauseKind.AGENCY: "requester.agency",
    ast.ClauseKind.PURPOSE: "purpose",
    ast.ClauseKind.OWNER: "resource.owner",
}
_KIND_OF_PATH = {"action": "action", "requester.role": "role", "requester.agency": "agency",
                 "purpose": "purpose", "resource.owner": "agency", "resource.category": "category",
                 "resource.classification": "classification"}



class CompileError(PolicyError):
    """A checked policy set the compiler still cannot use (the checker should have said)."""

    code = "policy_compile_error"


@dataclass(frozen=True, slots=True)
class CompiledClause:
    """One condition of a rule: its kind word, the clause, and how to test it."""

    kind: str  # action role agency purpose data owner under when unless
    clause: ast.Clause
    test: Test
    reads: tuple[str, ...]  # attribute paths whose values the test reads, left to right
    needed: str = ""  # what it needs, in the rule's words (an expression as written)
    asks: tuple[str, ...] = ()  # attribute paths `has` asks about: whether given, not their values

    @property
    def span(self) -> Span:
        return self.clause.span


@dataclass(frozen=True, slots=True)
class CompiledObligation:
    """An obligation with its place in set order, its arguments and its condition."""

    seq: int
    name: str
    args: tuple[Callable[[Env], Any], ...]
    condition: Test | None
    static: tuple[Any, ...] | None  # (name, args) when the arguments do not depend on the request
    reads: tuple[str, ...] = ()  # attribute paths the condition reads (what an unknown one needs)
    arg_reads: tuple[str, ...] = ()  # attribute paths given as arguments

    def after(self, seq: int) -> CompiledObligation:
        """The obligation of a rule placed at `seq` (dataclasses.replace, without its cost per rule)."""
        return CompiledObligation(seq + self.seq, self.name, self.args, self.condition, self.static, self.reads,
                                  self.arg_reads)


@dataclass(slots=True)
class CompiledRule:
    index: int
    rule: ast.Rule
    effect: ast.Effect
    clauses: tuple[CompiledClause, ...]
    conditions: tuple[Test, ...]  # the when/unless tests: what the index cannot decide
    obligations: tuple[CompiledObligation, ...]
    because: str | None

    @property
    def id(self) -> str:
        return self.rule.id.text


@dataclass(frozen=True, slots=True)
class _MadeRule:
    """A rule compiled apart from its place in the set, as a reload takes it again (engine/reuse.py).

    Obligations are numbered from the rule's start; `indexed` holds each indexed clause's
    position name (kind, occurrence) and what it accepts; `reads` the attribute paths it reads;
    `conditions` the tests of its when/unless clauses.
    """

    clauses: tuple[CompiledClause, ...]
    obligations: tuple[CompiledObligation, ...]
    because: str | None
    indexed: tuple[tuple[tuple[str, int], Any], ...]
    reads: frozenset[str]
    conditions: tuple[Test, ...]


@dataclass(slots=True)
class _Position:
    """One indexed clause position: a kind and its occurrence within a rule (the 2nd `purpose`...)."""

    name: tuple[str, int]
    paths: tuple[str, ...]
    accepts: dict[int, Any] = field(default_factory=dict)  # rule index -> what its clause accepts


@dataclass(slots=True)
class Dimension:
    """An indexed clause position: `hold(env)` is the bitset of rules it lets through."""

    name: tuple[str, int]
    lookups: tuple[tuple[str, dict[Any, int]], ...]  # (path, value -> bitset), ANDed
    under: _UnderIndex | None = None

    def hold(self, env: Env) -> int:
        if self.under is not None:
            return self.under.hold(env)
        (path, table), *rest = self.lookups
        bits = table[env[path]]
        for path, table in rest:
            bits &= table[env[path]]
        return bits


class _UnderIndex:
    """The rules an `under` position lets through for a requester agency, owner and date.

    Agreements are numbered; each agency has the bitset of agreements it may
    receive under and of those it may disclose under, and each date the bitset
    of agreements valid on it. Their AND is the few agreements that cover the
    request, and the rules naming any of them join the rules without `under`.
    """

    def __init__(self, vocab: Vocabulary, accepts: dict[int, tuple[str, ...]], everyone: int):
        self.base = everyone ^ mask_of(accepts)  # rules without this `under` clause
        names = sorted({name for names in accepts.values() for name in names})
        self.agreements = [vocab.agreements[name] for name in names]
        number = {name: i for i, name in enumerate(names)}
        naming: list[list[int]] = [[] for _ in names]
        for index, listed in accepts.items():
            for name in listed:
                naming[number[name]].append(index)
        self.rules_under = [mask_of(indices) for indices in naming]  # agreement number -> rules naming it
        self.receives: dict[str, int] = {}
        self.discloses: dict[str, int] = {}
        for i, agreement in enumerate(self.agreements):
            two_way = agreement.parties is not None
            for agency in (agreement.parties if two_way else agreement.recipients) or ():
                self.receives[agency] = self.receives.get(agency, 0) | 1 << i
            for agency in (agreement.parties if two_way else agreement.sources) or ():
                self.discloses[agency] = self.discloses.get(agency, 0) | 1 << i
        self._valid_on: dict[dt.date, int] = {}
        self._rules_of: dict[int, int] = {}  # covering agreements -> the rules they let through

    def hold(self, env: Env) -> int:
        covering = self.receives.get(env["requester.agency"], 0) & self.discloses.get(env["resource.owner"], 0)
        if not covering:
            return self.base
        date = env["context.date"]
        valid = self._valid_on.get(date)
        if valid is None:
            valid = self._valid(date)
        covering &= valid
        bits = self._rules_of.get(covering)
        return self._union(covering) if bits is None else bits

    def _union(self, covering: int) -> int:
        """The rules without `under` and those naming any of the `covering` agreements."""
        bits = self.base
        agreements = covering
        while agreements:
            i = agreements.bit_length() - 1
            bits |= self.rules_under[i]
            agreements ^= 1 << i
        # The few sets of agreements that cover requests recur; each union is kept (bounded, like
        # the dates), a fact about the policy, not about any request.
        if len(self._rules_of) > 4096:
            self._rules_of.clear()
        self._rules_of[covering] = bits
        return bits

    def _valid(self, date: dt.date) -> int:
        valid = sum(1 << i for i, a in enumerate(self.agreements)
                    if a.start is None or a.end is None or a.start <= date <= a.end)
        if len(self._valid_on) > 10_000:  # requests for many different days: keep the memory bounded
            self._valid_on.clear()
        self._valid_on[date] = valid
        return valid


@dataclass(slots=True)
class CompiledPolicy:
    """A policy set ready to decide: rules, index, obligations and the request schema."""

    vocab: Vocabulary
    schema: RequestSchema
    combine: ast.Combine
    rules: tuple[CompiledRule, ...]
    everyone: int  # a bit for every rule
    permits: int
    denies: int
    conditional: int  # rules with when/unless clauses
    # Each distinct condition (and its 2nd, 3rd... use in one rule) with the rules that have it.
    condition_sets: tuple[tuple[Test, int], ...]
    dimensions: tuple[Dimension, ...]
    select: Callable[[Env], int]  # the candidates, as one generated function (_selector)
    obligations: dict[str, tuple[CompiledObligation, ...]]  # outcome -> policy-wide obligations
    reads: frozenset[str]  # attribute paths any rule or obligation reads
    class_names: tuple[str, ...]  # rank -> classification name

    def candidates(self, env: Env) -> int:
        """The rules whose indexed clauses all hold for the request."""
        return self.select(env)


def compile_policy(policy_set: ast.PolicySet, vocab: Vocabulary, schema: RequestSchema | None = None) -> CompiledPolicy:
    """Compile every rule and obligation of a checked set; CompileError if a name does not resolve."""
    return _Compiler(vocab, schema or RequestSchema(vocab)).run(policy_set)


class _Compiler:
    def __init__(self, vocab: Vocabulary, schema: RequestSchema):
        self.vocab = vocab
        self.schema = schema
        self.exprs = expressions.ExprCompiler(vocab, schema)
        self.positions: dict[tuple[str, int], _Position] = {}
        self.reads: set[str] = set()
        self._lines: dict[int, list[str]] = {}  # each source's lines, split once
        self._conditions: dict[tuple[Any, ...], tuple[Any, ...]] = {}  # (negated, expression) -> (test, reads, asks)

    def run(self, policy_set: ast.PolicySet) -> CompiledPolicy:
        declarations = list(policy_set.declarations())
        all_rules = [d for d in declarations if isinstance(d, ast.Rule)]
        made = self._made(all_rules)
        rules: list[CompiledRule] = []
        policy_wide: dict[str, list[CompiledObligation]] = {"permit": [], "deny": []}
        seq = 0
        for decl in declarations:
            if isinstance(decl, ast.Rule):
                rules.append(self._place(decl, made[len(rules)], len(rules), seq))
                seq += len(decl.clauses) + 1
            elif isinstance(decl, ast.PolicyObligation):
                compiled = self.compile_obligation(decl.obligation, seq)
                seq += 1
                for outcome in (("permit", "deny") if decl.outcome is ast.Outcome.ANY else (decl.outcome.value,)):
                    policy_wide[outcome].append(compiled)
        everyone = (1 << len(rules)) - 1
        def mask(effect: ast.Effect) -> int:
            return mask_of(r.index for r in rules if r.effect is effect)

        dimensions = tuple(self._dimension(p, everyone) for p in self.positions.values())
        lookups = tuple(pair for d in dimensions for pair in d.lookups)
        unders = tuple(d.under for d in dimensions if d.under is not None)
        return CompiledPolicy(
            vocab=self.vocab,
            schema=self.schema,
            combine=self.vocab.combine,
            rules=tuple(rules),
            everyone=everyone,
            permits=mask(ast.Effect.PERMIT),
            denies=mask(ast.Effect.DENY),
            conditional=mask_of(r.index for r in rules if r.conditions),
            condition_sets=_condition_sets(rules),
            dimensions=dimensions,
            select=_selector(lookups, unders, everyone),
            obligations={k: tuple(v) for k, v in policy_wide.items()},
            reads=frozenset(self.reads),
            class_names=tuple(self.vocab.classifications),
        )

    # --- rules -----------------------------------------------------------------

    def compile_Rule(self, rule: ast.Rule, index: int, seq: int) -> CompiledRule:
        return self._place(rule, self.made_rule(rule), index, seq)

    def made_rule(self, rule: ast.Rule) -> _MadeRule:
        """A rule compiled apart from its place in the set: the same wherever it stands."""
        clauses, obligations, indexed = [], [], []
        seen: dict[str, int] = {}
        because = None
        outer, self.reads = self.reads, set()  # what this rule reads, kept with it
        try:
            for number, clause in enumerate(rule.clauses):
                if isinstance(clause, ast.ObligationClause):
                    obligations.append(self.compile_obligation(clause, number))
                elif isinstance(clause, ast.BecauseClause):
                    because = clause.text if because is None else because
                else:
                    compiled = self.compile_clause(clause)
                    clauses.append(compiled)
                    occurrence = seen.get(compiled.kind, 0)
                    seen[compiled.kind] = occurrence + 1
                    if compiled.kind not in ("when", "unless"):
                        indexed.append(((compiled.kind, occurrence), self._what_accepts(compiled)))
        finally:
            reads, self.reads = self.reads, outer
        conditions = tuple(c.test for c in clauses if c.kind in ("when", "unless"))
        return _MadeRule(tuple(clauses), tuple(obligations), because, tuple(indexed), frozenset(reads), conditions)

    def _made(self, rules: list[ast.Rule]) -> list[_MadeRule]:
        """Each rule compiled, taken from the last load where the rule and the vocabulary are the same.

        A condition written in several rules is one closure (compile_ConditionClause): the
        conditions of the rules taken again are known before any rule is compiled afresh, so a
        rule compiled now shares them just as in a load that compiled every rule.
        """
        basis = self.vocab.basis
        made: list[_MadeRule | None] = reuse.taken("compile", basis, rules)
        shared: set[int] = set()
        for clause in (c for m in made if m is not None for c in m.clauses):
            if clause.kind in ("when", "unless") and id(clause.test) not in shared:
                shared.add(id(clause.test))
                condition = clause.clause
                assert isinstance(condition, ast.ConditionClause)
                self._conditions.setdefault((condition.negated, condition.expr), (clause.test, clause.reads, clause.asks))
        worked = 0
        for position, rule in enumerate(made):
            if rule is None:
                made[position] = self.made_rule(rules[position])
                worked += 1
        reuse.keep("compile", basis, rules, made, worked)
        return [m for m in made if m is not None]

    def _place(self, rule: ast.Rule, made: _MadeRule, index: int, seq: int) -> CompiledRule:
        """The rule at its place: its index in the set, its obligations' order, its clauses in the index."""
        for key, accepts in made.indexed:
            position = self.positions.get(key)
            if position is None:
                paths = () if key[0] in ("data", "under") else (_MATCH_PATHS[ast.ClauseKind(key[0])],)
                position = self.positions[key] = _Position(key, paths)
            position.accepts[index] = accepts
        self.reads.update(made.reads)
        obligations = tuple(o.after(seq) for o in made.obligations) if seq else made.obligations
        return CompiledRule(index, rule, rule.effect, made.clauses, made.conditions, obligations, made.because)

    def compile_clause(self, clause: ast.Clause) -> CompiledClause:
        handler: Callable[[ast.Clause], CompiledClause] = getattr(self, f"compile_{type(clause).__name__}")
        return handler(clause)

    def compile_MatchClause(self, clause: ast.MatchClause) -> CompiledClause:
        kind = clause.kind
        if kind is ast.ClauseKind.UNDER:
            names = tuple(self._agreement(v) for v in clause.values)
            agreements = tuple(self.vocab.agreements[n] for n in names)
            self.reads.update(("requester.agency", "resource.owner", "context.date"))

            def under(env: Env) -> bool:
                agency, owner, date = env["requester.agency"], env["resource.owner"], env["context.date"]
                return any(a.covers(agency, owner, date) for a in agreements)

            return CompiledClause("under", clause, under, ("requester.agency", "resource.owner", "context.date"),
                                  or_list(names))
        path = _MATCH_PATHS[kind]
        accepts = self._accepts(kind, clause.values)
        self.reads.add(path)
        return CompiledClause(kind.value, clause, lambda env: env[path] in accepts, (path,),
                              or_list(v.text for v in clause.values))

    def compile_DataClause(self, clause: ast.DataClause) -> CompiledClause:
        categories = None
        if clause.categories:
            categories = frozenset().union(*(self._below(self.vocab.categories, c) for c in clause.categories))
        limit = None if clause.up_to is None else self._rank(clause.up_to)
        reads: tuple[str, ...] = ("resource.category",) if categories is not None else ()
        if limit is not None:
            reads += ("resource.classification",)
        self.reads.update(reads)

        def data(env: Env) -> bool:
            if categories is not None and env["resource.category"] not in categories:
                return False
            return limit is None or env["resource.classification"] <= limit

        named = or_list(c.text for c in clause.categories)
        if clause.up_to is None:
            needed = named
        else:
            needed = f"{named or 'any data'} up to {clause.up_to.text}"
        return CompiledClause("data", clause, data, reads, needed)

    def compile_ConditionClause(self, clause: ast.ConditionClause) -> CompiledClause:
        # The same condition written in several rules is one closure (syntax trees compare
        # without their positions), so a decision can test it once for all of them.
        key = (clause.negated, clause.expr)
        if key not in self._conditions:
            test, reads, asks = self._expr(clause.expr)
            self._conditions[key] = (expressions.negate(test) if clause.negated else test), reads, asks
        test, reads, asks = self._conditions[key]
        self.reads.update(reads, asks)
        text = span_text(clause.expr.span, self._lines)
        return CompiledClause("unless" if clause.negated else "when", clause, test, reads, text, asks)

    # --- obligations --------------------------------------------------------------

    def compile_obligation(self, clause: ast.ObligationClause, seq: int) -> CompiledObligation:
        args = tuple(self._argument(a) for a in clause.args)
        condition = None
        reads: tuple[str, ...] = ()
        if clause.condition is not None:
            condition, reads, _ = self._expr(clause.condition.expr)
            if clause.condition.negated:
                condition = expressions.negate(condition)
        static = None
        constants = [a for a in args if isinstance(a, _Constant)]
        if len(constants) == len(args):
            static = (clause.name, tuple(a.value for a in constants))
        arg_reads = tuple(dict.fromkeys(a.text for a in clause.args
                                        if isinstance(a, ast.Name) and a.text in self.vocab.attributes))
        return CompiledObligation(seq, clause.name, args, condition, static, tuple(dict.fromkeys(reads)), arg_reads)

    def _argument(self, value: ast.Value) -> Callable[[Env], Any]:
        if isinstance(value, ast.Name) and value.text in self.vocab.attributes:
            self.reads.add(value.text)
            return self.exprs.words(value.text)
        if isinstance(value, ast.Name):
            return _Constant(value.text)
        if isinstance(value, ast.DateLit):
            return _Constant(value.value.isoformat())
        return _Constant(value.value)

    # --- helpers ------------------------------------------------------------------

    def _expr(self, expr: ast.Expr) -> tuple[Test, tuple[str, ...], tuple[str, ...]]:
        try:
            test, reads, asks = self.exprs.condition(expr)
        except NameLookupError as exc:
            raise CompileError(exc.message, getattr(expr, "span", None), exc.help) from None
        self.reads.update(reads, asks)
        return test, reads, asks

    def _accepts(self, kind: ast.ClauseKind, values: tuple[ast.Name, ...]) -> frozenset[str]:
        if kind is ast.ClauseKind.ACTION:
            for value in values:
                self._resolve("action", value)
            return frozenset(v.text for v in values)
        if kind in (ast.ClauseKind.AGENCY, ast.ClauseKind.OWNER):
            found: set[str] = set()
            for value in values:
                try:
                    found |= self.vocab.agencies_named(value.text)
                except NameLookupError as exc:
                    raise CompileError(exc.message, value.span, exc.help) from None
            return frozenset(found)
        tree = self.vocab.roles if kind is ast.ClauseKind.ROLE else self.vocab.purposes
        return frozenset().union(*(self._below(tree, v) for v in values))

    def _below(self, tree: Hierarchy, name: ast.Name) -> frozenset[str]:
        below: frozenset[str] = tree.descendants[self._resolve(tree.kind, name)]
        return below

    def _resolve(self, kind: str, name: ast.Name) -> str:
        try:
            return self.vocab.resolve(kind, name.text)
        except NameLookupError as exc:
            raise CompileError(exc.message, name.span, exc.help) from None

    def _rank(self, name: ast.Name) -> int:
        return self.vocab.classifications[self._resolve("classification", name)]

    def _agreement(self, name: ast.Name) -> str:
        if name.text not in self.vocab.agreements:
            raise CompileError(f"unknown agreement `{name.text}`", name.span)
        return name.text

    # --- the index ----------------------------------------------------------------

    def _what_accepts(self, compiled: CompiledClause) -> Any:
        clause = compiled.clause
        if isinstance(clause, ast.DataClause):
            categories = None
            if clause.categories:
                categories = frozenset().union(*(self._below(self.vocab.categories, c) for c in clause.categories))
            limit = None if clause.up_to is None else self._rank(clause.up_to)
            return categories, limit
        assert isinstance(clause, ast.MatchClause)  # only data and match clauses are indexed
        if clause.kind is ast.ClauseKind.UNDER:
            return tuple(v.text for v in clause.values)
        return self._accepts(clause.kind, clause.values)

    def _dimension(self, position: _Position, everyone: int) -> Dimension:
        kind = position.name[0]
        if kind == "under":
            return Dimension(position.name, (), _UnderIndex(self.vocab, position.accepts, everyone))
        if kind == "data":
            categories = {i: a[0] for i, a in position.accepts.items() if a[0] is not None}
            limits = {i: a[1] for i, a in position.accepts.items() if a[1] is not None}
            lookups = []
            if categories:
                lookups.append(("resource.category", _table(self.vocab.categories.names, categories, everyone)))
            if limits:
                ranks = range(len(self.vocab.classifications))
                accepts = {i: frozenset(r for r in ranks if r <= limit) for i, limit in limits.items()}
                lookups.append(("resource.classification", _table(ranks, accepts, everyone)))
            return Dimension(position.name, tuple(lookups))
        path = position.paths[0]
        domain = self.vocab.values_of(_KIND_OF_PATH[path])
        return Dimension(position.name, ((path, _table(domain, position.accepts, everyone)),))


@dataclass(frozen=True, slots=True)
class _Constant:
    """An obligation argument that does not depend on the request."""

    value: Any

    def __call__(self, env: Env) -> Any:
        return self.value


def _condition_sets(rules: list[CompiledRule]) -> tuple[tuple[Test, int], ...]:
    sets: dict[tuple[int, int], list[Any]] = {}
    for rule in rules:
        seen: dict[int, int] = {}
        for test in rule.conditions:
            occurrence = seen.get(id(test), 0)
            seen[id(test)] = occurrence + 1
            sets.setdefault((id(test), occurrence), [test]).append(rule.index)
    return tuple((test, mask_of(indices)) for test, *indices in sets.values())


# The most value combinations one precomputed table of the index may hold (see _selector).
_COMBINATIONS = 1024


def _selector(lookups: tuple[tuple[str, dict[Any, int]], ...], unders: tuple[_UnderIndex, ...],
              everyone: int) -> Callable[[Env], int]:
    """`candidates(env)`: the AND of every lookup's bitset, then of each `under` position's.

    On a large set each AND of two bitsets costs more than a dict lookup, so
    consecutive lookups are combined into nested tables holding the AND for
    every combination of their values (up to _COMBINATIONS of them): a request
    then does one AND per table, `T0[action][role][purpose] & T1[category][...]`.
    """
    by_path: dict[str, dict[Any, int]] = {}  # two positions reading one attribute: one table
    for path, table in lookups:
        found = by_path.get(path)
        by_path[path] = table if found is None else {v: found[v] & bits for v, bits in table.items()}
    groups: list[list[tuple[str, dict[Any, int]]]] = []
    combinations = 0
    for path, table in by_path.items():
        if groups and combinations * len(table) <= _COMBINATIONS:
            groups[-1].append((path, table))
            combinations *= len(table)
        else:
            groups.append([(path, table)])
            combinations = len(table)
    namespace: dict[str, Any] = {"_EVERYONE": everyone}
    terms = []
    for n, group in enumerate(groups):
        namespace[f"_T{n}"] = _nested(everyone, group)
        terms.append(f"_T{n}" + "".join(f"[env[{path!r}]]" for path, _ in group))
    lines = ["def candidates(env):", f"    bits = {' & '.join(terms) or '_EVERYONE'}"]
    for n, under in enumerate(unders):
        namespace[f"_U{n}"] = under.hold
        lines += ["    if bits:", f"        bits &= _U{n}(env)"]
    lines.append("    return bits")
    candidates: Callable[[Env], int] = define("candidates", lines, namespace)
    return candidates


def _nested(bits: int, group: list[tuple[str, dict[Any, int]]]) -> Any:
    """value -> (value -> ...) -> `bits` ANDed with each lookup's bitset for those values."""
    (_, table), *rest = group
    if not rest:
        return {value: bits & found for value, found in table.items()}
    return {value: _nested(bits & found, rest) for value, found in table.items()}


def _table(domain: Iterable[Any], accepts: dict[int, frozenset[Any]], everyone: int) -> dict[Any, int]:
    """value -> bitset of rules whose clause accepts it, plus every rule without the clause."""
    base = everyone ^ mask_of(accepts)
    # Rules accepting the same values (every category under one node, say) are many:
    # each distinct set of values is gone through once.
    alike: dict[frozenset[Any], list[int]] = {}
    for index, accepted in accepts.items():
        alike.setdefault(accepted, []).append(index)
    by_value: dict[Any, list[int]] = {value: [] for value in domain}
    for accepted, indices in alike.items():
        for value in accepted:
            if value in by_value:
                by_value[value] += indices
    return {value: base | mask_of(indices) for value, indices in by_value.items()}


__all__ = [
    "RAW",
    "SUMMARY_PATHS",
    "CompileError",
    "CompiledClause",
    "CompiledObligation",
    "CompiledPolicy",
    "CompiledRule",
    "Dimension",
    "compile_policy",
]
