"""Request bodies: content type, size limit and JSON, checked before any deciding.

The decision request's schema is defined by the policy set, so the engine
validates it; here we only make sure there is a JSON object to give it. The
standard library's parser is used directly rather than a pydantic model: it
is the hot path, and the engine checks every field anyway.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive

from engine import jsontext
from engine.service.errors import ApiError

DEFAULT_MAX_BODY = 1024 * 1024  # 1 MiB; ENGINE_MAX_BODY_BYTES changes it


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON, and could not be audited canonically.
    raise ValueError(f"{name} is not a JSON value")


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _charset(content_type: str) -> str | None:
    """The `charset` parameter of a Content-Type, lower case, if any."""
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"').lower()
    return None


# What a body in UTF-16 or UTF-32 begins with: a byte order mark, or (JSON
# text starting with an ASCII character) a zero byte among the first four.
_WIDE_BOMS = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")


async def read_json(request: Request, limit: int) -> Any:
    """The parsed JSON body, or an ApiError with status 413, 415 or 400."""
    return parse_json(await read_body(request, limit))


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body of a JSON request, or an ApiError with status 413 or 415."""
    check_json_headers(request.headers, limit)
    return await read_limited(request, limit)


def check_json_headers(headers: Mapping[str, str], limit: int) -> None:
    """Refuse, before reading a byte, a body that is not UTF-8 JSON (415) or says it is too large (413)."""
    problem = _media_problem(headers.get("content-type", ""))
    if problem is not None:
        raise ApiError(415, "unsupported_media_type", problem, location={"in": "header", "name": "content-type"})
    length = headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise _too_large(limit)


@functools.lru_cache(maxsize=64)  # callers send the same few Content-Types
def _media_problem(content_type: str) -> str | None:
    """Why a body of this Content-Type is refused, or None for UTF-8 JSON."""
    if not _is_json(content_type):
        got = f"got {content_type!r}" if content_type else "no Content-Type was given"
        return f"send the request as application/json; {got}"
    charset = _charset(content_type)
    if charset is not None and charset not in ("utf-8", "utf8"):
        return f"the body must be UTF-8 JSON; charset={charset} is not accepted"
    return None


async def read_limited(request: Request, limit: int) -> bytes:
    """The body of `request`, or ApiError 413 once more than `limit` bytes have come."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def receive_body(receive: Receive, limit: int) -> bytes:
    """The body straight from the ASGI messages, as `Request.stream()` reads it: 413 past `limit`,
    ClientDisconnect if the client goes away first."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "http.request":
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            if not message.get("more_body", False):
                if not chunks:
                    return bytes(chunk)
                chunks.append(chunk)
                return b"".join(chunks)
            chunks.append(chunk)
        elif kind == "http.disconnect":
            raise ClientDisconnect()


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "body_too_large", f"the request body is larger than the limit of {limit} bytes",
                    location={"in": "body"})


def parse_json(body: bytes) -> Any:
    """UTF-8 JSON text -> Python value, or a 400 naming the line and column at fault."""
    if body.startswith(_WIDE_BOMS) or b"\x00" in body[:4]:
        # json.loads would guess the encoding; the service speaks UTF-8 only.
        raise ApiError(400, "invalid_json", "the body is UTF-16 or UTF-32 text; send it as UTF-8",
                       location={"in": "body"})
    try:
        return jsontext.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except jsontext.DuplicateKeyError as err:
        text = body.decode("utf-8", "replace")
        at = jsontext.key_position(text, err.key)
        location = {"in": "body", "line": at[0], "column": at[1]} if at else {"in": "body"}
        raise ApiError(400, "invalid_json", f"the body is not valid JSON for a request: {err}",
                       location=location) from None
    except json.JSONDecodeError as err:
        location = {"in": "body", "line": err.lineno, "column": err.colno}
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {err.msg}", location=location) from None
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_json", "the body is not UTF-8 text", location={"in": "body"}) from None
    except RecursionError:
        raise ApiError(400, "invalid_json", "the body is nested too deeply", location={"in": "body"}) from None
    except ValueError as err:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {err}", location={"in": "body"}) from None


def require_object(value: Any, what: str) -> dict[str, Any]:
    """The body as a JSON object, or a 422 saying what was expected instead."""
    if isinstance(value, dict):
        return value
    raise ApiError(422, "invalid_request", f"{what} must be a JSON object, not {_json_type(value)}",
                   location={"in": "body"})


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"
