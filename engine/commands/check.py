"""`engine check`: load a policy set, run every check, report like a compiler."""

from __future__ import annotations

import json
import sys
from typing import Any

from engine import ast, pipeline
from engine.commands.policy_set import announce, shown
from engine.errors import Diagnostic, PolicyLoadError, error
from engine.wording import count


def run_check(path: str | None, format: str = "text") -> int:
    """Check the set at `path`; 0 clean (warnings allowed), 1 errors, 2 unreadable."""
    try:
        result = pipeline.run(path)
    except PolicyLoadError as exc:
        return _unreadable(exc, format)
    policy_set, diagnostics = result.policy_set, result.diagnostics
    announce("check", path, policy_set.version)
    errors = sum(d.is_error for d in diagnostics)
    if format == "json":
        print(json.dumps(_json(diagnostics), indent=2))
    else:
        for diagnostic in diagnostics:
            print(diagnostic.render(), end="\n\n")
        print(_summary(shown(path), policy_set, diagnostics))
    return 1 if errors else 0


def _summary(shown: str, policy_set: ast.PolicySet, diagnostics: list[Diagnostic]) -> str:
    errors = sum(d.is_error for d in diagnostics)
    warnings = len(diagnostics) - errors
    if errors:
        text = count(errors, "error")
        return f"{text}, {count(warnings, 'warning')}" if warnings else text
    facts = f"{count(len(policy_set.files), 'file')}, {count(len(policy_set.rules()), 'rule')}"
    if warnings:
        facts += f", {count(warnings, 'warning')}"
    return f"{shown.rstrip('/')}: ok ({facts})"


def _json(diagnostics: list[Diagnostic]) -> dict[str, Any]:
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
