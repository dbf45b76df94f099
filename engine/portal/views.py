"""What each portal page shows, as plain data for its template: no HTML is made here."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine import ast
from engine.errors import Diagnostic, RequestError
from engine.governance.changes import Change
from engine.governance.document import Para, describe, inline_html
from engine.governance.matrix import (
    ContextError,
    Version,
    build_matrix,
    parse_context,
    render_matrix,
    version_of,
)
from engine.governance.table import COLUMNS, Legend, row_cells, show_obligations
from engine.governance.terms import DIMENSION_KINDS, DIMENSIONS
from engine.policy import Policy
from engine.portal.source import PortalState
from engine.symbols import Agreement, Attribute, NameLookupError, Vocabulary

EXPIRY_WARNING_DAYS = 90


# --- shared pieces ------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """A diagnostic in plain words: where, what, and how to fix it."""

    where: str
    message: str
    help: str | None
    snippet: str | None


def problem_of(diagnostic: Diagnostic) -> Problem:
    span = diagnostic.span
    return Problem(str(span) if span is not None else "", diagnostic.message, diagnostic.help,
                   span.snippet() if span is not None else None)


@dataclass(frozen=True)
class Choice:
    value: str
    text: str


def _label(name: str, label: str | None) -> str:
    return f"{label} ({name})" if label else name


def vocabulary_choices(vocab: Vocabulary) -> dict[str, list[Choice]]:
    """Pick-lists for each dimension, in declaration order, worded with labels."""
    trees = {"role": vocab.roles, "purpose": vocab.purposes, "category": vocab.categories}
    choices: dict[str, list[Choice]] = {}
    for path, kind in DIMENSION_KINDS.items():
        tree = trees.get(kind)
        if tree is not None:
            choices[path] = [Choice(n, _label(n, tree.labels.get(n))) for n in tree.names]
        elif kind == "agency":
            choices[path] = [Choice(n, _label(n, label)) for n, label in vocab.agencies.items()]
        elif kind == "action":
            choices[path] = [Choice(n, _label(n, label)) for n, label in vocab.actions.items()]
        else:
            ranked = sorted(vocab.classifications, key=vocab.classifications.__getitem__)
            choices[path] = [Choice(n, n) for n in ranked]
    return choices


# --- overview -----------------------------------------------------------------------------


@dataclass(frozen=True)
class AgreementRow:
    name: str
    title: str | None
    parties: str
    validity: str
    status: str
    attention: bool  # expired, or expiring within EXPIRY_WARNING_DAYS


@dataclass(frozen=True)
class Overview:
    title: str
    label: str | None
    version: str | None
    read_at: dt.datetime
    path: str
    files: list[tuple[str, int]]
    permits: int
    denies: int
    combine: str | None
    errors: list[Problem]
    warnings: list[Problem]
    agreements: list[AgreementRow]
    problem: str | None


def _agencies_text(vocab: Vocabulary, names: frozenset[str] | None) -> str:
    if not names:
        return "nobody"
    return ", ".join(_label(n, vocab.agencies.get(n)) for n in vocab.agencies if n in names)


def agreement_row(vocab: Vocabulary, agreement: Agreement, today: dt.date) -> AgreementRow:
    if agreement.parties is not None:
        parties = "shared both ways between " + _agencies_text(vocab, agreement.parties)
    else:
        parties = (f"from {_agencies_text(vocab, agreement.sources)} "
                   f"to {_agencies_text(vocab, agreement.recipients)}")
    start, end = agreement.start, agreement.end
    if start is None or end is None:
        return AgreementRow(agreement.name, agreement.title, parties, "no date limit", "in force", False)
    validity = f"{start.isoformat()} to {end.isoformat()}"
    if end < today:
        return AgreementRow(agreement.name, agreement.title, parties, validity,
                            f"expired on {end.isoformat()}", True)
    if start > today:
        return AgreementRow(agreement.name, agreement.title, parties, validity,
                            f"not yet in force: starts on {start.isoformat()}", False)
    left = (end - today).days
    if left <= EXPIRY_WARNING_DAYS:
        days = "1 day" if left == 1 else f"{left} days"
        return AgreementRow(agreement.name, agreement.title, parties, validity,
                            f"expires in {days}, on {end.isoformat()}", True)
    return AgreementRow(agreement.name, agreement.title, parties, validity, "in force", False)


def overview(state: PortalState, today: dt.date) -> Overview:
    policy = state.policy
    errors = [problem_of(d) for d in state.errors]
    warnings = [problem_of(d) for d in state.diagnostics if not d.is_error]
    if policy is None:
        return Overview("Policy set not loaded", None, None, state.read_at, state.path, [], 0, 0, None,
                        errors, warnings, [], state.problem)
    rules = policy.rules
    per_file: dict[str, int] = {path: 0 for path in policy.files}
    for rule in rules:
        per_file[rule.span.path] = per_file.get(rule.span.path, 0) + 1
    permits = sum(1 for r in rules if r.effect is ast.Effect.PERMIT)
    vocab = policy.vocabulary
    agreements = [agreement_row(vocab, a, today) for a in vocab.agreements.values()]
    return Overview(policy.title or "Untitled policy set", policy.label, policy.version, state.read_at,
                    state.path, list(per_file.items()), permits, len(rules) - permits, vocab.combine.value,
                    errors, warnings, agreements, None)


# --- rules --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleCard:
    id: str
    effect: str
    description: str | None
    because: list[str]
    file: str
    line: int
    text: str
    reading: str  # the plain-English paragraph, as HTML made by engine doc's writer


@dataclass(frozen=True)
class RuleFilters:
    text: str = ""
    agency: str = ""
    role: str = ""
    purpose: str = ""
    category: str = ""

    @property
    def any(self) -> bool:
        return any((self.text, self.agency, self.role, self.purpose, self.category))


def _source_text(rule: ast.Rule) -> str:
    span = rule.span
    return "\n".join(span.source.line(n) for n in range(span.line, span.end_line + 1))


def _values(rule: ast.Rule, kind: ast.ClauseKind) -> list[list[str]] | None:
    """Each clause of `kind`'s values; None when the rule has no such clause (no limit)."""
    found = [[n.text for n in c.values] for c in rule.clauses if isinstance(c, ast.MatchClause) and c.kind is kind]
    return found or None


