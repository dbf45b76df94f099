"""Serving from a bundle: poll a URL or file, verify, compile off the loop, swap, keep the last good.

`engine serve --bundle URL` polls the bundle at an interval with jitter (so a
fleet does not hit the bundle server in step), asking with `If-None-Match`
so an unchanged bundle is not downloaded again. A new bundle is verified
(signature, file hashes, content hash = revision), checked and compiled in a
worker thread, and only then swapped in. Any failure (download, signature,
errors in the set) is recorded with its reason and the last good set keeps
serving.

With `--workers N` the workers share a directory (the reload signal's): one
worker, whichever holds the lock file, polls; it writes each bundle it
activates there and sends the reload signal, and the others load that copy,
verified again with the same key.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import fcntl
import http.client
import json
import logging
import os
import random
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from fastapi import FastAPI
from starlette.responses import Response

from engine.bundle import (
    MAX_BUNDLE_BYTES,
    BundleError,
    load_bundle,
    load_public_key,
    read_bundle,
)
from engine.errors import PolicyError, PolicyLoadError
from engine.service.errors import ApiError, json_response
from engine.service.reloading import PolicyHolder, ReloadSignal
from engine.service.settings import positive_number

log = logging.getLogger("engine.api")

REVISION_HEADER = "x-policy-revision"
SHARED_BUNDLE = "bundle.tar.gz"
SHARED_STATUS = "bundle-status.json"
POLLER_LOCK = "bundle-poller.lock"


@dataclass(frozen=True, slots=True)
class FleetSettings:
    """Where the bundle comes from, how it is trusted and polled, and what readiness requires."""

    bundle: str | None = None  # http(s) URL or file path
    key: str | None = None  # PEM file of the Ed25519 public key; unsigned bundles refused when set
    interval: float = 30.0  # seconds between polls
    jitter: float = 0.2  # each wait is the interval times 1 ± this fraction
    timeout: float = 10.0  # seconds for one download
    require_revision: str | None = None
    require_label: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> FleetSettings:
        """Read ENGINE_BUNDLE_URL, ENGINE_BUNDLE_KEY, ENGINE_BUNDLE_INTERVAL, ENGINE_BUNDLE_TIMEOUT,
        ENGINE_REQUIRE_REVISION and ENGINE_REQUIRE_LABEL; ValueError names a bad number."""
        return cls(bundle=env.get("ENGINE_BUNDLE_URL") or None, key=env.get("ENGINE_BUNDLE_KEY") or None,
                   interval=positive_number("ENGINE_BUNDLE_INTERVAL", 30.0, env, "seconds"),
                   timeout=positive_number("ENGINE_BUNDLE_TIMEOUT", 10.0, env, "seconds"),
                   require_revision=env.get("ENGINE_REQUIRE_REVISION") or None,
                   require_label=env.get("ENGINE_REQUIRE_LABEL") or None)

    def to_env(self) -> dict[str, str]:
        """The variables `from_env` reads, for worker processes."""
        values = {"ENGINE_BUNDLE_URL": self.bundle, "ENGINE_BUNDLE_KEY": self.key,
                  "ENGINE_BUNDLE_INTERVAL": str(self.interval), "ENGINE_BUNDLE_TIMEOUT": str(self.timeout),
                  "ENGINE_REQUIRE_REVISION": self.require_revision, "ENGINE_REQUIRE_LABEL": self.require_label}
        return {name: value for name, value in values.items() if value is not None}


def shown_source(source: str) -> str:
    """The source without credentials or query (a pre-signed URL's token), for logs and status."""
    parts = urllib.parse.urlsplit(source)
    if parts.scheme in ("http", "https"):
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}{parts.path}"
    return source


# --- readiness and the revision header -----------------------------------------


def unready_reason(policy: Any, settings: FleetSettings) -> str | None:
    """Why a replica serving `policy` is not ready under the required revision or label, or None."""
    if policy is None:
        return "no policy set is loaded yet"
    if settings.require_revision and policy.version != settings.require_revision:
        return f"serving revision {policy.version}, not the required {settings.require_revision}"
    if settings.require_label and policy.label != settings.require_label:
        return f"serving label {policy.label!r}, not the required {settings.require_label!r}"
    return None


