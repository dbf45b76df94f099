"""The diff of two policy sets: every combination whose decision or obligations change.

Both versions are walked together over the union of their vocabularies
(matrix.Walk): a branch where the two versions' remaining rules are the same
terms cannot change and is skipped, so a small amendment costs little. Each
changed combination is decided by the engine in both versions and explained
by the rules responsible; rows are compressed and worded like the matrix's
(engine/table.py).

A value one version does not declare counts as refused there; such a
combination is a change only when the other version permits it.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from engine.errors import PolicyLoadError
from engine.governance.changes import render_changes, rule_changes
from engine.governance.matrix import (
    ContextError,
    ProgressHook,
    Version,
    Walk,
    count_rows,
    covered,
    has_permit,
    no_progress,
    parse_context,
    parse_date,
    unsettled_words,
    version_of,
    when_text,
)
from engine.governance.table import (
    COLUMNS,
    UNDECLARED,
    Box,
    Legend,
    Outcome,
    cells_in,
    compress,
    row_cells,
    show_obligations,
    sort_rows,
    to_markdown,
)
from engine.governance.terms import DIMENSIONS
from engine.pipeline import collector_paused
from engine.policy import load


class Change(NamedTuple):
    old: Outcome
    new: Outcome


@dataclass
class Diff:
    old: Version
    new: Version
    rows: list[tuple[Box, Change]]
    cells: int
    changed: int
    representatives: int
    seconds: float
    old_name: str = "old"
    new_name: str = "new"
    space: Any = None  # the context's axes the walk explored (context.Space)
    changes: list[Any] = field(default_factory=list)  # rule-level changes (changes.py)
    unsettled: int = 0  # combinations whose request search gave up: a change there is not ruled out

    def when(self, box: Box) -> list[str]:
        """The context a row needs, in words (nothing when it needs none)."""
        return self.space.when(box[len(DIMENSIONS):]) if self.space is not None else []


def changed(old: Outcome, new: Outcome, old_given: frozenset[Any] | None = None,
            new_given: frozenset[Any] | None = None) -> bool:
    """A change of decision or of obligations; an undeclared side only against a permit.

    `old_given`/`new_given` are the obligations as the engine gave them, compared
    in place of their wording when known.
    """
    if old.decision == "undeclared" or new.decision == "undeclared":
        return "permit" in (old.decision, new.decision)
    if old.decision != new.decision:
        return True
    if old_given is not None and new_given is not None:
        return old_given != new_given
    return set(old.obligations) != set(new.obligations)


def build_diff(old: Version, new: Version, progress: ProgressHook = no_progress) -> Diff:
    """Every combination of either vocabulary whose outcome differs between the versions."""
    same_combining = old.combine == new.combine

    def prune(states: tuple[Any, ...], alike: bool) -> bool:
        before, after = states
        if before is None or after is None:
            return not has_permit(before) and not has_permit(after)
        # The same rules left decide alike, unless a value still to come is
        # declared in one version only.
        return same_combining and alike and before == after

    def leaf(cell: dict[str, str], states: tuple[Any, ...], context: Mapping[str, Any]) -> Change | None:
        before, old_given = old.judge(cell, context) if states[0] is not None else (UNDECLARED, frozenset())
        after, new_given = new.judge(cell, context) if states[1] is not None else (UNDECLARED, frozenset())
        return Change(before, after) if changed(before, after, old_given, new_given) else None

    started = time.perf_counter()
    walk = Walk([old, new], False, prune, leaf, "diff", progress)
    with collector_paused():
        rows = sort_rows(compress(walk.run()), new.vocab, old.vocab)
    found = Diff(old, new, rows, walk.cells, sum(cells_in(b) for b, _c in rows),
                 walk.representatives, time.perf_counter() - started, space=walk.space, unsettled=walk.unsettled)
    found.changes = rule_changes(old, new, found)
    return found


# --- wording -----------------------------------------------------------------------


def headline(change: Change, box: Box) -> str:
    """`now permitted`, `now refused`, or `obligations change: + added; - dropped`."""
    old, new = change.old.decision, change.new.decision
    if new == "permit" and old != "permit":
        return "now permitted"
    if old == "permit" and new != "permit":
        return "now refused"
    added = [o for o in change.new.obligations if o not in change.old.obligations]
    dropped = [o for o in change.old.obligations if o not in change.new.obligations]
    parts = [f"+ {show_obligations(added, box)}"] if added else []
    parts += [f"- {show_obligations(dropped, box)}"] if dropped else []
    return "obligations change: " + "; ".join(parts)


def explain(outcome: Outcome, box: Box) -> str:
    """`permit by rule x (obligations: a; b)`, `deny (no rule permits)`, ..."""
    if outcome.decision == "undeclared":
        return "deny (not declared in this version)"
    if outcome.rules:
        rules = ", ".join(outcome.rules)
        text = f"{outcome.decision} by rule{'s' if len(outcome.rules) > 1 else ''} {rules}"
    else:
        text = f"{outcome.decision} (no rule permits)"
    obligations = show_obligations(outcome.obligations, box) or "none"
    return f"{text}; obligations: {obligations}"


def render_diff(diff: Diff, fmt: str) -> str:
    legend = Legend(diff.new.vocab, diff.old.vocab)
    headers = [COLUMNS[p] for p in DIMENSIONS] + ["When", "Change", "Was", "Now"]
    table = [row_cells(legend, box) + [when_text(diff.when(box)), headline(c, box), explain(c.old, box),
                                       explain(c.new, box)]
             for box, c in diff.rows]
    closing = closing_line(diff)
    title = f"Changes from {diff.old_name} ({diff.old.hash}) to {diff.new_name} ({diff.new.hash})"
    if fmt == "json":
        return json.dumps({"changed": diff.changed, "cells": diff.cells, "covered": covered(diff.new),
                           "unsettled": diff.unsettled,
                           "rule_changes": [c.to_dict() for c in diff.changes],
                           "rows": [_json_row(legend, box, c, diff.when(box)) for box, c in diff.rows],
                           "summary": closing}, indent=2) + "\n"
    changes = render_changes(diff.changes, fmt)
    if fmt == "md":
        body = f"\n{to_markdown(headers, table)}" if table else ""
        return f"# {title}\n\n{changes}{body}\n{closing}\n"
    lines = [title, "", changes.rstrip(), ""] if changes else [title, ""]
    width = max(len(h) for h in headers)
    for number, row in enumerate(table, 1):
        lines.append(f"{number}. {row[len(DIMENSIONS) + 1]}")
        pairs = list(zip(headers, row))
        lines.extend(f"   {h.ljust(width)}  {v or '-'}" for h, v in pairs[:len(DIMENSIONS) + 1] + pairs[-2:])
        lines.append("")
    lines.append(closing)
    return "\n".join(lines).rstrip() + "\n"


def closing_line(diff: Diff) -> str:
    """What was compared, and whether any request at all is decided differently."""
    scope = f"Compared {covered(diff.new)} ({diff.cells:,} combinations)"
    unsettled = f" Not compared: {unsettled_words(diff.unsettled)}." if diff.unsettled else ""
    if not diff.rows and not diff.unsettled:
        return f"No change: no request is decided differently. {scope}."
    if not diff.rows:
        return f"No change found, but the comparison is not complete. {scope}.{unsettled}"
    return (f"{diff.changed:,} of {diff.cells:,} combinations change, in {count_rows(len(diff.rows))}. "
            f"{scope}.{unsettled}")


def _json_row(legend: Legend, box: Box, change: Change, when: list[str]) -> dict[str, Any]:
    row: dict[str, Any] = {p: legend.show(p, s) for p, s in zip(DIMENSIONS, box)}
    row["when"] = when
    row["change"] = headline(change, box)
    for side, outcome in (("was", change.old), ("now", change.new)):
        row[side] = {"decision": "deny" if outcome.decision == "undeclared" else outcome.decision,
                     "declared": outcome.decision != "undeclared",
                     "rules": list(outcome.rules),
                     "obligations": show_obligations(outcome.obligations, box).split("; ")
                     if outcome.obligations else []}
    return row


# --- the old version from git ----------------------------------------------------------


class GitError(RuntimeError):
    pass


def checkout_policies(rev: str, path: str, into: Path, cwd: str | None = None) -> Path:
    """Write the .policy files under `path` as they were at `rev` into `into`.

    Paths are read relative to `cwd` (default: the current directory), as git reads them.
    """
    listing = _git("ls-tree", "-r", "--name-only", rev, "--", path, cwd=cwd)
    names = [n for n in listing.splitlines() if n.endswith(".policy")]
    if not names:
        raise GitError(f"no .policy files under {path} at {rev}")
    base = path if names != [path] else os.path.dirname(path)
    for name in names:
        target = into / os.path.relpath(name, base or ".")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(_git_bytes("show", f"{rev}:./{name}", cwd=cwd))
    return into


def _git(*args: str, cwd: str | None = None) -> str:
    return _git_bytes(*args, cwd=cwd).decode("utf-8", "replace")


def _git_bytes(*args: str, cwd: str | None = None) -> bytes:
    try:
        done = subprocess.run(["git", *args], capture_output=True, check=False, cwd=cwd)
    except OSError as exc:
        raise GitError(f"git could not be run: {exc.strerror}") from None
    if done.returncode != 0:
        raise GitError(done.stderr.decode("utf-8", "replace").strip() or f"git {args[0]} failed")
    return done.stdout


# --- the command --------------------------------------------------------------------------


class SideLoadError(PolicyLoadError):
    """One version of a diff, `old` or `new`, could not be loaded."""

    def __init__(self, side: str, error: PolicyLoadError):
        super().__init__(error.message, error.diagnostics)
        self.side = side


def load_pair(old_path: str, new_path: str | None, date_text: str | None,
              context: Sequence[str]) -> tuple[Version, Version]:
    """Both versions, with the context typed by each one's schema (a key only one knows
    applies to that one). Raises PolicyLoadError or ContextError."""
    date = parse_date(date_text)
    policies = []
    for side, path in (("old", old_path), ("new", new_path)):
        try:
            policies.append(load(path))
        except PolicyLoadError as exc:
            raise SideLoadError(side, exc) from None
    versions = []
    for policy in policies:
        given, restrict = {}, {}
        for item in context:
            try:
                more_given, more_restrict = parse_context(policy.vocabulary, [item])
            except ContextError:
                if not any(_knows(p.vocabulary, item) for p in policies):
                    raise
                continue
            given.update(more_given)
            restrict.update(more_restrict)

        versions.append(version_of(policy, date, given, restrict))
    return versions[0], versions[1]


def _knows(vocab: Any, item: str) -> bool:
    try:
        parse_context(vocab, [item])
        return True
    except ContextError:
        return False