def _tree_related(vocab: Vocabulary, kind: str, chosen: str, named: list[str]) -> bool:
    tree = vocab.hierarchy(kind)
    assert tree is not None
    for name in named:
        try:
            node = tree.resolve(name)
        except NameLookupError:  # a name the checker accepted always resolves; be lenient all the same
            continue
        if chosen in tree.descendants.get(node, ()) or node in tree.descendants.get(chosen, ()):
            return True
    return False


def _agencies_of(vocab: Vocabulary, names: list[str]) -> frozenset[str]:
    found: set[str] = set()
    for name in names:
        found |= vocab.groups.get(name, frozenset((name,)))
    return frozenset(found)


def rule_matches(rule: ast.Rule, vocab: Vocabulary, filters: RuleFilters, text: str) -> bool:
    """Whether a rule can concern the chosen values (a rule that does not limit a value concerns all)."""
    if filters.text and filters.text.casefold() not in text.casefold():
        return False
    checks = ((filters.role, ast.ClauseKind.ROLE, "role"), (filters.purpose, ast.ClauseKind.PURPOSE, "purpose"))
    for chosen, kind, tree_kind in checks:
        clauses = _values(rule, kind) if chosen else None
        if clauses and not all(_tree_related(vocab, tree_kind, chosen, names) for names in clauses):
            return False
    if filters.category:
        data = [[n.text for n in c.categories] for c in rule.clauses if isinstance(c, ast.DataClause) and c.categories]
        if data and not all(_tree_related(vocab, "category", filters.category, names) for names in data):
            return False
    agencies = _values(rule, ast.ClauseKind.AGENCY) if filters.agency else None
    return not agencies or all(filters.agency in _agencies_of(vocab, names) for names in agencies)


def rules_page(policy: Policy, filters: RuleFilters) -> list[RuleCard]:
    _title, blocks = describe(policy.policy_set, policy.vocabulary)
    readings = {b.anchor: b for b in blocks if isinstance(b, Para) and b.anchor}
    cards = []
    for rule in policy.rules:
        text = _source_text(rule)
        searchable = " ".join([rule.id.text, rule.description or "", text])
        if not rule_matches(rule, policy.vocabulary, filters, searchable):
            continue
        para = readings.get(f"rule-{rule.id.text}")
        reading = inline_html(para.inline) if para is not None else ""
        because = [c.text for c in rule.clauses if isinstance(c, ast.BecauseClause)]
        cards.append(RuleCard(rule.id.text, rule.effect.value, rule.description, because, rule.span.path,
                              rule.span.line, text, reading))
    return cards


