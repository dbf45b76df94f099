"""`engine fmt`: lay policy files out canonically, or say which would change."""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import tempfile
from pathlib import Path

from engine.commands.policy_set import announce
from engine.errors import PolicyError, PolicyLoadError
from engine.governance.formatter import format_source
from engine.loader import content_hash, policy_paths
from engine.source import Source
from engine.wording import count

# For `engine fmt --help` (argparse epilog).
HELP = """\
exit status: 0 nothing to change, or files rewritten; 1 with --check, some file
would change; 2 a file could not be read or parsed (it is reported and left
untouched, and the other files are still formatted)."""


def run_fmt(args: argparse.Namespace) -> int:
    """Rewrite, --check or --diff every policy file under args.path (default policies/)."""
    try:
        _root, files = policy_paths(Path(args.path))
    except PolicyLoadError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    announce("fmt", args.path, _version(files))
    changed, broken = [], 0
    for path in files:
        outcome = _format_path(path, write=not (args.check or args.diff), diff=args.diff)
        if outcome is None:
            broken += 1
        elif outcome:
            changed.append(path)
    _summarise(args, changed, len(files) - broken - len(changed), broken)
    if broken:
        return 2
    return 1 if args.check and changed else 0


def _version(files: list[Path]) -> str:
    """The set's version before formatting; `unreadable` when a file cannot be read."""
    try:
        return content_hash([Source.read(path, str(path)) for path in files])
    except (OSError, UnicodeDecodeError):
        return "unreadable"


def _format_path(path: Path, write: bool, diff: bool) -> bool | None:
    """Whether the file changes (or would); None when it cannot be read or parsed."""
    try:
        source = Source.read(path, str(path))
        formatted = format_source(source)
    except PolicyError as exc:
        print(exc.to_diagnostic().render(), file=sys.stderr)
        return None
    except RecursionError:
        print(f"{path}: error: expression nested too deeply to format", file=sys.stderr)
        return None
    except (OSError, UnicodeDecodeError) as exc:
        print(f"{path}: error: cannot be read ({exc})", file=sys.stderr)
        return None
    if formatted == source.text:
        return False
    if diff:
        sys.stdout.writelines(
            difflib.unified_diff(
                source.text.splitlines(keepends=True),
                formatted.splitlines(keepends=True),
                str(path),
                str(path),
            )
        )
    if write:
        _replace(path, formatted)
    return True


def _replace(path: Path, text: str) -> None:
    """Write beside the file, then rename over it: a reader never sees half a file."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.chmod(temporary, path.stat().st_mode & 0o7777)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _summarise(args: argparse.Namespace, changed: list[Path], unchanged: int, broken: int) -> None:
    verb = "would reformat" if args.check or args.diff else "reformatted"
    if not args.diff:
        for path in changed:
            print(f"{verb} {path}")
    parts = [f"{count(len(changed), 'file')} {verb}", f"{count(unchanged, 'file')} left unchanged"]
    if broken:
        parts.append(f"{count(broken, 'file')} could not be parsed")
    print(", ".join(parts), file=sys.stderr)
