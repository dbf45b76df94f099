"""Error bodies of the decision service: one shape, never a stack trace.

Every error answers `{"code", "message"}` plus either `field` (the dotted
request field at fault, with `help` when a close name exists) or `location`
(where else the fault lies: `{"in": "body", "line": 1, "column": 9}`,
`{"in": "header", "name": "content-type"}`, `{"in": "path", "path": "/x"}`,
`{"in": "policy", "file": ..., "line": ...}`).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from engine.errors import PolicyError, PolicyLoadError, RequestError, render_all
from engine.service.encoding import dumps

log = logging.getLogger("engine.api")

# Codes for the HTTP statuses Starlette raises itself (unknown route, wrong method).
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}


class ApiError(Exception):
    """An error the service answers with its own status, code and message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        location: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.location = location
        self.headers = headers
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, field=self.field, location=self.location, **self.extra)


def error_body(code: str, message: str, *, field: str | None = None,
               location: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """The one error shape: code, message, and field or location."""
    body: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    else:
        body["location"] = location
    body.update((key, value) for key, value in extra.items() if value is not None)
    return body


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response serialised with the standard library, skipping FastAPI's encoder."""
    # Strings are checked on the way in, but an answer must never fail on the way out.
    content = dumps(data).encode("utf-8", "backslashreplace")
    return Response(content, status_code=status, headers=headers, media_type="application/json")


def request_error_body(err: RequestError) -> dict[str, Any]:
    errors = [e.to_json() for e in err.errors] or None
    return error_body(err.code, err.message, field=err.field, help=err.help, errors=errors)


def load_error_body(err: PolicyError, still_serving: str | None) -> dict[str, Any]:
    """A refused policy set: every diagnostic, as data and rendered like a compiler."""
    found = getattr(err, "diagnostics", None) or [err.to_diagnostic()]
    diagnostics = [d.to_json() for d in found]
    first = next((d["location"] for d in diagnostics if d.get("location")), None)
    location = {"in": "policy", **first} if first else {"in": "policy"}
    message = err.message + (f"; still serving {still_serving}" if still_serving else "")
    return error_body(err.code, message, location=location, diagnostics=diagnostics, rendered=render_all(found))


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return json_response(exc.body(), exc.status, exc.headers)


async def _policy_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, RequestError):
        return json_response(request_error_body(exc), 422)
    if isinstance(exc, PolicyLoadError):
        return json_response(load_error_body(exc, None), 409)
    assert isinstance(exc, PolicyError)
    location = exc.to_json().get("location")
    body = error_body(exc.code, exc.message, location={"in": "policy", **(location or {})}, help=exc.help)
    return json_response(body, 422)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    where, *path = [str(part) for part in first.get("loc", ())] or ["body"]
    field = ".".join(path) or None
    message = str(first.get("msg", "invalid request"))
    return json_response(error_body("invalid_request", message, field=field, location={"in": where}), 422)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    if exc.status_code == 404:
        message = f"no such endpoint: {request.url.path}"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    location = {"in": "path", "path": request.url.path}
    return json_response(error_body(code, message, location=location), exc.status_code, dict(exc.headers) if exc.headers else None)


async def _unexpected(request: Request, exc: Exception) -> Response:
    # Starlette logs the traceback for the operator; the caller sees no internals.
    log.error("unexpected error answering %s %s: %r", request.method, request.url.path, exc)
    body = error_body("internal_error", "the service could not answer this request", location={"in": "server"})
    return json_response(body, 500)


def install_handlers(app: FastAPI) -> None:
    """Answer every failure in the one error shape."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(PolicyError, _policy_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
