"""Static checks: named passes over a policy set, collecting every diagnostic."""

from __future__ import annotations

from typing import Callable

from engine import ast
from engine.errors import Diagnostic, error, sorted_diagnostics, warning
from engine.symbols import Vocabulary, build_vocabulary

Pass = Callable[[ast.PolicySet, Vocabulary], list[Diagnostic]]


def _missing_because(policy_set: ast.PolicySet, vocab: Vocabulary) -> list[Diagnostic]:
    found = []
    for rule in vocab.rules:
        if not any(isinstance(c, ast.BecauseClause) for c in rule.clauses):
            found.append(warning("missing_because", f"rule `{rule.id.text}` has no `because`", rule.id.span,
                                 'add `because "..."` giving the rationale'))
    return found


PASSES: list[tuple[str, Pass]] = [
    ("missing_because", _missing_because),
]


def check(policy_set: ast.PolicySet) -> tuple[Vocabulary, list[Diagnostic]]:
    """Resolve the vocabulary and run every pass; diagnostics sorted by location."""
    vocab = build_vocabulary(policy_set)
    found: list[Diagnostic] = []
    for _name, run in PASSES:
        found.extend(run(policy_set, vocab))
    return vocab, sorted_diagnostics(found)
