"""The audit log a service writes: group commit before answering, failing closed, recovering by itself.

A request handler hands its decision's entry to `commit()` and awaits it.
Once the event loop has run every handler that was ready, one flush takes all
the entries waiting, chains them, writes them with one append (one write() to
the file, or one transaction in PostgreSQL) and only then lets the waiting
handlers answer. So concurrent requests share one write, and nothing is
answered that was not handed to the operating system (or committed to the
database). A write to a file's page cache takes microseconds and is made on
the event loop itself (handing it to a thread would cost more in passing the
GIL back and forth); an fsync or a database commit is waited for on a
thread, while the next entries gather. A background thread writes what is
recorded outside the event loop (`record`, `record_refusal`), retries after
failures, fsyncs and writes checkpoints.

An entry that cannot be written (text JSON cannot carry) fails alone; its
chain position is given to the next entry. A write that fails fails the
entries in it, leaves nothing behind, and marks the log unavailable: callers
then get `AuditUnavailable` at once, and the writer retries every half second
by writing a `recovered` entry, which says what happened; once that is
written the log is available again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import logging
import os
import queue
import secrets
import socket
import threading
import time
from collections.abc import Iterable
from typing import Any, Protocol

from engine.service.audit.checkpoints import make_checkpoint
from engine.service.audit.entries import (
    DECISION,
    GENESIS,
    RECOVERED,
    REFUSAL,
    EntryError,
    Hasher,
    applied_date,
    decision_fields,
    omit,
    seal,
    timestamp,
)

log = logging.getLogger("engine.api.audit")

_STOP = object()
_RETRY_SECONDS = 0.5


class AuditUnavailable(Exception):
    """The trail cannot be written now; the decision must not be answered as recorded."""


class Sink(Protocol):
    def describe(self) -> str: ...
    def append(self, data: bytes) -> str | None: ...
    def sync(self) -> None: ...
    def reopen(self) -> None: ...
    def checkpoint(self, line: bytes) -> None: ...
    def has_policy(self, version: str) -> bool: ...
    def store_policy(self, version: str, document: dict[str, Any]) -> None: ...
    def close(self) -> None: ...


def new_instance_id() -> str:
    """This process's name in the trail: host, process id and a random part (pids are reused)."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


Waiter = Any  # None, a concurrent Future, or (loop, asyncio Future)


