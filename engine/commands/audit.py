"""`engine audit verify | query | explain`: check a trail, answer questions from it, explain a decision again.

A trail is a file (with its rotated predecessors beside it), a directory of
trail files, or a postgresql:// URL; when left out, ENGINE_AUDIT_LOG names it.
The audit key comes from ENGINE_AUDIT_KEY or --key-file.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from typing import Any

from engine.errors import PolicyLoadError, RequestError
from engine.service.audit import AuditError
from engine.service.audit.query import (
    COLUMNS,
    ExplainError,
    Filters,
    as_rows,
    explain,
    query,
)
from engine.service.audit.trails import verify_trail


def _fail(action: str, message: str) -> int:
    print(f"engine audit {action}: {message}", file=sys.stderr)
    return 2


def _trail(args: argparse.Namespace) -> str | None:
    return args.trail or os.environ.get("ENGINE_AUDIT_LOG") or None


def _key(args: argparse.Namespace) -> bytes | None:
    if args.key_file:
        with open(args.key_file, encoding="utf-8") as handle:
            return handle.read().strip().encode() or None
    key = os.environ.get("ENGINE_AUDIT_KEY")
    return key.encode() if key else None


def run_audit(args: argparse.Namespace) -> int:
    """Dispatch to the action; 2 when the trail cannot be read."""
    action = args.audit_command
    trail = _trail(args)
    if trail is None:
        return _fail(action, "name the trail (a file, a directory or a postgresql:// URL) or set ENGINE_AUDIT_LOG")
    try:
        if action == "verify":
            return _verify(trail, _key(args), args.checkpoints)
        if action == "query":
            return _query(trail, args)
        return _explain(trail, args.decision_id)
    except (OSError, AuditError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        return _fail(action, f"cannot read {trail}: {reason}")


def _verify(trail: str, key: bytes | None, checkpoints: str | None) -> int:
    """0 intact, 1 tampered with (or cut short), 2 unreadable."""
    report = verify_trail(trail, key, checkpoints)
    for where, problem in report.problems:
        print(f"{where}: {problem}")
    if report.problems:
        count = len(report.problems)
        print(f"{trail}: NOT intact: {count} problem{'s' * (count != 1)} in {report.entries} entries")
        return 1
    instances = len(report.instances)
    count = report.checkpoints
    checked = f", {count} checkpoint{'s' * (count != 1)}" if count else ", no checkpoints"
    print(f"{trail}: {report.entries} entries verified ({instances} instance{'s' * (instances != 1)}{checked})")
    return 0


def _query(trail: str, args: argparse.Namespace) -> int:
    filters = Filters(resource=args.resource, requester=args.requester, agency=args.agency, owner=args.owner,
                      since=args.since, until=args.until, decision=args.decision)
    rows = query(trail, filters)
    out = sys.stdout
    if args.format == "json":
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
        return 0
    if args.format == "csv":
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        writer.writerows(as_rows(rows))
        return 0
    table = as_rows(rows)
    widths = [max([len(column)] + [len(cells[index]) for cells in table]) for index, column in enumerate(COLUMNS)]
    print("  ".join(column.ljust(width) for column, width in zip(COLUMNS, widths)).rstrip())
    for cells in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip())
    print(f"{len(table)} decision{'s' * (len(table) != 1)}", file=sys.stderr)
    return 0


def _explain(trail: str, decision_id: str) -> int:
    from engine.explain import explain_text

    try:
        found = explain(trail, decision_id)
    except ExplainError as err:
        return _fail("explain", str(err))
    except (PolicyLoadError, RequestError) as err:
        return _fail("explain", f"the decision cannot be made again: {err}")
    entry: dict[str, Any] = found.entry
    print(f"decision {decision_id}, {entry.get('time')}, for {entry.get('date')}, "
          f"policy {entry.get('policy_version')}: recorded {entry.get('decision')}")
    print(explain_text(found.decision))
    if not found.same:
        print(f"note: made again it is {found.decision.decision} by "
              f"{', '.join(reason.rule for reason in found.decision.reasons) or 'no rule'}, not as recorded: "
              "attributes the trail leaves out (ENGINE_AUDIT_OMIT) may have decided it")
        return 1
    return 0
