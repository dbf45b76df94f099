"""What uvicorn writes in one turn of the event loop goes out in one call, in order, and nothing is lost."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from engine.service.writes import HOLD_LIMIT, JoinedWrites


class Transport:
    def __init__(self) -> None:
        self.calls: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.calls.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000)}.get(name, default)


def _joined() -> tuple[JoinedWrites, Transport, asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    transport = Transport()
    return JoinedWrites(transport, loop), transport, loop  # type: ignore[arg-type]


def _turn(loop: asyncio.AbstractEventLoop) -> None:
    loop.run_until_complete(asyncio.sleep(0))


@pytest.mark.parametrize(("writes", "calls"), [
    ([b"head", b"body"], [b"headbody"]),
    ([b"whole"], [b"whole"]),
    ([b"a", bytearray(b"b"), memoryview(b"c")], [b"abc"]),
    ([b"x" * (HOLD_LIMIT + 1)], [b"x" * (HOLD_LIMIT + 1)]),
    ([b"head", b"x" * HOLD_LIMIT, b"tail"], [b"head" + b"x" * HOLD_LIMIT, b"tail"]),
], ids=["head and body", "one write", "buffers", "large", "over the limit, then more"])
def test_one_turns_writes_go_out_together_in_order(writes: list[Any], calls: list[bytes]) -> None:
    joined, transport, loop = _joined()
    for data in writes:
        joined.write(data)
    _turn(loop)
    assert transport.calls == calls
    loop.close()


def test_each_turn_is_written_apart() -> None:
    joined, transport, loop = _joined()
    joined.write(b"first")
    _turn(loop)
    joined.write(b"second")
    _turn(loop)
    assert transport.calls == [b"first", b"second"]
    loop.close()


def test_closing_writes_what_is_held_first() -> None:
    joined, transport, loop = _joined()
    joined.write(b"answer")
    joined.close()
    assert transport.calls == [b"answer"] and transport.closing
    joined.write(b"late")  # the transport's own business once closing
    assert transport.calls == [b"answer", b"late"]
    _turn(loop)
    assert transport.calls == [b"answer", b"late"]
    loop.close()


def test_what_is_held_when_the_connection_is_lost_is_dropped() -> None:
    joined, transport, loop = _joined()
    joined.write(b"answer")
    transport.closing = True  # lost, or aborted, before the turn ended
    _turn(loop)
    assert transport.calls == []
    loop.close()


def test_everything_else_is_the_transports() -> None:
    joined, _transport, loop = _joined()
    assert joined.get_extra_info("peername") == ("127.0.0.1", 5000)
    assert joined.is_closing() is False
    loop.close()
