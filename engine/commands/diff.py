"""`engine diff`: what changes between two versions of a policy set."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from engine.commands.progress import Progress
from engine.errors import PolicyLoadError
from engine.governance.diff import GitError, build_diff, checkout_policies, load_pair, render_diff
from engine.governance.matrix import ContextError


def run_diff(args: argparse.Namespace) -> int:
    """`engine diff OLD NEW` or `engine diff --git REV [PATH]`: 0 same, 1 changes (or some
    combinations could not be settled), 2 error."""

    try:
        with tempfile.TemporaryDirectory(prefix="engine-diff-") as scratch:
            if args.git:
                if args.new is not None:
                    print("error: with --git give at most one PATH", file=sys.stderr)
                    return 2
                path = args.old or "policies"
                old_path, new_path = str(checkout_policies(args.git, path, Path(scratch))), path
            elif args.old is None or args.new is None:
                print("error: give OLD and NEW policy paths, or --git REV [PATH]", file=sys.stderr)
                return 2
            else:
                old_path, new_path = args.old, args.new
            old, new = load_pair(old_path, new_path, args.date, args.context)
    except PolicyLoadError as exc:
        print(f"error: the {getattr(exc, 'side', 'policy')} set cannot be loaded", file=sys.stderr)
        print(exc.render(), file=sys.stderr)
        return 2
    except (ContextError, GitError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    diff = build_diff(old, new, Progress)
    diff.old_name, diff.new_name = (f"{args.git}:{new_path}", new_path) if args.git else (old_path, new_path)
    sys.stdout.write(render_diff(diff, args.format))
    return 1 if diff.rows or diff.unsettled else 0  # a change not ruled out is not "no change"
