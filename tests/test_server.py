"""qms's uvicorn setup: one write per HTTP response, and screens' sockets
handed the real transport (no Redis, no sockets but a socketpair)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from qms.server import OneWritePerTurn, bounded_send_buffer


class Recorder(asyncio.Transport):
    """A transport that records what is written to it."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        assert not self.closed, "written after close"
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5)}.get(name, default)


async def test_a_response_head_and_body_go_out_in_one_write_at_the_end_of_the_turn() -> None:
    real = Recorder()
    transport = OneWritePerTurn(real, asyncio.get_running_loop())
    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    transport.write(b"{}")
    assert real.writes == []  # nothing yet: the handler's step is not over
    await asyncio.sleep(0)
    assert real.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
    # The next response is its own write; everything else is the real transport's.
    transport.write(b"x")
    await asyncio.sleep(0)
    assert real.writes[1:] == [b"x"]
    assert transport.get_extra_info("peername") == ("127.0.0.1", 5)


async def test_close_sends_what_was_written_first_and_nothing_after() -> None:
    real = Recorder()
    transport = OneWritePerTurn(real, asyncio.get_running_loop())
    transport.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    transport.close()
    assert real.writes == [b"HTTP/1.1 400 Bad Request\r\n\r\n"] and real.closed
    await asyncio.sleep(0)  # the flush scheduled by the write finds nothing to send
    assert len(real.writes) == 1


async def test_a_websocket_upgrade_gets_the_real_transport_with_earlier_writes_sent() -> None:
    class Base(asyncio.Protocol):
        transport: Any = None

        def connection_made(self, transport: Any) -> None:
            self.transport = transport

    a, b = socket.socketpair()
    try:
        real = Recorder()
        real.get_extra_info = lambda name, default=None: a if name == "socket" else default  # type: ignore[method-assign]
        wrapped = OneWritePerTurn(real, asyncio.get_running_loop())
        wrapped.write(b"pending")
        protocol: Any = bounded_send_buffer(Base, 4096)()
        protocol.connection_made(wrapped)
        assert protocol.transport is real  # frames are not held back a turn
        assert real.writes == [b"pending"]
        # ...and the socket's send buffer is bounded (Linux doubles what is asked).
        assert a.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) <= 2 * 4096 + 4096
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("writes", [1, 2, 5])
async def test_every_write_of_a_turn_is_kept_in_order(writes: int) -> None:
    real = Recorder()
    transport = OneWritePerTurn(real, asyncio.get_running_loop())
    for i in range(writes):
        transport.write(str(i).encode())
    await asyncio.sleep(0)
    assert real.writes == ["".join(str(i) for i in range(writes)).encode()]