# --- who can see what ---------------------------------------------------------------------


@dataclass(frozen=True)
class MatrixRow:
    cells: list[str]
    rules: list[str]
    obligations: str


@dataclass
class MatrixPage:
    headers: list[str]
    rows: list[MatrixRow] = field(default_factory=list)
    facts: str = ""
    error: str | None = None
    csv: str = ""


# Filter fields of the matrix page and the dimension each restricts.
MATRIX_FILTERS = {"agency": "requester.agency", "role": "requester.role", "purpose": "purpose",
                  "category": "resource.category"}


def matrix_version(policy: Policy, date: dt.date, filters: Mapping[str, str],
                   context: Mapping[str, str]) -> Version:
    """The policy bound to a date, context values and dimension filters; ContextError for bad values."""
    items = [f"{MATRIX_FILTERS[k]}={v}" for k, v in filters.items() if v and k in MATRIX_FILTERS]
    items += [f"{k}={v}" for k, v in context.items() if v]
    given, restrict = parse_context(policy.vocabulary, items)
    # The page shows a typical request: what is not chosen takes its default.
    return version_of(policy, date, given, restrict, at_defaults=True)


def matrix_page(policy: Policy, date: dt.date, filters: Mapping[str, str], context: Mapping[str, str]) -> MatrixPage:
    headers = [COLUMNS[p] for p in DIMENSIONS] + ["Permitted by", "Obligations"]
    try:
        version = matrix_version(policy, date, filters, context)
    except ContextError as err:
        return MatrixPage(headers, error=str(err).replace("--context ", ""))
    matrix = build_matrix(version)
    legend = Legend(version.vocab)
    rows = [MatrixRow(row_cells(legend, box), list(o.rules), show_obligations(o.obligations, box))
            for box, o in matrix.rows]
    facts = (f"{matrix.permitted:,} of {matrix.cells:,} combinations are permitted on {date.isoformat()}, "
             f"shown in {len(rows):,} row{'s' if len(rows) != 1 else ''}. Everything else is refused.")
    return MatrixPage(headers, rows, facts, csv=render_matrix(matrix, "csv"))


# --- try a request ------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """One input of the request form."""

    name: str  # the request path, also the form field's name
    label: str
    kind: str  # select, date, number, text
    choices: list[Choice] = field(default_factory=list)
    hint: str | None = None
    required: bool = False


BUILTIN_FIELDS = (
    ("requester.role", "Role of the person asking"),
    ("requester.agency", "Their agency"),
    ("action", "What they want to do"),
    ("purpose", "Purpose"),
    ("resource.category", "Kind of data"),
    ("resource.classification", "Classification of the data"),
    ("resource.owner", "Agency that holds the data"),
)


def _attribute_field(vocab: Vocabulary, attribute: Attribute, choices: dict[str, list[Choice]]) -> Field:
    label = attribute.label or attribute.path
    default = attribute.default
    hint = None
    if default is not None:
        hint = f"If left empty: {_default_text(default)}."
    elif not attribute.has_default:
        hint = "Leave empty for 'not given': a rule that needs it cannot apply (deny rules count as applying)."
    kind = attribute.kind
    if kind == "bool":
        return Field(attribute.path, label, "select", [Choice("true", "yes"), Choice("false", "no")], hint)
    if kind == "one_of":
        return Field(attribute.path, label, "select", [Choice(v, v) for v in attribute.values], hint)
    if kind in ("role", "agency", "purpose", "category", "classification", "action"):
        path = next(p for p, k in DIMENSION_KINDS.items() if k == kind)
        return Field(attribute.path, label, "select", choices[path], hint)
    if kind in ("number", "date"):
        return Field(attribute.path, label, kind, hint=hint)
    if kind == "set":  # typed as a list by build_request
        return Field(attribute.path, label, "set", hint=" ".join(filter(None, ["Separate values with commas.", hint])))
    return Field(attribute.path, label, "text", hint=hint)


def _default_text(value: ast.Value | ast.SetLit) -> str:
    if isinstance(value, ast.SetLit):
        return ", ".join(_default_text(v) for v in value.values) or "none"
    if isinstance(value, ast.BoolLit):
        return "yes" if value.value else "no"
    for attribute in ("value", "text", "name"):
        found = getattr(value, attribute, None)
        if found is not None:
            return str(getattr(found, "text", found))
    return str(value)


