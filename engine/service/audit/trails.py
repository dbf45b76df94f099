"""Finding a trail's parts: its files in order, its checkpoints, its stored policy versions.

A trail is named by a file (the live file; its rotated predecessors
`FILE.<time>` beside it are read first), a directory (every trail file in it)
or a `postgresql://` URL.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.service.audit.checkpoints import Checkpoints
from engine.service.audit.entries import Hasher
from engine.service.audit.filesink import SIDE_SUFFIXES, load_policy_document
from engine.service.audit.verify import Report, verify_lines


def is_database(location: str) -> bool:
    return location.startswith(("postgresql://", "postgres://"))


def _is_trail_file(path: Path) -> bool:
    return path.is_file() and not path.name.endswith(SIDE_SUFFIXES) and not path.name.endswith(".gz")


def _first_time(path: Path) -> str:
    with path.open("rb") as handle:
        first = handle.readline()
    try:
        return str(json.loads(first).get("time", ""))
    except (ValueError, AttributeError):
        return ""


def trail_files(location: str) -> list[Path]:
    """The files of a trail, oldest first (by their first entry's time, then name)."""
    path = Path(location)
    if path.is_dir():
        files = [child for child in path.iterdir() if _is_trail_file(child)]
    else:
        rotated = [child for child in path.parent.glob(f"{path.name}.*") if _is_trail_file(child)]
        files = rotated + [path]
    return sorted(files, key=lambda file: (file == path, _first_time(file) if file.stat().st_size else "", file.name))


def checkpoint_files(location: str, given: str | None) -> list[Path]:
    if given:
        return [Path(given)] if Path(given).exists() else []
    path = Path(location)
    if path.is_dir():
        return sorted(path.glob("*.checkpoints"))
    beside = Path(location + ".checkpoints")
    return [beside] if beside.exists() else []


def file_lines(files: list[Path]) -> Iterator[tuple[str, bytes]]:
    for file in files:
        with file.open("rb", buffering=1 << 20) as handle:
            for number, line in enumerate(handle, 1):
                yield f"{file}:{number}", line


def verify_trail(location: str, key: bytes | None, checkpoints_at: str | None = None) -> Report:
    """Verify a trail (file, directory or database) against its checkpoints. OSError if unreadable."""
    hasher = Hasher(key)
    checkpoints = Checkpoints()
    if is_database(location):
        from engine.service.audit.pgsink import database_checkpoints, database_lines

        found = database_checkpoints(location, checkpoints, hasher)
        lines: Iterator[tuple[str, bytes]] = database_lines(location, by_instance=True)
    else:
        if not Path(location).exists():
            raise FileNotFoundError(os.strerror(2))
        places = checkpoint_files(location, checkpoints_at)
        for place in places:
            with place.open("rb") as handle:
                checkpoints.read(handle, str(place), hasher)
        found = bool(places)
        lines = file_lines(trail_files(location))
    return verify_lines(lines, hasher, checkpoints, trail=location, missing_checkpoints=bool(key) and not found)


def entries(location: str) -> Iterator[dict[str, Any]]:
    """Every entry of a trail in the order written (a database's by time)."""
    if is_database(location):
        from engine.service.audit.pgsink import database_lines

        lines: Iterator[tuple[str, bytes]] = database_lines(location, by_instance=False)
    else:
        lines = file_lines(trail_files(location))
    for _, line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            yield entry


def policy_document(location: str, version: str) -> dict[str, Any] | None:
    """The stored files of a policy version the service served, or None."""
    if is_database(location):
        from engine.service.audit.pgsink import database_policy

        return database_policy(location, version)
    return load_policy_document(location, version)
