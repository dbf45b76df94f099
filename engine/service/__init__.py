"""The decision service: HTTP over the engine's library API (see engine/service/app.py)."""

from engine.service.embedding import mount

__all__ = ["mount"]
