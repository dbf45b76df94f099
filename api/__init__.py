"""The decision service: HTTP over the engine's library API (see api/app.py)."""
