"""Plans as SQL: the rows a plan's WHERE clause returns are exactly the rows `decide` permits.

Tables of generated records (10,000 for the example set) in SQLite and in a
real PostgreSQL server (127.0.0.1:5432, trust authentication; skipped when
none answers), with month ends and 29 February among the dates.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

sa = pytest.importorskip("sqlalchemy")

from plan_data import (
    DATES,
    decided,
    example_partial,
    example_resource,
    generated_cases,
    resource_table,
    resource_values,
)
from test_plan import EXAMPLE

from engine.conditions import Compare, Field, PlanError, Shift, Value, shift_date
from engine.integrations.sqlalchemy import where
from engine.policy import Policy

PG_URL = os.environ.get("ENGINE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def _sqlite() -> Iterator[Any]:
    engine = sa.create_engine("sqlite://")
    yield engine
    engine.dispose()


def _postgres() -> Iterator[Any]:
    pytest.importorskip("psycopg")
    name = f"engine_plan_{uuid.uuid4().hex[:12]}"
    try:
        admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - no server here: the SQLite half still runs
        pytest.skip(f"no PostgreSQL at {PG_URL}: {exc.__class__.__name__}")
    engine = sa.create_engine(PG_URL.rsplit("/", 1)[0] + "/" + name)
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> Iterator[Any]:
    yield from (_sqlite() if request.param == "sqlite" else _postgres())


def selected(database: Any, table: Any, mapping: dict[str, Any], plan: Any) -> set[int]:
    with database.connect() as conn:
        return {row for (row,) in conn.execute(sa.select(table.c.row).where(where(plan, mapping)))}


def permitted(policy: Policy, partial: dict, resources: list[dict]) -> set[int]:
    return {n for n, resource in enumerate(resources) if decided(policy, partial, resource)}


def test_example_set_filters_10000_rows_as_decide_does(database: Any) -> None:
    rng = random.Random(14)
    values = resource_values(EXAMPLE)
    resources = [example_resource(rng, values) for _ in range(10_000)]
    table, mapping = resource_table(EXAMPLE, database, resources, "example_records")
    conditional = rows = 0
    for _ in range(4):
        partial = example_partial(rng, EXAMPLE)
        plan = EXAMPLE.plan(partial)
        while plan.kind != "conditional":  # the interesting case; the others are checked below
            partial = example_partial(rng, EXAMPLE)
            plan = EXAMPLE.plan(partial)
        conditional += 1
        expected = permitted(EXAMPLE, partial, resources)
        assert selected(database, table, mapping, plan) == expected, partial
        rows += len(expected)
    assert conditional == 4 and rows > 100


def test_generated_sets_filter_as_decide_does(database: Any) -> None:
    compared = 0
    for seed in range(12):
        policy, partials, resources = generated_cases(seed, partials=5, resources=150)
        table, mapping = resource_table(policy, database, resources, f"generated_{seed}")
        for partial in partials:
            plan = policy.plan(partial)
            assert selected(database, table, mapping, plan) == permitted(policy, partial, resources), \
                (seed, partial, plan.to_dict())
            compared += 1
    assert compared == 60


@pytest.mark.parametrize("amount, unit", [(1, "months"), (-1, "months"), (12, "months"), (13, "months"),
                                          (-12, "months"), (28, "days"), (-7, "days")])
def test_date_arithmetic_follows_the_calendar_in_sql(database: Any, amount: int, unit: str) -> None:
    metadata = sa.MetaData()
    table = sa.Table(f"dates_{abs(amount)}_{unit}", metadata, sa.Column("row", sa.Integer, primary_key=True),
                     sa.Column("day", sa.Date))
    metadata.drop_all(database)
    metadata.create_all(database)
    days = DATES + [dt.date(2024, 1, 31), dt.date(2024, 3, 31), dt.date(2023, 2, 28), dt.date(2025, 12, 31)]
    with database.begin() as conn:
        conn.execute(table.insert(), [{"row": n, "day": d} for n, d in enumerate(days)] + [{"row": 99, "day": None}])
    field = Field("resource.day", "date")
    for target in sorted({shift_date(d, amount, unit) for d in days}):
        condition = Compare("eq", Shift(field, amount, unit), Value(target))
        expected = {n for n, d in enumerate(days) if shift_date(d, amount, unit) == target}
        assert selected(database, table, {"day": table.c.day}, condition) == expected, target


def test_unmapped_fields_and_other_databases_are_refused() -> None:
    plan = EXAMPLE.plan({"requester": {"role": "social_worker", "agency": "manchester_cs"}, "action": "share",
                         "purpose": "child_protection", "context": {"risk_of_harm": True}})
    with pytest.raises(PlanError, match="resource.adoption_sealed"):
        where(plan, {"category": sa.column("category")})
    condition = Compare("eq", Shift(Field("resource.day", "date"), 1, "months"), Value(dt.date(2025, 2, 28)))
    clause = where(condition, {"day": sa.column("day")})
    from sqlalchemy.dialects import mysql

    with pytest.raises(PlanError, match="not supported on mysql"):
        clause.compile(dialect=mysql.dialect())
