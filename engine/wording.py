"""Wording: lists and counts in plain English, for every module that words things for people.

This module imports nothing, so any module may use it without an import cycle.
"""

from __future__ import annotations

from collections.abc import Iterable


def or_list(items: Iterable[str]) -> str:
    """`a`, `a or b`, `a, b or c`."""
    return _joined(list(items), "or")


def and_list(items: Iterable[str]) -> str:
    """`a`, `a and b`, `a, b and c`."""
    return _joined(list(items), "and")


def _joined(items: list[str], word: str) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + f" {word} " + items[-1]


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """The noun for `count` of it: `rule` for 1, else `rules` (or the given plural)."""
    return noun if count == 1 else (nouns or noun + "s")


def count(number: int, noun: str, nouns: str | None = None, *, grouped: bool = False) -> str:
    """`1 file`, `3 files`; with `grouped`, thousands separated (`12,345 rows`)."""
    shown = f"{number:,}" if grouped else str(number)
    return f"{shown} {plural(number, noun, nouns)}"
