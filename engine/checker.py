"""Static checks: named passes over a policy set, collecting every diagnostic.

`check()` resolves the vocabulary (symbols.py records what was declared, first
declaration winning) and then runs PASSES in order. Each pass takes a Context
and returns its diagnostics, so a pass can be tested alone; none stops the
others, so an author sees every mistake at once, sorted by location.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from engine import ast, clock, reuse
from engine._graph import cycles
from engine._types import ExprChecker, declared_as, declared_kinds, kind_word
from engine.analysis import analyse
from engine.errors import Diagnostic, did_you_mean, error, sorted_diagnostics, warning
from engine.source import Span, point
from engine.symbols import ATTRIBUTE_ROOTS, NameLookupError, Vocabulary, build_vocabulary


@dataclass(frozen=True)
class Context:
    """What every pass sees: the set, its vocabulary, and today's date."""

    policy_set: ast.PolicySet
    vocab: Vocabulary
    today: dt.date = field(default_factory=clock.today)

    @classmethod
    def of(cls, policy_set: ast.PolicySet, today: dt.date | None = None) -> Context:
        return cls(policy_set, build_vocabulary(policy_set), today or clock.today())


Pass = Callable[[Context], list[Diagnostic]]
T = TypeVar("T")


# --- declarations -------------------------------------------------------------


def check_header(ctx: Context) -> list[Diagnostic]:
    """At most one `policy` header in a set."""
    headers = [d for d in ctx.policy_set.declarations() if isinstance(d, ast.PolicyHeader)]
    return [
        error("second_header", "the `policy` header is given twice", _keyword(h.span, "policy"),
              f"first given at {headers[0].span}; a policy set has at most one header")
        for h in headers[1:]
    ]


def check_classifications(ctx: Context) -> list[Diagnostic]:
    """One `classifications` line: two would leave their relative order unsaid."""
    lines = [d for d in ctx.policy_set.declarations() if isinstance(d, ast.ClassificationsDecl)]
    return [
        error("second_classifications", "classifications are declared twice", _keyword(d.span, "classifications"),
              f"first declared at {lines[0].span}; list every level on one line, lowest first")
        for d in lines[1:]
    ]


# Namespaces of names (docs/language.md, "Names"); agencies and groups share one.
_NAMESPACE = {"group": "agency"}


def _declared_names(policy_set: ast.PolicySet) -> Iterator[tuple[str, str, ast.Name]]:
    """(kind, full name, name node) of every declaration, in set order."""
    for decl in policy_set.declarations():
        match decl:
            case ast.Rule():
                yield "rule", decl.id.text, decl.id
            case ast.ActionsDecl():
                yield from (("action", i.name.text, i.name) for i in decl.items)
            case ast.RolesDecl():
                yield from (("role", i.name.text, i.name) for i in decl.items)
            case ast.PurposesDecl():
                yield from (("purpose", full, name) for full, name in _tree_names(decl.nodes, ""))
            case ast.CategoriesDecl():
                yield from (("category", full, name) for full, name in _tree_names(decl.nodes, ""))
            case ast.ClassificationsDecl():
                yield from (("classification", i.name.text, i.name) for i in decl.levels)
            case ast.AgenciesDecl():
                yield from (("agency", i.name.text, i.name) for i in decl.items)
            case ast.GroupDecl():
                yield "group", decl.name.text, decl.name
            case ast.AgreementDecl():
                yield "agreement", decl.name.text, decl.name
            case ast.AttributesDecl():
                yield from (("attribute", i.path.text, i.path) for i in decl.items)


def _tree_names(nodes: Iterable[ast.TreeNode], prefix: str) -> Iterator[tuple[str, ast.Name]]:
    for node in nodes:
        full = prefix + node.name.text
        yield full, node.name
        yield from _tree_names(node.children, full + ".")


