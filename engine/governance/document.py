"""Document a policy set in plain English for publishing (`engine doc`).

The set is first described as a small document model - headings, paragraphs
and nested lists of inline pieces - and only then written out as Markdown or
as one self-contained HTML page, so both say exactly the same thing and every
piece of policy text is escaped once, by the writer that knows the format.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from engine import ast
from engine.durations import duration_text
from engine.governance.formatter import value_text
from engine.symbols import Attribute, Hierarchy, NameLookupError, Vocabulary
from engine.wording import count

# --- the document model -----------------------------------------------------------

Piece = tuple[str, str]  # (style, text); style is "text", "code", "strong" or "em"
Inline = list[Piece]


def t(text: str) -> Piece:
    return ("text", text)


def code(text: str) -> Piece:
    return ("code", text)


@dataclass
class Heading:
    level: int
    text: str
    anchor: str


@dataclass
class Para:
    inline: Inline
    anchor: str | None = None
    toc: str | None = None  # listed in the contents under this title


@dataclass
class Item:
    inline: Inline
    children: BulletList | None = None


@dataclass
class BulletList:
    items: list[Item] = field(default_factory=list)
    ordered: bool = False


Block = Heading | Para | BulletList


# --- words for names and values ----------------------------------------------------------


def words(name: str) -> str:
    return name.replace("_", " ")


def _lower_first(label: str) -> str:
    """`Social worker` -> `social worker`; `Caldicott Guardian` and `MASH lead` keep their capitals."""
    if any(ch.isupper() for ch in label[1:]):
        return label
    return label[:1].lower() + label[1:]


def join(parts: list[Inline], last: str = "or") -> Inline:
    """`a, b or c` of inline parts."""
    out: Inline = []
    for i, part in enumerate(parts):
        if i:
            out.append(t(f" {last} " if i == len(parts) - 1 else ", "))
        out.extend(part)
    return out


# Words whose first letter misleads: "a university", "a one-off", "an hour".
_SOUNDS_CONSONANT = ("uni", "use", "usu", "uti", "eu", "one", "once")
_SOUNDS_VOWEL = ("hour", "honest", "honour", "heir")


def _article(text: str) -> str:
    """`a` or `an`, by how the word sounds (as far as its spelling tells)."""
    word = text.lower()
    if word.startswith(_SOUNDS_VOWEL):
        return "an"
    if word.startswith(_SOUNDS_CONSONANT):
        return "a"
    return "an" if word[:1] in ("a", "e", "i", "o", "u") else "a"


def _date(value: dt.date) -> str:
    return f"{value.day} {value:%B %Y}"


# What built-in attributes are called in sentences.
_BUILTIN_WORDS = {
    "requester.role": "the requester's role",
    "requester.agency": "the requester's agency",
    "requester.id": "the requester's id",
    "action": "the action",
    "purpose": "the purpose",
    "resource.category": "the record's category",
    "resource.classification": "the record's classification",
    "resource.owner": "the record's owner",
    "resource.id": "the record's id",
    "context.date": "the date of the request",
}

_HIERARCHY_TAIL = {
    "role": "or a role that inherits from it",
    "purpose": "or a purpose within it",
    "category": "or a category within it",
}


class _Words:
    """Names and expressions of one vocabulary, in words."""

    def __init__(self, vocab: Vocabulary):
        self.vocab = vocab

    # names

    def role(self, name: str) -> str:
        label = self.vocab.roles.labels.get(name)
        return _lower_first(label) if label else words(name)

    def agency(self, name: str) -> str:
        label = self.vocab.agencies.get(name)
        return label if label else words(name)

    def agency_ref(self, name: str) -> str:
        """An agency, or `an agency in the X group`."""
        if name in self.vocab.groups and name not in self.vocab.agencies:
            return f"an agency in the {words(name)} group"
        return self.agency(name)

    def node(self, tree: Hierarchy, name: str) -> str:
        """A purpose or category: its label, or its name as the rule wrote it, in words."""
        label = tree.labels.get(self._resolve(tree, name))
        return label if label else " › ".join(words(part) for part in name.split("."))

    def node_with_tail(self, tree: Hierarchy, name: str, tail: str) -> str:
        full = self._resolve(tree, name)
        below = len(tree.descendants.get(full, ())) > 1
        return self.node(tree, name) + (f" ({tail})" if below else "")

    def classification(self, name: str) -> str:
        return words(name)

    def action(self, name: str) -> str:
        return words(name)

    def agreement(self, name: str) -> str:
        agreement = self.vocab.agreements.get(name)
        if agreement is None:
            return words(name)
        title = agreement.title or words(name)
        return f"{title} ({agreement.reference})" if agreement.reference else title

    @staticmethod
    def _resolve(tree: Hierarchy, name: str) -> str:
        try:
            return tree.resolve(name)
        except NameLookupError:
            return name

    def value(self, kind: str | None, name: str) -> Piece:
        """A bare name compared with an attribute of `kind`."""
        tree = self.vocab.hierarchy(kind) if kind else None
        if kind == "role":
            return t(self.role(name))
        if tree is not None:
            return t(self.node(tree, name))
        if kind == "agency":
            return t(self.agency(name))
        if kind in ("action", "classification"):
            return t(words(name))
        return code(name)

    # expressions

    def kind_of(self, value: ast.Expr) -> str | None:
        if isinstance(value, ast.Name) and value.text in self.vocab.attributes:
            return self.vocab.attributes[value.text].kind
        if isinstance(value, (ast.DateLit, ast.Arithmetic)):
            return "date"
        return None

    def operand(self, value: ast.Expr | ast.SetLit, kind: str | None = None) -> Inline:
        match value:
            case ast.Name(text=text) if text in self.vocab.attributes:
                if text in _BUILTIN_WORDS:
                    return [t(_BUILTIN_WORDS[text])]
                label = self.vocab.attributes[text].label
                if label and self.vocab.attributes[text].kind in ("date", "set"):
                    return [t(f"the {label}")]  # `the date of discharge`, `the purposes consented to`
                return [t(_lower_first(label))] if label else [code(text)]
            case ast.Arithmetic(op=op, left=left, right=ast.DurationLit(amount=amount, unit=unit)):
                way = "after" if op == "+" else "before"
                return [t(f"{duration_text(amount, unit)} {way} ")] + self.operand(left, "date")
            case ast.SetLit(values=values):
                return join([self.operand(v, kind) for v in values], "and") if values else [t("none")]
            case ast.Name(text=text):
                return [self.value(kind, text)]
            case ast.StringLit(value=text):
                return [t(f'"{text}"')]
            case ast.DateLit(value=day):
                return [t(_date(day))]
            case ast.NumberLit() | ast.BoolLit():
                return [t(value_text(value))]
        return [t("(")] + self.expr(value) + [t(")")]

    def expr(self, expr: ast.Expr) -> Inline:
        match expr:
            case ast.BoolOp(op=op, operands=operands):
                # Any nested and/or is bracketed: "a and b or c" is ambiguous read aloud.
                parts = [self._grouped(o) for o in operands]
                return join(parts, op) if op == "or" else _joined(parts, " and ")
            case ast.Not(operand=ast.Has(path=path)):
                return [t("the request does not give ")] + self.operand(path)
            case ast.Not(operand=ast.Name() as name):
                return self.operand(name) + [t(" is not true")]
            case ast.Not(operand=operand):
                return [t("not (")] + self.expr(operand) + [t(")")]
            case ast.Compare():
                return self._compare(expr)
            case ast.InSet(operand=operand, values=values):
                kind = self.kind_of(operand)
                if not values:
                    return self.operand(operand) + [t(" is one of no values (never true)")]
                listed = join([self.operand(v, kind) for v in values], "or")
                return self.operand(operand) + [t(" is ")] + listed
            case ast.InGroup(operand=operand, group=group):
                return self.operand(operand) + [t(f" is an agency in the {words(group.text)} group")]
            case ast.InAttribute(operand=operand, set=members):
                element = self.vocab.attributes[members.text].element if members.text in self.vocab.attributes else None
                return self.operand(operand, element) + [t(" is one of ")] + self.operand(members)
            case ast.Is(operand=operand, node=node):
                kind = self.kind_of(operand)
                tail = f" {_HIERARCHY_TAIL[kind]}" if kind in _HIERARCHY_TAIL else ""
                return self.operand(operand) + [t(" is ")] + self.operand(node, kind) + [t(tail)]
            case ast.Has(path=path):
                return [t("the request gives ")] + self.operand(path)
            case ast.Name():
                return self.operand(expr) + [t(" is true")]
        return self.operand(expr)

    def _grouped(self, expr: ast.Expr) -> Inline:
        if isinstance(expr, ast.BoolOp):
            return [t("(")] + self.expr(expr) + [t(")")]
        return self.expr(expr)

    def _compare(self, expr: ast.Compare) -> Inline:
        if isinstance(expr.right, ast.Arithmetic) and isinstance(expr.right.right, ast.DurationLit) \
                and (expr.op, expr.right.op) in _TIME_LIMITS:
            # `a <= b + 28 days`: "a is within 28 days after b (or earlier)", as an agreement says it.
            before, after = _TIME_LIMITS[(expr.op, expr.right.op)]
            span = duration_text(expr.right.right.amount, expr.right.right.unit)
            return (self.operand(expr.left, "date") + [t(f" {before} {span} {'after' if expr.right.op == '+' else 'before'} ")]
                    + self.operand(expr.right.left, "date") + [t(after)])
        kind = self.kind_of(expr.left) or self.kind_of(expr.right)
        left = self.operand(expr.left, self.kind_of(expr.right))
        right = self.operand(expr.right, self.kind_of(expr.left))
        return left + [t(f" {_comparison_words(expr.op, kind)} ")] + right


# (comparison, + or -) -> the words around "N units after/before B" for `a OP b ± N units`.
_TIME_LIMITS = {
    ("<=", "+"): ("is within", " (or earlier)"), ("<", "+"): ("is less than", " (or earlier)"),
    (">", "+"): ("is more than", ""), (">=", "+"): ("is at least", ""),
    ("<", "-"): ("is more than", ""), ("<=", "-"): ("is at least", ""),
    (">=", "-"): ("is within", " (or later)"), (">", "-"): ("is less than", " (or later)"),
}


def _joined(parts: list[Inline], between: str) -> Inline:
    out: Inline = []
    for i, part in enumerate(parts):
        out += ([t(between)] if i else []) + part
    return out


def _comparison_words(op: str, kind: str | None) -> str:
    table = {
        "date": {"<": "is before", "<=": "is on or before", ">": "is after", ">=": "is on or after"},
        "classification": {"<": "is below", "<=": "is at or below", ">": "is above", ">=": "is at or above"},
    }.get(kind or "", {"<": "is less than", "<=": "is at most", ">": "is more than", ">=": "is at least"})
    return {"==": "is", "!=": "is not"}.get(op) or table[op]


# --- rules in sentences ------------------------------------------------------------


class _RuleWriter:
    """One rule as a paragraph: what it permits or refuses, when, and why."""

    def __init__(self, say: _Words):
        self.say = say
        self.vocab = say.vocab

    def paragraph(self, rule: ast.Rule) -> Para:
        out: Inline = [("strong", rule.id.text), t(" — ")]
        if rule.description:
            out.append(t(_sentence(rule.description) + " "))
        out += self.what(rule) + [t(". ")]
        obligations = [c for c in rule.clauses if isinstance(c, ast.ObligationClause)]
        if obligations:
            out += [t("They must: ")] + _joined([self.obligation(o) for o in obligations], "; ") + [t(". ")]
        because = [c.text for c in rule.clauses if isinstance(c, ast.BecauseClause)]
        out.append(t(f"Legal basis: {_sentence('; '.join(because))} " if because else "No legal basis is given. "))
        out.append(("em", f"Source: {rule.span.path}:{rule.span.line}."))
        return Para(out, f"rule-{rule.id.text}", rule.id.text)

    def what(self, rule: ast.Rule) -> Inline:
        clauses = rule.clauses
        matches = {kind: [c for c in clauses if isinstance(c, ast.MatchClause) and c.kind is kind]
                   for kind in ast.ClauseKind}
        who = self.who(matches[ast.ClauseKind.ROLE], matches[ast.ClauseKind.AGENCY])
        doing = self.doing(matches[ast.ClauseKind.ACTION], [c for c in clauses if isinstance(c, ast.DataClause)])
        owner = self.owner(matches[ast.ClauseKind.OWNER])
        if rule.effect is ast.Effect.PERMIT:
            out: Inline = [t("Permits ")] + (who or [t("anyone")]) + [t(" to ")] + doing + owner
        else:
            out = [t("Refuses any request")] + ([t(" by ")] + who if who else []) + [t(" to ")] + doing + owner
        purposes = matches[ast.ClauseKind.PURPOSE]
        if purposes:
            out += [t(", for ")] + _joined([self.purposes(c) for c in purposes], " and also for ")
        under = matches[ast.ClauseKind.UNDER]
        if under:
            out += [t(", when ")] + _joined([self.under(c) for c in under], ", and when ")
        conditions = [c for c in clauses if isinstance(c, ast.ConditionClause)]
        whens = [c.expr for c in conditions if not c.negated]
        unlesses = [c.expr for c in conditions if c.negated]
        if whens:
            expr = whens[0] if len(whens) == 1 else ast.BoolOp("and", tuple(whens), whens[0].span)
            out += [t(", and only when " if rule.effect is ast.Effect.PERMIT else ", when ")]
            out += self.say.expr(expr)
        if unlesses:
            expr = unlesses[0] if len(unlesses) == 1 else ast.BoolOp("or", tuple(unlesses), unlesses[0].span)
            out += [t(", unless ")] + self.say.expr(expr)
        return out

    def who(self, roles: list[ast.MatchClause], agencies: list[ast.MatchClause]) -> Inline:
        out: Inline = []
        for i, clause in enumerate(roles):
            names = [self.say.role(v.text) + self._held_at(v.text) for v in clause.values]
            out += [t(" who is also " if i else f"{_article(names[0])} ")] + join([[t(n)] for n in names])
            heirs = self._heirs([v.text for v in clause.values])
            if heirs:
                them = "one of them" if len(clause.values) > 1 else "it"
                out.append(t(f" (or a role that inherits from {them}: {', '.join(heirs)})"))
        for clause in agencies:
            out += [t(" who works for " if out else "anyone who works for ")]
            out += join([[t(self.say.agency_ref(v.text))] for v in clause.values])
        return out

    def _held_at(self, role: str) -> str:
        """`, who works at an agency in the gp practices group,` for a role held only there."""
        written = self._at_of(role)
        if not written:
            return ""
        return ", who works at " + " or ".join(self.say.agency_ref(a.text) for a in written) + ","

    def _at_of(self, role: str) -> tuple[ast.Name, ...]:
        """The `at` that limits a role: its own, else the nearest ancestor's."""
        try:
            full = self.vocab.roles.resolve(role)
        except NameLookupError:
            return ()
        if full in self.vocab.role_at:
            return self.vocab.role_at[full]
        roles = self.vocab.roles
        for ancestor in sorted(roles.ancestors.get(full, ()), key=roles.names.index):
            if ancestor in self.vocab.role_at:
                return self.vocab.role_at[ancestor]
        return ()

    def _heirs(self, names: list[str]) -> list[str]:
        roles = self.vocab.roles
        found = [r for n in names for r in sorted(roles.descendants.get(n, ()), key=roles.names.index)]
        return list(dict.fromkeys(self.say.role(r) for r in found if r not in names))

    def doing(self, actions: list[ast.MatchClause], data: list[ast.DataClause]) -> Inline:
        out: Inline = []
        for i, clause in enumerate(actions):
            out += ([t(" and also ")] if i else []) + join([[t(self.say.action(v.text))] for v in clause.values])
        out += [t(" ")] if out else [t("do anything with ")]
        if not data:
            return out + [t("any data")]
        return out + _joined([self.data(c) for c in data], " that is also ")

    def data(self, clause: ast.DataClause) -> Inline:
        tree = self.vocab.categories
        if clause.categories:
            names = [[t(self.say.node_with_tail(tree, c.text, "and the categories within it"))] for c in clause.categories]
            out = join(names) + [t(" data")]
        else:
            out = [t("any data")]
        if clause.up_to is not None:
            out.append(t(f" classified up to {self.say.classification(clause.up_to.text)}"))
        return out

    def owner(self, owners: list[ast.MatchClause]) -> Inline:
        out: Inline = []
        for clause in owners:
            out += [t(" held by ")] + join([[t(self.say.agency_ref(v.text))] for v in clause.values])
        return out

    def purposes(self, clause: ast.MatchClause) -> Inline:
        tree = self.vocab.purposes
        return join([[t(self.say.node_with_tail(tree, v.text, "or a purpose within it"))] for v in clause.values])

    def under(self, clause: ast.MatchClause) -> Inline:
        return join([self._agreement(v.text) for v in clause.values])

    def _agreement(self, name: str) -> Inline:
        agreement = self.vocab.agreements.get(name)
        title = self.say.agreement(name)
        if agreement is not None and agreement.parties is None:
            text = f"the record's owner may disclose to the requester's agency under {title}"
        else:
            text = f"the requester's agency and the record's owner are both parties to {title}"
        if agreement is not None and agreement.start is not None:
            text += " and it is in force"
        return [t(text)]

    def obligation(self, obligation: ast.ObligationClause) -> Inline:
        out: Inline = [t(words(obligation.name))]
        if obligation.args:
            out += [t(" (")] + _joined([self.say.operand(a) for a in obligation.args], ", ") + [t(")")]
        condition = obligation.condition
        if condition is not None:
            out += [t(" unless " if condition.negated else " when ")] + self.say.expr(condition.expr)
        return out


