"""The syntax tree of a policy set: frozen dataclasses, data only.

Every node ends with a `span` that equality ignores, so two trees parsed from
differently laid-out text compare equal when they mean the same.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum

from engine.source import Span

# --- names and literals ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Name:
    """An identifier or dotted path: a vocabulary value or an attribute."""

    text: str
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class StringLit:
    value: str
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class NumberLit:
    value: int | float
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class BoolLit:
    value: bool
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class DateLit:
    value: dt.date
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class DurationLit:
    """`28 days`, `1 month`: a whole number of a unit (day, week, month or year, singular)."""

    amount: int
    unit: str
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class SetLit:
    """`{a, b}` or `{}`: the default of a `set of T` attribute."""

    values: tuple[Value, ...]
    span: Span = field(compare=False, repr=False)


Literal = StringLit | NumberLit | BoolLit | DateLit
Value = Name | StringLit | NumberLit | BoolLit | DateLit


# --- expressions ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BoolOp:
    """`a and b and c` or `a or b`: op is "and" or "or"."""

    op: str
    operands: tuple[Expr, ...]
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expr
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Arithmetic:
    """`date + duration` or `date - duration`: op is "+" or "-"; left may be another Arithmetic."""

    op: str
    left: Operand
    right: Operand
    span: Span = field(compare=False, repr=False)


# What a comparison compares: a value, a date moved by a duration, or (an error the
# checker reports) a duration or a bracketed condition.
Operand = Name | StringLit | NumberLit | BoolLit | DateLit | DurationLit | Arithmetic


@dataclass(frozen=True, slots=True)
class Compare:
    """`left OP right` with OP one of == != < <= > >=."""

    op: str
    left: Operand
    right: Operand
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class InSet:
    """`x in {a, b}`: exact membership in a literal set."""

    operand: Value
    values: tuple[Value, ...]
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class InGroup:
    """`x in group`: membership in a declared agency group."""

    operand: Value
    group: Name
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class InAttribute:
    """`x in S`: exact membership in the value of a `set of T` attribute."""

    operand: Value
    set: Name
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Is:
    """`x is node`: at or below a node of a hierarchy, else equal."""

    operand: Value
    node: Name
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Has:
    """`has path`: the request gave that attribute."""

    path: Name
    span: Span = field(compare=False, repr=False)


Expr = (
    BoolOp | Not | Compare | InSet | InGroup | InAttribute | Is | Has | Name | StringLit | NumberLit | BoolLit
    | DateLit | DurationLit | Arithmetic
)


# --- rules ------------------------------------------------------------------


class Effect(str, Enum):
    PERMIT = "permit"
    DENY = "deny"


class ClauseKind(str, Enum):
    """Clauses that hold when a request value is one of the listed ones."""

    ACTION = "action"
    ROLE = "role"
    AGENCY = "agency"
    PURPOSE = "purpose"
    OWNER = "owner"
    UNDER = "under"


@dataclass(frozen=True, slots=True)
class MatchClause:
    """`action a, b`, `role r`, `agency a`, `purpose p`, `owner a`, `under g`."""

    kind: ClauseKind
    values: tuple[Name, ...]
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class DataClause:
    """`data c, ... [up to k]`; `categories` is empty for `data any up to k`."""

    categories: tuple[Name, ...]
    up_to: Name | None
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ConditionClause:
    """`when EXPR` (negated=False) or `unless EXPR` (negated=True)."""

    negated: bool
    expr: Expr
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ObligationClause:
    """`obligation NAME [ARG, ...] [when|unless EXPR]`."""

    name: str
    args: tuple[Value, ...]
    condition: ConditionClause | None
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class BecauseClause:
    text: str
    span: Span = field(compare=False, repr=False)


Clause = MatchClause | DataClause | ConditionClause | ObligationClause | BecauseClause


@dataclass(frozen=True, slots=True)
class Rule:
    """`permit ID ["description"] { clauses }` or `deny ...`."""

    effect: Effect
    id: Name
    description: str | None
    clauses: tuple[Clause, ...]
    span: Span = field(compare=False, repr=False)


class Outcome(str, Enum):
    PERMIT = "permit"
    DENY = "deny"
    ANY = "any"


@dataclass(frozen=True, slots=True)
class PolicyObligation:
    """`on permit|deny|any obligation NAME ...`."""

    outcome: Outcome
    obligation: ObligationClause
    span: Span = field(compare=False, repr=False)


# --- vocabulary -------------------------------------------------------------


class Combine(str, Enum):
    DENY_OVERRIDES = "deny-overrides"
    PERMIT_OVERRIDES = "permit-overrides"
    FIRST_APPLICABLE = "first-applicable"


@dataclass(frozen=True, slots=True)
class PolicyHeader:
    title: str
    version: str | None
    owner: str | None
    combine: Combine | None
    span: Span = field(compare=False, repr=False)
    # Where each field given was written (`version "1"`), in the order written; for the formatter.
    field_spans: tuple[tuple[str, Span], ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class VocabItem:
    """A declared action, agency or classification, with an optional label."""

    name: Name
    label: str | None
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ActionsDecl:
    items: tuple[VocabItem, ...]
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class RoleItem:
    """`name ["label"] [: parents] [at agencies and groups]`."""

    name: Name
    label: str | None
    parents: tuple[Name, ...]
    span: Span = field(compare=False, repr=False)
    places: tuple[Name, ...] = ()  # after `at`: where the role may be held (empty: anywhere)


@dataclass(frozen=True, slots=True)
class RolesDecl:
    items: tuple[RoleItem, ...]
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class TreeNode:
    """A purpose or category with its children."""

    name: Name
    label: str | None
    children: tuple[TreeNode, ...]
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class PurposesDecl:
    nodes: tuple[TreeNode, ...]
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class CategoriesDecl:
    nodes: tuple[TreeNode, ...]
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ClassificationsDecl:
    """`classifications a < b < c`, lowest first."""

    levels: tuple[VocabItem, ...]
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class AgenciesDecl:
    items: tuple[VocabItem, ...]
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class GroupDecl:
    name: Name
    members: tuple[Name, ...]
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class AttrType:
    """kind: bool, number, string, date, one_of, or a vocabulary kind
    (action, role, agency, purpose, category, classification); or `set`, with
    the type of its members in `element`."""

    kind: str
    values: tuple[VocabItem, ...] = ()
    span: Span = field(default=None, compare=False, repr=False)  # type: ignore[assignment]  # None: made in code
    element: AttrType | None = None


@dataclass(frozen=True, slots=True)
class AttributeDecl:
    path: Name
    type: AttrType
    default: Value | SetLit | None
    span: Span = field(compare=False, repr=False)
    label: str | None = None  # after the span: older code builds declarations without one


@dataclass(frozen=True, slots=True)
class AttributesDecl:
    items: tuple[AttributeDecl, ...]
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Validity:
    start: DateLit
    end: DateLit
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class AgreementDecl:
    """Two-way (`parties`) or one-way (`from` owners, `to` requesters)."""

    name: Name
    title: str | None
    parties: tuple[Name, ...] | None
    sources: tuple[Name, ...] | None
    recipients: tuple[Name, ...] | None
    valid: Validity | None
    reference: str | None
    span: Span = field(compare=False, repr=False)
    # Where each field given was written (`parties a, b`), in the order written; for the formatter.
    field_spans: tuple[tuple[str, Span], ...] = field(default=(), compare=False, repr=False)


Declaration = (
    PolicyHeader | ActionsDecl | RolesDecl | PurposesDecl | CategoriesDecl | ClassificationsDecl |
    AgenciesDecl | GroupDecl | AttributesDecl | AgreementDecl | Rule | PolicyObligation
)


# --- files and sets ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Comment:
    """`# text` (text without the `#`), kept for the formatter."""

    text: str
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class PolicyFile:
    path: str
    declarations: tuple[Declaration, ...]
    comments: tuple[Comment, ...] = field(default=(), compare=False, repr=False)
    span: Span = field(default=None, compare=False, repr=False)  # type: ignore[assignment]  # None: made in code


@dataclass(frozen=True, slots=True)
class PolicySet:
    """Every policy file of a set, in path order, and the content hash."""

    files: tuple[PolicyFile, ...]
    version: str = field(default="", compare=False)

    def declarations(self) -> Iterator[Declaration]:
        for policy_file in self.files:
            yield from policy_file.declarations

    def rules(self) -> list[Rule]:
        return [d for d in self.declarations() if isinstance(d, Rule)]
