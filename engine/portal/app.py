"""The portal as an application of its own (`engine portal PATH`), or mounted in the decision service."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.responses import RedirectResponse

from engine.policy import Policy
from engine.portal.routes import Access, Portal, create_router
from engine.portal.source import FolderSource, ServedSource

PREFIX = "/portal"


def _home(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse(PREFIX + "/", status_code=307)


def create_portal_app(path: str | None, *, admin_token: str | None = None,
                      today: Callable[[], dt.date] = dt.date.today) -> FastAPI:
    """Only the portal, over a folder being drafted: no decision endpoints, no keys (loopback only)."""
    app = FastAPI(title="Sharing policy portal", docs_url=None, redoc_url=None, openapi_url=None)
    portal = Portal(FolderSource(path), Access({}, admin_token), today, draft=True)
    app.include_router(create_router(portal, PREFIX))
    _home(app)
    return app


def add_portal(app: FastAPI, current: Callable[[], Policy | None], path: str | None, *,
               keys: Mapping[str, str], admin_token: str | None, today: Callable[[], dt.date] = dt.date.today,
               audit_query: Callable[[Mapping[str, str]], list[dict[str, Any]]] | None = None) -> None:
    """Serve the portal under /portal of the decision service, over the set it serves."""
    root = Path(path) if path is not None else None
    shown = path if path is not None else "the built-in example policies"
    portal = Portal(ServedSource(current, shown, root), Access(dict(keys), admin_token), today, audit_query)
    app.include_router(create_router(portal, PREFIX))
    _home(app)
