"""A short way in for the busiest route: from the server straight to its endpoint.

A FastAPI request passes Starlette's error middleware, FastAPI's own
middleware, the exception middleware, the router and FastAPI's request
handler before the endpoint runs, and its answer passes each of them back on
the way out: for `/decide` that is more than half of the server's time (see
BENCHMARKS.md). `FastPath` answers the routes it is given itself: the same
endpoint function, called with the same Starlette Request,
its exceptions answered by the application's own exception handlers, its
Response sent as FastAPI sends it. The route stays a route of the application
(its schema in the OpenAPI document, reachable as before when the fast path
does not apply), so this changes how a request reaches the endpoint, never
what the endpoint does or says.

The fast path stands aside for any method or path not given to it, and under
a `root_path`. The application's own middleware runs around it as around
every route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from starlette._utils import is_async_callable
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

Endpoint = Callable[[Request], Awaitable[Response]]

class FastPath:
    """ASGI middleware, the innermost of the application's own: answers registered POST routes itself.

    Added with `app.add_middleware(FastPath, owner=app, routes={path: endpoint})`
    before any other middleware, so that every middleware of the application
    (and Starlette's error middleware outside them all) still sees each request;
    what is skipped is the exception middleware, the router and FastAPI's request
    handler between them and the endpoint.
    """

    def __init__(self, app: ASGIApp, owner: FastAPI, routes: dict[str, Endpoint]) -> None:
        self.app = app
        self.owner = owner
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            endpoint = self.routes.get(scope["path"])
            if endpoint is not None:
                await self._answer(endpoint, scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _answer(self, endpoint: Endpoint, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        try:
            response = await endpoint(request)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise  # to Starlette's error middleware, as from the route: a 500 in the one error shape
            response = await handler(request, exc) if _is_async(handler) \
                else await run_in_threadpool(handler, request, exc)
        await response(scope, receive, send)

    def _handler(self, exc: Exception) -> Any:
        """The handler Starlette's exception middleware would choose for `exc` (None: not one of its own)."""
        handlers = self.owner.exception_handlers
        if isinstance(exc, StarletteHTTPException) and exc.status_code in handlers:
            return handlers[exc.status_code]
        for kind in type(exc).__mro__:
            if kind is Exception:
                return None
            if kind in handlers:
                return handlers[kind]
        return None


def _is_async(function: Any) -> bool:
    """As Starlette decides whether to await an exception handler."""
    return is_async_callable(function)