def check_duplicates(ctx: Context) -> list[Diagnostic]:
    """A name declared twice in its namespace: point at the second, name the first."""
    first: dict[tuple[str, str], tuple[str, Span]] = {}
    repeated: set[tuple[str, str]] = set()
    found: list[Diagnostic] = []
    for kind, full, name in _declared_names(ctx.policy_set):
        key = (_NAMESPACE.get(kind, kind), full)
        if key not in first:
            first[key] = (kind, name.span)
            continue
        repeated.add(key)
        if (key[0], full.rpartition(".")[0]) in repeated:
            continue  # below a repeated tree node: that one report covers it
        first_kind, first_span = first[key]
        if first_kind == kind:
            message = f"{kind} `{full}` is declared twice"
        else:
            message = f"{kind} `{full}` has the same name as {_ARTICLE[first_kind]} {first_kind}"
        found.append(error("duplicate_name", message, name.span, f"first declared at {first_span}"))
    return found


_ARTICLE = {"agency": "an", "group": "a"}


def check_roles(ctx: Context) -> list[Diagnostic]:
    """Role parents are declared roles, inheritance has no cycle, and `at` names agencies or groups."""
    found: list[Diagnostic | None] = []
    for decl in _of_type(ctx, ast.RolesDecl):
        for item in decl.items:
            found.extend(_lookup(ctx, "role", parent) for parent in item.parents)
            found.extend(_repeats(item.places))
            found.extend(_lookup(ctx, "agency_or_group", place) for place in item.places)
    found.extend(_held_nowhere(ctx))
    roles = ctx.vocab.roles
    edges = {name: [p for p in roles.parents[name] if p in roles.labels] for name in roles.names}
    for cycle in cycles(roles.names, edges):
        found.append(error("role_cycle", "role inheritance forms a cycle: " + " -> ".join(cycle),
                           roles.spans[cycle[0]], "remove one of these parents"))
    return [d for d in found if d is not None]


def _held_nowhere(ctx: Context) -> Iterator[Diagnostic]:
    """A role whose `at` shares no agency with a parent's can never be held: surely a slip."""
    vocab = ctx.vocab
    for role, places in vocab.places.items():
        if not places and role in vocab.role_at:
            names = [r for r in vocab.roles.ancestors[role] if r in vocab.role_at and r != role]
            if not names:
                continue  # its own `at` names nothing declared: reported as unknown names
            yield warning("role_held_nowhere", f"role `{role}` can be held at no agency", vocab.roles.spans[role],
                          f"its `at` shares no agency with that of {', '.join(f'`{n}`' for n in sorted(names))}")


def check_groups(ctx: Context) -> list[Diagnostic]:
    """Group members are agencies or groups; a group never contains itself."""
    found: list[Diagnostic | None] = []
    decls = list(_of_type(ctx, ast.GroupDecl))
    for decl in decls:
        if not decl.members:
            found.append(warning("empty_group", f"group `{decl.name.text}` has no members", decl.name.span,
                                 "list its agencies, or remove the group"))
        found.extend(_repeats(decl.members))
        found.extend(_lookup(ctx, "agency_or_group", member) for member in decl.members)
    edges: dict[str, list[str]] = {}
    spans: dict[str, Span] = {}
    for decl in decls:
        if decl.name.text not in edges:
            edges[decl.name.text] = [m.text for m in decl.members if m.text in ctx.vocab.groups]
            spans[decl.name.text] = decl.name.span
    for cycle in cycles(list(edges), edges):
        where = "" if len(cycle) == 2 else ": " + " -> ".join(cycle)
        found.append(error("group_cycle", f"group `{cycle[0]}` contains itself{where}", spans[cycle[0]],
                           "a group lists agencies and other groups, never itself"))
    return [d for d in found if d is not None]


def check_attributes(ctx: Context) -> list[Diagnostic]:
    """Declared attributes: where they live, their choices, their defaults."""
    found: list[Diagnostic | None] = []
    for decl in _of_type(ctx, ast.AttributesDecl):
        for item in decl.items:
            found.extend(_attribute(ctx, item))
    return [d for d in found if d is not None]


