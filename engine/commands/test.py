"""`engine test`: run the policy tests of a set and report them."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TextIO

from engine.commands.policy_set import announce
from engine.errors import PolicyLoadError
from engine.loader import default_policy_dir
from engine.policy import load
from engine.testing import report as out
from engine.testing.runner import TEST_FILE_GLOB, _run


def discover(path: str | None) -> tuple[str | None, list[Path], str | None]:
    """The policy path to load, the test files to run, and their shown root.

    No PATH (None): the built-in example set. A PATH that is one test file runs
    just that file against the set in its directory.
    """
    if path is None:
        root = default_policy_dir()
        return None, sorted(root.rglob(TEST_FILE_GLOB)), str(root)
    given = Path(path)
    if given.is_file() and given.name.endswith(TEST_FILE_GLOB[1:]):
        return str(given.parent), [given], None
    if given.is_dir():
        return path, sorted(p for p in given.rglob(TEST_FILE_GLOB) if p.is_file()), None
    return path, [], None


def run_tests(args: argparse.Namespace) -> int:
    """`engine test`: exit 0 all passed, 1 a case failed or coverage short, 2 nothing (properly) tested."""
    if args.coverage_min is not None and not 0 <= args.coverage_min <= 100:
        return _usage(f"--coverage-min must be between 0 and 100, not {args.coverage_min:g}")
    policy_path, test_paths, embedded_root = discover(args.path)
    try:
        policy = load(policy_path)
    except PolicyLoadError as err:
        print(out.load_error_json(err) if args.format == "json" else err.render(),
              file=sys.stdout if args.format == "json" else sys.stderr)
        return 2
    announce("test", policy_path, policy.version)
    report = _run(policy, [(p, _shown(p, embedded_root)) for p in test_paths], args.keyword)
    if args.junit:
        try:
            out.write_junit(report, args.junit)
        except OSError as exc:
            return _usage(f"cannot write {args.junit}: {exc.strerror}")
    if args.format == "json":
        print(out.render_json(report, args.coverage_min))
    else:
        print(out.render_text(report, verbose=args.verbose, colour=wants_colour(sys.stdout),
                              coverage_min=args.coverage_min))
    return report.exit_code(args.coverage_min)


def _usage(message: str) -> int:
    print(f"engine test: {message}", file=sys.stderr)
    return 2


def wants_colour(stream: TextIO, environ: dict[str, str] | None = None) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (to anything)."""
    if "NO_COLOR" in (os.environ if environ is None else environ):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _shown(path: Path, embedded_root: str | None) -> str:
    if embedded_root is None:
        return str(path)
    return f"policies/{path.relative_to(embedded_root)}"
