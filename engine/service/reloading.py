"""The policy set being served, and replacing it while requests flow.

A new set is loaded (parsed, checked, compiled) in a worker thread, off the
event loop, then swapped in with one reference assignment. Each request reads
`holder.policy` once and decides everything with that object, so no response
mixes two versions. A set with errors is refused and the last good one keeps
serving. Each Policy carries its own decision cache, keyed by its version, so
a cached decision of an old set cannot be served by a new one.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watchfiles import Change, awatch

from engine.errors import PolicyError, PolicyLoadError
from engine.loader import default_policy_dir

log = logging.getLogger("engine.api")

Loader = Callable[[Any], Any]  # engine.load: path or None -> Policy


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """What a reload did: swapped in a new version, found no change, or refused."""

    ok: bool
    changed: bool
    previous: str | None
    current: str | None
    error: PolicyError | None = None


def _policy_files(change: Change, path: str) -> bool:
    # `..data` is the symlink a Kubernetes ConfigMap update swaps to its new files.
    return path.endswith(".policy") or os.path.basename(path) == "..data"


class PolicyHolder:
    """The one reference to the served Policy, with reload and file watching."""

    def __init__(self, path: str | None, loader: Loader, policy: Any = None):
        self.path = path
        self.policy = policy
        self.reloads_ok = 0
        self.reloads_failed = 0
        self.last_error: PolicyError | None = None
        self.last_attempt: dt.datetime | None = None
        self._load = loader
        self._lock: asyncio.Lock | None = None
        self._retired_hits = 0
        self._retired_misses = 0

    @property
    def ready(self) -> bool:
        return self.policy is not None

    def cache_totals(self) -> tuple[int, int, int]:
        """(hits, misses, entries), counting the caches of sets already replaced."""
        stats = self._stats(self.policy)
        return (self._retired_hits + stats.get("hits", 0), self._retired_misses + stats.get("misses", 0),
                stats.get("size", 0))

    @staticmethod
    def _stats(policy: Any) -> dict[str, Any]:
        return policy.cache_stats() if policy is not None else {}

    async def reload(self, reason: str) -> ReloadResult:
        """Load the set again and swap it in if it is good; refuse it otherwise."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            previous = self.policy
            before = previous.version if previous is not None else None
            self.last_attempt = dt.datetime.now(dt.UTC)
            try:
                policy = await asyncio.to_thread(self._load, self.path)
            except PolicyError as err:
                return self._refused(err, before, reason)
            except Exception as err:
                log.exception("loading the policy set failed unexpectedly (%s)", reason)
                return self._refused(PolicyLoadError(f"the policy set could not be loaded: {err}"), before, reason)
            return self._swap(policy, reason)

    async def install(self, policy: Any, reason: str) -> ReloadResult:
        """Swap in a set already loaded elsewhere (a verified bundle), as a reload would."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            self.last_attempt = dt.datetime.now(dt.UTC)
            return self._swap(policy, reason)

    def _swap(self, policy: Any, reason: str) -> ReloadResult:
        previous = self.policy
        before = previous.version if previous is not None else None
        self.reloads_ok += 1
        self.last_error = None
        if previous is not None and policy.version == previous.version:
            log.info("policy set unchanged at %s (%s)", before, reason)
            return ReloadResult(True, False, before, before)
        self._retire(previous)
        self.policy = policy  # the swap: one reference assignment
        log.info("serving policy set %s, was %s (%s)", policy.version, before, reason)
        return ReloadResult(True, True, before, policy.version)

    def _refused(self, err: PolicyError, before: str | None, reason: str) -> ReloadResult:
        self.reloads_failed += 1
        self.last_error = err
        rendered = err.render() if isinstance(err, PolicyLoadError) else str(err)
        log.error("refused the policy set at %s (%s); still serving %s:\n%s",
                  self.path or "the example policies", reason, before or "nothing", rendered)
        return ReloadResult(False, False, before, before, err)

    def _retire(self, policy: Any) -> None:
        stats = self._stats(policy)
        self._retired_hits += stats.get("hits", 0)
        self._retired_misses += stats.get("misses", 0)

    def watched_path(self) -> Path | None:
        return Path(self.path) if self.path is not None else default_policy_dir()

    async def watch(self, stop: asyncio.Event, *, step_ms: int = 100, debounce_ms: int = 1600) -> None:
        """Reload whenever a .policy file under the path changes, until `stop` is set.

        Changes are gathered until none has come for `step_ms`, so a file being
        written is usually read once complete; a file written in place can still
        be read half-written, which is why deployments should rename new files in.
        """
        target = self.watched_path()
        if target is None:
            log.warning("no policy directory to watch")
            return

        async def changed() -> None:
            await self.reload("files changed")

        # The files are watched where the path leads now; a release swapped in by
        # replacing a symlink (`ln -sfn`, git-sync) changes where it leads, which
        # no file event reports, so that is looked up twice a second.
        while not stop.is_set():
            real = target.resolve()
            moved = asyncio.Event()
            lookout = asyncio.create_task(_until_moved(target, real, stop, moved))
            try:
                await watch_until(real, _policy_files, changed, moved, step_ms=step_ms, debounce_ms=debounce_ms)
            finally:
                lookout.cancel()
            if not stop.is_set():
                await self.reload("policy directory replaced")


async def _until_moved(target: Path, real: Path, stop: asyncio.Event, moved: asyncio.Event) -> None:
    """Set `moved` once `target` resolves elsewhere than `real`, or when `stop` is set."""
    while not stop.is_set():
        try:
            if target.resolve() != real:
                break
        except OSError:
            pass
        try:
            await asyncio.wait_for(stop.wait(), 0.5)
        except TimeoutError:
            pass
    moved.set()


class ReloadSignal:
    """How one worker of `engine serve --workers N` tells the others it was asked to reload,
    and learns whether they did.

    `engine serve` makes a directory for the signal. The reload endpoint writes
    a token (its process id and a count) into the `reload` file, renaming it in
    whole; every worker reads the file ten times a second and reloads when a
    token not its own arrives. Each worker keeps an `ack-<pid>` file beside it
    holding the policy version it serves, so the endpoint can wait for the
    others to confirm the new version and name those that did not. Reading
    rather than watching the directory keeps working if the directory is
    removed: whoever writes next makes it again.
    """

    def __init__(self, path: str | os.PathLike[str], workers: int | None = None):
        self.path = Path(path)
        # How many workers `engine serve` started (ENGINE_WORKERS), so that one whose
        # confirmation file never appeared still counts as not confirmed.
        text = os.environ.get("ENGINE_WORKERS", "")
        self.workers = workers if workers is not None else (int(text) if text.isdigit() else None)
        self._count = 0
        self._sent: str | None = None
        self._seen: str | None = None
        self._acked: str | None = None
        self._peers: set[int] = set()

    def _write(self, target: Path, text: str) -> None:
        staging = target.with_name(f".{target.name}.{os.getpid()}")
        staging.write_text(text, encoding="utf-8")
        os.replace(staging, target)

    def send(self) -> bool:
        """Tell the other workers; a signal that cannot be written is logged, never raised."""
        self._count += 1
        token = f"{os.getpid()}:{self._count}"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)  # made again if it was removed
            self._write(self.path, token)
        except OSError as err:
            log.warning("could not tell the other workers to reload (%s): %s", self.path, err)
            return False
        self._sent = token
        return True

    def acknowledge(self, version: str | None) -> None:
        """Say which version this worker serves, where the others can read it."""
        if not self.path.parent.is_dir():
            return  # removed: made again by the next worker to send a signal
        try:
            self._write(self.path.with_name(f"ack-{os.getpid()}"), version or "")
            self._acked = version
        except OSError as err:
            log.warning("could not record this worker's policy version (%s): %s", self.path, err)

    def peers(self) -> dict[int, str]:
        """The other live workers and the versions they last said they serve."""
        found: dict[int, str] = {}
        try:
            entries = list(self.path.parent.glob("ack-*"))
        except OSError:
            entries = []
        for entry in entries:
            pid_text = entry.name[4:]
            if not pid_text.isdigit() or int(pid_text) == os.getpid():
                continue
            pid = int(pid_text)
            if not alive(pid):
                entry.unlink(missing_ok=True)
                self._peers.discard(pid)
                continue
            try:
                found[pid] = entry.read_text(encoding="utf-8")
            except OSError:
                continue
        self._peers |= set(found)
        self._peers = {pid for pid in self._peers if alive(pid)}
        return found

    async def unconfirmed(self, version: str | None, timeout: float = 3.0) -> list[int | str]:
        """The workers that did not confirm serving `version` within `timeout` seconds: process
        ids, and `"unknown"` for each worker started that never said who it is."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            versions = self.peers()
            confirmed = sum(1 for pid in versions if versions[pid] == (version or ""))
            missing: list[int | str] = sorted(pid for pid in self._peers if versions.get(pid) != (version or ""))
            expected = (self.workers - 1) if self.workers else len(self._peers)
            missing += ["unknown"] * max(0, expected - confirmed - len(missing))
            if not missing or loop.time() >= deadline:
                return missing
            await asyncio.sleep(0.05)

    async def listen(self, holder: PolicyHolder, stop: asyncio.Event) -> None:
        """Reload `holder` whenever another worker sends the signal, until `stop` is set."""
        self._seen = self._read()
        rounds = 0
        try:
            while not stop.is_set():
                if rounds % 10 == 0:
                    self.peers()  # learn of the other workers while their files are there
                rounds += 1
                token = self._read()
                if token and token != self._sent and token != self._seen:
                    self._seen = token
                    await holder.reload("another worker's reload endpoint")
                version = holder.policy.version if holder.policy is not None else None
                if version != self._acked or not self.path.with_name(f"ack-{os.getpid()}").exists():
                    self.acknowledge(version)
                try:
                    await asyncio.wait_for(stop.wait(), 0.1)
                except TimeoutError:
                    pass
        finally:
            self.path.with_name(f"ack-{os.getpid()}").unlink(missing_ok=True)

    def _read(self) -> str | None:
        try:
            return self.path.read_text(encoding="utf-8")
        except OSError:
            return None


def alive(pid: int) -> bool:
    """Whether a process with this id exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def watch_until(target: Path, accept: Callable[[Change, str], bool], changed: Callable[[], Any],
                      stop: asyncio.Event, *, step_ms: int, debounce_ms: int) -> None:
    """Await `changed()` after each batch of accepted changes under `target`, until `stop`;
    a watcher that fails is logged and started again a second later."""
    while not stop.is_set():
        try:
            async for _ in awatch(target, watch_filter=accept, stop_event=stop,
                                  step=step_ms, debounce=debounce_ms, rust_timeout=500):
                await changed()
            return
        except Exception:
            log.exception("watching %s failed; trying again in 1s", target)
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except TimeoutError:
                pass