def _sentence(text: str) -> str:
    text = text.strip()
    return text if not text or text[-1] in ".!?" else text + "."


# --- the document ------------------------------------------------------------------------

_COMBINING = {
    ast.Combine.DENY_OVERRIDES: (
        "Refusals win. If any refusal rule applies to a request, it is refused, and those rules are "
        "the reasons. Otherwise, if any permission rule applies, it is permitted, and every permission "
        "rule that applies is a reason. If no rule applies, the request is refused: no rule permits it."
    ),
    ast.Combine.PERMIT_OVERRIDES: (
        "Permissions win. If any permission rule applies to a request, it is permitted, and those rules "
        "are the reasons. Otherwise, if any refusal rule applies, it is refused. If no rule applies, the "
        "request is refused: no rule permits it."
    ),
    ast.Combine.FIRST_APPLICABLE: (
        "The first rule that applies decides. Rules are taken in the order of this document (file by "
        "file, then as written), and the first one that applies to a request permits or refuses it. If "
        "no rule applies, the request is refused: no rule permits it."
    ),
}

_APPLYING = (
    "A rule applies when every condition it states holds; a condition it does not state places no "
    "limit. Where a rule lists several values, any one of them will do. When a request leaves out "
    "information a condition needs, and there is no default for it, a refusal rule that might apply "
    "is treated as applying and a permission rule that might apply is not: the engine fails closed."
)