class AuditLog:
    """The trail one process writes: entries queued by handlers, written by one thread."""

    def __init__(self, target: str | os.PathLike[str] | Sink, *, key: bytes | None = None, fsync: bool = False,
                 checkpoints: str | None = None, checkpoint_seconds: float = 10.0, rotate_bytes: int = 0,
                 rotate_daily: bool = False, omit_paths: Iterable[str] = (), keep_deciding: bool = False,
                 instance: str | None = None, fsync_interval: float = 1.0):
        self.sink: Sink = open_sink(target, fsync=fsync, checkpoints=checkpoints, rotate_bytes=rotate_bytes,
                                     rotate_daily=rotate_daily)
        self.path = self.sink.describe()
        self.hasher = Hasher(key)
        self.instance = instance or new_instance_id()
        self.fsync = fsync
        self.fsync_interval = fsync_interval
        self.checkpoint_seconds = checkpoint_seconds
        self.omit_paths = [tuple(path.split(".")) for path in omit_paths if path]
        self.keep_deciding = keep_deciding
        self.written = 0
        self.failed = 0
        self.unrecorded = 0
        self.available = True
        self.problem: str | None = None
        self._seq = 0
        self._last_hash = GENESIS
        self._checkpointed = 0
        self._checkpoint_at = time.monotonic()
        self._synced_at = time.monotonic()
        self._unsynced = False
        self._failed_since: float | None = None
        self._failed_entries = 0
        self._policies: set[str] = set()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._started = False
        self._start_lock = threading.Lock()
        self._closed = False
        self._lock = threading.Lock()  # one chain: the event loop's flushes and the thread take turns
        self._pending: list[tuple[list[dict[str, Any]], Any]] = []
        self._flushing = False
        self._inline = not fsync and hasattr(self.sink, "fsync")  # a file without fsync: write on the loop
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        try:
            aside = self.sink.append(b"")  # at start: set aside a broken last line, if any
        except OSError as err:
            self.sink.close()
            from engine.service.audit.filesink import AuditError

            raise AuditError(f"cannot continue the audit trail {self.path}: {err.strerror or err}") from None
        if aside:
            self._queue.put(([self._recovered(aside)], None))

    # --- what handlers call ---------------------------------------------------

    def start(self) -> None:
        with self._start_lock:
            if not self._started:
                self._started = True
                self._thread.start()

    def decision_entry(self, caller: str | None, request: Any, decision: Any, when: float) -> dict[str, Any]:
        entry = {"kind": DECISION, "time": timestamp(when), "caller": caller,
                 "request": omit(request, self.omit_paths) if self.omit_paths else request,
                 "date": applied_date(request, dt.date.today().isoformat())}
        entry.update(decision_fields(decision))
        return entry

    async def commit(self, caller: str | None, request: Any, decision: Any) -> None:
        """Write one decision's entry; returns once it is written (AuditUnavailable, EntryError if not)."""
        await self._wait([self.decision_entry(caller, request, decision, time.time())])

    async def commit_many(self, caller: str | None, requests: list[Any], decisions: list[Any]) -> None:
        """Write a batch's entries, in order, in one write."""
        when = time.time()
        await self._wait([self.decision_entry(caller, request, decision, when)
                          for request, decision in zip(requests, decisions)])

    async def _wait(self, entries: list[dict[str, Any]]) -> None:
        if not entries:  # an empty batch: nothing to record
            return
        if not self.available:
            raise AuditUnavailable(self.problem or "the audit trail cannot be written")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.start()
        self._pending.append((entries, future))
        if not self._flushing:
            # The flush runs after the handlers ready now have run, gathering their entries too.
            self._flushing = True
            if self._inline:
                loop.call_soon(self._flush_now)
            else:
                loop.create_task(self._flush(loop))
        await future

    def _flush_now(self) -> None:
        batch, self._pending, self._flushing = self._pending, [], False
        self._write(batch)

    async def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                if self._executor is None:
                    self._executor = concurrent.futures.ThreadPoolExecutor(1, "audit-commit")
                await loop.run_in_executor(self._executor, self._write,
                                           [(entries, (loop, future)) for entries, future in batch])
        finally:
            self._flushing = False

    def record(self, caller: str | None, request: Any, decision: Any) -> concurrent.futures.Future[None]:
        """Queue one decision without waiting (the returned future is done once it is written)."""
        return self._put([self.decision_entry(caller, request, decision, time.time())])

    def record_many(self, caller: str | None, requests: list[Any], decisions: list[Any]) -> concurrent.futures.Future[None]:
        when = time.time()
        return self._put([self.decision_entry(caller, request, decision, when)
                          for request, decision in zip(requests, decisions)])

    def record_refusal(self, caller: str | None, code: str, message: str, *, request: Any = None,
                       field: str | None = None) -> concurrent.futures.Future[None]:
        """Queue a request refused before it was decided (who asked, why it was refused)."""
        entry = {"kind": REFUSAL, "time": timestamp(time.time()), "caller": caller, "code": code,
                 "message": message, "field": field,
                 "request": omit(request, self.omit_paths) if self.omit_paths else request}
        return self._put([entry])

    def _put(self, entries: list[dict[str, Any]]) -> concurrent.futures.Future[None]:
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        if self._closed:
            future.set_exception(AuditUnavailable("the audit log is closed"))
            return future
        self.start()
        self._queue.put((entries, future))
        return future

    def remember_policy(self, version: str, document: dict[str, Any] | None) -> None:
        """Keep a served policy version (content-addressed by its version) for `engine audit explain`.

        None: its files cannot be read as they were served; it is not tried again.
        """
        if version in self._policies:
            return
        if document is None:
            self._policies.add(version)
            log.warning("policy version %s cannot be kept beside the audit trail: its decisions cannot be "
                        "explained again with `engine audit explain`", version)
            return
        try:
            if not self.sink.has_policy(version):
                self.sink.store_policy(version, document)
            self._policies.add(version)
        except Exception:  # the decisions still name the version; explaining them needs the files
            log.exception("could not keep policy version %s beside the audit trail", version)

    def knows_policy(self, version: str) -> bool:
        return version in self._policies

    def reopen(self) -> None:
        self.sink.reopen()

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued, write a last checkpoint, and close the trail."""
        if self._closed:
            return
        if self._started:
            self._queue.put(_STOP)
            self._thread.join(timeout)
        else:
            self._started = True
            self._queue.put(_STOP)
            self._run()
        self._closed = True

    # --- the writer thread ------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=self._wait_seconds())
            except queue.Empty:
                item = None
            items, stop = self._collect(item)
            if not self.available:
                self._recover()
            if items:
                if self.available:
                    self._write(items)
                else:
                    self._fail(items, AuditUnavailable(self.problem or "the audit trail cannot be written"))
            self._housekeeping(stop)
            if stop:
                if self._executor is not None:
                    self._executor.shutdown(wait=True)
                self.sink.close()
                return

    def _wait_seconds(self) -> float:
        # Entries written from the event loop are not seen here: wake regularly to fsync and checkpoint.
        if not self.available:
            return _RETRY_SECONDS
        return max(0.05, min(self.checkpoint_seconds, self.fsync_interval))

    def _collect(self, first: Any) -> tuple[list[Any], bool]:
        if first is None:
            return [], False
        items, stop = [], first is _STOP
        if not stop:
            items.append(first)
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return items, stop
            if item is _STOP:
                stop = True
            else:
                items.append(item)

    def _write(self, items: list[tuple[list[dict[str, Any]], Waiter]]) -> None:
        with self._lock:
            self._write_locked(items)

    def _write_locked(self, items: list[tuple[list[dict[str, Any]], Waiter]]) -> None:
        seq, last = self._seq, self._last_hash
        lines: list[bytes] = []
        done: list[tuple[Waiter, BaseException | None]] = []
        written: list[Waiter] = []
        count = 0
        for entries, waiter in items:
            try:
                sealed = []
                chain_seq, chain_hash = seq, last
                for fields in entries:
                    chain_seq += 1
                    line, chain_hash = seal({**fields, "instance": self.instance, "seq": chain_seq,
                                             "prev_hash": chain_hash, "alg": self.hasher.alg}, self.hasher)
                    sealed.append(line)
            except EntryError as err:
                # This entry alone is refused; the chain does not advance over it.
                done.append((waiter, err))
                self.failed += len(entries)
                continue
            seq, last = chain_seq, chain_hash
            lines.extend(sealed)
            written.append(waiter)
            count += len(entries)
        if not lines:
            done.extend((waiter, None) for waiter in written)
        else:
            try:
                note = self.sink.append(b"".join(lines))
            except Exception as err:  # noqa: BLE001 - whatever the sink's failure, these entries are not written
                self._failed_entries += count
                self.failed += count
                self._mark_unavailable(err)
                error = AuditUnavailable(self.problem or "the audit trail cannot be written")
                done.extend((waiter, error) for waiter in written)
            else:
                self._seq, self._last_hash = seq, last
                self.written += count
                self._unsynced = not self.fsync
                done.extend((waiter, None) for waiter in written)
                if note:
                    self._queue.put(([self._recovered(note)], None))
        _settle(done)

    def _fail(self, items: list[tuple[list[dict[str, Any]], Waiter]], error: BaseException) -> None:
        for entries, _ in items:
            self._failed_entries += len(entries)
            self.failed += len(entries)
        _settle([(waiter, error) for _, waiter in items])

    def _mark_unavailable(self, err: BaseException) -> None:
        reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
        self.problem = f"cannot write the audit trail {self.path}: {reason}"
        if self.available:
            log.error("%s; decisions are refused (503 audit_unavailable) until it can be written again",
                      self.problem)
            self._failed_since = time.time()
        self.available = False

    def _recovered(self, note: str) -> dict[str, Any]:
        return {"kind": RECOVERED, "time": timestamp(time.time()), "note": note}

    def _recover(self) -> None:
        with self._lock:
            self._recover_locked()

    def _recover_locked(self) -> None:
        since = timestamp(self._failed_since or time.time())
        note = (f"the trail could not be written from {since} to {timestamp(time.time())} ({self.problem}); "
                f"{self._failed_entries} entries were not written and their requests were not answered "
                f"as recorded")
        entry = self._recovered(note)
        try:
            line, digest = seal({**entry, "instance": self.instance, "seq": self._seq + 1,
                                 "prev_hash": self._last_hash, "alg": self.hasher.alg}, self.hasher)
            aside = self.sink.append(line)
        except Exception as err:  # noqa: BLE001 - still cannot write: stay unavailable, try again
            self._mark_unavailable(err)
            return
        self._seq, self._last_hash = self._seq + 1, digest
        self.written += 1
        self.available, self.problem, self._failed_entries = True, None, 0
        log.warning("the audit trail %s can be written again; deciding resumes", self.path)
        if aside:
            self._queue.put(([self._recovered(aside)], None))

    def _housekeeping(self, stop: bool) -> None:
        """fsync now and then, and checkpoint what is written, without holding up the event loop's writes."""
        now = time.monotonic()
        if self._unsynced and (stop or now - self._synced_at >= self.fsync_interval):
            self._unsynced, self._synced_at = False, now
            try:
                self.sink.sync()
            except OSError:
                log.exception("could not fsync the audit trail %s", self.path)
        with self._lock:  # the chain's end, read whole
            seq, digest = self._seq, self._last_hash
        if seq > self._checkpointed and (stop or now - self._checkpoint_at >= self.checkpoint_seconds):
            try:
                self.sink.checkpoint(make_checkpoint(self.instance, seq, digest, time.time(), self.hasher))
                self._checkpointed, self._checkpoint_at = seq, now
            except Exception:
                log.exception("could not write a checkpoint of the audit trail %s", self.path)


