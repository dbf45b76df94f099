"""Service metrics in the Prometheus text format, counted in process.

Counting is a few integer additions per decision on the event loop; the text
is built only when /metrics is scraped. With several workers each process
counts its own, as Prometheus expects of separate targets.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.service.reloading import PolicyHolder

# Upper bounds in seconds: a cached decision takes microseconds, a batch milliseconds.
BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class Histogram:
    """Cumulative-on-render bucket counts, a sum and a count."""

    __slots__ = ("count", "counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.sum += seconds
        self.count += 1

    def lines(self, name: str, labels: str) -> Iterable[str]:
        running = 0
        for bound, count in zip(BUCKETS, self.counts):
            running += count
            yield f'{name}_bucket{{{labels},le="{bound}"}} {running}'
        yield f'{name}_bucket{{{labels},le="+Inf"}} {self.count}'
        yield f"{name}_sum{{{labels}}} {self.sum:.9f}"
        yield f"{name}_count{{{labels}}} {self.count}"


def _escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    """What the service has done since it started."""

    def __init__(self) -> None:
        self.decisions = {"permit": 0, "deny": 0}
        self.rejected: dict[str, int] = {}
        self.latency = {"decide": Histogram(), "batch": Histogram(), "plan": Histogram()}

    def decided(self, outcome: str) -> None:
        self.decisions[outcome] = self.decisions.get(outcome, 0) + 1

    def reject(self, code: str) -> None:
        self.rejected[code] = self.rejected.get(code, 0) + 1

    def render(self, holder: PolicyHolder, audit_written: int | None = None,
               audit_failed: int | None = None, audit_pending: int | None = None) -> str:
        out: list[str] = []

        def metric(name: str, kind: str, help: str, samples: Iterable[str]) -> None:
            out.append(f"# HELP {name} {help}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(samples)

        metric("engine_decisions_total", "counter", "Decisions made, by outcome.",
               (f'engine_decisions_total{{decision="{k}"}} {v}' for k, v in sorted(self.decisions.items())))
        metric("engine_requests_rejected_total", "counter", "Decision requests refused before deciding, by error code.",
               (f'engine_requests_rejected_total{{code="{_escape(k)}"}} {v}' for k, v in sorted(self.rejected.items())))
        metric("engine_decision_duration_seconds", "histogram",
               "Time to decide one request (endpoint=decide) or a whole batch (endpoint=batch).",
               (line for endpoint, hist in self.latency.items()
                for line in hist.lines("engine_decision_duration_seconds", f'endpoint="{endpoint}"')))
        hits, misses, size = holder.cache_totals()
        metric("engine_cache_hits_total", "counter", "Decisions answered from the decision cache.",
               [f"engine_cache_hits_total {hits}"])
        metric("engine_cache_misses_total", "counter", "Decision cache lookups that found nothing.",
               [f"engine_cache_misses_total {misses}"])
        metric("engine_cache_entries", "gauge", "Decisions held in the current policy's cache.",
               [f"engine_cache_entries {size}"])
        metric("engine_policy_reloads_total", "counter", "Policy reloads, by result (failed sets are refused).",
               [f'engine_policy_reloads_total{{result="ok"}} {holder.reloads_ok}',
                f'engine_policy_reloads_total{{result="failed"}} {holder.reloads_failed}'])
        policy = holder.policy
        if policy is not None:
            labels = (f'version="{_escape(policy.version)}",label="{_escape(policy.label or "")}",'
                      f'title="{_escape(policy.title or "")}"')
            metric("engine_policy_info", "gauge", "The policy set being served (always 1).",
                   [f"engine_policy_info{{{labels}}} 1"])
            metric("engine_policy_loaded_timestamp_seconds", "gauge", "When the served policy set was loaded.",
                   [f"engine_policy_loaded_timestamp_seconds {policy.loaded_at.timestamp():.3f}"])
            metric("engine_policy_rules", "gauge", "Rules in the served policy set.",
                   [f"engine_policy_rules {len(policy.rules)}"])
        if audit_written is not None:
            metric("engine_audit_entries_total", "counter", "Decisions appended to the audit trail.",
                   [f"engine_audit_entries_total {audit_written}"])
            metric("engine_audit_failures_total", "counter", "Decisions that could not be appended to the audit trail.",
                   [f"engine_audit_failures_total {audit_failed or 0}"])
            metric("engine_audit_pending", "gauge",
                   "Queue entries (a decision, or a batch's decisions) not yet written to the audit trail.",
                   [f"engine_audit_pending {audit_pending or 0}"])
        return "\n".join(out) + "\n"
