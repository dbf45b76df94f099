"""`engine audit`: verify an audit trail."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.service.audit import verify


def run_audit(args: argparse.Namespace) -> int:
    """`engine audit verify FILE`: 0 intact, 1 tampered with, 2 unreadable."""
    if args.audit_command != "verify":
        print(f"engine audit: unknown action {args.audit_command!r}", file=sys.stderr)
        return 2
    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as err:
        print(f"engine audit verify: cannot read {path}: {err.strerror or err}", file=sys.stderr)
        return 2
    count, problems = verify(data)
    for number, problem in problems:
        print(f"{path}:{number}: {problem}")
    if problems:
        lines = len({number for number, _ in problems})
        print(f"{path}: NOT intact: {len(problems)} problem{'s' * (len(problems) != 1)} "
              f"on {lines} line{'s' * (lines != 1)} of {count}")
        return 1
    print(f"{path}: {count} entries verified")
    return 0
