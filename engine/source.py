"""Source text and spans: where every node and diagnostic comes from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Source:
    """One policy file's path (as shown to people) and its text."""

    path: str
    text: str

    @classmethod
    def read(cls, path: Path, shown_as: str | None = None) -> Source:
        # utf-8-sig: a byte order mark, which Windows editors may add, is not part of the text.
        return cls(shown_as or str(path), path.read_text(encoding="utf-8-sig"))

    def line(self, number: int) -> str:
        """The text of 1-based line `number`, without its newline."""
        # Split on newlines only, as the parser counts lines; str.splitlines
        # would also break at form feeds and other separators.
        lines = self.text.split("\n")
        return lines[number - 1].rstrip("\r") if 0 < number <= len(lines) else ""


@dataclass(frozen=True, slots=True)
class Span:
    """A range in a source: 1-based lines and columns, end exclusive."""

    source: Source = field(compare=False, repr=False)
    line: int
    column: int
    end_line: int
    end_column: int

    @property
    def path(self) -> str:
        return self.source.path

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"

    def snippet(self) -> str:
        """The first line of the span with a caret line underneath it."""
        text = self.source.line(self.line)
        end = self.end_column if self.end_line == self.line else len(text) + 1
        width = max(1, end - self.column)
        pad = "".join("\t" if ch == "\t" else " " for ch in text[: self.column - 1])
        return f"{text}\n{pad}{'^' * width}"

    def to(self, other: Span) -> Span:
        """The span from the start of this one to the end of `other`."""
        return Span(self.source, self.line, self.column, other.end_line, other.end_column)


def point(source: Source, line: int, column: int, width: int = 1) -> Span:
    """A span of `width` characters on one line."""
    return Span(source, line, column, line, column + width)
