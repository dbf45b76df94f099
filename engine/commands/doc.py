"""`engine doc`: the policy set as a plain-English document."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine import pipeline
from engine.errors import PolicyLoadError
from engine.governance.document import render


def run_doc(args: argparse.Namespace) -> int:
    """Print the set at args.path as a document; 2 when it cannot be read or has errors."""
    path = args.path if args.path is not None else ("policies" if Path("policies").is_dir() else None)
    try:
        result = pipeline.run(path)
    except PolicyLoadError as exc:
        print(f"error: {exc.render()}", file=sys.stderr)
        return 2
    if not result.ok:
        print(result.load_error().render(), file=sys.stderr)
        print("the policy set has errors: no document written", file=sys.stderr)
        return 2
    sys.stdout.write(render(result.policy_set, result.vocabulary, getattr(args, "format", "md") or "md"))
    return 0
