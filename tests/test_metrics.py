"""Durations counted first and handed over export exactly what observing each one would."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from engine.service.metrics import BUCKETS, Durations


def _exported(histogram: Histogram, registry: CollectorRegistry) -> list[str]:
    return [line for line in generate_latest(registry).decode().splitlines()
            if not line.startswith("#") and "_created" not in line]


@pytest.mark.parametrize("seconds", [
    [],
    [0.00001],
    [0.00005, 0.0001, 0.00025],  # on the bounds: counted in the bucket they bound
    [0.00007, 0.3, 5.0, 0.000049, 1.0, 1.0000001],
], ids=["none", "one", "on the bounds", "spread, and past the last bound"])
def test_durations_export_what_observing_each_would(seconds: list[float]) -> None:
    found = []
    for counted_first in (True, False):
        registry = CollectorRegistry()
        histogram = Histogram("d", "durations", buckets=BUCKETS, registry=registry)
        durations = Durations(histogram)
        for value in seconds:
            durations.observe(value) if counted_first else histogram.observe(value)
        durations.push()
        found.append(_exported(histogram, registry))
    assert found[0] == found[1]


def test_pushing_twice_adds_only_what_is_new() -> None:
    registry = CollectorRegistry()
    histogram = Histogram("d", "durations", buckets=BUCKETS, registry=registry)
    durations = Durations(histogram)
    durations.observe(0.001)
    durations.push()
    durations.push()
    durations.observe(0.002)
    durations.push()
    assert "d_count 2.0" in _exported(histogram, registry)
