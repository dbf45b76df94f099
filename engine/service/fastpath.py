"""A short way in for the busiest route: from the server straight to its endpoint.

A FastAPI request passes Starlette's error middleware, FastAPI's own
middleware, the exception middleware, the router and FastAPI's request
handler before the endpoint runs, and its answer passes each of them back on
the way out: for `/decide` that is more than half of the server's time (see
BENCHMARKS.md). `FastPathApp` answers the routes registered with `fast()`
itself: the same endpoint function, called with the same Starlette Request,
its exceptions answered by the application's own exception handlers, its
Response sent as FastAPI sends it. The route stays a route of the application
(its schema in the OpenAPI document, reachable as before when the fast path
does not apply), so this changes how a request reaches the endpoint, never
what the endpoint does or says.

The fast path stands aside whenever it could not be exact: for any method or
path not registered, under a `root_path`, and in an application that has
middleware of its own (which every request must pass).
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
from starlette.types import Receive, Scope, Send

Endpoint = Callable[[Request], Awaitable[Response]]

class FastPathApp(FastAPI):
    """A FastAPI application that answers its registered POST routes without the middleware stack."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fast_routes: dict[str, Endpoint] = {}

    def fast(self, path: str, endpoint: Endpoint) -> None:
        """Answer POST `path` by calling `endpoint` directly (it stays a route of the application too)."""
        self.fast_routes[path] = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path") \
                and not self.user_middleware:
            endpoint = self.fast_routes.get(scope["path"])
            if endpoint is not None:
                scope["app"] = self
                await self._answer(endpoint, scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    async def _answer(self, endpoint: Endpoint, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        try:
            response = await endpoint(request)
        except Exception as exc:
            handler, last_resort = self._handler(exc)
            if handler is None:
                raise
            response = await handler(request, exc) if _is_async(handler) \
                else await run_in_threadpool(handler, request, exc)
            await response(scope, receive, send)
            if last_resort:
                # As Starlette's error middleware does: answered, and raised for the server to log.
                raise
            return
        await response(scope, receive, send)

    def _handler(self, exc: Exception) -> tuple[Any, bool]:
        """The handler Starlette would choose for `exc`, and whether it is the last-resort (500) one."""
        handlers = self.exception_handlers
        if isinstance(exc, StarletteHTTPException) and exc.status_code in handlers:
            return handlers[exc.status_code], False
        for kind in type(exc).__mro__:
            if kind is Exception:
                break
            if kind in handlers:
                return handlers[kind], False
        fallback = handlers.get(500) or handlers.get(Exception)
        return fallback, True


def _is_async(function: Any) -> bool:
    """As Starlette decides whether to await an exception handler."""
    return is_async_callable(function)
