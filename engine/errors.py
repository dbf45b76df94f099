"""Diagnostics and errors: what went wrong, where, and how to fix it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from engine.source import Span


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One finding about a policy set, with the place it points at."""

    severity: Severity
    code: str
    message: str
    span: Span | None
    help: str | None = None

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def sort_key(self) -> tuple[Any, ...]:
        if self.span is None:
            return ("", 0, 0, self.message)
        return (self.span.path, self.span.line, self.span.column, self.message)

    def render(self) -> str:
        """`file:line:col: error: message`, the source line, a caret, and help."""
        where = f"{self.span}: " if self.span else ""
        lines = [f"{where}{self.severity.value}: {self.message}"]
        if self.span is not None:
            lines.extend("    " + line for line in self.span.snippet().split("\n"))
        if self.help:
            lines.append(f"help: {self.help}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"severity": self.severity.value, "code": self.code, "message": self.message}
        if self.span is not None:
            data["location"] = {
                "file": self.span.path,
                "line": self.span.line,
                "column": self.span.column,
                "end_line": self.span.end_line,
                "end_column": self.span.end_column,
            }
        if self.help:
            data["help"] = self.help
        return data


def error(code: str, message: str, span: Span | None, help: str | None = None) -> Diagnostic:
    return Diagnostic(Severity.ERROR, code, message, span, help)


def warning(code: str, message: str, span: Span | None, help: str | None = None) -> Diagnostic:
    return Diagnostic(Severity.WARNING, code, message, span, help)


def sorted_diagnostics(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    return sorted(diagnostics, key=Diagnostic.sort_key)


def render_all(diagnostics: Iterable[Diagnostic]) -> str:
    return "\n\n".join(d.render() for d in sorted_diagnostics(diagnostics))


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A `did you mean ...?` help line for the closest candidate, if any is close."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


class PolicyError(Exception):
    """Base of every error the engine reports to a person."""

    code = "policy_error"

    def __init__(self, message: str, span: Span | None = None, help: str | None = None):
        super().__init__(message)
        self.message = message
        self.span = span
        self.help = help

    def to_diagnostic(self) -> Diagnostic:
        return error(self.code, self.message, self.span, self.help)

    def to_json(self) -> dict[str, Any]:
        return self.to_diagnostic().to_json()


class PolicySyntaxError(PolicyError):
    code = "policy_parse_error"


class PolicyLoadError(PolicyError):
    """A policy set that could not be loaded: unreadable or with errors."""

    code = "policy_load_error"

    def __init__(self, message: str, diagnostics: list[Diagnostic] | None = None):
        super().__init__(message)
        self.diagnostics = sorted_diagnostics(diagnostics or [])

    def render(self) -> str:
        return render_all(self.diagnostics) if self.diagnostics else self.message


class RequestError(PolicyError):
    """A request that cannot be decided: names the field and what was expected."""

    code = "invalid_request"

    def __init__(self, field: str, message: str, help: str | None = None,
                 errors: tuple[RequestError, ...] = ()):
        super().__init__(message, None, help)
        self.field = field
        # Every mistake found at once (the first is this error itself), when there are several:
        # a caller fixing missing fields one round trip at a time would be told one per try.
        self.errors = errors

    def within(self, prefix: str) -> RequestError:
        """The same error for a request inside something larger (`requests[3]`)."""
        field = f"{prefix}.{self.field}" if self.field else prefix
        return RequestError(field, self.message, self.help, tuple(e.within(prefix) for e in self.errors))

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"code": self.code, "message": self.message, "field": self.field}
        if self.help:
            data["help"] = self.help
        if self.errors:
            data["errors"] = [e.to_json() for e in self.errors]
        return data

    def lines(self) -> list[str]:
        """Each mistake on a line of its own."""
        return [str(e) for e in self.errors] if self.errors else [str(self)]

    def __str__(self) -> str:
        text = f"{self.field}: {self.message}" if self.field else self.message
        return f"{text} ({self.help})" if self.help else text
