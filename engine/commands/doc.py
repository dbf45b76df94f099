"""`engine doc`: the policy set as a plain-English document."""

from __future__ import annotations

import argparse
import sys

from engine import checker, loader
from engine.commands.policy_set import announce
from engine.errors import PolicyLoadError, render_all
from engine.governance.document import render


def run_doc(args: argparse.Namespace) -> int:
    """Print the set at args.path as a document; 2 when it cannot be read or has errors."""
    path = args.path
    try:
        policy_set, found = loader.load_set(path)
    except PolicyLoadError as exc:
        print(f"error: {exc.render()}", file=sys.stderr)
        return 2
    announce("doc", path, policy_set.version)
    vocab, checked = checker.check(policy_set)
    found = found + checked
    if any(d.is_error for d in found):
        print(render_all(found), file=sys.stderr)
        print("the policy set has errors: no document written", file=sys.stderr)
        return 2
    sys.stdout.write(render(policy_set, vocab, getattr(args, "format", "md") or "md"))
    return 0
