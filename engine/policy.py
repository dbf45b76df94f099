"""The library API: load a policy set once, then decide requests against it.

    policy = engine.load("policies/")
    decision = policy.decide(request)

`load` parses, checks and compiles; a set with any error raises
PolicyLoadError listing every diagnostic. `Policy.decide` validates the
request (RequestError names the field), decides, and caches the decision
without its id: every decision, cached or not, gets its own `decision_id`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from engine import ast
from engine.cache import FORMAT, DecisionCache, KeyFunctions, key_paths
from engine.checker import check
from engine.compiler import CompileError, CompiledPolicy, compile_policy
from engine.decision import Decider, Decision, reissuable, reissue
from engine.errors import Diagnostic, PolicyLoadError, RequestError, sorted_diagnostics
from engine.loader import load_set, parse_sources
from engine.request import SUMMARY_PATHS, RequestSchema
from engine.source import Source
from engine.symbols import Vocabulary

if TYPE_CHECKING:
    from engine.plan import Plan


# Decision ids: 32 hex digits like a uuid4, but a tenth of the cost: a random 80-bit
# per-process prefix above a 48-bit counter, both in one itertools.count (whose `next`
# no two threads can share). A forked worker draws a new prefix.
_ids = itertools.count()


def _reseed_ids() -> None:
    global _ids
    _ids = itertools.count(int.from_bytes(os.urandom(10), "big") << 48)


_reseed_ids()
os.register_at_fork(after_in_child=_reseed_ids)


def new_decision_id() -> str:
    """A decision id unique to this decision (even one served from the cache)."""
    return next(_ids).to_bytes(16, "big").hex()


@dataclass(frozen=True)
class CheckResult:
    """What `check_path` found: every diagnostic, and the set and vocabulary it read."""

    diagnostics: list[Diagnostic]
    policy_set: ast.PolicySet
    vocabulary: Vocabulary

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]

    @property
    def ok(self) -> bool:
        return not self.errors


def _read(path: str | Path | None) -> tuple[ast.PolicySet, list[Diagnostic]]:
    try:
        return load_set(path)
    except OSError as exc:  # e.g. a directory changing while it is walked
        raise PolicyLoadError(f"{exc.filename or path}: cannot be read ({exc.strerror})") from None


def check_path(path: str | Path | None = None) -> CheckResult:
    """Parse, check and trial-compile a policy set; raises only when the path cannot be read."""
    with loading():
        return _check(path)


def _check(path: str | Path | None) -> CheckResult:
    policy_set, found = _read(path)
    vocab, checked = check(policy_set)
    found = found + checked
    if not any(d.is_error for d in found):
        try:
            compile_policy(policy_set, vocab)
        except CompileError as exc:
            found.append(exc.to_diagnostic())
    return CheckResult(sorted_diagnostics(found), policy_set, vocab)


@contextlib.contextmanager
def loading() -> Iterator[None]:
    """What `load` wraps around reading, checking and compiling a set; for tools that run
    the stages one by one (bench/decide.py), so that they load as `load` does.

    The cyclic garbage collector is paused: loading allocates a great many
    objects that all stay alive, and the collector would walk them again and
    again for nothing (it makes a large set load several times slower).
    Reference counting still frees what dies. Afterwards a large set's objects
    are settled into the oldest generation at once, rather than in a pause
    during the first decisions.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
            if gc.get_count()[0] > 100_000:
                gc.collect()


def load(path: str | Path | None = None, *, cache_size: int = 10_000, cache_ttl: float = 300.0) -> "Policy":
    """Load the policy set at `path` (default: the example policies) ready to decide."""
    with loading():
        policy_set, found = _read(path)
        return _build(policy_set, found, cache_size, cache_ttl)


def from_sources(sources: list[Source], *, cache_size: int = 10_000, cache_ttl: float = 300.0) -> "Policy":
    """A policy from policy texts in memory, in set order (for tests and tools)."""
    with loading():
        policy_set, found = parse_sources(sources)
        return _build(policy_set, found, cache_size, cache_ttl)


