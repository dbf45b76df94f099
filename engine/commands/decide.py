"""`engine decide`: decide one request from a JSON or YAML file (or standard input).

Exit status: 0 when decided (permit or deny), 1 for an invalid request, 2 when
the policy set or the request file cannot be loaded.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

import yaml

from engine import jsontext
from engine.commands.policy_set import announce
from engine.errors import PolicyLoadError, RequestError
from engine.explain import explain_text
from engine.policy import load
from engine.testing.cases import compose_yaml

EXIT_DECIDED, EXIT_INVALID_REQUEST, EXIT_NOT_LOADED = 0, 1, 2


class RequestFileError(Exception):
    """A request file that cannot be read or parsed."""


def read_request(name: str, stdin: TextIO | None = None) -> Any:
    """The request in file `name` (`-` for standard input), JSON or YAML."""
    if name == "-":
        text, shown = (stdin or sys.stdin).read(), "standard input"
    else:
        shown = name
        try:
            with open(name, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            raise RequestFileError(f"{name}: cannot be read ({exc.strerror})") from None
        except UnicodeDecodeError:
            raise RequestFileError(f"{name}: not UTF-8 text") from None
    if name.endswith(".json") or text.lstrip().startswith("{"):
        try:
            return jsontext.loads(text)
        except jsontext.DuplicateKeyError as exc:
            at = jsontext.key_position(text, exc.key)
            where = f":{at[0]}:{at[1]}" if at else ""
            raise RequestFileError(f"{shown}{where}: {exc}") from None
        except json.JSONDecodeError as exc:
            raise RequestFileError(f"{shown}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from None
    try:
        _, data, repeated = compose_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "could not be parsed"
        raise RequestFileError(f"{shown}{where}: not valid YAML: {problem}") from None
    if repeated:
        mark = repeated[0].start_mark
        raise RequestFileError(f"{shown}:{mark.line + 1}:{mark.column + 1}: the key `{repeated[0].value}` "
                               f"appears twice in one mapping; give each key once")
    return data


def run_decide(args: argparse.Namespace, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Load the policy, read the request, print the decision (JSON, or text with --explain)."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    try:
        policy = load(args.policy, cache_size=0)
    except PolicyLoadError as exc:
        print(exc.render(), file=err)
        return EXIT_NOT_LOADED
    announce("decide", args.policy, policy.version, err)
    try:
        request = read_request(args.request)
    except RequestFileError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_NOT_LOADED
    try:
        decision = policy.decide(request)
    except RequestError as exc:
        for line in exc.lines():
            print(f"invalid request: {line}", file=err)
        return EXIT_INVALID_REQUEST
    if getattr(args, "explain", False):
        print(explain_text(decision), file=out)
    else:
        print(json.dumps(decision.to_dict(), indent=2), file=out)
    return EXIT_DECIDED
