"""The condition tree of a query plan: a filter over a resource's fields.

A plan (plan.py) answers "which resources may this requester see?" with a
condition over `resource.*` fields. Unlike a rule's clauses, a condition is
two-valued: every leaf is false when a field it reads is absent (null), so it
can be run as a SQL WHERE clause, where a null never selects a row, and
negated safely (`Not` of a leaf is true for a present field that fails it).
The three-valued logic of docs/language.md, "How decisions are made" is settled when the plan is
made, not here.

Nodes, as `to_dict()` writes them (`op` names each):

    {"op": "true"} {"op": "false"}
    {"op": "and", "args": [...]} {"op": "or", "args": [...]} {"op": "not", "arg": ...}
    {"op": "eq"|"ne"|"lt"|"le"|"gt"|"ge", "left": OPERAND, "right": OPERAND}
    {"op": "in", "left": OPERAND, "values": [...]}
    {"op": "present", "field": "resource.x"}      the resource gives the field (`has`)

Operands: {"field": "resource.x"} (with "default" when the attribute
declares one: an absent field takes it), {"value": v}, and
{"shift": OPERAND, "amount": n, "unit": "days"|"months"} for date arithmetic
(months move the calendar and clamp to the month's last day, docs/language.md,
"Conditions"). A backend that cannot evaluate a node exactly refuses it with
PlanError rather than guess. New condition forms (set membership, say) are
new node classes here, each with `holds` and `to_dict`, and a case in every
backend (plan.matches, integrations/sqlalchemy.py).
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from engine.errors import PolicyError

# What an absent field reads as.
ABSENT: Any = None


class PlanError(PolicyError):
    """A plan, or a backend asked to run one, meets a form it cannot handle exactly."""

    code = "plan_unsupported"

    def __init__(self, message: str, help: str | None = None):
        super().__init__(message, None, help)


# --- operands ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Field:
    """A resource field; `default` (when `has_default`) stands in for an absent value."""

    path: str
    kind: str
    default: Any = None
    has_default: bool = False

    def value(self, resource: Mapping[str, Any]) -> Any:
        found = resource.get(self.path, ABSENT)
        if found is ABSENT and self.has_default:
            return self.default
        return found

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"field": self.path, "type": self.kind}
        if self.has_default:
            data["default"] = _json(self.default)
        return data


@dataclass(frozen=True, slots=True)
class Value:
    value: Any

    def value_of(self, resource: Mapping[str, Any]) -> Any:
        return self.value

    def to_dict(self) -> dict[str, Any]:
        return {"value": _json(self.value)}


@dataclass(frozen=True, slots=True)
class Shift:
    """A date moved by whole days or months (years are 12 months, weeks 7 days)."""

    operand: Operand
    amount: int  # negative to move back
    unit: str  # "days" or "months"

    def to_dict(self) -> dict[str, Any]:
        return {"shift": self.operand.to_dict(), "amount": self.amount, "unit": self.unit}


Operand = Field | Value | Shift


def operand_value(operand: Operand, resource: Mapping[str, Any]) -> Any:
    """An operand's value for one resource (canonical values, ABSENT when the field is)."""
    if isinstance(operand, Field):
        return operand.value(resource)
    if isinstance(operand, Value):
        return operand.value
    base = operand_value(operand.operand, resource)
    if base is ABSENT:
        return ABSENT
    return shift_date(base, operand.amount, operand.unit)


def shift_date(day: dt.date, amount: int, unit: str) -> dt.date:
    """`day` moved as the language moves dates: days exactly, months by the calendar, clamped."""
    if unit == "days":
        return day + dt.timedelta(days=amount)
    months = day.year * 12 + day.month - 1 + amount
    year, month = divmod(months, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return dt.date(year, month + 1, min(day.day, last))


def fields_of(operand: Operand) -> tuple[Field, ...]:
    if isinstance(operand, Field):
        return (operand,)
    if isinstance(operand, Shift):
        return fields_of(operand.operand)
    return ()


# --- conditions ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Const:
    value: bool

    def holds(self, resource: Mapping[str, Any]) -> bool:
        return self.value

    def to_dict(self) -> dict[str, Any]:
        return {"op": "true" if self.value else "false"}


TRUE = Const(True)
FALSE = Const(False)


@dataclass(frozen=True, slots=True)
class And:
    parts: tuple[Condition, ...]

    def holds(self, resource: Mapping[str, Any]) -> bool:
        return all(p.holds(resource) for p in self.parts)

    def to_dict(self) -> dict[str, Any]:
        return {"op": "and", "args": [p.to_dict() for p in self.parts]}


@dataclass(frozen=True, slots=True)
class Or:
    parts: tuple[Condition, ...]

    def holds(self, resource: Mapping[str, Any]) -> bool:
        return any(p.holds(resource) for p in self.parts)

    def to_dict(self) -> dict[str, Any]:
        return {"op": "or", "args": [p.to_dict() for p in self.parts]}


@dataclass(frozen=True, slots=True)
class Not:
    part: Condition

    def holds(self, resource: Mapping[str, Any]) -> bool:
        return not self.part.holds(resource)

    def to_dict(self) -> dict[str, Any]:
        return {"op": "not", "arg": self.part.to_dict()}


def same(a: Any, b: Any) -> bool:
    """Exact equality as the language has it: true and 1 differ (Python says they are equal)."""
    return (type(a) is bool) == (type(b) is bool) and bool(a == b)


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": same, "ne": lambda a, b: not same(a, b),
    "lt": lambda a, b: a < b, "le": lambda a, b: a <= b, "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b,
}
NEGATED = {"eq": "ne", "ne": "eq", "lt": "ge", "le": "gt", "gt": "le", "ge": "lt"}