def request_fields(vocab: Vocabulary) -> list[Field]:
    """The form: who asks, what for, which data; then every declared attribute."""
    choices = vocabulary_choices(vocab)
    fields = [Field(path, label, "select", choices[path], required=True) for path, label in BUILTIN_FIELDS]
    fields.append(Field("context.date", "Date of the request", "date",
                        hint="What-if: any date may be chosen. Empty means today."))
    for attribute in vocab.attributes.values():
        if not attribute.builtin:
            fields.append(_attribute_field(vocab, attribute, choices))
    fields.append(Field("requester.id", "Person's identifier (optional)", "text"))
    fields.append(Field("resource.id", "Record's identifier (optional)", "text"))
    return fields


def full_choice(item: Field, value: str) -> str:
    """A short tree name (`health`) as the pick-list's full one (`special_category.health`), when unique."""
    if not item.choices or any(c.value == value for c in item.choices):
        return value
    found = [c.value for c in item.choices if c.value.endswith("." + value)]
    return found[0] if len(found) == 1 else value


def build_request(fields: Sequence[Field], form: Mapping[str, str], today: dt.date) -> dict[str, Any]:
    """A request from the form's values: empty fields are left out, numbers and yes/no typed."""
    request: dict[str, Any] = {}
    for item in fields:
        raw = (form.get(item.name) or "").strip()
        if not raw:
            if item.name == "context.date":
                raw = today.isoformat()
            else:
                continue
        value: Any = raw
        if item.kind == "number":
            value = _number(raw)  # not a number: the engine names the field and says a number is expected
        elif item.choices and [c.value for c in item.choices] == ["true", "false"]:
            value = raw == "true"
        elif item.kind == "set":  # `direct_care, research`: the members, as a list
            value = [_number(part.strip()) for part in raw.split(",") if part.strip()]
        section, _, name = item.name.rpartition(".")
        target = request.setdefault(section, {}) if section else request
        target[name] = value
    return request


def _number(text: str) -> Any:
    """A number typed in the form (or a set member): a number when it reads as one, else the text."""
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


@dataclass
class Answer:
    """The what-if decision for the form, or the field at fault."""

    decision: Any = None
    error: RequestError | None = None
    test_case: str = ""


def try_request(policy: Policy, request: dict[str, Any]) -> Answer:
    try:
        decision = policy.decide(request, use_cache=False)
    except RequestError as err:
        return Answer(error=err)
    return Answer(decision, test_case=test_case_yaml(request, decision))


def test_case_yaml(request: Mapping[str, Any], decision: Any) -> str:
    """The answer as a case for a `*.test.yaml` file, to paste under `cases:`."""
    import yaml

    reasons = [r.rule for r in decision.reasons]
    case: dict[str, Any] = {"name": f"{decision.decision}: {decision.summary}".rstrip("."),
                            "request": dict(request), "expect": decision.decision}
    if reasons and decision.decision == "permit":
        case["by"] = reasons[0] if len(reasons) == 1 else reasons
    obligations = [o.name for o in decision.obligations if getattr(o, "status", "applies") == "applies"]
    if obligations:
        case["obligations"] = obligations
    undetermined = [o.name for o in decision.obligations if getattr(o, "status", "applies") == "undetermined"]
    if undetermined:
        case["undetermined"] = undetermined
    text: str = yaml.safe_dump([case], sort_keys=False, allow_unicode=True, width=100)
    return text


# --- review a change ----------------------------------------------------------------------


@dataclass
class Review:
    proposed: str
    version: str = ""
    rows: list[dict[str, Any]] = field(default_factory=list)
    changed: int = 0
    cells: int = 0
    rule_changes: list[Change] = field(default_factory=list)  # declarations changed, with their effect
    errors: list[Problem] = field(default_factory=list)
    problem: str | None = None
    summary: str = ""  # what was compared, and whether anything is decided differently
    unsettled: int = 0  # combinations the comparison could not settle (the summary says so)


def review(served: Policy, proposed: Policy, shown: str) -> Review:
    import json

    from engine.governance.diff import build_diff, render_diff

    # Every context value and every date: a change that only matters with consent, or after an
    # agreement ends, is shown too.
    diff = build_diff(version_of(served, None), version_of(proposed, None))
    data = json.loads(render_diff(diff, "json"))
    return Review(shown, proposed.version, data.get("rows", []), data.get("changed", 0), data.get("cells", 0),
                  diff.changes, summary=data.get("summary", ""), unsettled=diff.unsettled)
