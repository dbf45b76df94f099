"""Connection deadlines: set once a read is parsed, so a request that arrives whole sets no timer at all."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from engine.service.connections import GuardedHttp

REQUEST = b"POST /decide HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


class Transport:
    def __init__(self) -> None:
        self.written = b""
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"{}"})


def _protocol(loop: asyncio.AbstractEventLoop) -> tuple[GuardedHttp, Transport, list[tuple[float, tuple[Any, ...]]]]:
    config = Config(_app, http=GuardedHttp, log_level="warning")
    config.load()
    armed: list[tuple[float, tuple[Any, ...]]] = []
    later = loop.call_later

    def call_later(seconds: float, callback: Any, *args: Any) -> Any:
        if args[:1] == (408,):  # a deadline (not uvicorn's keep-alive timer)
            armed.append((seconds, args))
        return later(seconds, callback, *args)

    loop.call_later = call_later  # type: ignore[method-assign]
    protocol = GuardedHttp(config=config, server_state=ServerState(), app_state={}, _loop=loop)
    transport = Transport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    return protocol, transport, armed


@pytest.mark.parametrize(("reads", "deadlines"), [
    ([REQUEST], []),
    ([REQUEST + REQUEST], []),
    ([REQUEST[:10], REQUEST[10:]], [(10.0, "the request headers did not arrive within 10 s")]),
    ([REQUEST[:-1], REQUEST[-1:]], [(30.0, "the request body did not arrive within 30 s")]),
    ([REQUEST + REQUEST[:10]], [(10.0, "the request headers did not arrive within 10 s")]),
], ids=["whole", "two whole", "headers split", "body split", "whole, then the next begun"])
def test_deadlines_are_set_only_for_what_has_not_arrived(reads: list[bytes], deadlines: list[Any]) -> None:
    loop = asyncio.new_event_loop()
    protocol, transport, armed = _protocol(loop)
    assert armed == [(10.0, (408, "the request headers did not arrive within 10 s"))]  # from the connection
    for data in reads:
        protocol.data_received(data)
        loop.run_until_complete(asyncio.sleep(0.01))
    assert [(seconds, args[1]) for seconds, args in armed[1:]] == deadlines
    assert transport.written.count(b"HTTP/1.1 200 OK") == b"".join(reads).count(REQUEST)
    protocol.connection_lost(None)
    loop.close()


def test_a_request_that_never_finishes_is_answered_408() -> None:
    loop = asyncio.new_event_loop()
    protocol, transport, armed = _protocol(loop)
    protocol.data_received(REQUEST[:10])
    (_seconds, args), = armed[1:]
    protocol._expire(*args)
    loop.run_until_complete(asyncio.sleep(0.01))
    assert transport.written.startswith(b"HTTP/1.1 408 Request Timeout") and transport.closing
    loop.close()