def _attribute(ctx: Context, item: ast.AttributeDecl) -> Iterator[Diagnostic | None]:
    path = item.path.text
    known = ctx.vocab.attributes.get(path)
    if path.split(".", 1)[0] not in ATTRIBUTE_ROOTS:
        yield error("bad_attribute_path", f"attribute `{path}` must start with `requester.`, `resource.` or `context.`",
                    item.path.span, "attributes describe the requester, the resource or the context of a request")
    elif known is not None and known.builtin:
        builtins = ", ".join(f"`{a.path}`" for a in ctx.vocab.attributes.values() if a.builtin)
        yield error("builtin_attribute", f"`{path}` is built in and cannot be declared", item.path.span,
                    f"the built-in attributes are {builtins}")
    type_ = item.type.element or item.type
    if item.type.kind == "set" and type_.kind == "bool":
        yield error("set_of_bool", f"`{path}` cannot be a set of true/false values", item.type.span,
                    "declare one `bool` attribute per fact instead")
    if type_.kind == "one_of":
        if not type_.values:
            yield error("empty_choice", "`one of` lists no values", type_.span, "list the values it may take")
        yield from _repeats([v.name for v in type_.values])
    if item.default is not None:
        yield from _set_default(ctx, item) if item.type.kind == "set" else (_default(ctx, item),)


_DEFAULT_LITERALS = {"bool": ast.BoolLit, "number": ast.NumberLit, "string": ast.StringLit, "date": ast.DateLit}
_DEFAULT_EXAMPLES = {"bool": "false", "number": "0", "string": '"none"', "date": "2025-06-01"}


def _set_default(ctx: Context, item: ast.AttributeDecl) -> Iterator[Diagnostic | None]:
    """A set's default is `{}` or `{a, b}`, each member a value of the members' type."""
    element = item.type.element
    if not isinstance(item.default, ast.SetLit):
        where = item.default.span if item.default is not None else item.path.span
        yield error("bad_default", f"the default of `{item.path.text}` must be a set", where,
                    "write `default {}` for none, or `default {a, b}`")
        return
    if element is None or element.kind == "bool":
        return
    yield from _repeats([v for v in item.default.values if isinstance(v, ast.Name)])
    for value in item.default.values:
        yield _default(ctx, ast.AttributeDecl(item.path, element, value, item.span))


def _default(ctx: Context, item: ast.AttributeDecl) -> Diagnostic | None:
    kind, default, path = item.type.kind, item.default, item.path.text
    if isinstance(default, ast.SetLit):
        return error("bad_default", f"`{path}` holds one value, not a set", default.span,
                     "write a single value, or declare it `set of …`")
    if kind in _DEFAULT_LITERALS:
        if isinstance(default, _DEFAULT_LITERALS[kind]):
            return None
        what = "true or false" if kind == "bool" else f"a {kind}"
        return error("bad_default", f"the default of `{path}` must be {what}", default.span if default else None,
                     f"for example `default {_DEFAULT_EXAMPLES[kind]}`")
    if not isinstance(default, ast.Name):
        return error("bad_default", f"the default of `{path}` must be a name, not a literal",
                     default.span if default else None,
                     "write the value without quotes")
    if kind == "one_of":
        choices = [v.name.text for v in item.type.values]
        if default.text in choices:
            return None
        listed = ", ".join(f"`{c}`" for c in choices)
        return error("unknown_value", f"unknown value `{default.text}` for `{path}`", default.span,
                     did_you_mean(default.text, choices) or f"`{path}` is one of {listed}")
    return _lookup(ctx, kind, default)


def check_agreements(ctx: Context) -> list[Diagnostic]:
    """Agreements name declared agencies, one way or two, over a sensible period."""
    found: list[Diagnostic | None] = []
    for decl in _of_type(ctx, ast.AgreementDecl):
        found.extend(_agreement_shape(decl))
        for names in (decl.parties, decl.sources, decl.recipients):
            found.extend(_repeats(names or ()))
            found.extend(_lookup(ctx, "agency_or_group", name) for name in names or ())
        found.extend(_agreement_dates(ctx, decl))
    return [d for d in found if d is not None]


def _agreement_shape(decl: ast.AgreementDecl) -> Iterator[Diagnostic]:
    name, span = decl.name.text, decl.name.span
    one_way = "a one-way agreement names who discloses (`from`) and who receives (`to`)"
    if decl.parties is not None and (decl.sources is not None or decl.recipients is not None):
        yield error("agreement_agencies", f"agreement `{name}` has both `parties` and `from`/`to`", span,
                    "use `parties` for two-way sharing, or `from` and `to` for one way, not both")
    elif decl.parties is None and decl.sources is None and decl.recipients is None:
        yield error("agreement_agencies", f"agreement `{name}` names no agencies", span,
                    "add `parties` for two-way sharing, or `from` and `to` for one way")
    elif decl.parties is None and decl.recipients is None:
        yield error("agreement_agencies", f"agreement `{name}` has `from` but no `to`", span, one_way)
    elif decl.parties is None and decl.sources is None:
        yield error("agreement_agencies", f"agreement `{name}` has `to` but no `from`", span, one_way)


