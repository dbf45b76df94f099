import warnings
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from engine.service.app import create_app
from engine.service.telemetry import Telemetry

POLICY = """\
actions { view }
roles { social_worker }
purposes { safeguarding, marketing }
categories { health }
classifications official
agencies { council }
permit looking "Look for safeguarding" {
  purpose safeguarding
  because "a reason"
}
"""

REQUEST = {
    "requester": {"role": "social_worker", "agency": "council"},
    "action": "view",
    "resource": {"category": "health", "classification": "official", "owner": "council"},
    "purpose": "safeguarding",
}


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    (tmp_path / "set.policy").write_text(POLICY, encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize("env", [{}, {"OTEL_TRACES_EXPORTER": "none"}, {"OTEL_SERVICE_NAME": "x"},
                                 {"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"}],
                         ids=["nothing", "none", "unrelated", "disabled"])
def test_nothing_is_set_up_unless_asked(env: dict) -> None:
    telemetry = Telemetry.from_env(env)
    assert not telemetry.enabled
    assert telemetry.tracer is None and telemetry.meter is None


def test_console_exporters_come_from_the_environment() -> None:
    telemetry = Telemetry.from_env({"OTEL_TRACES_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "console"})
    try:
        assert telemetry.tracer is not None and telemetry.meter is not None
        processors = telemetry._providers[0]._active_span_processor._span_processors
        assert isinstance(processors[0].span_exporter, ConsoleSpanExporter)
    finally:
        telemetry.shutdown()


def test_missing_otlp_exporter_is_a_warning_not_a_failure(caplog: pytest.LogCaptureFixture) -> None:
    try:
        import opentelemetry.exporter.otlp  # noqa: F401
    except ImportError:
        telemetry = Telemetry.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
        assert telemetry.tracer is None
        assert "opentelemetry-exporter-otlp" in caplog.text
    else:
        pytest.skip("the OTLP exporter is installed")


def test_each_decision_is_a_span_and_counted(policy_dir: Path) -> None:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    telemetry = Telemetry(tracer_provider, MeterProvider(metric_readers=[reader]))
    app = create_app(policy_dir, watch=False, telemetry=telemetry, date_callers="*")
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with TestClient(app) as client:
        single = client.post("/decide", json=REQUEST, headers={"traceparent": parent}).json()
        client.post("/decide/batch", json={"requests": [REQUEST, {**REQUEST, "purpose": "marketing"}]})

    finished = spans.get_finished_spans()
    assert [span.name for span in finished] == ["engine.decide"] * 3
    first = finished[0]
    assert first.attributes["engine.decision"] == "permit"
    assert first.attributes["engine.decision_id"] == single["decision_id"]
    assert first.attributes["engine.policy_version"] == single["policy_version"]
    assert list(first.attributes["engine.rules"]) == ["looking"]
    assert first.attributes["engine.cache_hit"] is False
    assert format(first.context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
    assert finished[2].attributes["engine.decision"] == "deny"

    points = {metric.name: metric for resource in reader.get_metrics_data().resource_metrics
              for scope in resource.scope_metrics for metric in scope.metrics}
    outcomes = {dict(p.attributes)["decision"]: p.value for p in points["engine.decisions"].data.data_points}
    assert outcomes == {"permit": 2, "deny": 1}
    assert sum(p.count for p in points["engine.decision.duration"].data.data_points) == 1
    assert sum(p.count for p in points["engine.batch.duration"].data.data_points) == 1
    assert [p.value for p in points["engine.cache.hits"].data.data_points] == [1]
    assert [p.value for p in points["engine.cache.misses"].data.data_points] == [2]
