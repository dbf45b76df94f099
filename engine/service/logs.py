"""Logging for the service's own messages, laid out as uvicorn lays out its own."""

from __future__ import annotations

import logging


def log_like_uvicorn(level: str) -> None:
    """The service's own messages (reloads, refused sets) beside uvicorn's, in its layout."""
    logging.basicConfig(level=level, format="%(levelname)s:     %(message)s")
