"""A query plan's condition as a SQLAlchemy 2 WHERE clause (the optional extra `sqlalchemy`).

    plan = policy.plan(partial_request)           # or client.plan(...)
    query = select(cases).where(where(plan, {"resource.category": cases.c.category, ...}))

The caller maps each resource field the plan reads to a column (keys may be
written with or without `resource.`). Columns hold values as the engine
names them: tree values by their full path (`special_category.health`),
classifications and agencies by name, dates as dates, numbers, booleans.

The clause is exact on every backend it compiles for: each comparison is
false, never null, where a column is null (so `NOT` cannot let a row in);
an absent field with a declared default reads as the default. Date arithmetic
follows the language's calendar (docs/language.md, "Rules"): months clamp to the
month's last day. That is built by hand for SQLite (whose own `+1 month`
overflows into the next month) and is PostgreSQL's own interval arithmetic;
on any other database a plan with date arithmetic is refused with PlanError
when the statement is compiled. A field the mapping leaves out, and a
set-valued field (`set of T`, not supported here yet), are refused with
PlanError naming the field.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Date, and_, false, func, literal, not_, or_, true
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from engine.conditions import (
    And,
    Compare,
    Condition,
    Const,
    Field,
    In,
    Not,
    Operand,
    Or,
    PlanError,
    Present,
    Shift,
    Value,
)
from engine.plan import Plan

__all__ = ["PlanError", "where"]

_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b, "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b,
}


def where(plan: Plan | Condition, columns: Mapping[str, Any]) -> ColumnElement[bool]:
    """The WHERE clause selecting exactly the rows `plan` permits.

    `columns` maps resource fields (`resource.category` or `category`) to
    columns. PlanError names a field the plan reads that is not mapped.
    """
    condition = plan.condition if isinstance(plan, Plan) else plan
    mapped = {(k if k.startswith("resource.") else f"resource.{k}"): v for k, v in columns.items()}
    found: ColumnElement[bool] = _Builder(mapped).condition(condition)
    return found


class _Builder:
    def __init__(self, columns: Mapping[str, Any]):
        self.columns = columns

    def condition(self, node: Condition) -> ColumnElement[bool]:
        if isinstance(node, Const):
            return true() if node.value else false()
        if isinstance(node, And):
            return and_(*(self.condition(p) for p in node.parts))
        if isinstance(node, Or):
            return or_(*(self.condition(p) for p in node.parts))
        if isinstance(node, Not):
            return not_(self.condition(node.part))
        if isinstance(node, Present):
            present: ColumnElement[bool] = self.column(node.path).is_not(None)
            return present
        if isinstance(node, Compare):
            left, left_guards = self.operand(node.left)
            right, right_guards = self.operand(node.right)
            return and_(*left_guards, *right_guards, _OPERATORS[node.op](left, right))
        if isinstance(node, In):
            left, guards = self.operand(node.left)
            return and_(*guards, left.in_(sorted(node.values, key=repr)))
        raise PlanError(f"the SQL filter cannot express the condition `{type(node).__name__}`")

    def operand(self, operand: Operand) -> tuple[Any, list[ColumnElement[bool]]]:
        """The SQL for an operand and the guards that keep a null from making the answer null."""
        if isinstance(operand, Value):
            return literal(operand.value), []
        if isinstance(operand, Field):
            column = self.column(operand.path)
            if operand.has_default:
                return func.coalesce(column, literal(operand.default)), []
            return column, [column.is_not(None)]
        if isinstance(operand, Shift):
            inner, guards = self.operand(operand.operand)
            return shifted(inner, operand.amount, operand.unit), guards
        raise PlanError(f"the SQL filter cannot express the operand `{type(operand).__name__}`")

    def column(self, path: str) -> Any:
        found = self.columns.get(path)
        if found is None:
            raise PlanError(f"the plan reads `{path}`, which no column is mapped to",
                            f"add `{path}` to the columns given to where()")
        return found


class shifted(FunctionElement[Any]):
    """A date moved by whole days or calendar months, clamped to the month's end (compiled per dialect)."""

    type = Date()
    name = "shifted"
    inherit_cache = False

    def __init__(self, date: Any, amount: int, unit: str):
        self.amount = amount
        self.unit = unit
        super().__init__(date)


# How each database moves a date {d} by {n} days or months. SQLite's own month step overflows
# (2025-01-31 + 1 month is 2025-03-03), so it takes the earlier of that and the last day of the
# target month; PostgreSQL's month interval keeps the day or clamps, as the language does.
_SHIFTS = {
    ("sqlite", "days"): "date({d}, '{n:+d} days')",
    ("sqlite", "months"): "min(date({d}, '{n:+d} months'), date({d}, 'start of month', '{after:+d} months', '-1 day'))",
    ("postgresql", "days"): "(CAST({d} AS DATE) + {n})",
    ("postgresql", "months"): "CAST(CAST({d} AS DATE) + make_interval(months => {n}) AS DATE)",
}


@compiles(shifted)
def _shift(element: shifted, compiler: Any, **kw: Any) -> str:
    template = _SHIFTS.get((compiler.dialect.name, element.unit))
    if template is None:
        raise PlanError(f"date arithmetic in a plan is not supported on {compiler.dialect.name}: "
                        "only SQLite and PostgreSQL follow the calendar exactly here",
                        "filter with plan.matches() in Python instead")
    n = int(element.amount)
    return template.format(d=compiler.process(next(iter(element.clauses)), **kw), n=n, after=n + 1)
