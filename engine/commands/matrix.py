"""`engine matrix`: who can see what, for which purpose, as a table."""

from __future__ import annotations

import argparse
import sys

from engine.commands.policy_set import announce
from engine.commands.progress import Progress
from engine.errors import PolicyLoadError
from engine.governance.matrix import ContextError, build_matrix, load_version, parse_date, render_matrix


def run_matrix(args: argparse.Namespace) -> int:
    """`engine matrix`: print the compressed matrix; 2 when the set cannot be loaded."""

    try:
        version = load_version(args.path, parse_date(args.date), args.context)
    except PolicyLoadError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    except ContextError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    announce("matrix", args.path, version.hash)
    sys.stdout.write(render_matrix(build_matrix(version, Progress), args.format))
    return 0
