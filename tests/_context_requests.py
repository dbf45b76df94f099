"""Random complete requests over a policy set's whole context, and the table row that covers one.

Used by the property tests of the matrix and the diff: every attribute may be
given any value of its type (numbers and dates from a range wide enough to
cross every comparison in the test policies) or left out, and the request's
date is any date.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from engine.governance.table import SAME_AGENCY, Legend
from engine.governance.terms import DIMENSIONS, MISSING, attribute_value, default_value

NUMBERS = [-1, 0, 0.5, 1, 2, 3, 5, 10, 17, 18, 100, 500, 501]
FIRST, LAST = dt.date(2015, 1, 1).toordinal(), dt.date(2031, 12, 31).toordinal()


def random_request(vocab: Any, chooser: random.Random, date: dt.date | None = None) -> dict[str, Any]:
    """A request naming a value for every dimension and, at random, for each other attribute."""
    def value_of(kind: str, attribute: Any) -> Any:
        if kind == "bool":
            return chooser.random() < 0.5
        if kind == "number":
            return chooser.choice(NUMBERS)
        if kind == "date":
            return dt.date.fromordinal(chooser.randint(FIRST, LAST)).isoformat()
        if kind == "string":
            return chooser.choice(["MASH", "x", "a b", "other"])
        if kind == "one_of":
            return chooser.choice(list(attribute.values))
        return chooser.choice(vocab.values_of(kind))

    request: dict[str, Any] = {}
    for path, attribute in vocab.attributes.items():
        if path in DIMENSIONS:
            value = value_of(attribute.kind, attribute)
        elif path == "context.date":
            value = (date or dt.date.fromordinal(chooser.randint(FIRST, LAST))).isoformat()
        elif chooser.random() < 0.25:
            continue
        elif attribute.kind == "set":
            element = attribute.element or "string"
            value = sorted({value_of(element, attribute) for _ in range(chooser.randint(0, 3))})
        else:
            value = value_of(attribute.kind, attribute)
        *parents, last = path.split(".")
        here = request
        for part in parents:
            here = here.setdefault(part, {})
        here[last] = value
    return request


def lookup(request: dict[str, Any], path: str) -> Any:
    here: Any = request
    for part in path.split("."):
        if not isinstance(here, dict) or part not in here:
            return MISSING
        here = here[part]
    return here


def env_of(vocab: Any, request: dict[str, Any]) -> dict[Any, Any]:
    """What terms read of a request: typed values, defaults for what it leaves out."""
    env: dict[Any, Any] = {}
    for path in vocab.attributes:
        raw = lookup(request, path)
        env[("has", path)] = raw is not MISSING
        env[path] = default_value(vocab, path) if raw is MISSING else attribute_value(vocab, path, raw)
    return env


def covering(rows: list[Any], legend: Legend, space: Any, vocab: Any, request: dict[str, Any]) -> list[Any]:
    """The rows (box, outcome) whose values and context cases hold the request."""
    cases = space.locate(env_of(vocab, request))
    dims = [str(lookup(request, p)) for p in DIMENSIONS]
    found = []
    for box, outcome in rows:
        expanded = legend.expand(box)
        if not all(value in values for value, values in zip(dims, expanded)):
            continue
        if box[6] == SAME_AGENCY and dims[2] != dims[6]:
            continue
        if all(cases[axis.path] in keys for axis, keys in zip(space.axes, box[len(DIMENSIONS):])):
            found.append((box, outcome))
    return found
