"""Where the portal's policy set comes from: the service's served set, or a draft folder."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import engine
from engine.errors import Diagnostic, PolicyLoadError
from engine.policy import Policy


@dataclass(frozen=True)
class PortalState:
    """The set the pages show: loaded, or refused with the diagnostics that say why."""

    path: str
    policy: Policy | None
    diagnostics: tuple[Diagnostic, ...] = ()
    read_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    root: Path | None = None
    problem: str | None = None  # why nothing could be read at all (no such folder, no policy files)

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.is_error)


class Source(Protocol):
    def state(self) -> PortalState: ...


class ServedSource:
    """The set the decision service serves right now."""

    def __init__(self, current: Callable[[], Policy | None], path: str, root: Path | None):
        self._current = current
        self._path = path
        self._root = root

    def state(self) -> PortalState:
        policy = self._current()
        if policy is None:
            return PortalState(self._path, None, root=self._root)
        return PortalState(self._path, policy, tuple(policy.warnings), policy.loaded_at, self._root)


class FolderSource:
    """A folder being drafted: read again whenever one of its files changes."""

    def __init__(self, path: str | None):
        self._path = path
        self._lock = threading.Lock()
        self._seen: tuple[tuple[str, int, int], ...] | None = None
        self._state: PortalState | None = None

    @property
    def root(self) -> Path | None:
        return Path(self._path) if self._path is not None else None

    def _signature(self) -> tuple[tuple[str, int, int], ...]:
        root = self.root
        if root is None:
            return ()
        if root.is_file():
            files = [root]
        else:
            files = sorted(p for p in root.rglob("*") if p.suffix == ".policy" or p.name.endswith(".test.yaml"))
        signature = []
        for file in files:
            try:
                stat = file.stat()
            except OSError:
                continue
            signature.append((str(file), stat.st_mtime_ns, stat.st_size))
        return tuple(signature)

    def state(self) -> PortalState:
        with self._lock:
            signature = self._signature()
            if self._state is None or signature != self._seen:
                self._state = self._load()
                self._seen = signature
            return self._state

    def _load(self) -> PortalState:
        shown = self._path if self._path is not None else "the built-in example policies"
        try:
            policy = engine.load(self._path)
        except PolicyLoadError as err:
            problem = None if err.diagnostics else err.message
            return PortalState(shown, None, tuple(err.diagnostics), root=self.root, problem=problem)
        return PortalState(shown, policy, tuple(policy.warnings), policy.loaded_at, self.root)
