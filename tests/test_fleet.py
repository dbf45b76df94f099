"""A fleet on loopback: three `engine serve --bundle URL` replicas agree on what they serve.

A round-robin client keeps deciding while a new signed bundle, a bundle with
errors, a bundle signed by another key and the original again are published
(bench/fleet.py runs the scenario; BENCHMARKS.md has its full figures).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _bundles import bundle_of, fleet, new_key, write_keys, write_set

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


def test_with_two_workers_one_polls_and_both_serve_what_it_activates(tmp_path: Path) -> None:
    key = new_key()
    _, public = write_keys(key, tmp_path)
    first, _ = bundle_of(tmp_path, "1", key)
    second, newer = bundle_of(tmp_path, "2", key)
    server = fleet.BundleServer()
    server.publish(first)
    replica = fleet.Replica(server.url, public, 0.2, 2, tmp_path / "replica.log")
    try:
        fleet._wait(lambda: replica.revision() is not None, 60, "the replica to be ready")
        server.publish(second)
        # Each check is a new connection, which either worker may answer: wait until the
        # polling worker and the other have both been seen serving the new revision.
        seen: set[bool] = set()

        def both_serve_it() -> bool:
            status = replica.status()
            if (status["serving"] or {}).get("revision") == newer:
                seen.add(status["this_process_polls"])
            return seen == {True, False}

        fleet._wait(both_serve_it, 30, "both workers to serve the new revision")
    finally:
        replica.stop()
        server.stop()
    # One worker polled for both (`seen` holds a worker that polls and one that does not):
    # each bundle is downloaded once, and at most once more should the poller have had to
    # fetch again (a download cut short on a loaded machine, or the worker restarted).
    assert 2 <= server.downloads <= 3
