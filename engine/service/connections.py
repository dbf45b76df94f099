"""Connections that cannot hold the service hostage: timeouts, a cap, and JSON for HTTP errors.

uvicorn closes an idle keep-alive connection, but waits for ever on a client
that sends its headers or its body a byte at a time (slowloris), so a few
hundred such sockets could use up the process's files. `GuardedHttp` adds:

- a deadline for the request line and headers (ENGINE_HEADER_TIMEOUT, default
  10 s), counted from the connection or the first byte of the next request;
- a deadline for the body once the headers are in (ENGINE_BODY_TIMEOUT, 30 s);
- a cap on open connections per process (ENGINE_MAX_CONNECTIONS, 1,000): one
  more is answered 503 and closed at once;
- errors the server answers itself (malformed HTTP, timeouts, the cap) in the
  service's JSON error shape rather than plain text;
- one write per answer: what uvicorn writes in one turn of the event loop (a
  response's head, then its body) goes out in one call (engine/service/writes.py).

Deadlines asked for while a read is parsed are set once the read is parsed:
a request that arrives whole, as nearly all do, sets and cancels no timer.

The keep-alive timeout is uvicorn's own (`--keep-alive-timeout`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from engine.service.encoding import dumps
from engine.service.settings import positive_number
from engine.service.writes import JoinedWrites

DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_BODY_TIMEOUT = 30.0
DEFAULT_KEEP_ALIVE_TIMEOUT = 5.0
DEFAULT_MAX_CONNECTIONS = 1000

_REASONS = {400: b"Bad Request", 408: b"Request Timeout", 503: b"Service Unavailable"}


setting = positive_number  # `setting(name, default)`: what engine serve reads for each flag


def error_response(status: int, code: str, message: str) -> bytes:
    """A whole HTTP/1.1 response in the service's error shape, closing the connection."""
    body = dumps({"code": code, "message": message, "location": {"in": "connection"}}).encode()
    return (b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n" % (status, _REASONS[status], len(body))) + body


class GuardedHttp(HttpToolsProtocol):
    """uvicorn's httptools protocol with header and body deadlines and a connection cap."""

    header_timeout = DEFAULT_HEADER_TIMEOUT
    body_timeout = DEFAULT_BODY_TIMEOUT
    max_connections = DEFAULT_MAX_CONNECTIONS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self._wanted: str | None = None

    @classmethod
    def configure(cls) -> None:
        """Read ENGINE_HEADER_TIMEOUT, ENGINE_BODY_TIMEOUT and ENGINE_MAX_CONNECTIONS."""
        cls.header_timeout = setting("ENGINE_HEADER_TIMEOUT", DEFAULT_HEADER_TIMEOUT)
        cls.body_timeout = setting("ENGINE_BODY_TIMEOUT", DEFAULT_BODY_TIMEOUT)
        cls.max_connections = int(setting("ENGINE_MAX_CONNECTIONS", DEFAULT_MAX_CONNECTIONS))

    def _arm(self, seconds: float, status: int, message: str) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, self._expire, status, message)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self, status: int, message: str) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if self.cycle is None or not self.cycle.response_started:
            self.transport.write(error_response(status, "request_timeout", message))
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        # uvicorn writes through JoinedWrites: a small answer's head and body in one call.
        super().connection_made(JoinedWrites(transport, self.loop))  # type: ignore[arg-type]
        if len(self.connections) > self.max_connections:
            transport.write(error_response(503, "too_many_connections",
                                           f"the server holds its limit of {self.max_connections} connections; "
                                           "try again shortly"))
            transport.close()
            return
        self._arm(*self._deadline("headers"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    # The parser calls these while `data_received` feeds it; a deadline they ask for is set
    # once that call is over (`_wanted`), so a request that came whole in one read, as
    # nearly all do, arms and cancels no timer at all.

    def data_received(self, data: bytes) -> None:
        self._wanted = None
        try:
            super().data_received(data)
        finally:
            wanted = self._wanted
            if wanted is not None and not self.transport.is_closing():
                self._arm(*self._deadline(wanted))

    def _deadline(self, part: str) -> tuple[float, int, str]:
        seconds = self.header_timeout if part == "headers" else self.body_timeout
        return seconds, 408, f"the request {part} did not arrive within {seconds:g} s"

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._wanted = "headers"

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._wanted = "body"

    def on_message_complete(self) -> None:
        self._wanted = None
        self._disarm()
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        self._disarm()
        self.transport.write(error_response(400, "bad_request", f"the request is not valid HTTP/1.1: {msg}"))
        self.transport.close()


GuardedHttp.configure()
