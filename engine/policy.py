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
from collections.abc import Iterable, Iterator
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

# Decision ids are UUID version 4, as 32 hex digits (`uuid.UUID(id)` reads them): they
# reveal nothing of how many decisions were made, or in what order. Drawing 16 random bytes
# per decision costs more than a cached decision takes, so they are made 256 at a time:
# one os.urandom call, the version and variant bits set across the whole draw with one
# mask, one hex conversion. `next(_ids)` is C all the way (chain over a list iterator)
# except once every 256 ids. A forked worker discards its parent's unused ids.
_BATCH = 256
_MASK = int.from_bytes((b"\xff" * 6 + b"\x0f\xff\x3f\xff" + b"\xff" * 6) * _BATCH, "big")
_BITS = int.from_bytes((b"\x00" * 6 + b"\x40\x00\x80\x00" + b"\x00" * 6) * _BATCH, "big")


def _uuid4_batch(_: object = None) -> list[str]:
    """256 random UUIDs (version 4, RFC 9562 variant) as 32 hex digits each."""
    bits = int.from_bytes(os.urandom(16 * _BATCH), "big") & _MASK | _BITS
    text = bits.to_bytes(16 * _BATCH, "big").hex()
    return [text[start:start + 32] for start in range(0, 32 * _BATCH, 32)]


def _reseed_ids() -> None:
    global _ids
    _ids = itertools.chain.from_iterable(map(_uuid4_batch, itertools.repeat(None)))


_ids: Iterator[str]
_reseed_ids()
os.register_at_fork(after_in_child=_reseed_ids)


def new_decision_id() -> str:
    """A decision id unique to this decision (even one served from the cache): a random UUID."""
    return next(_ids)


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
    with pipeline.loading():  # the decider's tables too are made with the collector paused (pipeline.py)
        return _build(pipeline.run(path), cache_size, cache_ttl)


def from_sources(sources: list[Source], *, cache_size: int = 10_000, cache_ttl: float = 300.0) -> Policy:
    """A policy from policy texts in memory, in set order (for tests and tools)."""
    with pipeline.loading():
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
                return reissue(cached, next(_ids))
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
                return reissue(cached, next(_ids))
        decision = self._decider.decide(env, next(_ids))
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
                raise exc.within(f"requests[{index}]") from None
        return decisions

    def cache_stats(self) -> dict[str, Any]:
        """`hits`, `misses`, `size`, `maxsize`, `ttl`."""
        return self._cache.stats()

    def clear_cache(self) -> None:
        self._cache.clear()
