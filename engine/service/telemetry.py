"""OpenTelemetry for the decision service: a span per decision, decision metrics.

Configured only by the standard OTEL_* environment variables, and nothing is
set up unless they ask for it: `OTEL_TRACES_EXPORTER` / `OTEL_METRICS_EXPORTER`
(`console`, `otlp` or `none`), or an `OTEL_EXPORTER_OTLP_*ENDPOINT`, which
means `otlp`. `OTEL_SDK_DISABLED=true` turns everything off. Without any of
them the service holds no tracer or meter at all and each decision costs one
`is None` test here. The OTLP exporters are not dependencies of the engine:
install `opentelemetry-exporter-otlp` to use them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.metrics import Observation
from opentelemetry.propagate import extract

from engine.service.metrics import BUCKETS

log = logging.getLogger("engine.api")

SERVICE_NAME = "engine-decision-service"


def _exporters(env: Mapping[str, str], signal: str) -> list[str]:
    named = env.get(f"OTEL_{signal.upper()}_EXPORTER", "").strip().lower()
    if named:
        return [name.strip() for name in named.split(",") if name.strip() and name.strip() != "none"]
    endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
    return ["otlp"] if endpoint else []


def _otlp(env: Mapping[str, str], signal: str) -> Any:
    protocol = env.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
    transport = "grpc" if protocol.strip() == "grpc" else "http"
    module, name = {
        ("traces", "http"): ("opentelemetry.exporter.otlp.proto.http.trace_exporter", "OTLPSpanExporter"),
        ("traces", "grpc"): ("opentelemetry.exporter.otlp.proto.grpc.trace_exporter", "OTLPSpanExporter"),
        ("metrics", "http"): ("opentelemetry.exporter.otlp.proto.http.metric_exporter", "OTLPMetricExporter"),
        ("metrics", "grpc"): ("opentelemetry.exporter.otlp.proto.grpc.metric_exporter", "OTLPMetricExporter"),
    }[(signal, transport)]
    try:
        exporter = getattr(__import__(module, fromlist=[name]), name)
    except ImportError:
        log.warning("OTLP %s export asked for, but %s is not installed: pip install opentelemetry-exporter-otlp",
                    signal, module)
        return None
    return exporter()


def _resource(env: Mapping[str, str]) -> Any:
    from opentelemetry.sdk.resources import Resource

    attributes = {} if env.get("OTEL_SERVICE_NAME") else {"service.name": SERVICE_NAME}
    return Resource.create(attributes)


def _tracer_provider(env: Mapping[str, str]) -> Any:
    names = _exporters(env, "traces")
    if not names:
        # A provider installed by someone else (opentelemetry-instrument, an embedding app) is used as is.
        from opentelemetry.sdk.trace import TracerProvider

        current = trace.get_tracer_provider()
        return current if isinstance(current, TracerProvider) else None
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    exporters = [ConsoleSpanExporter() if name == "console" else _otlp(env, "traces") for name in names]
    exporters = [exporter for exporter in exporters if exporter is not None]
    if not exporters:
        return None
    provider = TracerProvider(resource=_resource(env))
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _meter_provider(env: Mapping[str, str]) -> Any:
    names = _exporters(env, "metrics")
    if not names:
        return None
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader

    exporters = [ConsoleMetricExporter() if name == "console" else _otlp(env, "metrics") for name in names]
    readers = [PeriodicExportingMetricReader(exporter) for exporter in exporters if exporter is not None]
    return MeterProvider(resource=_resource(env), metric_readers=readers) if readers else None


class Telemetry:
    """Spans and metrics for decisions; every method is a no-op when not configured."""

    def __init__(self, tracer_provider: Any = None, meter_provider: Any = None):
        self._providers = [p for p in (tracer_provider, meter_provider) if p is not None]
        self.tracer = tracer_provider.get_tracer("engine.api") if tracer_provider is not None else None
        self.meter = meter_provider.get_meter("engine.api") if meter_provider is not None else None
        self.enabled = self.tracer is not None or self.meter is not None
        if self.meter is not None:
            self._decisions = self.meter.create_counter(
                "engine.decisions", unit="{decision}", description="Decisions made, by outcome")
            # The SDK's default boundaries start at 5 (seconds here), where no decision ever lands.
            self._latency = self.meter.create_histogram(
                "engine.decision.duration", unit="s", description="Time to decide one request",
                explicit_bucket_boundaries_advisory=list(BUCKETS))
            self._batch_latency = self.meter.create_histogram(
                "engine.batch.duration", unit="s", description="Time to decide one batch of requests",
                explicit_bucket_boundaries_advisory=list(BUCKETS))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Telemetry:
        env = os.environ if env is None else env
        if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return cls()
        return cls(_tracer_provider(env), _meter_provider(env))

    def parent(self, headers: Any) -> Any:
        """The trace context a caller sent (W3C traceparent), when tracing is on."""
        return extract(headers) if self.tracer is not None else None

    def decided(self, decision: Any, cached: bool | None, caller: str | None,
                started_ns: int, ended_ns: int, parent: Any = None) -> None:
        """Record one decision (an engine Decision) as a span and in the metrics."""
        self._span(decision, cached, caller, started_ns, ended_ns, parent)
        if self.meter is not None:
            self._decisions.add(1, {"decision": decision.decision})
            self._latency.record((ended_ns - started_ns) / 1e9)

    def decided_batch(self, decisions: list[Any], caller: str | None, started_ns: int, ended_ns: int,
                      parent: Any = None) -> None:
        """Record a batch: a span per decision over the batch's time, the batch's duration once."""
        for decision in decisions:
            self._span(decision, None, caller, started_ns, ended_ns, parent)
        if self.meter is not None:
            for decision in decisions:
                self._decisions.add(1, {"decision": decision.decision})
            self._batch_latency.record((ended_ns - started_ns) / 1e9)

    def _span(self, decision: Any, cached: bool | None, caller: str | None,
              started_ns: int, ended_ns: int, parent: Any) -> None:
        if self.tracer is not None:
            attributes = {
                "engine.decision": decision.decision,
                "engine.decision_id": decision.decision_id,
                "engine.policy_version": decision.policy_version,
                "engine.rules": [reason.rule for reason in decision.reasons],
            }
            if cached is not None:
                attributes["engine.cache_hit"] = cached
            if caller is not None:
                attributes["engine.caller"] = caller
            span = self.tracer.start_span("engine.decide", context=parent, start_time=started_ns,
                                          attributes=attributes)
            span.end(end_time=ended_ns)

    def watch_cache(self, totals: Callable[[], tuple[int, int, int]]) -> None:
        """Report the decision cache's hits and misses, read when the metrics are collected."""
        if self.meter is None:
            return

        def hits(options: Any) -> Iterable[Observation]:
            yield Observation(totals()[0])

        def misses(options: Any) -> Iterable[Observation]:
            yield Observation(totals()[1])

        self.meter.create_observable_counter("engine.cache.hits", [hits], unit="{decision}",
                                             description="Decisions answered from the decision cache")
        self.meter.create_observable_counter("engine.cache.misses", [misses], unit="{decision}",
                                             description="Decision cache lookups that found nothing")

    def shutdown(self) -> None:
        """Export what is buffered; called once when the service stops."""
        for provider in self._providers:
            if provider is trace.get_tracer_provider():
                continue  # not ours to shut down
            try:
                provider.shutdown()
            except Exception:
                log.exception("shutting down telemetry failed")
