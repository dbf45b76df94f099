"""The policy-version store's contents: a served version's files, so a past decision can be re-decided."""

from __future__ import annotations

from typing import Any

from engine.errors import PolicyError
from engine.loader import content_hash, read_sources
from engine.source import Source


def policy_document(path: str | None, version: str) -> dict[str, Any] | None:
    """The files of the set at `path` as {version, files: [{name, text}]}, if they are still that version."""
    try:
        sources = read_sources(path)
    except (OSError, PolicyError):  # changed or gone since it was loaded: the next version is kept instead
        return None
    if content_hash(sources) != version:
        return None
    return {"version": version, "files": [{"name": source.path, "text": source.text} for source in sources]}


def policy_sources(document: dict[str, Any]) -> list[Source]:
    """The Sources of a stored policy version, in set order."""
    return [Source(item["name"], item["text"]) for item in document["files"]]
