"""Compressing matrix rows: the merging by column sums gives exactly the rows of plain merging.

The reference below is the straightforward form (every column, every round,
rows compared by their other columns as tuples); `compress` must merge the
same rows in the same order, only faster. Rows stand for the same
combinations before and after, with the same outcomes.
"""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.governance.table import _OWNER, DIMENSIONS, SAME_AGENCY, _same_agency, compress


def reference_compress(found: list[tuple[tuple[frozenset[str], ...], Any]]) -> list[tuple[Any, Any]]:
    rows = _same_agency(list(found))
    width = len(rows[0][0]) if rows else len(DIMENSIONS)
    order = list(range(len(DIMENSIONS), width))
    order += [DIMENSIONS.index(p) for p in ("action", "resource.classification", "resource.category",
                                            "purpose", "resource.owner", "requester.agency", "requester.role")]
    changed = True
    while changed:
        changed = False
        for index in order:
            groups: dict[tuple[Any, ...], list[int]] = {}
            for number, (box, outcome) in enumerate(rows):
                key: tuple[Any, ...] = (outcome, box[:index] + box[index + 1:])
                if index == _OWNER and box[_OWNER] == SAME_AGENCY:
                    key = (number,)
                groups.setdefault(key, []).append(number)
            if len(groups) < len(rows):
                changed = True
                merged = []
                for numbers in groups.values():
                    box, outcome = rows[numbers[0]]
                    values = frozenset().union(*(rows[n][0][index] for n in numbers))
                    merged.append((box[:index] + (values,) + box[index + 1:], outcome))
                rows = merged
    return rows


def cells(rows: list[tuple[Any, Any]]) -> set[tuple[Any, ...]]:
    """Every combination the rows stand for, with its outcome ("own agency" spelled out)."""
    found = set()
    for box, outcome in rows:
        for combination in itertools.product(*(sorted(s) for s in box)):
            combination = list(combination)
            if combination[_OWNER] == "=requester.agency":
                combination[_OWNER] = combination[DIMENSIONS.index("requester.agency")]
            found.add((tuple(combination), outcome))
    return found



@st.composite
def found_rows(draw: Any) -> list[tuple[tuple[frozenset[str], ...], str]]:
    """Rows as the walk leaves them: disjoint single-value boxes, some over several values."""
    width = len(DIMENSIONS) + draw(st.integers(0, 3))
    agency = DIMENSIONS.index("requester.agency")
    rows = {}
    for _ in range(draw(st.integers(0, 40))):
        box = [frozenset(draw(st.sampled_from(["a", "b", "ab"]))) for _ in range(width)]
        if draw(st.booleans()):
            box[_OWNER] = box[agency]  # records of the requester's own agency
        rows[tuple(box)] = draw(st.sampled_from(["permit r1", "permit r2", "permit r1, r2"]))
    return list(rows.items())


@settings(max_examples=150, deadline=None)
@given(found_rows())
def test_compress_merges_as_plain_merging_does(found: list[tuple[Any, str]]) -> None:
    assert compress(found) == reference_compress(found)


@settings(max_examples=100, deadline=None)
@given(found_rows())
def test_compressed_rows_stand_for_the_same_combinations(found: list[tuple[Any, str]]) -> None:
    assert cells(compress(found)) == cells(found)


def test_rows_whose_column_hashes_sum_alike_are_compared_in_full(monkeypatch: Any) -> None:
    """Two rows whose sums coincide but which differ in two columns stay apart."""
    from engine.governance import table

    monkeypatch.setattr(table, "_GOLDEN", 0)  # every sum is 0: every row shares every key
    a, b = frozenset("a"), frozenset("b")
    width = len(DIMENSIONS)
    first = tuple([a] * width)
    second = tuple([b, b] + [a] * (width - 2))
    third = tuple([a] * (width - 1) + [b])
    found = [(first, "permit r1"), (second, "permit r1"), (third, "permit r1")]
    assert compress(found) == reference_compress(found)
    assert len(compress(found)) == 2


def test_a_merge_in_a_later_column_lets_an_earlier_one_merge_again() -> None:
    """Role merges first two rows; then action can merge them with a third: a second round."""
    a, b, ab = frozenset("a"), frozenset("b"), frozenset("ab")
    action, role = DIMENSIONS.index("action"), DIMENSIONS.index("requester.role")

    def row(action_values: frozenset[str], role_values: frozenset[str]) -> tuple[frozenset[str], ...]:
        box = [frozenset("x")] * len(DIMENSIONS)
        box[action], box[role] = action_values, role_values
        return tuple(box)

    found = [(row(a, a), "permit r1"), (row(a, b), "permit r1"), (row(b, ab), "permit r1")]
    assert compress(found) == [(row(ab, ab), "permit r1")]
