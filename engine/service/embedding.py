"""Serving decisions inside another ASGI application.

Starlette does not run a mounted application's lifespan, and the decision
service needs its own: it loads the policy set, starts the audit writer and
the file watcher, and flushes the trail on shutdown. `mount` mounts the
service and runs its lifespan inside the parent's:

    from engine.service import mount
    mount(parent, "/pdp", create_app("policies/"))
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette


def mount(parent: Starlette, path: str, service_app: Starlette, *, name: str | None = None) -> None:
    """Mount `service_app` at `path` in `parent`, starting and stopping it with the parent."""
    parent.mount(path, service_app, name=name)
    outer = parent.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        async with outer(app) as state, service_app.router.lifespan_context(service_app):
            yield state

    parent.router.lifespan_context = lifespan
