"""The JSON-lines file trail: appending, setting aside a broken tail, rotating.

Beside a trail `decisions.jsonl` live `decisions.jsonl.lock` (the lock every
writing process takes for each append), `decisions.jsonl.checkpoints` (signed
checkpoints, unless put elsewhere), `decisions.jsonl.quarantine` (broken
tails set aside) and `decisions.jsonl.policies/` (every policy version served).
Rotated files are `decisions.jsonl.<UTC time>`.

Every append happens under the lock and is one write() (retried only for the
rest of a short write). A write that fails leaves nothing behind: the file is
cut back to where it was. Before appending, a file whose last line is not
whole (another process died mid-write, or the cut failed) has that part moved
into the quarantine file, and the caller is told, so that the next entry can
say what was set aside.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any

ROTATED_STAMP = "%Y%m%dT%H%M%S"
SIDE_SUFFIXES = (".lock", ".checkpoints", ".quarantine", ".tmp")


class AuditError(Exception):
    """The audit trail cannot be opened or continued."""


def write_all(fd: int, data: bytes) -> None:
    """Write all of `data`, continuing after a short write (OSError when it cannot)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class FileSink:
    """Appends lines to a JSON-lines trail shared by every process that writes it."""

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = False, rotate_bytes: int = 0,
                 rotate_daily: bool = False, checkpoints: str | None = None):
        self.path = str(path)
        self.fsync = fsync
        self.rotate_bytes = rotate_bytes
        self.rotate_daily = rotate_daily
        self.checkpoints_path = checkpoints or self.path + ".checkpoints"
        self.quarantine_path = self.path + ".quarantine"
        self.policies_dir = Path(self.path + ".policies")
        self._fd = -1
        self._lock_fd = -1
        self._day = dt.date.today()
        self._reopen = False
        try:
            self._lock_fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o640)
            self._open()
        except OSError as err:
            self.close()
            raise AuditError(f"cannot open audit log {self.path}: {err.strerror}") from None

    def describe(self) -> str:
        return self.path

    def _open(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = fd
        self._inode = os.fstat(fd).st_ino
        self._whole = -1  # the size at which the file last ended with a whole line (-1: not known)
        self._day = dt.date.today()

    def reopen(self) -> None:
        """Reopen the trail by name before the next append (SIGHUP, after an external logrotate)."""
        self._reopen = True

    def append(self, data: bytes) -> str | None:
        """Append whole lines; what was set aside from a broken tail first, if anything."""
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            size = self._follow()
            if self._rotation_due(size, len(data)):
                self._rotate()
                size = 0
            # Another process may have died mid-line: look only when the size is not the one we left.
            note = self._set_aside_broken_tail(size) if size and size != self._whole else None
            if note is not None:
                size = os.fstat(self._fd).st_size
            try:
                write_all(self._fd, data)
                self._whole = size + len(data)
                if self.fsync:
                    os.fsync(self._fd)
            except OSError:
                # Leave no partial line behind: the chain only advances over what was written.
                try:
                    os.ftruncate(self._fd, size)
                except OSError:
                    pass
                raise
            return note
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def sync(self) -> None:
        os.fsync(self._fd)

    def _follow(self) -> int:
        """The file's size, reopening first when the name now points at another file (rotated)."""
        try:
            found = os.stat(self.path)
            moved = found.st_ino != self._inode
        except FileNotFoundError:
            moved = True
        if moved or self._reopen:
            self._reopen = False
            self._open()
            return os.fstat(self._fd).st_size
        return found.st_size

    def _rotation_due(self, size: int, adding: int) -> bool:
        if size == 0:
            return False
        if self.rotate_bytes and size + adding > self.rotate_bytes:
            return True
        return self.rotate_daily and dt.date.today() != self._day

    def _rotate(self) -> None:
        stamp = dt.datetime.now(dt.UTC).strftime(ROTATED_STAMP)
        target = f"{self.path}.{stamp}"
        number = 1
        while os.path.exists(target):
            number += 1
            target = f"{self.path}.{stamp}-{number}"
        os.rename(self.path, target)
        self._open()

    def _set_aside_broken_tail(self, size: int) -> str | None:
        if os.pread(self._fd, 1, size - 1) == b"\n":
            return None
        start = size
        while start > 0:
            begin = max(0, start - 65536)
            chunk = os.pread(self._fd, start - begin, begin)
            cut = chunk.rfind(b"\n")
            if cut >= 0:
                start = begin + cut + 1
                break
            start = begin
        broken = os.pread(self._fd, size - start, start)
        header = json.dumps({"set_aside_from": self.path, "offset": start, "bytes": len(broken),
                             "time": time.time()}).encode()
        quarantine = os.open(self.quarantine_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            write_all(quarantine, header + b"\n" + broken + b"\n")
            os.fsync(quarantine)
        finally:
            os.close(quarantine)
        os.ftruncate(self._fd, start)
        return (f"an incomplete last line of {len(broken)} bytes at byte {start} of {self.path} "
                f"was moved to {self.quarantine_path}")

    def checkpoint(self, line: bytes) -> None:
        fd = os.open(self.checkpoints_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            write_all(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def has_policy(self, version: str) -> bool:
        return (self.policies_dir / _policy_file(version)).exists()

    def store_policy(self, version: str, document: dict[str, Any]) -> None:
        self.policies_dir.mkdir(exist_ok=True)
        target = self.policies_dir / _policy_file(version)
        temporary = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(document, ensure_ascii=False, sort_keys=True), encoding="utf-8")
        os.replace(temporary, target)

    def close(self) -> None:
        for fd in (self._fd, self._lock_fd):
            if fd >= 0:
                os.close(fd)
        self._fd = self._lock_fd = -1


def _policy_file(version: str) -> str:
    return version.replace(":", "-") + ".json"


def load_policy_document(trail: str, version: str) -> dict[str, Any] | None:
    """A stored policy version beside a file trail (`trail` a file or its directory), or None."""
    base = Path(trail)
    candidates = [Path(trail + ".policies")] if base.is_file() or not base.exists() else \
        sorted(base.glob("*.policies"))
    for folder in candidates:
        stored = folder / _policy_file(version)
        if stored.is_file():
            document: dict[str, Any] = json.loads(stored.read_text(encoding="utf-8"))
            return document
    return None
