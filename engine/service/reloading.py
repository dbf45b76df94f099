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
    return path.endswith(".policy")


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

        await watch_until(target, _policy_files, changed, stop, step_ms=step_ms, debounce_ms=debounce_ms)


class ReloadSignal:
    """How one worker of `engine serve --workers N` tells the others it was asked to reload.

    `engine serve` makes a directory for the signal file. The reload endpoint
    writes a token (its process id and a count) into the file, renaming it in
    whole; every worker watches the file and reloads when a token not its own
    arrives. So one call to the endpoint reloads every worker, each within a
    fraction of a second.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._count = 0
        self._sent: str | None = None

    def send(self) -> None:
        """Tell the other workers; a signal that cannot be written is logged, never raised."""
        self._count += 1
        token = f"{os.getpid()}:{self._count}"
        staging = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        try:
            staging.write_text(token, encoding="utf-8")
            os.replace(staging, self.path)
        except OSError as err:
            log.warning("could not tell the other workers to reload (%s): %s", self.path, err)
            return
        self._sent = token

    async def listen(self, holder: PolicyHolder, stop: asyncio.Event) -> None:
        """Reload `holder` whenever another worker sends the signal, until `stop` is set."""
        async def signalled() -> None:
            try:
                token = self.path.read_text(encoding="utf-8")
            except OSError:
                return
            if token and token != self._sent:
                await holder.reload("another worker's reload endpoint")

        def ours(change: Change, path: str) -> bool:
            return Path(path).name == self.path.name

        await watch_until(self.path.parent, ours, signalled, stop, step_ms=50, debounce_ms=400)


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
