"""The language's keywords, read from the grammar rather than listed by hand.

A keyword is a word the grammar writes as a literal string (`"permit"`,
`"under"`). Words the grammar uses only right after a number, the duration
units (`28 days`), are words of the language only there (LANGUAGE.md §1),
so they are not keywords: `days` may still name a value elsewhere.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from lark import Lark
from lark.grammar import Rule
from lark.lexer import PatternStr


@functools.cache
def keywords(parser: Lark) -> frozenset[str]:
    """Every word-like literal terminal of the grammar, but those only ever after a number."""
    words = {t.name: t.pattern.value for t in parser.terminals
             if isinstance(t.pattern, PatternStr) and t.pattern.value.isidentifier()}
    after_number = _only_after(parser.rules, set(words), "NUMBER")
    return frozenset(value for name, value in words.items() if name not in after_number)


def _only_after(rules: Iterable[Rule], names: set[str], previous: str) -> set[str]:
    """The terminals among `names` that every expansion using them puts right after `previous`,
    directly or by starting a rule that always comes right after it."""
    uses: dict[str, list[tuple[str | None, str]]] = {}  # symbol -> (symbol before it, rule it is in)
    for rule in rules:
        expansion = rule.expansion
        for position, symbol in enumerate(expansion):
            before = expansion[position - 1].name if position else None
            uses.setdefault(symbol.name, []).append((before, rule.origin.name))

    def follows(symbol: str, seen: frozenset[str]) -> bool:
        found = uses.get(symbol, [])
        return bool(found) and all(
            before == previous or (before is None and origin not in seen and follows(origin, seen | {origin}))
            for before, origin in found)

    return {name for name in names if follows(name, frozenset())}