def _agreement_dates(ctx: Context, decl: ast.AgreementDecl) -> Iterator[Diagnostic]:
    valid = decl.valid
    if valid is None:
        return
    start, end = valid.start.value, valid.end.value
    if end < start:
        yield error("agreement_dates", f"agreement `{decl.name.text}` ends before it starts", valid.span,
                    f"write the start date first: `valid {end.isoformat()} to {start.isoformat()}`")
    elif end < ctx.today:
        yield warning("agreement_expired", f"agreement `{decl.name.text}` expired on {end.isoformat()}",
                      valid.end.span, "rules under it no longer apply; renew its `valid` dates or remove it")


# --- rules ---------------------------------------------------------------------

_CLAUSE_KINDS = {
    ast.ClauseKind.ACTION: "action",
    ast.ClauseKind.ROLE: "role",
    ast.ClauseKind.AGENCY: "agency_or_group",
    ast.ClauseKind.PURPOSE: "purpose",
    ast.ClauseKind.OWNER: "agency_or_group",
    ast.ClauseKind.UNDER: "agreement",
}


def check_rule_names(ctx: Context) -> list[Diagnostic]:
    """Every name a rule clause lists is declared, of the right kind, once."""
    return [d for found in _each_rule(ctx, "rule_names", _rule_names) for d in found]


def _rule_names(ctx: Context, rule: ast.Rule) -> list[Diagnostic]:
    found: list[Diagnostic | None] = []
    for clause in rule.clauses:
        if isinstance(clause, ast.MatchClause):
            found.extend(_repeats(clause.values))
            found.extend(_lookup(ctx, _CLAUSE_KINDS[clause.kind], v) for v in clause.values)
        elif isinstance(clause, ast.DataClause):
            found.extend(_repeats(clause.categories))
            found.extend(_lookup(ctx, "category", c) for c in clause.categories)
            if clause.up_to is not None:
                found.append(_up_to(ctx, clause.up_to))
    return [d for d in found if d is not None]


def _up_to(ctx: Context, name: ast.Name) -> Diagnostic | None:
    vocab = ctx.vocab
    if name.text in vocab.classifications:
        return None
    kinds = declared_kinds(vocab, name.text, "classification")
    levels = ", ".join(f"`{c}`" for c in vocab.classifications) or "none are declared"
    if kinds:
        return error("not_a_classification",
                     f"`up to` needs a classification, but `{name.text}` is {kind_word(kinds[0])}",
                     name.span, f"the classifications, lowest first: {levels}")
    return _lookup(ctx, "classification", name)


def check_expressions(ctx: Context) -> list[Diagnostic]:
    """Type-check every condition and obligation argument against the schema.

    Runs after the attribute pass: it trusts the declared types even when a
    default was wrong, so one mistake is reported once. Conditions come first,
    then policy-wide obligations, then the rules' obligations.
    """
    per_rule = _each_rule(ctx, "expressions", _rule_expressions)
    found = [d for conditions, _obligations in per_rule for d in conditions]
    found += _expressions(ctx, [o.obligation for o in ctx.vocab.policy_obligations])
    found += [d for _conditions, obligations in per_rule for d in obligations]
    return found


def _rule_expressions(ctx: Context, rule: ast.Rule) -> tuple[list[Diagnostic], list[Diagnostic]]:
    """A rule's findings in its conditions, and in its obligations."""
    conditions = [c for c in rule.clauses if isinstance(c, ast.ConditionClause)]
    obligations = [c for c in rule.clauses if isinstance(c, ast.ObligationClause)]
    return _expressions(ctx, conditions), _expressions(ctx, obligations)