@dataclass(frozen=True, slots=True)
class Compare:
    """`left op right`; false when either side is absent."""

    op: str  # eq ne lt le gt ge
    left: Operand
    right: Operand

    def holds(self, resource: Mapping[str, Any]) -> bool:
        a, b = operand_value(self.left, resource), operand_value(self.right, resource)
        if a is ABSENT or b is ABSENT:
            return False
        return bool(_COMPARE[self.op](a, b))

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "left": self.left.to_dict(), "right": self.right.to_dict()}


@dataclass(frozen=True, slots=True)
class In:
    """`left` is one of `values` (compared exactly); false when `left` is absent."""

    left: Operand
    values: frozenset[Any]

    def holds(self, resource: Mapping[str, Any]) -> bool:
        found = operand_value(self.left, resource)
        return found is not ABSENT and any(same(found, v) for v in self.values)

    def to_dict(self) -> dict[str, Any]:
        return {"op": "in", "left": self.left.to_dict(), "values": sorted((_json(v) for v in self.values), key=repr)}


@dataclass(frozen=True, slots=True)
class Present:
    """The resource gives the field (`has`), whatever its default."""

    path: str

    def holds(self, resource: Mapping[str, Any]) -> bool:
        return resource.get(self.path, ABSENT) is not ABSENT

    def to_dict(self) -> dict[str, Any]:
        return {"op": "present", "field": self.path}


Condition = Const | And | Or | Not | Compare | In | Present


def all_of(parts: list[Condition]) -> Condition:
    """The conjunction, folded: true parts dropped, a false part wins, nested ands flattened."""
    kept: list[Condition] = []
    for part in parts:
        if part == FALSE:
            return FALSE
        if part == TRUE:
            continue
        for p in part.parts if isinstance(part, And) else (part,):
            if p not in kept:
                kept.append(p)
    if not kept:
        return TRUE
    return kept[0] if len(kept) == 1 else And(tuple(kept))


def any_of(parts: list[Condition]) -> Condition:
    """The disjunction, folded as `all_of` folds."""
    kept: list[Condition] = []
    for part in parts:
        if part == TRUE:
            return TRUE
        if part == FALSE:
            continue
        for p in part.parts if isinstance(part, Or) else (part,):
            if p not in kept:
                kept.append(p)
    if not kept:
        return FALSE
    return kept[0] if len(kept) == 1 else Or(tuple(kept))


def fields_typed(condition: Condition) -> set[Field]:
    """The resource fields a condition compares, with their types (`Present` reads no type)."""
    if isinstance(condition, (And, Or)):
        return set().union(*(fields_typed(p) for p in condition.parts))
    if isinstance(condition, Not):
        return fields_typed(condition.part)
    if isinstance(condition, Compare):
        return set(fields_of(condition.left) + fields_of(condition.right))
    if isinstance(condition, In):
        return set(fields_of(condition.left))
    return set()


def _json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.date) else value


# --- reading a condition back (a plan the service sent) ------------------------------------


def condition_from_dict(data: Mapping[str, Any]) -> Condition:
    """A condition from its `to_dict()` form; PlanError for a node this version does not know."""
    op = data.get("op")
    if op in ("true", "false"):
        return TRUE if op == "true" else FALSE
    if op == "and":
        return And(tuple(condition_from_dict(p) for p in data["args"]))
    if op == "or":
        return Or(tuple(condition_from_dict(p) for p in data["args"]))
    if op == "not":
        return Not(condition_from_dict(data["arg"]))
    if op in NEGATED:
        left, right = operand_from_dict(data["left"]), operand_from_dict(data["right"])
        return Compare(op, left, _typed(right, left))
    if op == "in":
        left = operand_from_dict(data["left"])
        return In(left, frozenset(_from_json(v, "date") if _is_date(left) else v for v in data["values"]))
    if op == "present":
        return Present(data["field"])
    raise PlanError(f"unknown condition node `{op}`: this client is older than the service",
                    help="upgrade the engine package")


def operand_from_dict(data: Mapping[str, Any]) -> Operand:
    if "field" in data:
        kind = data.get("type", "string")
        if "default" in data:
            return Field(data["field"], kind, _from_json(data["default"], kind), True)
        return Field(data["field"], kind)
    if "shift" in data:
        return Shift(operand_from_dict(data["shift"]), int(data["amount"]), data["unit"])
    if "value" in data:
        return Value(data["value"])
    raise PlanError(f"unknown operand {sorted(data)}: this client is older than the service",
                    "upgrade the engine package")


def _typed(value: Operand, other: Operand) -> Operand:
    """A JSON value compared with a date field (or a shifted date) is a date."""
    if isinstance(value, Value) and isinstance(value.value, str) and _is_date(other):
        return Value(_from_json(value.value, "date"))
    return value


def _is_date(operand: Operand) -> bool:
    return isinstance(operand, Shift) or isinstance(operand, Field) and operand.kind == "date"


def _from_json(value: Any, kind: str) -> Any:
    if kind == "date" and isinstance(value, str):
        return dt.date.fromisoformat(value)
    return value
