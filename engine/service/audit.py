"""The audit trail: every decision as a hash-chained JSON line, and `engine audit verify`.

Each line is one entry `{decision_id, time, caller, request, decision,
reasons, obligations, policy_version, prev_hash, hash}`. `hash` is the
SHA-256 of the entry's canonical JSON (sorted keys, no spaces, UTF-8) without
`hash` itself; `prev_hash` is the line before's `hash` (64 zeros for the
first line), so altering, removing, inserting or reordering a line breaks the
chain where it happened.

Writing never blocks the event loop: decisions are queued, and a writer thread
appends them in batches, one write() per batch, then fsyncs every
`fsync_every` lines or `fsync_interval` seconds, whichever comes first, and on
close. Each batch is appended under an exclusive flock and chained to the
file's last line, so several worker processes can share one trail.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

from engine.service.encoding import json_default

log = logging.getLogger("engine.api.audit")

GENESIS = "0" * 64  # prev_hash of a trail's first line
_BATCH = 1024  # decisions gathered for one write() call (a larger queued batch is written whole)
_STOP = object()


class AuditError(Exception):
    """The audit trail cannot be opened or continued."""


def canonical(entry: dict[str, Any]) -> str:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=json_default)


def entry_hash(entry: dict[str, Any]) -> str:
    """SHA-256 of the entry's canonical JSON, leaving out its own `hash`."""
    body = {key: value for key, value in entry.items() if key != "hash"}
    return hashlib.sha256(canonical(body).encode()).hexdigest()


