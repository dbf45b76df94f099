"""`engine doc`: the policy set as a plain-English document."""

from __future__ import annotations

import argparse
import sys

from engine import pipeline
from engine.commands.policy_set import announce
from engine.errors import PolicyLoadError
from engine.governance.document import render


def run_doc(args: argparse.Namespace) -> int:
    """Print the set at args.path as a document; 2 when it cannot be read or has errors."""
    path = args.path
    try:
        result = pipeline.run(path)
    except PolicyLoadError as exc:
        print(f"error: {exc.render()}", file=sys.stderr)
        return 2
    if not result.ok:
        print(result.load_error().render(), file=sys.stderr)
        print("the policy set has errors: no document written", file=sys.stderr)
        return 2
    announce("doc", path, result.policy_set.version)
    sys.stdout.write(render(result.policy_set, result.vocabulary, getattr(args, "format", "md") or "md"))
    return 0
