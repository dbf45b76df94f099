"""The bundle poller: ETag honoured, failures recorded, the last good set kept serving."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _bundles import PERMITTED, RULES, BundleServer, bundle_of, new_key, write_keys
from fastapi.testclient import TestClient

from engine.bundle import MANIFEST, Manifest, pack
from engine.service.app import create_app
from engine.service.bundles import BundlePoller, FleetSettings, shown_source

pytestmark = pytest.mark.slow  # each test starts a bundle server or a service


@pytest.fixture
def server() -> Iterator[BundleServer]:
    bundles = BundleServer()
    yield bundles
    bundles.stop()


def _poller(source: str, key_file: Path | None = None) -> BundlePoller:
    return BundlePoller(FleetSettings(bundle=source, key=str(key_file) if key_file else None, timeout=2.0))


def _poll(poller: BundlePoller) -> str:
    return asyncio.run(poller.poll_once())


def test_an_unchanged_bundle_is_not_downloaded_again(server: BundleServer, tmp_path: Path) -> None:
    first, revision = bundle_of(tmp_path, "1")
    server.publish(first)
    poller = _poller(server.url)
    assert _poll(poller) == "activated" and poller.holder.policy.version == revision
    assert [_poll(poller), _poll(poller)] == ["not_modified", "not_modified"]
    assert (server.downloads, server.not_modified) == (1, 2)
    second, newer = bundle_of(tmp_path, "2")
    server.publish(second)
    assert _poll(poller) == "activated" and poller.holder.policy.version == newer
    assert server.downloads == 2
    report = poller.report()
    assert report["serving"] == {"revision": newer, "label": "2"}
    assert report["last_activated"]["revision"] == newer and report["activations"] == 2


def test_a_server_that_goes_down_leaves_the_last_good_set_serving(server: BundleServer, tmp_path: Path) -> None:
    data, revision = bundle_of(tmp_path, "1")
    server.publish(data)
    poller = _poller(server.url)
    assert _poll(poller) == "activated"
    server.stop()
    assert _poll(poller) == "failed"
    assert poller.holder.policy.version == revision
    assert poller.holder.policy.decide(PERMITTED).decision == "permit"
    last = poller.report()["last_fetch"]
    assert last["outcome"] == "failed" and "could not be downloaded" in last["error"]
    server.start()  # back on the same port, same bundle: nothing to download
    assert _poll(poller) == "not_modified"


def test_a_missing_bundle_is_a_failure_not_a_refusal(server: BundleServer) -> None:
    poller = _poller(server.url)
    assert _poll(poller) == "failed"
    assert "answered 404" in poller.report()["last_fetch"]["error"]
    assert poller.holder.policy is None


def test_bundles_with_bad_signatures_or_errors_are_refused_and_not_fetched_again(
        server: BundleServer, tmp_path: Path) -> None:
    key = new_key()
    _, public = write_keys(key, tmp_path)
    good, revision = bundle_of(tmp_path, "1", key)
    server.publish(good)
    poller = _poller(server.url, public)
    assert _poll(poller) == "activated"

    forged, _ = bundle_of(tmp_path, "forged", new_key())
    server.publish(forged)
    assert _poll(poller) == "refused"
    refused = poller.report()["last_refused"]
    assert "signature does not match" in refused["reason"]
    assert _poll(poller) == "not_modified"  # the same refused bundle is neither downloaded nor checked again

    # A signed bundle whose set has errors (packed by hand: the builder refuses such a set).
    good_manifest, files = _manifest_and_files(good)
    broken = {**files, "20_rules.policy": RULES.replace("role social_worker", "role social_wrker").encode()}
    server.publish(pack(_rehash(good_manifest, broken), broken, key))
    assert _poll(poller) == "refused"
    reason = poller.report()["last_refused"]["reason"]
    assert "policies/20_rules.policy:3:" in reason and "social_wrker" in reason
    assert poller.holder.policy.version == revision
    assert poller.report()["refusals"] == 2 == poller.holder.reloads_failed


def _manifest_and_files(data: bytes) -> tuple[Manifest, dict[str, bytes]]:
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]
    files = {name.removeprefix("policies/"): body for name, body in members.items() if name.startswith("policies/")}
    return Manifest.from_bytes(members[MANIFEST]), files


def _rehash(manifest: Manifest, files: dict[str, bytes]) -> Manifest:
    import dataclasses
    import hashlib

    return dataclasses.replace(manifest, revision="sha256:0123456789abcdef", files=tuple(
        dataclasses.replace(f, sha256=hashlib.sha256(files[f.path]).hexdigest(), size=len(files[f.path]))
        for f in manifest.files))


def test_a_bundle_file_is_read_again_only_when_it_changes(tmp_path: Path) -> None:
    data, _ = bundle_of(tmp_path, "1")
    path = tmp_path / "bundle.tar.gz"
    path.write_bytes(data)
    poller = _poller(str(path))
    assert [_poll(poller), _poll(poller)] == ["activated", "not_modified"]
    newer, revision = bundle_of(tmp_path, "2")
    path.write_bytes(newer)
    assert _poll(poller) == "activated" and poller.holder.policy.version == revision


def test_credentials_in_the_source_are_never_shown() -> None:
    shown = shown_source("https://user:secret@bucket.example:8443/policy.tar.gz?X-Amz-Signature=abc")
    assert shown == "https://bucket.example:8443/policy.tar.gz"


def _wait_until(condition, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    pytest.fail("timed out")


def test_the_service_is_ready_only_with_the_required_revision(server: BundleServer, tmp_path: Path) -> None:
    first, revision = bundle_of(tmp_path, "1")
    second, newer = bundle_of(tmp_path, "2")
    fleet = FleetSettings(bundle=server.url, interval=0.1, require_revision=newer)
    with TestClient(create_app(fleet=fleet, date_callers="*")) as client:
        not_yet = client.get("/readyz")
        assert not_yet.status_code == 503 and "no policy set is loaded yet" in not_yet.json()["message"]
        assert client.post("/decide", json=PERMITTED).status_code == 503
        server.publish(first)
        _wait_until(lambda: client.get("/bundle/status").json()["serving"] is not None)
        wrong = client.get("/readyz")
        assert wrong.status_code == 503 and f"not the required {newer}" in wrong.json()["message"]
        assert client.post("/decide", json=PERMITTED).json()["policy_version"] == revision
        asked = client.post("/decide", json=PERMITTED, headers={"X-Policy-Revision": newer})
        assert asked.status_code == 409 and asked.json()["code"] == "revision_not_served"
        assert asked.json()["policy_version"] == revision
        batch = client.post("/decide/batch", json={"requests": [PERMITTED]}, headers={"X-Policy-Revision": newer})
        assert batch.status_code == 409
        server.publish(second)
        _wait_until(lambda: client.get("/readyz").status_code == 200)
        answer = client.post("/decide", json=PERMITTED, headers={"X-Policy-Revision": newer})
        assert answer.status_code == 200 and answer.json()["policy_version"] == newer
        assert client.get("/policy").json()["version"] == newer


def test_the_service_is_ready_only_with_the_required_label(server: BundleServer, tmp_path: Path) -> None:
    server.publish(bundle_of(tmp_path, "1")[0])
    with TestClient(create_app(fleet=FleetSettings(bundle=server.url, interval=0.1, require_label="2"), date_callers="*")) as client:
        _wait_until(lambda: client.get("/bundle/status").json()["serving"] is not None)
        assert "not the required '2'" in client.get("/readyz").json()["message"]
        server.publish(bundle_of(tmp_path, "2")[0])
        _wait_until(lambda: client.get("/readyz").status_code == 200)
