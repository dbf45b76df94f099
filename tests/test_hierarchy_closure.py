"""A hierarchy's ancestors and descendants, joined parent by parent, against walking up from every node."""

from __future__ import annotations

import random

import pytest

from engine.source import Source, point
from engine.symbols import Hierarchy

SPAN = point(Source("roles.policy", "roles {}\n"), 1, 1)


def _walked(hierarchy: Hierarchy) -> tuple[dict[str, frozenset[str]], dict[str, frozenset[str]]]:
    """The oracle: each node's ancestors by walking up, and descendants as their inverse."""
    ancestors = {name: frozenset(hierarchy._walk_up(name)) for name in hierarchy.names}
    descendants = {name: frozenset(n for n, ups in ancestors.items() if name in ups) for name in hierarchy.names}
    return ancestors, descendants


def _random_roles(rng: random.Random, size: int, cycle: bool) -> Hierarchy:
    hierarchy = Hierarchy("role")
    for i in range(size):
        earlier = [f"r{j}" for j in range(i)]
        parents = tuple(rng.sample(earlier, min(len(earlier), rng.choice([0, 1, 1, 2, 3]))))
        if rng.random() < 0.1:
            parents += ("undeclared",)  # the checker reports it; closing ignores it
        hierarchy.add(f"r{i}", None, parents, SPAN)
    if cycle:
        hierarchy.parents["r0"] = (f"r{size - 1}",)
    return hierarchy


@pytest.mark.parametrize("cycle", [False, True])
@pytest.mark.parametrize("seed", range(10))
def test_closing_joins_what_walking_up_finds(seed: int, cycle: bool) -> None:
    hierarchy = _random_roles(random.Random(seed), 40, cycle)
    hierarchy.close()
    ancestors, descendants = _walked(hierarchy)
    assert hierarchy.ancestors == ancestors
    assert hierarchy.descendants == descendants
    assert list(hierarchy.ancestors) == hierarchy.names


def test_a_long_chain_of_roles_closes() -> None:
    hierarchy = Hierarchy("role")
    for i in range(3000):
        hierarchy.add(f"r{i}", None, (f"r{i - 1}",) if i else (), SPAN)
    hierarchy.close()
    assert hierarchy.ancestors["r2999"] == frozenset(f"r{i}" for i in range(3000))
    assert hierarchy.descendants["r0"] == frozenset(hierarchy.names)