_OUTCOME_WORDS = {
    ast.Outcome.ANY: "On every decision",
    ast.Outcome.PERMIT: "When a request is permitted, whichever rule permits it",
    ast.Outcome.DENY: "When a request is refused, including when no rule permits it",
}


class _Writer:
    def __init__(self, policy_set: ast.PolicySet, vocab: Vocabulary):
        self.set = policy_set
        self.vocab = vocab
        self.say = _Words(vocab)
        self.blocks: list[Block] = []

    def heading(self, level: int, text: str, anchor: str) -> None:
        self.blocks.append(Heading(level, text, anchor))

    def para(self, *pieces: Piece) -> None:
        self.blocks.append(Para(list(pieces)))

    def write(self) -> tuple[str, list[Block]]:
        header = self.vocab.header
        title = header.title if header else "Information sharing policy"
        self.heading(1, title, "top")
        facts = BulletList()
        if header is not None and header.owner:
            facts.items.append(_fact("Owner", t(header.owner)))
        if header is not None and header.version:
            facts.items.append(_fact("Version", t(header.version)))
        facts.items.append(_fact("Policy version (content hash)", code(self.set.version)))
        rules = self.set.rules()
        facts.items.append(_fact("Rules", t(f"{len(rules)} in {count(len(self.set.files), 'file')}")))
        self.blocks.append(facts)
        self.decisions()
        self.vocabulary()
        self.agreements()
        self.policy_obligations()
        self.rules(rules)
        return title, self.blocks

    def decisions(self) -> None:
        self.heading(2, "How decisions are made", "decisions")
        combine = self.vocab.combine
        self.para(t(f"This policy combines rules by {combine.value}. "), t(_COMBINING[combine]))
        self.para(t(_APPLYING))

    def vocabulary(self) -> None:
        vocab = self.vocab
        self.heading(2, "Vocabulary", "vocabulary")
        self.para(t("Every name a rule uses is declared here. A request that names anything else is rejected."))
        self.heading(3, "Actions", "actions")
        self.blocks.append(_named_list(vocab.actions.items()))
        self.heading(3, "Roles", "roles")
        self.para(t("A role that inherits from another may do everything that role may do."))
        self.blocks.append(BulletList([self._role(name) for name in vocab.roles.names]))
        self.heading(3, "Purposes", "purposes")
        self.para(t("A rule that names a purpose also covers every purpose nested under it."))
        self.blocks.append(_tree_list(vocab.purposes, ""))
        self.heading(3, "Data categories", "categories")
        self.para(t("A rule that names a category also covers every category nested under it."))
        self.blocks.append(_tree_list(vocab.categories, ""))
        self.heading(3, "Classifications", "classifications")
        self.para(t("Security classifications, lowest first."))
        self.blocks.append(BulletList([Item([code(c)]) for c in vocab.classifications], ordered=True))
        self.heading(3, "Agencies", "agencies")
        self.blocks.append(_named_list(vocab.agencies.items()))
        if vocab.groups:
            self.heading(3, "Groups of agencies", "groups")
            self.blocks.append(BulletList([self._group(name, members) for name, members in vocab.groups.items()]))
        declared = [a for a in vocab.attributes.values() if not a.builtin]
        if declared:
            self.heading(3, "Information a request may carry", "attributes")
            self.para(t("Besides who is asking, what for, and which record, a request may give:"))
            self.blocks.append(BulletList([self._attribute(a) for a in declared]))

    def _role(self, name: str) -> Item:
        roles = self.vocab.roles
        out: Inline = [code(name)]
        if roles.labels.get(name):
            out.append(t(f" — {roles.labels[name]}"))
        parents = roles.parents.get(name, ())
        if name in self.vocab.role_at:
            out += [t("; held only at ")] + join([[t(self.say.agency_ref(a.text))] for a in self.vocab.role_at[name]])
        if parents:
            out += [t("; inherits from ")] + join([[code(p)] for p in parents], "and")
            further = [a for a in roles.names if a in roles.ancestors.get(name, ()) and a != name and a not in parents]
            if further:
                out += [t(", and through them from ")] + join([[code(a)] for a in further], "and")
        return Item(out)

    def _group(self, name: str, members: frozenset[str]) -> Item:
        ordered = [a for a in self.vocab.agencies if a in members]
        return Item([code(name), t(": ")] + join([[t(self.say.agency(a))] for a in ordered], "and"))

    def _attribute(self, attribute: Attribute) -> Item:
        of = attribute.element if attribute.kind == "set" else attribute.kind
        kind = "one of " + ", ".join(attribute.values) if of == "one_of" else of
        if attribute.kind == "set":
            kind = f"a set of {kind} values, given as a list"
        out: Inline = [code(attribute.path), t(f" ({kind})")]
        if attribute.label:
            out.append(t(f": {attribute.label}"))
        if attribute.default is not None:
            out += [t(", default ")] + self.say.operand(attribute.default, of)
        else:
            out.append(t(", no default: unknown when the request leaves it out"))
        return Item(out)

    def agreements(self) -> None:
        decls = [d for d in self.set.declarations() if isinstance(d, ast.AgreementDecl)]
        if not decls:
            return
        self.heading(2, "Information sharing agreements", "agreements")
        self.para(t("A rule that requires an agreement applies only when the agreement covers both the "
                    "requester's agency and the agency that owns the record, on a date within its validity."))
        seen = set()
        for decl in decls:
            if decl.name.text in seen:
                continue
            seen.add(decl.name.text)
            self.heading(3, decl.title or words(decl.name.text), f"agreement-{decl.name.text}")
            self.blocks.append(self._agreement(decl))

    def _agreement(self, decl: ast.AgreementDecl) -> BulletList:
        facts = BulletList([_fact("Name", code(decl.name.text))])

        def agencies(label: str, names: tuple[ast.Name, ...]) -> None:
            facts.items.append(_fact(label, *join([self._agency_ref(n.text) for n in names], "and")))

        if decl.parties is not None:
            agencies("Parties (sharing both ways)", decl.parties)
        if decl.sources is not None:
            agencies("Disclosing agencies (record owners)", decl.sources)
        if decl.recipients is not None:
            agencies("Receiving agencies (requesters)", decl.recipients)
        if decl.valid is not None:
            span = f"{_date(decl.valid.start.value)} to {_date(decl.valid.end.value)}, both days included"
            facts.items.append(_fact("In force", t(span)))
        else:
            facts.items.append(_fact("In force", t("no date limit")))
        if decl.reference is not None:
            facts.items.append(_fact("Reference", t(decl.reference)))
        return facts

    def _agency_ref(self, name: str) -> Inline:
        vocab = self.vocab
        if name in vocab.groups and name not in vocab.agencies:
            members = [self.say.agency(a) for a in vocab.agencies if a in vocab.groups[name]]
            return [t(f"the {words(name)} group ({', '.join(members)})")]
        return [t(self.say.agency(name))]

    def policy_obligations(self) -> None:
        obligations = self.vocab.policy_obligations
        if not obligations:
            return
        self.heading(2, "Obligations on every decision", "obligations")
        self.para(t("These apply whichever rule decided, and do not change the decision itself."))
        writer = _RuleWriter(self.say)
        items = [
            Item([t(f"{_OUTCOME_WORDS[o.outcome]}: ")] + writer.obligation(o.obligation)
                 + [t(". "), ("em", f"Source: {o.span.path}:{o.span.line}.")])
            for o in obligations
        ]
        self.blocks.append(BulletList(items))

    def rules(self, rules: list[ast.Rule]) -> None:
        self.heading(2, "Rules", "rules")
        if not rules:
            self.para(t("There are no rules: every request is refused."))
            return
        writer = _RuleWriter(self.say)
        for path, in_file in _by_file(rules):
            self.heading(3, path, _anchor("file-" + path))
            self.blocks.extend(writer.paragraph(rule) for rule in in_file)


