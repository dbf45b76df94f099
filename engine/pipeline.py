"""The pipeline: policy files to diagnostics and a compiled set, the one way every door takes.

    result = run("policies/")        # read -> parse -> check -> compile
    result.diagnostics               # every finding, sorted, knock-on errors left out
    result.compiled                  # the compiled set, or None when there is an error

`engine.load`, `check_path`, `engine check`, `engine serve` and its reload,
`engine doc`, `engine matrix`, `engine diff` and `engine test` all go through
`run` (or `run_sources` for texts in memory), so they can never disagree about
a policy set. The stages, in order:

1. read: every *.policy file under the path (PolicyLoadError if unreadable);
2. parse: a file with a syntax error is left out and reported;
3. check: names, types and rule analysis (engine.checker); when a file did not
   parse, the errors that may only echo it are left out (see _ECHOES);
4. compile: only a set without errors, so `ok` means `engine.load` succeeds.
"""

from __future__ import annotations

import contextlib
import gc
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from engine import ast
from engine.checker import check
from engine.compiler import CompiledPolicy, CompileError, compile_policy
from engine.errors import Diagnostic, PolicyLoadError, sorted_diagnostics
from engine.loader import parse_sources, read_sources
from engine.source import Source
from engine.symbols import Vocabulary
from engine.wording import count

# Codes that may only be echoes of a file that did not parse: a name declared
# there looks unknown everywhere else. Shown again once the syntax is fixed.
_ECHOES = frozenset({"unknown_name", "unknown_attribute", "unknown_value", "bad_obligation_argument"})


@dataclass(frozen=True)
class Checked:
    """What the pipeline made of a policy set: its findings and, when clean, the compiled set."""

    policy_set: ast.PolicySet
    vocabulary: Vocabulary
    diagnostics: list[Diagnostic]  # sorted by location
    compiled: CompiledPolicy | None  # None when any diagnostic is an error

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if not d.is_error]

    @property
    def ok(self) -> bool:
        return self.compiled is not None

    def load_error(self) -> PolicyLoadError:
        """The error `engine.load` raises for this set: its errors, counted."""
        errors = self.errors
        return PolicyLoadError(f"policy set has {count(len(errors), 'error')}", errors)


def run(path: str | Path | None) -> Checked:
    """Read, parse, check and compile the set at `path` (None: the example policies).

    Raises PolicyLoadError only when the path cannot be read; every problem in
    the policies themselves is a diagnostic of the result.
    """
    with loading():
        try:
            sources = read_sources(path)
        except OSError as exc:  # e.g. a directory changing while it is walked
            raise PolicyLoadError(f"{exc.filename or path}: cannot be read ({exc.strerror})") from None
        return _stages(sources)


def run_sources(sources: list[Source]) -> Checked:
    """As `run`, for policy texts in memory, in set order."""
    with loading():
        return _stages(sources)


def _stages(sources: list[Source]) -> Checked:
    policy_set, syntax = parse_sources(sources)
    vocab, found = check(policy_set)
    if syntax:
        found = [d for d in found if d.code not in _ECHOES]
    found = syntax + found
    compiled = None
    if not any(d.is_error for d in found):
        try:
            compiled = compile_policy(policy_set, vocab)
        except CompileError as exc:
            found.append(exc.to_diagnostic())
    return Checked(policy_set, vocab, sorted_diagnostics(found), compiled)


@contextlib.contextmanager
def loading() -> Iterator[None]:
    """What the pipeline wraps around its stages; for tools that run the stages one by one
    (bench/decide.py), so that they load as `engine.load` does.

    The cyclic garbage collector is paused: loading allocates a great many
    objects that all stay alive, and the collector would walk them again and
    again for nothing (it makes a large set load several times slower; see
    BENCHMARKS.md, loading). Reference counting still frees what dies.
    Afterwards the set's objects are settled at once (see _settle), rather
    than in a pause during the first decisions.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            # Settled before the collector runs again: enabled first, it would at once walk
            # every object the load made, to find them alive.
            _settle(gc.get_count()[0])
            gc.enable()


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector paused while a tool makes a great many short-lived objects
    that form no cycles (the access matrix's walk makes millions of tuples): the collector
    would walk them, and everything loaded, again and again for nothing. Reference
    counting still frees what dies; anything cyclic waits for the next collection."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# Memory in use (sys.getallocatedblocks) when the last full collection ended; 0 before the first.
_settled = 0


def _settle(made: int) -> None:
    """Settle what a load made (`made`: the objects it left): collect, or freeze (gc.freeze) so collections skip it.

    The first large load is collected at once, then frozen: later collections
    no longer walk its objects, which a full collection of a set of 10,000
    rules takes a second or more to do. A reload that changed a few files
    makes few objects and keeps the rest of the last set's (engine/reuse.py):
    what it made is frozen too, uncollected. A frozen object is still freed
    when nothing refers to it, and a loaded set holds no reference cycles
    (tests/test_pipeline.py), so what a reload drops is freed at once. Only
    cycles among frozen objects wait, and to bound them everything is
    unfrozen and collected once the memory in use has grown by half since the
    last full collection (as it does when a larger set is loaded). A process
    that only ever loads small sets is left to the collector.
    """
    global _settled
    if not _settled and made <= 100_000:
        return
    if not _settled or sys.getallocatedblocks() > _settled * 3 // 2:
        gc.unfreeze()
        gc.collect()
        _settled = sys.getallocatedblocks()
    gc.freeze()
