"""Progress: a one-line bar on a terminal's stderr for long runs, silent when piped."""

from __future__ import annotations

import sys
import time
from typing import Self, TextIO


class Progress:
    """Counts work done out of `total`; draws at most ten times a second.

    Nothing is written unless the stream is a terminal, so output that is piped
    or captured (CI logs, tests) stays exactly what the command printed.
    """

    def __init__(self, total: int, label: str, stream: TextIO | None = None, width: int = 30):
        self.total = max(int(total), 1)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.done = 0
        self.shown = _is_terminal(self.stream)
        self._last = 0.0

    def advance(self, amount: int) -> None:
        """Add `amount` to the work done, redrawing when enough time has passed."""
        self.done += amount
        if self.shown:
            now = time.monotonic()
            if now - self._last >= 0.1:
                self._last = now
                self._draw()

    def close(self) -> None:
        """Erase the bar, leaving the terminal as it was."""
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.shown = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _draw(self) -> None:
        part = min(self.done / self.total, 1.0)
        filled = int(part * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {part:4.0%}")
        self.stream.flush()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