def _fact(label: str, *value: Piece) -> Item:
    return Item([("strong", f"{label}:"), t(" "), *value])


def _named_list(items: Iterable[tuple[str, str | None]]) -> BulletList:
    return BulletList([Item([code(name)] + ([t(f" — {label}")] if label else [])) for name, label in items])


def _tree_list(tree: Hierarchy, parent: str) -> BulletList:
    below = BulletList()
    for name in tree.names:
        if tree.parents.get(name, ()) != ((parent,) if parent else ()):
            continue
        label = tree.labels.get(name)
        children = _tree_list(tree, name)
        inline: Inline = [code(name.rsplit(".", 1)[-1])] + ([t(f" — {label}")] if label else [])
        below.items.append(Item(inline, children if children.items else None))
    return below


def _by_file(rules: list[ast.Rule]) -> list[tuple[str, list[ast.Rule]]]:
    grouped: dict[str, list[ast.Rule]] = {}
    for rule in rules:
        grouped.setdefault(rule.span.path, []).append(rule)
    return list(grouped.items())


def _anchor(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


# --- writers -----------------------------------------------------------------------------

# Characters Markdown would read as markup; `_` only where it could start or end emphasis.
_MD_SPECIAL = re.compile(r"([\\`*\[\]<>#|]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")


def _md_inline(inline: Inline) -> str:
    out = []
    for style, text in inline:
        if style == "code":
            fence = "``" if "`" in text else "`"
            out.append(f"{fence}{text}{fence}")
            continue
        escaped = _MD_SPECIAL.sub(r"\\\1", text)
        out.append({"strong": f"**{escaped}**", "em": f"*{escaped}*"}.get(style, escaped) if escaped.strip() else escaped)
    return "".join(out)


def _md_list(items: BulletList, depth: int = 0) -> list[str]:
    lines = []
    for i, item in enumerate(items.items, start=1):
        marker = f"{i}." if items.ordered else "-"
        lines.append(f"{'  ' * depth}{marker} {_md_inline(item.inline)}")
        if item.children is not None:
            lines.extend(_md_list(item.children, depth + 1))
    return lines


def to_markdown(blocks: list[Block]) -> str:
    chunks = []
    for block in blocks:
        match block:
            case Heading(level=level, text=text):
                chunks.append("#" * level + " " + _md_inline([t(text)]))
            case Para(inline=inline):
                chunks.append(_md_inline(inline))
            case BulletList():
                chunks.append("\n".join(_md_list(block)))
    return "\n\n".join(chunks) + "\n"


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Arial, sans-serif; line-height: 1.5;
       color: #1b1b1b; background: #fff; margin: 0; }
main { max-width: 52rem; margin: 0 auto; padding: 1.5rem; }
h1 { font-size: 1.9rem; margin-bottom: .5rem; }
h2 { border-bottom: 2px solid #1d70b8; padding-bottom: .2rem; margin-top: 2.5rem; }
h3 { margin-top: 1.8rem; }
code { font-family: ui-monospace, Consolas, monospace; background: #f3f2f1; padding: 0 .2em; }
nav { background: #f3f2f1; padding: .5rem 1.5rem; border-left: 4px solid #1d70b8; }
nav ul { padding-left: 1.2rem; }
p.rule { border-left: 3px solid #b1b4b6; padding-left: .8rem; }
a { color: #1d70b8; }
@media print { nav { display: none; } }
"""


def inline_html(inline: Inline) -> str:
    """A run of text pieces as HTML, every piece escaped."""
    tags = {"code": "code", "strong": "strong", "em": "em"}
    out = []
    for style, text in inline:
        escaped = html.escape(text)
        out.append(f"<{tags[style]}>{escaped}</{tags[style]}>" if style in tags else escaped)
    return "".join(out)


def _html_list(items: BulletList) -> str:
    tag = "ol" if items.ordered else "ul"
    inner = "".join(
        f"<li>{inline_html(i.inline)}{_html_list(i.children) if i.children is not None else ''}</li>"
        for i in items.items
    )
    return f"<{tag}>{inner}</{tag}>"


def _contents(blocks: list[Block]) -> str:
    """Sections, their subsections, and the rules under those, as nested links."""
    entries: list[tuple[int, str, str]] = []  # depth, text, anchor
    for block in blocks:
        if isinstance(block, Heading) and block.level > 1:
            entries.append((block.level - 1, block.text, block.anchor))
        elif isinstance(block, Para) and block.toc and block.anchor:
            entries.append((3, block.toc, block.anchor))
    return f'<nav aria-label="Contents"><h2>Contents</h2>{_nested(entries, 1)}</nav>'


def _nested(entries: list[tuple[int, str, str]], depth: int) -> str:
    items, i = [], 0
    while i < len(entries):
        _, text, anchor = entries[i]
        j = i + 1
        while j < len(entries) and entries[j][0] > depth:
            j += 1
        inner = _nested(entries[i + 1 : j], depth + 1) if j > i + 1 else ""
        items.append(f'<li><a href="#{html.escape(anchor)}">{html.escape(text)}</a>{inner}</li>')
        i = j
    return f"<ul>{''.join(items)}</ul>"


def to_html(title: str, blocks: list[Block]) -> str:
    """One self-contained page: inline CSS, no scripts, nothing fetched."""
    body = []
    for block in blocks:
        match block:
            case Heading(level=level, text=text, anchor=anchor):
                body.append(f'<h{level} id="{html.escape(anchor)}">{html.escape(text)}</h{level}>')
                if level == 1:
                    body.append(_contents(blocks))
            case Para(inline=inline, anchor=anchor):
                attrs = f' id="{html.escape(anchor)}" class="rule"' if anchor else ""
                body.append(f"<p{attrs}>{inline_html(inline)}</p>")
            case BulletList():
                body.append(_html_list(block))
    text = "\n".join(body)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n"
        f"<body>\n<main>\n{text}\n</main>\n</body>\n</html>\n"
    )


# --- entry points ------------------------------------------------------------------------


def describe(policy_set: ast.PolicySet, vocab: Vocabulary) -> tuple[str, list[Block]]:
    """The document model of a checked policy set: its title and blocks."""
    return _Writer(policy_set, vocab).write()


def render(policy_set: ast.PolicySet, vocab: Vocabulary, format: str = "md") -> str:
    title, blocks = describe(policy_set, vocab)
    return to_html(title, blocks) if format == "html" else to_markdown(blocks)
