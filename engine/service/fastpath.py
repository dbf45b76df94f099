"""A short way in for the busiest route: `POST /decide` answered in one ASGI layer, in front of FastAPI.

Through the application a request passes FastAPI's telemetry check,
Starlette's error middleware, FastAPI's exception-telemetry and body-limit
middleware, the service's `TextGuard` and `Exposure`, the exception
middleware, the router and FastAPI's request handler, each with its own
`send` wrapper on the way out; for a cached decision that is most of the
server's time (BENCHMARKS.md, "At the edges"). `DecideLane` does what those
layers do for this one route, inline and with the same functions:

- the query and headers must be UTF-8 text within the string limit
  (`limits.text_refusal`, as `TextGuard`: 422 naming the header);
- `Exposure` asks nothing of `/decide` (the endpoint checks the API key);
- the request itself is `Deciding.answer` (engine/service/deciding.py), the
  very code the FastAPI route runs: key, body, policy, admission, decision,
  metrics, audit, tracing;
- the body is read from the ASGI `receive` messages, and the answer sent as
  two messages, headers as Starlette's `Response` writes them;
- an exception is answered by the application's own handler for it, as the
  exception middleware would; one without a handler by the application's 500
  handler, then raised on to the server, as Starlette's error middleware does.

`ServiceApp` is the FastAPI application with such lanes: a `POST` to a
lane's path goes to the lane, everything else to the application as ever.
The route stays a route of the application, in the OpenAPI document, and
answers any request the lane stands aside for: under a `root_path` (mounted
in another application), with middleware added to the application after the
service was built, a body limit or debug mode set on it, or FastAPI's own
OpenTelemetry request spans switched on (a tracer, meter or logger provider
set globally), since only the full stack can give those spans their route.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry._logs import _internal as otel_logs
from opentelemetry.metrics import _internal as otel_metrics
from starlette._utils import is_async_callable
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

from engine.service.bodies import receive_body
from engine.service.deciding import Deciding
from engine.service.exposure import ADMIN, KEYED, Exposure
from engine.service.limits import TextGuard, refused_text

_JSON = (b"content-type", b"application/json")

try:  # where Starlette puts a request's own body limit in its scope
    from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY as _BODY_LIMIT_KEY
except ImportError:  # a Starlette without body limits: no request carries one
    _BODY_LIMIT_KEY = "starlette.max_body_size"


class DecideLane:
    """ASGI app answering `POST /decide` as the application's middleware and route together would."""

    # The service's own middleware, whose work for this route the lane does itself.
    stands_in_for: tuple[type, ...] = (TextGuard, Exposure)

    def __init__(self, app: FastAPI, deciding: Deciding, max_string: int, path: str = "/decide") -> None:
        if path in KEYED or path in ADMIN:  # Exposure would ask for a key first: not done here
            raise ValueError(f"{path} is guarded by Exposure; the lane does not stand in for it")
        self.app = app
        self.deciding = deciding
        self.max_string = max_string

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if await refused_text(scope, send, self.max_string):
            return

        async def read(limit: int) -> bytes:
            return await receive_body(receive, limit)

        try:
            content = await self.deciding.answer(ScopeHeaders(scope=scope), read)
        except Exception as exc:  # noqa: BLE001 - answered by the application's handlers, or raised on
            await self._failed(exc, scope, receive, send)
            return
        # Starlette's Response(content, media_type="application/json") sends these very headers.
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(content)).encode("latin-1")), _JSON]})
        await send({"type": "http.response.body", "body": content})

    async def _failed(self, exc: Exception, scope: Scope, receive: Receive, send: Send) -> None:
        handlers = self.app.exception_handlers
        handler = handler_for(handlers, exc)
        if handler is not None:  # as the exception middleware
            response = await _call(handler, Request(scope, receive, send), exc)
            await response(scope, receive, send)
            return
        # As Starlette's error middleware: the 500 answer, then the exception goes on to the server's log.
        fallback = None
        for key, value in handlers.items():  # the one Starlette's error middleware is built with
            if key in (500, Exception):
                fallback = value
        if fallback is None:
            response = PlainTextResponse("Internal Server Error", status_code=500)
        else:
            response = await _call(fallback, Request(scope), exc)
        await response(scope, receive, send)
        raise exc