def _expressions(ctx: Context, clauses: Iterable[ast.ConditionClause | ast.ObligationClause]) -> list[Diagnostic]:
    checker = ExprChecker(ctx.vocab)
    for where, clause in _conditions(clauses):
        try:
            if isinstance(clause, ast.ConditionClause):
                checker.condition(clause.expr, "`unless`" if clause.negated else "`when`")
            else:
                for arg in clause.args:
                    checker.obligation_argument(arg)
        except RecursionError:
            checker.found.append(error("nested_too_deeply", "this condition is nested too deeply", where,
                                       "split it into simpler conditions"))
    return checker.found


def _conditions(
    clauses: Iterable[ast.ConditionClause | ast.ObligationClause],
) -> Iterator[tuple[Span, ast.ConditionClause | ast.ObligationClause]]:
    """Each condition, and each obligation followed by its own condition."""
    for clause in clauses:
        yield clause.span, clause
        if isinstance(clause, ast.ObligationClause) and clause.condition is not None:
            yield clause.condition.span, clause.condition


def check_obligation_needs(ctx: Context) -> list[Diagnostic]:
    """Warn where an obligation may be left undetermined: its condition or an argument reads
    an attribute with no default (one the condition first asks about with `has` is fine)."""
    found = [d for o in ctx.vocab.policy_obligations if (d := _obligation_needs(ctx, o.obligation)) is not None]
    for needs in _each_rule(ctx, "obligation_needs", _rule_obligation_needs):
        found.extend(needs)
    return found


def _rule_obligation_needs(ctx: Context, rule: ast.Rule) -> list[Diagnostic]:
    found = (_obligation_needs(ctx, c) for c in rule.clauses if isinstance(c, ast.ObligationClause))
    return [d for d in found if d is not None]


def _obligation_needs(ctx: Context, obligation: ast.ObligationClause) -> Diagnostic | None:
    attributes = ctx.vocab.attributes
    read: list[ast.Name] = []
    asked: set[str] = set()
    if obligation.condition is not None:
        _names_read(obligation.condition.expr, read, asked)
    read += [a for a in obligation.args if isinstance(a, ast.Name)]
    needs = dict.fromkeys(n.text for n in read if n.text in attributes and n.text not in asked
                          and not attributes[n.text].has_default and not attributes[n.text].required)
    if not needs:
        return None
    names = ", ".join(f"`{n}`" for n in needs)
    return warning(
        "obligation_may_be_undetermined",
        f"obligation `{obligation.name}` reads {names}, which {'has' if len(needs) == 1 else 'have'} "
        f"no default: a request without {'it' if len(needs) == 1 else 'them'} leaves the obligation "
        f"undetermined", obligation.span,
        "give the attribute a default, or ask first with `has`, if the duty must be settled on every request")


def _names_read(node: object, read: list[ast.Name], asked: set[str]) -> None:
    """Names an expression reads, and the paths it asks about with `has`, left to right."""
    if isinstance(node, ast.Has):
        asked.add(node.path.text)
    elif isinstance(node, ast.Name):
        read.append(node)
    elif isinstance(node, tuple):
        for item in node:
            _names_read(item, read, asked)
    elif dataclasses.is_dataclass(node):
        for f in dataclasses.fields(node):
            if f.name != "span":
                _names_read(getattr(node, f.name), read, asked)


_CONDITIONS = (ast.MatchClause, ast.DataClause, ast.ConditionClause)


def check_rule_shape(ctx: Context) -> list[Diagnostic]:
    """Warnings a reviewer would give: no rationale, two rationales, no conditions."""
    return [d for found in _each_rule(ctx, "rule_shape", _rule_shape) for d in found]


def _rule_shape(_ctx: Context, rule: ast.Rule) -> list[Diagnostic]:
    found = []
    name = rule.id.text
    because = [c for c in rule.clauses if isinstance(c, ast.BecauseClause)]
    if not any(c.text.strip() for c in because):
        found.append(warning("missing_because", f"rule `{name}` has no `because`", rule.id.span,
                             'add `because "…"` with the law or agreement clause it rests on'))
    for extra in because[1:]:
        found.append(warning("second_because", f"rule `{name}` has more than one `because`", extra.span,
                             "join the reasons into one `because`"))
    if not any(isinstance(c, _CONDITIONS) for c in rule.clauses):
        found.append(warning("applies_to_all", f"rule `{name}` has no conditions: it applies to every request",
                             rule.id.span, "add clauses such as `action`, `role`, `purpose` or `when`"))
    return found


# --- helpers -------------------------------------------------------------------

