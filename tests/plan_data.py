"""Partial requests and resources for the query-plan tests: the example set and generated sets.

A plan is right when, for every resource, `plan.matches(resource)` (or the
SQL its condition becomes) says what `Policy.decide` says. These helpers draw
the requests (without a resource) and the resources to compare on, including
omitted fields and the dates where calendars go wrong: month ends and 29 February.
"""

from __future__ import annotations

import datetime as dt
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

import engine
from engine.policy import Policy

sys.path.insert(0, str(Path(__file__).resolve().parent))
import policygen

EXAMPLES = Path(__file__).resolve().parent.parent / "policies"

# Dates where month arithmetic clamps or leap years matter, around the example set's dates.
DATES = [dt.date(2024, 2, 29), dt.date(2025, 1, 31), dt.date(2025, 2, 28), dt.date(2025, 3, 31),
         dt.date(2025, 6, 1), dt.date(2025, 5, 31), dt.date(2023, 6, 1), dt.date(2027, 6, 1), dt.date(2024, 12, 31)]
NUMBERS = [0, 1, 2, 3, 5, 12, 15, 16, 17, 18, 19, 25, 65, 2.5, -1]
STRINGS = ["", "a", "MASH", "none", "x y"]


def resource_values(policy: Policy) -> dict[str, list[Any]]:
    """For each resource field of a set, the values to draw from (None: omitted)."""
    vocab = policy.vocabulary
    found: dict[str, list[Any]] = {}
    for path, attribute in vocab.attributes.items():
        if not path.startswith("resource."):
            continue
        kind = attribute.kind
        if kind == "bool":
            values: list[Any] = [True, False]
        elif kind == "number":
            values = NUMBERS
        elif kind == "string":
            values = STRINGS + ["r1", "r2"]
        elif kind == "date":
            values = [d.isoformat() for d in DATES]
        elif kind == "one_of":
            values = list(attribute.values)
        else:
            values = vocab.values_of(kind)
        if not attribute.required:
            values = values + [None, None]
        found[path.split(".", 1)[1]] = values
    return found


def random_resource(rng: random.Random, values: dict[str, list[Any]]) -> dict[str, Any]:
    resource = {key: rng.choice(choices) for key, choices in values.items()}
    return {k: v for k, v in resource.items() if v is not None}


def _example_cases() -> list[dict[str, Any]]:
    """The requests of the example set's policy tests (with their defaults), aimed at its rules."""
    import yaml

    found = []
    for path in sorted(EXAMPLES.glob("*.test.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        defaults = data.get("defaults", {})
        for case in data.get("cases", []):
            request = {**defaults, **case["request"]}
            request["context"] = {**defaults.get("context", {}), **case["request"].get("context", {})}
            found.append(request)
    return found


EXAMPLE_CASES = _example_cases()


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.date) else value


def example_resource(rng: random.Random, values: dict[str, list[Any]]) -> dict[str, Any]:
    """A resource of a policy test's request, some fields changed, or a random one."""
    if rng.random() < 0.5:
        return random_resource(rng, values)
    resource = {k: _plain(v) for k, v in rng.choice(EXAMPLE_CASES)["resource"].items()}
    for key in rng.sample(sorted(values), k=min(len(values), rng.randint(0, 3))):
        choice = rng.choice(values[key])
        if choice is None:
            resource.pop(key, None)
        else:
            resource[key] = choice
    return resource


def example_partial(rng: random.Random, policy: Policy) -> dict[str, Any]:
    """A request to the example set without its resource: a policy test's (so that rules
    apply), or any requester, purpose, action and context."""
    vocab = policy.vocabulary
    if rng.random() < 0.6:
        case = rng.choice(EXAMPLE_CASES)
        partial = {k: v for k, v in case.items() if k != "resource"}
        partial["context"] = {k: _plain(v) for k, v in partial.get("context", {}).items()}
        return partial
    request: dict[str, Any] = {
        "requester": {"role": rng.choice(vocab.values_of("role")), "agency": rng.choice(vocab.values_of("agency"))},
        "action": rng.choice(vocab.values_of("action")),
        "purpose": rng.choice(vocab.values_of("purpose")),
        "context": {"date": rng.choice(DATES).isoformat()},
    }
    for path, attribute in vocab.attributes.items():
        root, _, name = path.partition(".")
        if root not in ("requester", "context") or attribute.builtin or rng.random() < 0.5:
            continue
        kind = attribute.kind
        if kind == "bool":
            value: Any = rng.random() < 0.5
        elif kind == "number":
            value = rng.choice(NUMBERS)
        elif kind == "string":
            value = rng.choice(STRINGS)
        elif kind == "date":
            value = rng.choice(DATES).isoformat()
        elif kind == "one_of":
            value = rng.choice(attribute.values)
        elif kind == "set" and attribute.element in ("one_of", "number", "string", "date"):
            pool = {"one_of": list(attribute.values), "number": NUMBERS, "string": STRINGS,
                    "date": [d.isoformat() for d in DATES]}[attribute.element]
            value = rng.sample(pool, rng.randint(0, min(2, len(pool))))
        elif kind == "set":
            value = rng.sample(vocab.values_of(attribute.element), rng.randint(0, 2))
        else:
            value = rng.choice(vocab.values_of(kind))
        request[root][name] = value
    return request


def generated_cases(seed: int, partials: int, resources: int) -> tuple[Policy, list[dict], list[dict]]:
    """A random policy set (tests/policygen.py), partial requests aimed at its rules, and resources."""
    rng = random.Random(seed)
    model = policygen.random_model(rng)
    with tempfile.TemporaryDirectory() as tmp:
        policy = engine.load(model.write(Path(tmp)))
    requests = []
    for _ in range(partials):
        target = rng.choice(model.rules) if model.rules and rng.random() < 0.8 else None
        request = policygen.random_request(rng, model, target)
        request.pop("resource", None)
        requests.append(request)
    values = resource_values(policy)
    found = []
    for _ in range(resources):
        if model.rules and rng.random() < 0.5:  # resources a rule is aimed at, and their fields
            target = rng.choice(model.rules)
            drawn = policygen.random_request(rng, model, target).get("resource", {})
        else:
            drawn = random_resource(rng, values)
        found.append(drawn)
    return policy, requests, found


def decided(policy: Policy, partial: dict, resource: dict) -> bool:
    return policy.decide({**partial, "resource": resource}, use_cache=False).permitted


def resource_table(policy: Policy, database: Any, resources: list[dict], name: str) -> tuple[Any, dict[str, Any]]:
    """A table (created in `database`) with a `row` number and one column per resource field, holding
    `resources` as plans compare them; and the column mapping `where` needs."""
    import sqlalchemy as sa

    from engine.plan import Planner

    types = {"bool": sa.Boolean, "number": sa.Float, "date": sa.Date}
    metadata = sa.MetaData()
    columns = [sa.Column("row", sa.Integer, primary_key=True)]
    for path, attribute in policy.vocabulary.attributes.items():
        if path.startswith("resource."):
            columns.append(sa.Column(path.split(".", 1)[1], types.get(attribute.kind, sa.String)()))
    table = sa.Table(name, metadata, *columns)
    metadata.drop_all(database)
    metadata.create_all(database)
    mapping = {c.name: c for c in table.columns if c.name != "row"}
    planner = Planner(policy)
    rows = []
    for number, resource in enumerate(resources):
        values = planner.canonical(resource)
        rows.append({"row": number, **{key: values.get(f"resource.{key}") for key in mapping}})
    with database.begin() as conn:
        conn.execute(table.insert(), rows)
    return table, mapping
