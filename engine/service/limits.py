"""Bounds on what a caller may send: Unicode text only, and no string longer than a limit.

JSON lets a body spell a lone surrogate (`"\\ud800"`), which is not a Unicode
scalar value: it cannot be written back out as UTF-8, to an error message or
to the audit trail. Every string that enters (the body's keys and values, the
query, the headers) is checked before anything reads it, and refused with 422
naming where it was. Strings are bounded too (ENGINE_MAX_STRING characters,
default 1,000), which also bounds the cost of working out a did-you-mean for
an unknown name.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote_to_bytes

from engine.service.encoding import dumps
from engine.service.errors import ApiError, error_body

DEFAULT_MAX_STRING = 1000

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _shown(key: str) -> str:
    """A key as it can be named in an error, even when it is not valid Unicode."""
    return key.encode("utf-8", "backslashreplace").decode("utf-8")


def _bad_string(text: str, limit: int) -> str | None:
    """Why `text` is refused, or None when it is fine."""
    if len(text) > limit:
        return f"is {len(text):,} characters long; at most {limit:,} are allowed"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "is not valid Unicode text (it holds a lone surrogate such as \\ud800)"
    return None


def check_strings(value: Any, limit: int, prefix: str = "") -> None:
    """Refuse (ApiError 422 naming the field) any key or string in `value` that is too long or not Unicode."""
    stack: list[tuple[Any, str]] = [(value, prefix)]
    while stack:
        node, path = stack.pop()
        if node.__class__ is str:
            problem = _bad_string(node, limit)
            if problem:
                raise ApiError(422, "invalid_string", f"`{path or 'the body'}` {problem}", field=path or None,
                               location={"in": "body"})
        elif node.__class__ is dict:
            for key, item in node.items():
                name = f"{path}.{_shown(key)}" if path else _shown(key)
                problem = _bad_string(key, limit)
                if problem:
                    raise ApiError(422, "invalid_string", f"the key of `{name}` {problem}", field=name)
                stack.append((item, name))
        elif node.__class__ is list:
            stack.extend((item, f"{path}[{index}]") for index, item in enumerate(node))


def _query_problem(query: bytes, limit: int) -> tuple[str, str] | None:
    for pair in query.split(b"&"):
        name, _, value = pair.partition(b"=")
        for part in (name, value):
            raw = unquote_to_bytes(part.replace(b"+", b" "))
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                return _shown(name.decode("latin-1")), "is not UTF-8 text"
            if len(text) > limit:
                return _shown(name.decode("latin-1")), f"is longer than {limit:,} characters"
    return None


def _header_problem(headers: list[tuple[bytes, bytes]], limit: int) -> tuple[str, str] | None:
    for name, value in headers:
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            return name.decode("latin-1"), "is not UTF-8 text"
        if len(value) > limit and name in (b"authorization", b"x-api-key", b"content-type"):
            return name.decode("latin-1"), f"is longer than {limit:,} characters"
    return None


class TextGuard:
    """ASGI middleware refusing queries and headers that are not UTF-8 text, before routing."""

    def __init__(self, app: ASGIApp, limit: int = DEFAULT_MAX_STRING):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and await refused_text(scope, send, self.limit):
            return
        await self.app(scope, receive, send)


async def refused_text(scope: Scope, send: Send, limit: int) -> bool:
    """Answer 422 and say True when the request's query or headers are not UTF-8 text within `limit`."""
    refusal = text_refusal(scope, limit)
    if refusal is None:
        return False
    await _answer(send, 422, refusal)
    return True


def text_refusal(scope: Scope, limit: int) -> dict[str, Any] | None:
    """The error body for a query or header that is not UTF-8 text within `limit`, or None."""
    query = scope.get("query_string") or b""
    if query:
        found = _query_problem(query, limit)
        if found:
            name, problem = found
            return error_body("invalid_string", f"query parameter `{name}` {problem}",
                              location={"in": "query", "name": name})
    found = _header_problem(scope.get("headers") or [], limit)
    if found:
        name, problem = found
        return error_body("invalid_string", f"header `{name}` {problem}", location={"in": "header", "name": name})
    return None


async def _answer(send: Send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    content = dumps(body).encode("utf-8", "backslashreplace")
    extra = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(content)).encode()), *extra]})
    await send({"type": "http.response.body", "body": content})


async def send_error(send: Send, err: ApiError) -> None:
    """Answer an ApiError from ASGI middleware, in the one error shape."""
    await _answer(send, err.status, err.body(), err.headers)