def _build(policy_set: ast.PolicySet, found: list[Diagnostic], cache_size: int, cache_ttl: float) -> "Policy":
    vocab, checked = check(policy_set)
    found = sorted_diagnostics(found + checked)
    errors = [d for d in found if d.is_error]
    if errors:
        raise PolicyLoadError(f"policy set has {len(errors)} error{'s' if len(errors) != 1 else ''}", errors)
    try:
        compiled = compile_policy(policy_set, vocab)
    except CompileError as exc:
        raise PolicyLoadError("policy set has 1 error", [exc.to_diagnostic()]) from None
    warnings = [d for d in found if not d.is_error]
    return Policy(policy_set, compiled, warnings, cache_size=cache_size, cache_ttl=cache_ttl)


class Policy:
    """A loaded policy set: decide requests, read what it declares."""

    def __init__(self, policy_set: ast.PolicySet, compiled: CompiledPolicy, warnings: list[Diagnostic],
                 *, cache_size: int = 10_000, cache_ttl: float = 300.0):
        vocab = compiled.vocab
        header = vocab.header
        self.policy_set = policy_set
        self.compiled = compiled
        self.version = policy_set.version
        self.title = header.title if header else None
        self.label = header.version if header else None
        self.combine = vocab.combine
        self.files = [f.path for f in policy_set.files]
        self.rules = list(vocab.rules)
        self.warnings = warnings
        self.vocabulary = vocab
        self.loaded_at = dt.datetime.now(dt.timezone.utc)
        self._schema: RequestSchema = compiled.schema
        self._decider = Decider(compiled, self.version, self.title, self.label)
        self._cache = DecisionCache(cache_size, cache_ttl)
        self._fast_validate = self._schema.fast_validate
        self._keys = KeyFunctions(self._schema, key_paths(self._schema, compiled.reads, SUMMARY_PATHS),
                                  f"{FORMAT}:{self.version}")
        self._fast_key = self._keys.fast
        self._planner: Any = None

    def __repr__(self) -> str:
        return f"<Policy {self.title or 'untitled'} {self.version} ({len(self.rules)} rules)>"

    def decide(self, request: Any, *, use_cache: bool = True) -> Decision:
        """Decide one request; RequestError (naming the field) when it is not a valid request.

        The decision's `near_misses` and `summary` are computed when first read.
        """
        # One function, and the id made in place: each call layer costs a twentieth of a hit.
        cache = self._cache if use_cache and self._cache.enabled else None
        key = None
        if cache is not None:
            try:
                key = self._fast_key(request)
                cached = cache.get(key) if key is not None else None
            except TypeError:  # an unhashable value: validation below says which
                key = cached = None
            if cached is not None:
                return reissue(cached, next(_ids).to_bytes(16, "big").hex())
        try:
            env = self._fast_validate(request)
        except TypeError:  # an unhashable value where a name belongs
            env = None
        if env is None:
            env = self._schema.validate_slowly(request)
        if cache is not None and key is None:
            key = self._keys.project(request)
            cached = cache.get(key)
            if cached is not None:
                return reissue(cached, next(_ids).to_bytes(16, "big").hex())
        decision = self._decider.decide(env, next(_ids).to_bytes(16, "big").hex())
        if cache is not None:
            cache.put(key, reissuable(decision))  # never handed out as is: hits get a new id
        return decision

    def plan(self, partial_request: Any) -> Plan:
        """A query plan for a request without its resource (engine/plan.py): which resources
        `decide` would permit, as a condition over their fields. RequestError names the field."""
        planner = self._planner
        if planner is None:  # prepared on first use: most callers never plan
            from engine.plan import Planner

            planner = self._planner = Planner(self)
        return planner.plan(partial_request)

    def decide_many(self, requests: Iterable[Any], *, use_cache: bool = True) -> list[Decision]:
        """Decide each request in order; a RequestError names the request's index (`requests[3].purpose`)."""
        if isinstance(requests, (dict, str, bytes)) or not isinstance(requests, Iterable):
            raise RequestError("requests", "expected a list of requests")
        decisions = []
        for index, request in enumerate(requests):
            try:
                decisions.append(self.decide(request, use_cache=use_cache))
            except RequestError as exc:
                field = f"requests[{index}]" + (f".{exc.field}" if exc.field else "")
                raise RequestError(field, exc.message, exc.help) from None
        return decisions

    def cache_stats(self) -> dict:
        """`hits`, `misses`, `size`, `maxsize`, `ttl`."""
        return self._cache.stats()

    def clear_cache(self) -> None:
        self._cache.clear()
