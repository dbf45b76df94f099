"""Service metrics for Prometheus, with prometheus_client, monotonic however many workers serve.

One process: the figures live in a registry of the app's own. Several
workers (`engine serve --workers N`, which sets PROMETHEUS_MULTIPROC_DIR for
them): prometheus_client's multiprocess mode keeps each worker's figures in
files of that directory, and a scrape of any worker adds up every worker's,
so no counter goes backwards whichever worker answers.

The decision path only adds to plain integers here (a few nanoseconds); they
are handed to prometheus_client in one step per second and on every scrape.
Durations are counted the same way (`Durations`: a bucket index found by
bisection, then handed over), into buckets from 50 µs to 1 s.
"""

from __future__ import annotations

import asyncio
import os
from bisect import bisect_left
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

if TYPE_CHECKING:
    from engine.service.reloading import PolicyHolder

# Upper bounds in seconds: a cached decision takes microseconds, a batch milliseconds.
BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def multiprocess_dir() -> str | None:
    """The directory shared by the workers, when serving with several."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Durations:
    """Observations for one histogram (a prometheus_client Histogram child), counted here first.

    `observe` adds to a plain list of per-bucket counts and a sum; `push` hands
    them to the histogram, as observing each would have, bucket by bucket
    (a bucket counts the observations at most its bound and above the one
    before; the exported `le` buckets are cumulative sums of these).
    """

    def __init__(self, histogram: Any) -> None:
        self.histogram = histogram
        self.bounds: tuple[float, ...] = tuple(histogram._upper_bounds)  # ends with +Inf
        self._counts = [0] * len(self.bounds)
        self._sum = 0.0

    def observe(self, seconds: float) -> None:
        self._counts[bisect_left(self.bounds, seconds)] += 1
        self._sum += seconds

    def push(self) -> None:
        """Hand what was observed since the last push to the histogram."""
        counts, total = self._counts, self._sum
        if not any(counts):
            return
        self._counts = [0] * len(self.bounds)
        self._sum = 0.0
        histogram = self.histogram
        histogram._raise_if_not_observable()
        histogram._sum.inc(total)
        for bucket, count in zip(histogram._buckets, counts):
            if count:
                bucket.inc(count)


class Metrics:
    """What the service has done since it started."""

    def __init__(self) -> None:
        self.shared = multiprocess_dir() is not None
        # Not registered anywhere in multiprocess mode: the scrape reads the files instead.
        self.registry = None if self.shared else CollectorRegistry()
        registry = self.registry
        self.decisions = {"permit": 0, "deny": 0}
        self.rejected: dict[str, int] = {}
        self._pushed: dict[tuple[str, str], int] = {}
        self._decisions = Counter("engine_decisions", "Decisions made, by outcome.", ["decision"],
                                  registry=registry)
        self._rejected = Counter("engine_requests_rejected", "Decision requests refused before deciding, by error code.",
                                 ["code"], registry=registry)
        self._duration = Histogram("engine_decision_duration_seconds",
                                   "Time to decide one request (endpoint=decide), a whole batch (endpoint=batch) or a plan (endpoint=plan).",
                                   ["endpoint"], buckets=BUCKETS, registry=registry)
        self.latency = {endpoint: Durations(self._duration.labels(endpoint=endpoint))
                        for endpoint in ("decide", "batch", "plan")}
        self._hits = Counter("engine_cache_hits", "Decisions answered from the decision cache.", registry=registry)
        self._misses = Counter("engine_cache_misses", "Decision cache lookups that found nothing.", registry=registry)
        self._reloads = Counter("engine_policy_reloads", "Policy reloads, by result (failed sets are refused).",
                                ["result"], registry=registry)
        self._audit_written = Counter("engine_audit_entries", "Decisions appended to the audit trail.",
                                      registry=registry)
        self._audit_failed = Counter("engine_audit_failures", "Decisions that could not be appended to the audit trail.",
                                     registry=registry)
        self._audit_unrecorded = Counter(
            "engine_audit_unrecorded", "Decisions answered without an entry (ENGINE_AUDIT_ON_FAILURE=continue).",
            registry=registry)
        self._available = Gauge("engine_audit_available",
                                "1 while the audit trail can be written (by every worker), 0 while decisions are refused.",
                                registry=registry, multiprocess_mode="min")
        self._entries = Gauge("engine_cache_entries", "Decisions held in the current policy's caches (all workers).",
                              registry=registry, multiprocess_mode="livesum")
        self._pending = Gauge("engine_audit_pending",
                              "Queue entries (a decision, or a batch's decisions) not yet written to the audit trail.",
                              registry=registry, multiprocess_mode="livesum")
        self._info = Gauge("engine_policy_info", "The policy set being served (1 for each version served).",
                           ["version", "label", "title"], registry=registry, multiprocess_mode="liveall")
        self._loaded = Gauge("engine_policy_loaded_timestamp_seconds", "When the served policy set was loaded.",
                             registry=registry, multiprocess_mode="max")
        self._rules = Gauge("engine_policy_rules", "Rules in the served policy set.",
                            registry=registry, multiprocess_mode="max")
        self._served: tuple[str, str, str] | None = None
        for outcome in self.decisions:  # shown as 0 before the first decision
            self._decisions.labels(decision=outcome)
        for result in ("ok", "failed"):
            self._reloads.labels(result=result)

    def decided(self, outcome: str) -> None:
        self.decisions[outcome] = self.decisions.get(outcome, 0) + 1

    def reject(self, code: str) -> None:
        self.rejected[code] = self.rejected.get(code, 0) + 1

    def _push(self, key: tuple[str, str], total: int, counter: Any) -> None:
        """Add to `counter` what `total` has grown by since the last push."""
        delta = total - self._pushed.get(key, 0)
        if delta > 0:
            counter.inc(delta)
            self._pushed[key] = total

    def sync(self, holder: PolicyHolder, audit: Any = None) -> None:
        """Hand this process's counts to prometheus_client."""
        for durations in self.latency.values():
            durations.push()
        for outcome, count in list(self.decisions.items()):
            self._push(("decision", outcome), count, self._decisions.labels(decision=outcome))
        for code, count in list(self.rejected.items()):
            self._push(("rejected", code), count, self._rejected.labels(code=code))
        hits, misses, size = holder.cache_totals()
        self._push(("cache", "hits"), hits, self._hits)
        self._push(("cache", "misses"), misses, self._misses)
        self._entries.set(size)
        self._push(("reloads", "ok"), holder.reloads_ok, self._reloads.labels(result="ok"))
        self._push(("reloads", "failed"), holder.reloads_failed, self._reloads.labels(result="failed"))
        if audit is not None:
            self._push(("audit", "written"), audit.written, self._audit_written)
            self._push(("audit", "failed"), audit.failed, self._audit_failed)
            self._push(("audit", "unrecorded"), getattr(audit, "unrecorded", 0), self._audit_unrecorded)
            self._pending.set(audit.pending)
            self._available.set(int(getattr(audit, "available", True)))
        policy = holder.policy
        if policy is not None:
            served = (policy.version, policy.label or "", policy.title or "")
            if served != self._served:
                if self._served is not None:
                    self._info.remove(*self._served)
                self._info.labels(*served).set(1)
                self._served = served
            self._loaded.set(policy.loaded_at.timestamp())
            self._rules.set(len(policy.rules))

    def render(self, holder: PolicyHolder, audit: Any = None) -> str:
        """The Prometheus text of every worker's figures."""
        self.sync(holder, audit)
        if self.registry is not None:
            return generate_latest(self.registry).decode()
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry).decode()

    async def sync_every(self, seconds: float, holder: PolicyHolder, audit: Any, stop: asyncio.Event) -> None:
        """Hand counts over every `seconds` until `stop` (several workers: so a scrape of another sees them)."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), seconds)
            except TimeoutError:
                pass
            self.sync(holder, audit)

    def close(self) -> None:
        """A worker stopping: its live gauges no longer count."""
        if self.shared:
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
