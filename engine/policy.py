"""The library API: load a policy set once, then decide requests against it.

    policy = engine.load("policies/")
    decision = policy.decide(request)

`load` parses, checks and compiles; a set with any error raises
PolicyLoadError listing every diagnostic. `Policy.decide` validates the
request (RequestError names the field), decides, and caches the decision
without its id: every decision, cached or not, gets its own `decision_id`.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from engine import ast, pipeline
from engine.cache import FORMAT, DecisionCache, KeyFunctions, key_paths
from engine.compiler import CompiledPolicy
from engine.decision import Decider, Decision, reissuable, reissue
from engine.errors import Diagnostic, RequestError
from engine.pipeline import Checked
from engine.plan import Plan, Planner
from engine.request import SUMMARY_PATHS, RequestSchema
from engine.source import Source

# Decision ids: 32 hex digits like a uuid4, but a tenth of the cost: a random 80-bit
# per-process prefix above a 48-bit counter, both in one itertools.count (whose `next`
# no two threads can share). A forked worker draws a new prefix.
_ids = itertools.count()


def _reseed_ids() -> None:
    global _ids
    _ids = itertools.count(int.from_bytes(os.urandom(10), "big") << 48)


_reseed_ids()
os.register_at_fork(after_in_child=_reseed_ids)


# What `check_path` returns; the pipeline's result under its public name.
CheckResult = Checked


def check_path(path: str | Path | None = None) -> CheckResult:
    """Parse, check and trial-compile a policy set; raises only when the path cannot be read.

        result = engine.check_path("policies/")
        for diagnostic in result.diagnostics:
            print(diagnostic.render())
    """
    return pipeline.run(path)


def load(path: str | Path | None = None, *, cache_size: int = 10_000, cache_ttl: float = 300.0) -> Policy:
    """Load the policy set at `path` (default: the example policies) ready to decide.

        policy = engine.load("policies/")
        decision = policy.decide(request)

    Raises PolicyLoadError, listing every error, when the set cannot be read or has errors.
    """
    return _build(pipeline.run(path), cache_size, cache_ttl)


def from_sources(sources: list[Source], *, cache_size: int = 10_000, cache_ttl: float = 300.0) -> Policy:
    """A policy from policy texts in memory, in set order (for tests and tools)."""
    return _build(pipeline.run_sources(sources), cache_size, cache_ttl)


def _build(result: Checked, cache_size: int, cache_ttl: float) -> Policy:
    if result.compiled is None:
        raise result.load_error()
    return Policy(result.policy_set, result.compiled, result.warnings, cache_size=cache_size, cache_ttl=cache_ttl)


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
        self.loaded_at = dt.datetime.now(dt.UTC)
        self._schema: RequestSchema = compiled.schema
        self._decider = Decider(compiled, self.version, self.title, self.label)
        self._cache = DecisionCache(cache_size, cache_ttl)
        self._fast_validate = self._schema.fast_validate
        self._keys = KeyFunctions(self._schema, key_paths(self._schema, compiled.reads, SUMMARY_PATHS),
                                  f"{FORMAT}:{self.version}")
        self._fast_key = self._keys.fast
        self._planner: Planner | None = None

    def __repr__(self) -> str:
        return f"<Policy {self.title or 'untitled'} {self.version} ({len(self.rules)} rules)>"

    def decide(self, request: Any, *, use_cache: bool = True) -> Decision:
        """Decide one request; RequestError (naming the field) when it is not a valid request.

        The decision's `near_misses` and `summary` are computed when first read.
        """
        # One function, and the id made in place: each call layer costs a twentieth of a cache hit
        # (BENCHMARKS.md, deciding: where a cache hit goes).
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
        if cache is not None and key is not None:
            cache.put(key, reissuable(decision))  # never handed out as is: hits get a new id
        return decision

    def plan(self, partial_request: Any) -> Plan:
        """A query plan for a request without its resource (engine/plan.py): which resources
        `decide` would permit, as a condition over their fields. RequestError names the field."""
        planner = self._planner
        if planner is None:  # prepared on first use: most callers never plan
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

    def cache_stats(self) -> dict[str, Any]:
        """`hits`, `misses`, `size`, `maxsize`, `ttl`."""
        return self._cache.stats()

    def clear_cache(self) -> None:
        self._cache.clear()