def check_revision(policy: Any, headers: Mapping[str, str]) -> None:
    """409 when the caller asked for a revision (X-Policy-Revision) this replica is not serving."""
    wanted = headers.get(REVISION_HEADER)
    if wanted and wanted.strip() != policy.version:
        raise ApiError(409, "revision_not_served",
                       f"this replica serves policy revision {policy.version}, not {wanted.strip()}; "
                       "retry (another replica, or this one shortly) or drop the header",
                       location={"in": "header", "name": "X-Policy-Revision"},
                       extra={"policy_version": policy.version})


# --- fetching -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fetched:
    """One poll's download: new bytes with their ETag, or None when unchanged."""

    data: bytes | None
    etag: str | None


def fetch(source: str, etag: str | None, timeout: float) -> Fetched:
    """Download the bundle unless its ETag is still `etag`; BundleError says why it failed."""
    parts = urllib.parse.urlsplit(source)
    if parts.scheme in ("http", "https"):
        return _fetch_http(source, etag, timeout)
    path = Path(urllib.request.url2pathname(parts.path) if parts.scheme == "file" else source)
    try:
        stat = path.stat()
        tag = f'"{stat.st_size}-{stat.st_mtime_ns}"'
        if tag == etag:
            return Fetched(None, etag)
        if stat.st_size > MAX_BUNDLE_BYTES:
            raise BundleError(f"{path}: {stat.st_size} bytes; at most {MAX_BUNDLE_BYTES} are read")
        return Fetched(path.read_bytes(), tag)
    except OSError as err:
        raise BundleError(f"{path}: cannot be read ({err.strerror})") from None


