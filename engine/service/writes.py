"""One write for one answer: a transport joining what is written in one turn of the event loop.

uvicorn writes a response's status line and headers with one `transport.write`
and its body with another. Each is a system call, and for an answer of a few
hundred bytes each goes out as a TCP segment of its own, which the client has
to wait for and read apart. `JoinedWrites` stands between uvicorn and the
connection's transport: the first write of a turn is held, and what has been
written by the end of the turn goes out in one call (the head and body of a
small answer, sent back to back, in one segment). Nothing else changes: the
order of the bytes, closing (which first writes what is held), and flow
control, since more than `HOLD_LIMIT` bytes are never held.
"""

from __future__ import annotations

import asyncio
from typing import Any

HOLD_LIMIT = 64 * 1024  # bytes held at most; a larger write goes out at once (after what is held)


class JoinedWrites:
    """The connection's transport, its writes of one event-loop turn joined into one."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self._loop = loop
        self._held: list[bytes] = []
        self._size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Hold `data` until the end of this turn (written at once when the connection is closing or it is large)."""
        if self.transport.is_closing():
            self.transport.write(data)  # as ever: the transport decides what a late write does
            return
        held = self._held
        if not held:
            self._loop.call_soon(self.flush)
        held.append(bytes(data))
        self._size += len(data)
        if self._size > HOLD_LIMIT:
            self.flush()

    def flush(self) -> None:
        """Write what is held, in one call (dropped if the connection was lost or aborted meanwhile)."""
        held = self._held
        if held:
            self._held = []
            self._size = 0
            if not self.transport.is_closing():  # `close` writes first, so only a lost connection is closing here
                self.transport.write(held[0] if len(held) == 1 else b"".join(held))

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        # get_extra_info, pause_reading, resume_reading, set_protocol, abort, ...: the transport's own.
        return getattr(self.transport, name)
