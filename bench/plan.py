"""Benchmark query plans: how long a plan takes, and a list page built on one.

    python bench/plan.py                 # example set and a generated 1,000-rule set; SQLite, and PostgreSQL if up
    python bench/plan.py --rows 10000 --plans 500

Plan time: `Policy.plan` for partial requests drawn from the benchmark's
request mix (bench/generate.py) with their resources removed, each planned
from scratch (plans are not cached). The list page: a table of ROWS records
(the mix's resources); "plan + SQL" is one plan and one SELECT with its WHERE
clause (engine/integrations/sqlalchemy.py); "decide per row" selects every
row and decides one request per row with `Policy.decide_many` (uncached, as
distinct rows are), keeping the permitted ones. Both must find the same rows;
the benchmark checks that they do.

Target: a plan at 1,000 rules in under 1 ms (median).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# bench/ goes after the standard library (Python puts a script's own directory first): bench/http.py
# must not stand in for the standard `http` package the service imports.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"] + [str(ROOT / "bench")]
sys.path.insert(0, str(ROOT / "tests"))

import sqlalchemy as sa
from generate import realistic_model, request_mix
from plan_data import EXAMPLE_CASES, resource_table
from servers import serving

import engine
from engine.client import PolicyClient
from engine.integrations.sqlalchemy import where
from engine.service.app import create_app

PG_URL = os.environ.get("ENGINE_BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def plan_times(policy: Any, partials: list[dict]) -> tuple[float, float, dict[str, int]]:
    """Median and 99th percentile ms of planning each partial request; kinds of plan."""
    policy.plan(partials[0])  # prepares the rules as terms, once per policy
    times, kinds = [], {}
    for partial in partials:
        started = time.perf_counter()
        plan = policy.plan(partial)
        times.append((time.perf_counter() - started) * 1000)
        kinds[plan.kind] = kinds.get(plan.kind, 0) + 1
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1], kinds


def list_page(plan_of: Any, decide_all: Any, database: Any, table: Any, mapping: dict[str, Any],
              partials: list[dict], resources: list[dict]) -> tuple[float, float, int]:
    """Median ms of plan + SQL and of select-all + decide per row, and rows shown in all.

    `plan_of(partial)` plans and `decide_all(requests)` decides a list: the library's or the client's.
    """
    planned, decided, shown = [], [], 0
    fields = [c for c in table.columns if c.name != "row"]
    for partial in partials:
        started = time.perf_counter()
        plan = plan_of(partial)
        with database.connect() as conn:
            found = {r for (r,) in conn.execute(sa.select(table.c.row).where(where(plan, mapping)))}
        planned.append(time.perf_counter() - started)

        started = time.perf_counter()
        with database.connect() as conn:
            rows = conn.execute(sa.select(table.c.row, *fields)).all()
        requests = [{**partial, "resource": resources[row[0]]} for row in rows]
        decisions = decide_all(requests)
        kept = {row[0] for row, d in zip(rows, decisions) if d.permitted}
        decided.append(time.perf_counter() - started)
        if kept != found:
            raise SystemExit(f"plan and decide disagree for {partial}: {len(found)} vs {len(kept)} rows")
        shown += len(found)
    return statistics.median(planned) * 1000, statistics.median(decided) * 1000, shown


def databases() -> list[tuple[str, Any, Any]]:
    found = [("SQLite (memory)", sa.create_engine("sqlite://"), None)]
    name = f"engine_bench_{uuid.uuid4().hex[:10]}"
    try:
        admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        found.append(("PostgreSQL (loopback)", sa.create_engine(PG_URL.rsplit("/", 1)[0] + "/" + name),
                      (admin, name)))
    except Exception as exc:  # noqa: BLE001 - no server: SQLite only
        print(f"(no PostgreSQL at {PG_URL}: {exc.__class__.__name__})")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--plans", type=int, default=500)
    parser.add_argument("--pages", type=int, default=5, help="list pages per database")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        sets = [("example set", engine.load(ROOT / "policies"), None)]
        for size in (100, 1000):
            model = realistic_model(size)
            sets.append((f"generated, {size:,} rules", engine.load(model.write(Path(tmp) / str(size))), model))
        print("\n| set | rules | plans | median ms | p99 ms | always allowed / denied / conditional |")
        print("|---|---|---|---|---|---|")
        mixes = {}
        for label, policy, model in sets:
            if model is None:
                mix = [dict(c) for c in EXAMPLE_CASES] * (args.plans // len(EXAMPLE_CASES) + 1)
            else:
                mix = request_mix(model, max(args.plans, args.rows))
            mixes[label] = mix
            partials = [{k: v for k, v in r.items() if k != "resource"} for r in mix[:args.plans]]
            median, p99, kinds = plan_times(policy, partials)
            print(f"| {label} | {len(policy.rules):,} | {len(partials)} | {median:.3f} | {p99:.3f} | "
                  f"{kinds.get('always_allowed', 0)} / {kinds.get('always_denied', 0)} / "
                  f"{kinds.get('conditional', 0)} |")
        label, policy, model = sets[-1]
        mix = mixes[label]
        resources = [r["resource"] for r in mix[:args.rows]]
        conditional = [p for p in ({k: v for k, v in r.items() if k != "resource"} for r in mix)
                       if policy.plan(p).kind == "conditional"][:args.pages]
        print(f"\nList page, {label}, {len(resources):,} rows, {len(conditional)} conditional plans "
              "(median per page):\n")
        print("| database, decided by | plan + one SQL query, ms | select all + decide per row, ms | speed-up | rows |")
        print("|---|---|---|---|---|")
        def uncached(requests: list[dict]) -> list[Any]:
            return policy.decide_many(requests, use_cache=False)

        for name, database, cleanup in databases():
            try:
                table, mapping = resource_table(policy, database, resources, "records")
                planned, decided, shown = list_page(policy.plan, uncached, database, table, mapping,
                                                    conditional, resources)
                print(f"| {name}, library | {planned:.1f} | {decided:.1f} | {decided / planned:.0f}x | {shown:,} |")
                if cleanup is None:  # the same page through the service, on SQLite
                    with serving(create_app(Path(tmp) / "1000", watch=False)) as url, PolicyClient(url) as client:
                        planned, decided, shown = list_page(client.plan, client.decide_many, database, table,
                                                            mapping, conditional, resources)
                    print(f"| {name}, over HTTP (POST /plan; /decide/batch x{-(-len(resources) // 1000)}) | "
                          f"{planned:.1f} | {decided:.1f} | {decided / planned:.0f}x | {shown:,} |")
            finally:
                database.dispose()
                if cleanup is not None:
                    admin, db = cleanup
                    with admin.connect() as conn:
                        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
                    admin.dispose()


if __name__ == "__main__":
    main()