def _settle(done: list[tuple[Waiter, BaseException | None]]) -> None:
    """Wake the waiters: one call into each event loop, whatever the number of waiters in it."""
    by_loop: dict[Any, list[tuple[Any, BaseException | None]]] = {}
    for waiter, error in done:
        if waiter is None:
            if error is not None and not isinstance(error, AuditUnavailable):
                log.error("an audit entry could not be written: %s", error)
            continue
        if isinstance(waiter, asyncio.Future):  # written on the event loop itself
            if not waiter.done():
                waiter.set_result(None) if error is None else waiter.set_exception(error)
        elif isinstance(waiter, tuple):
            by_loop.setdefault(waiter[0], []).append((waiter[1], error))
        elif error is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(error)
    for loop, futures in by_loop.items():
        try:
            loop.call_soon_threadsafe(_wake, futures)
        except RuntimeError:  # the loop has closed: nobody waits any more
            pass


def _wake(futures: list[tuple[asyncio.Future[None], BaseException | None]]) -> None:
    for future, error in futures:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


def open_sink(target: Any, *, fsync: bool = False, checkpoints: str | None = None, rotate_bytes: int = 0,
              rotate_daily: bool = False) -> Sink:
    """The sink for a target: a file path, a postgresql:// URL, or a Sink already made."""
    if not isinstance(target, (str, os.PathLike)):
        sink: Sink = target
        return sink
    text = str(target)
    if text.startswith(("postgresql://", "postgres://")):
        from engine.service.audit.pgsink import PostgresSink

        return PostgresSink(text)
    from engine.service.audit.filesink import FileSink

    return FileSink(text, fsync=fsync, checkpoints=checkpoints, rotate_bytes=rotate_bytes, rotate_daily=rotate_daily)