_DECLARE = {
    "action": "declare it in `actions { … }`",
    "role": "declare it in `roles { … }`",
    "purpose": "declare it in `purposes { … }`",
    "category": "declare it in `categories { … }`",
    "classification": "declare it in the `classifications` line",
    "agency": "declare it in `agencies { … }`",
    "agency_or_group": "declare it in `agencies { … }` or as a `group`",
    "agreement": "declare it with `agreement NAME { … }`",
}


def _lookup(ctx: Context, kind: str, name: ast.Name) -> Diagnostic | None:
    """None when `name` resolves as `kind`, else the diagnostic that says why not."""
    vocab = ctx.vocab
    try:
        if kind == "agency_or_group":
            vocab.agencies_named(name.text)
        elif kind == "agreement":
            if name.text not in vocab.agreements:
                raise NameLookupError(f"unknown agreement `{name.text}`", did_you_mean(name.text, vocab.agreements))
        else:
            vocab.resolve(kind, name.text)
        return None
    except NameLookupError as exc:
        if exc.candidates:
            return error("ambiguous_name", exc.message, name.span, exc.help)
        unlike = "agency" if kind == "agency_or_group" else kind
        hint = exc.help or declared_as(vocab, name.text, unlike) or _DECLARE[kind]
        return error("unknown_name", exc.message, name.span, hint)


def _repeats(names: Iterable[ast.Name]) -> Iterator[Diagnostic]:
    seen: set[str] = set()
    for name in names:
        if name.text in seen:
            yield warning("repeated_value", f"`{name.text}` is listed twice", name.span, "remove one")
        seen.add(name.text)


def _each_rule(ctx: Context, stage: str, check_one: Callable[[Context, ast.Rule], T]) -> list[T]:
    """`check_one` for every rule, in order; a rule's findings are kept for the next load of
    the set while the rule and the vocabulary stay the same (engine/reuse.py)."""
    return reuse.each(stage, ctx.vocab.basis, ctx.vocab.rules, lambda rule: check_one(ctx, rule))


def _of_type(ctx: Context, kind: type) -> Iterator[Any]:
    return (d for d in ctx.policy_set.declarations() if isinstance(d, kind))


def _keyword(span: Span, word: str) -> Span:
    return point(span.source, span.line, span.column, len(word))


def _analysis(ctx: Context) -> list[Diagnostic]:
    """Rule analysis (engine/analysis.py); check() skips it when earlier passes found errors."""
    return list(analyse(ctx.policy_set, ctx.vocab, today=ctx.today))


# --- the passes, in order -------------------------------------------------------

PASSES: list[tuple[str, Pass]] = [
    # Declarations first: each stands alone, so their order does not matter.
    ("header", check_header),
    ("duplicates", check_duplicates),
    ("classifications", check_classifications),
    # Roles and groups refer to other declarations; cycles are looked for only
    # among declared names, so an unknown parent is reported once, as unknown.
    ("roles", check_roles),
    ("groups", check_groups),
    # Attribute defaults and agreement parties use the declared vocabulary.
    ("attributes", check_attributes),
    ("agreements", check_agreements),
    # Rules last: they use everything above. Expressions trust the attribute
    # schema even where a default was wrong, so each mistake is reported once.
    ("rule_names", check_rule_names),
    ("expressions", check_expressions),
    ("rule_shape", check_rule_shape),
    ("obligation_needs", check_obligation_needs),
    # Rule analysis (overlaps, shadowed and unreachable rules) runs after
    # everything else and only on a set without errors: see _analysis below.
    ("analysis", _analysis),
]


def check(
    policy_set: ast.PolicySet, *, today: dt.date | None = None, analysis: bool = True
) -> tuple[Vocabulary, list[Diagnostic]]:
    """Resolve the vocabulary and run every pass; diagnostics sorted by location.

    Rule analysis runs last and only when no pass found an error; pass
    `analysis=False` to skip it (it is much slower than the checks on large sets).
    """
    ctx = Context.of(policy_set, today)
    found: list[Diagnostic] = []
    for name, run in PASSES:
        if name == "analysis" and (not analysis or any(d.is_error for d in found)):
            continue
        found.extend(run(ctx))
    return ctx.vocab, sorted_diagnostics(found)