def _timestamp(when: float) -> str:
    moment = dt.datetime.fromtimestamp(when, dt.UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _fields(decision: Any) -> tuple[str, str, list[str], list[dict[str, Any]], str]:
    """(decision_id, outcome, rule ids, obligations, policy_version) of a Decision or its to_dict()."""
    if isinstance(decision, dict):
        return (decision["decision_id"], decision["decision"], [reason["rule"] for reason in decision["reasons"]],
                decision["obligations"], decision["policy_version"])
    return (decision.decision_id, decision.decision, [reason.rule for reason in decision.reasons],
            [obligation.to_dict() for obligation in decision.obligations], decision.policy_version)


def make_entry(when: float, caller: str | None, request: Any, decision: Any, prev_hash: str) -> dict[str, Any]:
    """The chained entry for one decision (an engine Decision, or Decision.to_dict())."""
    decision_id, outcome, rules, obligations, version = _fields(decision)
    entry = {
        "decision_id": decision_id,
        "time": _timestamp(when),
        "caller": caller,
        "request": request,
        "decision": outcome,
        "reasons": rules,
        "obligations": obligations,
        "policy_version": version,
        "prev_hash": prev_hash,
    }
    entry["hash"] = entry_hash(entry)
    return entry


def _last_line(fd: int, size: int) -> bytes:
    """The file's last line (without its newline), reading backwards from the end."""
    end = size
    tail = b""
    while end > 0:
        start = max(0, end - 65536)
        tail = os.pread(fd, end - start, start) + tail
        end = start
        cut = tail.rfind(b"\n", 0, len(tail) - 1)
        if cut >= 0:
            return tail[cut + 1:].rstrip(b"\n")
    return tail.rstrip(b"\n")


def _tail_hash(fd: int, path: str) -> str:
    """The hash to chain the next entry to: the last line's, or GENESIS when empty."""
    size = os.fstat(fd).st_size
    if size == 0:
        return GENESIS
    line = _last_line(fd, size)
    complete = os.pread(fd, 1, size - 1) == b"\n"
    try:
        last = json.loads(line)
        if complete and isinstance(last, dict) and isinstance(last.get("hash"), str):
            return str(last["hash"])
    except ValueError:
        pass
    raise AuditError(f"audit log {path}: its last line is not a complete audit entry, so the chain "
                     f"cannot be continued; check it with `engine audit verify {path}`")


class AuditLog:
    """Appends decisions to a hash-chained JSON-lines file from a background thread."""

    def __init__(self, path: str | os.PathLike[str], *, fsync_every: int = 1000, fsync_interval: float = 1.0):
        self.path = str(path)
        self.fsync_every = fsync_every
        self.fsync_interval = fsync_interval
        self.written = 0
        self.failed = 0
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
        except OSError as err:
            raise AuditError(f"cannot open audit log {self.path}: {err.strerror}") from None
        try:
            self._last_hash = _tail_hash(self._fd, self.path)
        except Exception:
            os.close(self._fd)
            raise
        self._size = os.fstat(self._fd).st_size
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def record(self, caller: str | None, request: Any, decision: Any) -> None:
        """Queue one decision; cheap enough for the event loop."""
        self._queue.put((time.time(), caller, request, decision))

    def record_many(self, caller: str | None, requests: list[Any], decisions: list[Any]) -> None:
        """Queue the decisions of one batch, in order, with one queue operation."""
        when = time.time()
        self._queue.put([(when, caller, request, decision) for request, decision in zip(requests, decisions)])

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued, fsync and close the file."""
        if self._started:
            self._queue.put(_STOP)
            self._thread.join(timeout)
        else:
            self._write(list(self._drain()))
        try:
            os.fsync(self._fd)
        finally:
            os.close(self._fd)

    # --- the writer thread ---------------------------------------------------

    def _drain(self) -> Iterator[Any]:
        """Every decision queued now, batches flattened, leaving out the stop mark."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, list):
                yield from item
            elif item is not _STOP:
                yield item

    def _run(self) -> None:
        unsynced = 0
        synced_at = time.monotonic()
        while True:
            wait = None if not unsynced else max(0.0, synced_at + self.fsync_interval - time.monotonic())
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                item = None
            batch, stop = self._collect(item)
            if batch:
                self._write(batch)
                unsynced += len(batch)
            if stop:
                return
            if unsynced and (unsynced >= self.fsync_every or time.monotonic() - synced_at >= self.fsync_interval):
                self._fsync()
                unsynced, synced_at = 0, time.monotonic()

    def _collect(self, first: Any) -> tuple[list[Any], bool]:
        """The decisions to write next, starting with `first`; and whether to stop after them."""
        if first is None:
            return [], False
        if first is _STOP:
            return list(self._drain()), True
        batch = list(first) if isinstance(first, list) else [first]
        while len(batch) < _BATCH:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                return batch + list(self._drain()), True
            if isinstance(item, list):
                batch.extend(item)
            else:
                batch.append(item)
        return batch, False

    def _write(self, batch: list[Any]) -> None:
        if not batch:
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                size = os.fstat(self._fd).st_size
                if size != self._size:  # another worker appended since our last write
                    self._last_hash = _tail_hash(self._fd, self.path)
                lines = []
                for when, caller, request, decision in batch:
                    entry = make_entry(when, caller, request, decision, self._last_hash)
                    self._last_hash = entry["hash"]
                    lines.append(canonical(entry))
                data = ("\n".join(lines) + "\n").encode()
                _write_all(self._fd, data)
                self._size = size + len(data)
                self.written += len(batch)
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        except Exception:
            self.failed += len(batch)
            log.exception("could not append %d decisions to the audit log %s", len(batch), self.path)

    def _fsync(self) -> None:
        try:
            os.fsync(self._fd)
        except OSError:
            log.exception("could not fsync the audit log %s", self.path)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


# --- verifying ------------------------------------------------------------------


def verify(data: bytes) -> tuple[int, list[tuple[int, str]]]:
    """(number of lines, [(line number, problem), ...]) for an audit trail's bytes."""
    raw = data.split(b"\n")
    problems: list[tuple[int, str]] = []
    if raw[-1] == b"":
        raw.pop()
    elif raw:
        problems.append((len(raw), "incomplete: the log does not end with a newline"))
    entries = [_parse(number, line, problems) for number, line in enumerate(raw, 1)]
    hashes = [entry.get("hash") if entry else None for entry in entries]
    where: dict[str, int] = {}
    for number, digest in enumerate(hashes, 1):
        if digest is None:
            continue
        if digest in where:
            problems.append((number, f"inserted: it repeats line {where[digest]}"))
        else:
            where[digest] = number
    followed = {entry.get("prev_hash") for entry in entries if entry}
    for number, entry in enumerate(entries, 1):
        if entry is not None:
            _check_link(number, entry, hashes, where, followed, problems)
    problems.sort(key=lambda problem: problem[0])
    return len(raw), problems


def _parse(number: int, line: bytes, problems: list[tuple[int, str]]) -> dict[str, Any] | None:
    try:
        entry = json.loads(line.decode("utf-8"))
    except ValueError:
        problems.append((number, "altered: not a JSON audit entry"))
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("hash"), str) or "prev_hash" not in entry:
        problems.append((number, "altered: not an audit entry (no hash or prev_hash)"))
        return None
    if entry_hash(entry) != entry["hash"]:
        problems.append((number, "altered: its content does not match its hash"))
    return entry


def _check_link(number: int, entry: dict[str, Any], hashes: list[Any], where: dict[str, int],
                followed: set[Any], problems: list[tuple[int, str]]) -> None:
    prev = entry["prev_hash"]
    expected = hashes[number - 2] if number > 1 else GENESIS
    if prev == expected or expected is None:
        return
    if number == 1:
        target = where.get(prev)
        if target is not None:
            problems.append((1, f"out of order: in the chain it comes after line {target}"))
        else:
            problems.append((1, "the entries before it were removed (it chains to an entry not in the log)"))
        return
    before = number - 1
    if number > 2 and prev == hashes[number - 3] and hashes[before - 1] not in followed:
        problems.append((before, f"inserted: line {number} chains to line {number - 2}, not to it"))
        return
    target = where.get(prev)
    if target is not None:
        problems.append((number, f"out of order: in the chain it comes after line {target}, not line {before}"))
    else:
        problems.append((number, (f"does not follow line {before}: an entry was removed before it, "
                                  f"or line {before} was altered and re-hashed")))
