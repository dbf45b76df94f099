"""Which policy set a command works on, decided in one place for every command.

A command given a PATH uses it. Without one it uses `policies/` in the working
directory when that exists. Otherwise `engine serve` serves the built-in
example set (the embedded default) and says so at start-up, while every other
command stops with status 2: checking, testing or deciding against the example
when the author meant their own draft would report on the wrong set without a
word. `--example` asks for the built-in set explicitly.

Each command then names the set it used, path and version, on standard error
(`announce`), so no JSON output and no closing line is disturbed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TextIO

LOCAL = "policies"
EXAMPLE_NAME = "the built-in example policy set"

# The argument naming the policy set, per command.
PATH_ARGUMENT = {"check": "path", "test": "path", "matrix": "path", "doc": "path", "fmt": "path",
                 "decide": "policy", "serve": "path"}
# Commands that may run on the built-in example set (`fmt` would rewrite the installed files).
TAKES_EXAMPLE = frozenset(("check", "test", "matrix", "doc", "decide", "serve"))


class NoPolicySet(Exception):
    """No policy set was named and there is none here: the message says how to name one."""


def choose(command: str, given: str | None, example: bool, cwd: Path | None = None) -> str | None:
    """The path a command works on; None for the built-in example set.

    Raises NoPolicySet when nothing was named, there is no `policies/` here and
    the command does not fall back to the example (only `serve` does).
    """
    if given is not None and example:
        raise NoPolicySet(f"engine {command}: give a policy set PATH or --example, not both")
    if given is not None:
        return given
    if example:
        return None
    here = (cwd or Path.cwd()) / LOCAL
    if here.is_dir():
        return LOCAL
    if command == "serve":
        return None
    naming, example_form = ("--policy PATH REQUEST", "--example REQUEST") if command == "decide" else ("PATH", "--example")
    also = f", or use {EXAMPLE_NAME} with `engine {command} {example_form}`" if command in TAKES_EXAMPLE else ""
    raise NoPolicySet(f"engine {command}: there is no `{LOCAL}/` directory here and no policy set was named; "
                      f"name one (`engine {command} {naming}`){also}")


def resolve(args: argparse.Namespace) -> None:
    """Set the command's policy path argument in place (None: the built-in example set).

    Raises NoPolicySet (see `choose`).
    """
    attribute = PATH_ARGUMENT.get(args.command)
    if attribute is None:
        return
    if args.command == "serve" and (getattr(args, "bundle", None) or os.environ.get("ENGINE_BUNDLE_URL")):
        return  # a bundle is the policy set: no folder is looked for
    example = bool(getattr(args, "example", False))
    setattr(args, attribute, choose(args.command, getattr(args, attribute), example))


def shown(path: str | None) -> str:
    """How a policy path is named to the user."""
    return EXAMPLE_NAME if path is None else path.rstrip("/") or path


def announce(command: str, path: str | None, version: str, stream: TextIO | None = None) -> None:
    """Say, on standard error, which policy set a command used: path and version."""
    print(f"engine {command}: using {shown(path)} ({version})", file=stream or sys.stderr)
