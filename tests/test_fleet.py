"""A fleet on loopback: three `engine serve --bundle URL` replicas agree on what they serve.

A round-robin client keeps deciding while a new signed bundle, a bundle with
errors, a bundle signed by another key and the original again are published
(bench/fleet.py runs the scenario; BENCHMARKS.md has its full figures).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _bundles import fleet, write_set

pytestmark = pytest.mark.slow


def test_a_fleet_converges_on_each_good_bundle_and_refuses_the_bad(tmp_path: Path) -> None:
    results = fleet.run_scenario(write_set(tmp_path / "set"), tmp_path, replicas=3, interval=0.2)
    print("fleet:", json.dumps({k: results[k] for k in ("requests", "convergence_s", "events")}))
    assert results["failed_requests"] == 0, results["failures"]
    assert results["requests"] > 50
    assert results["decisions_by_unpublished_or_refused_revision"] == 0
    assert results["replicas_that_went_back"] == 0
    refused = {e["published"]: e["reason"] for e in results["events"] if "refused_by" in e}
    assert "no_such_role" in refused["broken"] or "unknown role" in refused["broken"]
    assert "signature does not match" in refused["forged"]
    assert len(results["convergence_s"]) == 2
    # Polling every 0.2 s with 20 % jitter, a loaded machine still converges within seconds.
    assert results["convergence_max_s"] < 5
    # Replicas ask with If-None-Match: most polls are answered 304 without a download.
    assert results["not_modified"] > results["downloads"]