class ScopeHeaders(Headers):
    """Starlette's Headers over the scope's list; `get` finds a missing name without raising KeyError."""

    def get(self, key: str, default: Any = None) -> Any:
        name = key.lower().encode("latin-1")
        for found, value in self._list:
            if found == name:
                return value.decode("latin-1")
        return default


def handler_for(handlers: dict[Any, Callable[..., Any]], exc: Exception) -> Any:
    """The handler Starlette's exception middleware would choose for `exc` (None: left to the error middleware)."""
    if isinstance(exc, StarletteHTTPException) and exc.status_code in handlers and exc.status_code != 500:
        return handlers[exc.status_code]
    for kind in type(exc).__mro__:
        if kind is Exception:
            return None
        if kind in handlers:
            return handlers[kind]
    return None


async def _call(handler: Any, request: Request, exc: Exception) -> Response:
    """Call an exception handler as Starlette does: awaited, or in a worker thread if it is not async."""
    if is_async_callable(handler):
        response: Response = await handler(request, exc)
    else:
        response = await run_in_threadpool(handler, request, exc)
    return response


class ServiceApp(FastAPI):
    """A FastAPI application whose `POST` lanes (`add_lane`) are answered before its middleware stack."""

    # Set on the instance by opentelemetry-instrumentation-fastapi, whose middleware the lanes would skip.
    _is_instrumented_by_opentelemetry = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lanes: dict[str, DecideLane] = {}
        self._lane_middleware: list[Any] = []

    def add_lane(self, path: str, lane: DecideLane) -> None:
        """Answer `POST path` with `lane`, once every middleware of the service has been added: the lane
        stands in for those (ValueError for one it does not know), and stands aside if any is added later."""
        known: tuple[Any, ...] = lane.stands_in_for
        unknown = [getattr(entry.cls, "__name__", repr(entry.cls)) for entry in self.user_middleware
                   if entry.cls not in known]
        if unknown:
            raise ValueError(f"the lane for {path} does not do what {unknown[0]} does")
        self.lanes[path] = lane
        self._lane_middleware = list(self.user_middleware)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            lane = self.lanes.get(scope["path"])
            if lane is not None and self._lane_applies(scope):
                scope["app"] = self
                await lane(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    def _lane_applies(self, scope: Scope) -> bool:
        """Whether the stack the lane stands in for is the one the service built, unchanged."""
        return (not scope.get("root_path") and not self.root_path and _BODY_LIMIT_KEY not in scope
                and "fastapi.telemetry" not in scope and self.user_middleware == self._lane_middleware
                and getattr(self, "max_body_size", None) is None and not self.debug
                and not self._is_instrumented_by_opentelemetry
                and framework_telemetry_off(self))


# The OpenTelemetry API sets up a provider from these variables when one is first asked for.
_TRACER_VARIABLE, _METER_VARIABLE, _LOGGER_VARIABLE = (os.environ.encodekey(name) for name in (
    "OTEL_PYTHON_TRACER_PROVIDER", "OTEL_PYTHON_METER_PROVIDER", "OTEL_PYTHON_LOGGER_PROVIDER"))


def framework_telemetry_off(app: FastAPI) -> bool:
    """Whether FastAPI's own request telemetry is off, as `FastAPI.__call__` decides it.

    FastAPI asks for the three global OpenTelemetry providers on every request,
    each look-up reading the environment (about 9 µs in all). While none is set
    up, nor set up by a variable, the answer is known at once; otherwise
    FastAPI's own test decides.
    """
    native = getattr(app, "_native_telemetry", None)
    if native is None:
        return True  # a FastAPI without request telemetry of its own
    config = native.config
    environ = getattr(os.environ, "_data", None)
    if (trace._TRACER_PROVIDER is None and otel_metrics._METER_PROVIDER is None and otel_logs._LOGGER_PROVIDER is None
            and environ is not None and _TRACER_VARIABLE not in environ and _METER_VARIABLE not in environ
            and _LOGGER_VARIABLE not in environ and config["tracer_provider"] is None
            and config["meter_provider"] is None and config["logger_provider"] is None):
        return True
    return not native.enabled()
