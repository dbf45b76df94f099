"""Adapters for calling applications: a SQLAlchemy filter for plans, a FastAPI dependency."""