def _fetch_http(url: str, etag: str | None, timeout: float) -> Fetched:
    request = urllib.request.Request(url, headers={"If-None-Match": etag} if etag else {})
    shown = shown_source(url)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data = _read_limited(response)
            return Fetched(data, response.headers.get("ETag"))
    except urllib.error.HTTPError as err:
        if err.code == 304:
            return Fetched(None, etag)
        raise BundleError(f"{shown}: the bundle server answered {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:  # a cut-short body included
        reason = getattr(err, "reason", err)
        raise BundleError(f"{shown}: the bundle could not be downloaded ({reason})") from None


def _read_limited(response: IO[bytes]) -> bytes:
    data = response.read(MAX_BUNDLE_BYTES + 1)
    if len(data) > MAX_BUNDLE_BYTES:
        raise BundleError(f"the bundle is larger than {MAX_BUNDLE_BYTES} bytes")
    return data


# --- the poller -----------------------------------------------------------------


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


class BundlePoller:
    """Keeps the holder's set the newest good bundle; records what each poll did.

    `share_dir` is the directory workers of one `engine serve --workers N`
    share (None for one worker): the lock there chooses the poller.
    """

    def __init__(self, settings: FleetSettings, *, share_dir: Path | None = None,
                 signal: ReloadSignal | None = None):
        if settings.bundle is None:
            raise ValueError("no bundle to poll")
        self.settings = settings
        self.source = settings.bundle
        self.shown = shown_source(settings.bundle)
        # The served set; a reload (endpoint or signal) loads the last good bundle again.
        self.holder = PolicyHolder(self.shown, self.load_last_good)
        self.key = load_public_key(settings.key) if settings.key else None
        self.share_dir = share_dir
        self.signal = signal
        self.etag: str | None = None
        self.last_good: bytes | None = None
        self.status: dict[str, Any] = {"fetches": 0, "activations": 0, "refusals": 0, "failures": 0,
                                       "last_fetch": None, "last_activated": None, "last_refused": None}
        self._lock_file: IO[bytes] | None = None

    # The holder's loader: the last good bundle this process or the poller stored, verified again.
    def load_last_good(self, _path: Any = None) -> Any:
        """The last good bundle's set; PolicyLoadError when none has been fetched yet."""
        data = self.last_good
        if self.share_dir is not None:
            try:
                data = (self.share_dir / SHARED_BUNDLE).read_bytes()
            except FileNotFoundError:
                data = None
        if data is None:
            raise PolicyLoadError(f"no bundle has been fetched from {self.shown} yet")
        return load_bundle(read_bundle(data, self.key))

    def is_poller(self) -> bool:
        """Whether this process polls: always with one worker; else whoever holds the lock."""
        if self.share_dir is None or self._lock_file is not None:
            return True
        handle = (self.share_dir / POLLER_LOCK).open("ab")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._lock_file = handle  # held for the life of the process; freed by the OS when it ends
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until `stop` is set; a worker that does not poll loads what the poller shared."""
        if self.share_dir is not None and (self.share_dir / SHARED_BUNDLE).exists():
            await self.holder.reload("bundle shared by the polling worker")
        while not stop.is_set():
            if self.is_poller():
                try:
                    await self.poll_once()
                except Exception:  # never let one bad poll end polling
                    log.exception("polling the bundle failed unexpectedly")
            wait = self.settings.interval * (1 + random.uniform(-self.settings.jitter, self.settings.jitter))
            try:
                await asyncio.wait_for(stop.wait(), wait)
            except TimeoutError:
                pass

    async def poll_once(self) -> str:
        """Fetch, verify and activate once: "activated", "unchanged", "not_modified", "refused" or "failed"."""
        self.status["fetches"] += 1
        try:
            fetched = await asyncio.to_thread(fetch, self.source, self.etag, self.settings.timeout)
        except BundleError as err:
            self.status["failures"] += 1
            self.status["last_fetch"] = {"at": _now(), "outcome": "failed", "error": err.message}
            log.warning("bundle not fetched; still serving %s: %s", self._serving(), err.message)
            self._share_status()
            return "failed"
        if fetched.data is None:
            self.status["last_fetch"] = {"at": _now(), "outcome": "not_modified"}
            self._share_status()
            return "not_modified"
        self.status["last_fetch"] = {"at": _now(), "outcome": "downloaded", "bytes": len(fetched.data)}
        # A refused bundle is not fetched again until it changes, nor compiled again each poll.
        self.etag = fetched.etag
        outcome = await self._activate(fetched.data)
        self._share_status()
        return outcome

    async def _activate(self, data: bytes) -> str:
        revision = None
        try:
            bundle = await asyncio.to_thread(read_bundle, data, self.key)
            revision = bundle.revision
            current = self.holder.policy
            if current is not None and current.version == revision:
                return "unchanged"
            policy = await asyncio.to_thread(load_bundle, bundle)
        except PolicyError as err:
            return self._refuse(revision, err)
        result = await self.holder.install(policy, f"bundle {revision}")
        self.last_good = data
        self._share(data)
        self.status["activations"] += 1
        self.status["last_activated"] = {"at": _now(), "revision": policy.version, "label": policy.label}
        return "activated" if result.changed else "unchanged"

    def _refuse(self, revision: str | None, err: PolicyError) -> str:
        reason = err.render() if isinstance(err, PolicyLoadError) else err.message
        self.status["refusals"] += 1
        # Counted with refused reloads, so engine_policy_reloads_total{result="failed"} alerts on both.
        self.holder.reloads_failed += 1
        self.holder.last_error = err
        self.status["last_refused"] = {"at": _now(), "revision": revision, "reason": reason}
        log.error("refused the bundle from %s (revision %s); still serving %s:\n%s",
                  self.shown, revision or "unknown", self._serving(), reason)
        return "refused"

    def _serving(self) -> str:
        policy = self.holder.policy
        return policy.version if policy is not None else "nothing"

    def _share(self, data: bytes) -> None:
        """Hand the activated bundle to the other workers: write it whole, then signal."""
        if self.share_dir is None:
            return
        _write_whole(self.share_dir / SHARED_BUNDLE, data)
        if self.signal is not None:
            self.signal.send()

    def _share_status(self) -> None:
        if self.share_dir is not None:
            _write_whole(self.share_dir / SHARED_STATUS, json.dumps(self.status).encode())

    def report(self) -> dict[str, Any]:
        """What `GET /bundle/status` answers: the source, what this process serves, and the polls."""
        status = self.status
        polling = self.share_dir is None or self._lock_file is not None
        if not polling and self.share_dir is not None:  # the polling worker's record
            try:
                status = json.loads((self.share_dir / SHARED_STATUS).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                pass
        policy = self.holder.policy
        return {"source": self.shown, "signature_required": self.key is not None,
                "interval_seconds": self.settings.interval,
                "serving": None if policy is None else {"revision": policy.version, "label": policy.label},
                "this_process_polls": polling, **status}


def _write_whole(path: Path, data: bytes) -> None:
    """Write then rename, so a reader never sees half a file."""
    staging = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        staging.write_bytes(data)
        os.replace(staging, path)
    except OSError as err:
        log.warning("could not write %s: %s", path, err)


def add_bundle_routes(app: FastAPI, poller: BundlePoller) -> None:
    """`GET /bundle/status`: when the bundle was last fetched, activated or refused, and why."""
    @app.get("/bundle/status", tags=["policy"])
    async def bundle_status() -> Response:
        """The bundle source, the revision served, and the outcome of the last fetch, activation and refusal."""
        return json_response(poller.report())
