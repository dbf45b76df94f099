"""`engine check`: load a policy set, run every check, report like a compiler."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from engine import ast, checker, loader
from engine.commands.policy_set import announce, shown
from engine.errors import Diagnostic, PolicyLoadError, error, sorted_diagnostics

# Codes that may only be echoes of a file that did not parse: a name declared
# there looks unknown everywhere else. Shown again once the syntax is fixed.
_ECHOES = ("unknown_name", "unknown_attribute", "unknown_value", "bad_obligation_argument")


def diagnose(path: str | Path | None) -> tuple[ast.PolicySet, list[Diagnostic]]:
    """Every syntax and check diagnostic of the set at `path`, sorted.

    Raises PolicyLoadError only when the path cannot be read.
    """
    policy_set, syntax = loader.load_set(path)
    vocab, found = checker.check(policy_set)
    if syntax:
        found = [d for d in found if d.code not in _ECHOES]
    found = syntax + found
    if not any(d.is_error for d in found):
        found.extend(_trial_compile(policy_set, vocab))
    return policy_set, sorted_diagnostics(found)


def _trial_compile(policy_set: ast.PolicySet, vocab) -> list[Diagnostic]:
    """Compile a set the checks passed, so `ok` here means engine.load() succeeds."""
    try:
        from engine.compiler import CompileError, compile_policy
    except ImportError as exc:
        if exc.name != "engine.compiler":
            raise
        return []
    try:
        compile_policy(policy_set, vocab)
    except CompileError as exc:
        return [exc.to_diagnostic()]
    return []


def run_check(path: str | None, format: str = "text") -> int:
    """Check the set at `path`; 0 clean (warnings allowed), 1 errors, 2 unreadable."""
    try:
        policy_set, diagnostics = diagnose(path)
    except PolicyLoadError as exc:
        return _unreadable(exc, format)
    announce("check", path, policy_set.version)
    errors = sum(d.is_error for d in diagnostics)
    if format == "json":
        print(json.dumps(_json(diagnostics), indent=2))
    else:
        for diagnostic in diagnostics:
            print(diagnostic.render(), end="\n\n")
        print(_summary(shown(path), policy_set, diagnostics))
    return 1 if errors else 0


def _summary(shown: str, policy_set, diagnostics: list[Diagnostic]) -> str:
    errors = sum(d.is_error for d in diagnostics)
    warnings = len(diagnostics) - errors
    if errors:
        text = _count(errors, "error")
        return f"{text}, {_count(warnings, 'warning')}" if warnings else text
    facts = f"{_count(len(policy_set.files), 'file')}, {_count(len(policy_set.rules()), 'rule')}"
    if warnings:
        facts += f", {_count(warnings, 'warning')}"
    return f"{shown.rstrip('/')}: ok ({facts})"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _json(diagnostics: list[Diagnostic]) -> dict:
    errors = sum(d.is_error for d in diagnostics)
    return {
        "diagnostics": [d.to_json() for d in diagnostics],
        "errors": errors,
        "warnings": len(diagnostics) - errors,
    }


def _unreadable(exc: PolicyLoadError, format: str) -> int:
    if format == "json":
        print(json.dumps(_json([error(exc.code, exc.message, None)]), indent=2))
    else:
        print(f"error: {exc.message}", file=sys.stderr)
    return 2
