"""Syntax errors that send the author to the fix, not to where the parser gave up.

The parser reports the first token it could not use. For the mistakes authors
make most (a comma missing at the end of a list line, a condition cut between
lines, a `{` never closed, text pasted from Word or Excel), that token is
often on a later line and says nothing about the cause. Each function here
looks at the text around the failure and, when it recognises the mistake,
returns the message, the place and the help to show instead; None otherwise.
`syntax.py` asks them in turn; tests/test_syntax_hints.py holds a table of
broken inputs with the error each must give, in the manner of Lark's
`match_examples`.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass

from lark import Token

from engine.source import Source, Span, point


@dataclass(frozen=True, slots=True)
class Hint:
    message: str
    span: Span
    help: str


# Keywords that begin a declaration at the top of a file.
DECLARATION_WORDS = frozenset(
    ["policy", "actions", "roles", "purposes", "categories", "classifications", "agencies", "group", "attributes", "agreement", "permit", "deny", "on"])
# Keywords that begin a clause inside a rule.
CLAUSE_WORDS = frozenset(["action", "role", "agency", "purpose", "data", "owner", "under", "when", "unless", "obligation", "because"])
# Operators after which a condition must go on.
_JOINS = frozenset(("and", "or", "not", "==", "!=", "<", "<=", ">", ">=", "in", "is"))

# Characters pasted from word processors and spreadsheets, with what to type instead.
_PASTED = {
    "\u201c": ("a curly quote", 'use straight double quotes: "like this"'),
    "\u201d": ("a curly quote", 'use straight double quotes: "like this"'),
    "\u2018": ("a curly quote", 'use straight double quotes: "like this"'),
    "\u2019": ("a curly quote", 'use straight double quotes: "like this" (an apostrophe inside a string is fine)'),
    "\u00a0": ("a non-breaking space", "replace it with an ordinary space"),
    "\u2007": ("a figure space", "replace it with an ordinary space"),
    "\u202f": ("a narrow non-breaking space", "replace it with an ordinary space"),
    "\u200b": ("a zero-width space", "delete it (it is invisible: delete the character before the next word)"),
    "\u2013": ("an en dash", "use `-` only inside dates and names"),
    "\u2014": ("an em dash", "use `-` only inside dates and names"),
}
_PASTED_NOTE = " (text copied from Word, Excel or a web page often brings these in)"
_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\s*$")


def unexpected_character(source: Source, line: int, column: int, char: str) -> Hint | None:
    """A character the lexer cannot read: pasted punctuation, or a dash between two dates."""
    before = source.line(line)[: column - 1]
    if char in "-\u2013\u2014" and _DATE.search(before) and before.lstrip().startswith("valid"):
        start = _DATE.search(before).group().strip()  # type: ignore[union-attr]
        end = re.match(r"\s*(\d{4}-\d{2}-\d{2})", source.line(line)[column:])
        return Hint(f"unexpected `{char}` between the dates", point(source, line, column),
                    f"write `to` between the dates: `valid {start} to {end.group(1) if end else '…'}`")
    if char in _PASTED:
        what, help = _PASTED[char]
        shown = f"U+{ord(char):04X}" if char.isspace() or char == "\u200b" else f"`{char}`"
        return Hint(f"unexpected character {shown}: {what}", point(source, line, column), help + _PASTED_NOTE)
    return None


@dataclass(frozen=True, slots=True)
class _Tok:
    """The parts of a Lark token used here, as plain values."""

    type: str
    value: str
    line: int
    column: int
    end_line: int
    end_column: int
    start_pos: int


def unexpected_token(source: Source, found: Token, expected: set[str]) -> Hint | None:
    """A token the parser cannot use here; the mistake is often on the line before."""
    token = _Tok(found.type, str(found.value), found.line or 1, found.column or 1, found.end_line or 1,
                 found.end_column or 1, found.start_pos or 0)
    if token.value == "-":  # `-` is also date arithmetic, so the lexer passes it on
        dash = unexpected_character(source, token.line, token.column, "-")
        if dash is not None:
            return dash
    for hint in (_unclosed_brace(source, token), _line_cut_after_operator(source, token),
                 _line_starting_with_join(source, token), _missing_comma(source, token, expected)):
        if hint is not None:
            return hint
    return None


def _unclosed_brace(source: Source, token: _Tok) -> Hint | None:
    """A declaration keyword at the start of a line while a `{` is still open: name that `{`."""
    if token.value not in DECLARATION_WORDS or token.column != 1:
        return None
    opened = open_braces(source.text, token.start_pos)
    if not opened:
        return None
    line, column = line_column(source.text, opened[-1])
    return Hint(f"the `{{` on line {line} is never closed", point(source, line, column),
                f"add `}}` to close it before `{token.value}` on line {token.line}")


def _line_cut_after_operator(source: Source, token: _Tok) -> Hint | None:
    """`when a and` at the end of a line, then a clause keyword: the condition was cut short."""
    if token.type != "_NL":
        return None
    words = source.line(token.line).split("#", 1)[0].split()
    if not words or words[-1] not in _JOINS:
        return None
    following = _next_word(source, token.line)
    if following is None or following[1] not in CLAUSE_WORDS | DECLARATION_WORDS:
        return None
    number, word = following
    last = words[-1]
    return Hint(
        f"line {token.line} ends with `{last}`, so the condition goes on to the next line, "
        f"but line {number} starts a new clause with `{word}`",
        point(source, token.line, len(source.line(token.line).rstrip()) - len(last) + 1, len(last)),
        f"finish the condition after `{last}` on line {token.line}, or remove the `{last}`")


def _line_starting_with_join(source: Source, token: _Tok) -> Hint | None:
    """`and ...` / `or ...` at the start of a line after a clause that is not a condition."""
    if token.value not in ("and", "or") or source.line(token.line)[: token.column - 1].strip():
        return None
    previous = _previous_line(source, token.line)
    if previous is None:
        return None
    number, text = previous
    first = text.split()[0] if text.split() else ""
    if first in ("when", "unless"):
        return None
    what = f"a `{first}` clause" if first in CLAUSE_WORDS else "not a condition"
    return Hint(
        f"line {token.line} starts with `{token.value}`, so it continues line {number}, "
        f"but line {number} is {what}",
        _token_span(source, token),
        f"`and` and `or` join the conditions of `when` and `unless`; each other clause stands on its own "
        f"line: remove `{token.value}`" + (f", or list both values in one clause: `{first} a, b`"
                                            if first in CLAUSE_WORDS and first not in ("obligation", "because")
                                            else ""))


def _missing_comma(source: Source, token: _Tok, expected: set[str]) -> Hint | None:
    """A name alone at the start of a line after a line ending in a name: a list line without its `,`."""
    if token.type not in ("NAME", "DOTTED") or source.line(token.line)[: token.column - 1].strip():
        return None
    rest = source.line(token.line)[token.end_column - 1:].split("#", 1)[0].strip()
    if rest not in ("", ",", "}") and not rest.startswith(","):
        return None  # `word other ...` looks like a clause, not a list going on
    previous = _previous_line(source, token.line)
    if previous is None:
        return None
    number, text = previous
    if not re.search(r"[A-Za-z0-9_]$", text):
        return None
    return Hint(f"line {token.line} goes on with `{token.value}`, but line {number} does not end with `,`",
                point(source, number, len(source.line(number).split("#", 1)[0].rstrip()) + 1),
                f"add `,` at the end of line {number} to continue the list")


def open_braces(text: str, end: int) -> list[int]:
    """Offsets of the `{` still open at offset `end` (strings and comments skipped)."""
    opened: list[int] = []
    i = 0
    while i < end:
        char = text[i]
        if char == "#":
            i = text.find("\n", i)
            i = end if i < 0 else i
        elif char == '"':
            i += 1
            while i < end and text[i] not in '"\n':
                i += 2 if text[i] == "\\" else 1
        elif char == "{":
            opened.append(i)
        elif char == "}" and opened:
            opened.pop()
        i += 1
    return opened


def line_column(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of `offset` in `text`."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def date_help(value: str) -> str:
    """Why `value` (year-month-day digits) is not a date, in words."""
    year, month, day = (int(part) for part in value.split("-"))
    if not 1 <= month <= 12:
        return f"there is no month {month}: dates are written year-month-day, like 2025-06-01"
    days = calendar.monthrange(year, month)[1] if year >= 1 else 31
    if day == 0 or day > days:
        return f"{calendar.month_name[month]} {year} has {days} days"
    return "dates are written year-month-day, like 2025-06-01"


def _token_span(source: Source, token: _Tok) -> Span:
    return Span(source, token.line, token.column, token.end_line, token.end_column)


def _code(text: str) -> str:
    return text.split("#", 1)[0].strip()


def _previous_line(source: Source, line: int) -> tuple[int, str] | None:
    """The nearest line before `line` with code on it (comments and blank lines skipped)."""
    for number in range(line - 1, 0, -1):
        code = _code(source.line(number))
        if code:
            return number, code
    return None


def _next_word(source: Source, line: int) -> tuple[int, str] | None:
    """The first word of the nearest line after `line` with code on it."""
    total = source.text.count("\n") + 1
    for number in range(line + 1, total + 1):
        code = _code(source.line(number))
        if code:
            return number, code.split()[0]
    return None
