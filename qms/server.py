"""uvicorn, set up for qms: one place for the server options the HTTP API
and the screen gateway need, used by the CLI and by the tests alike."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
from typing import Any

import uvicorn
from starlette.applications import Starlette
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from displays.gateway import GOING_AWAY, Gateway

# Screens send nothing but control frames; a large frame from one is abuse.
WS_MAX_BYTES = 16 * 1024
# Kernel send buffer of a WebSocket. Linux sizes a loopback or LAN socket's
# buffer for bulk transfer (up to 4 MiB): a stalled screen would hold
# thousands of frames there before the gateway noticed it was slow.
WS_SEND_BUFFER_BYTES = 64 * 1024


def bounded_send_buffer(base: type[asyncio.Protocol], size: int) -> type[asyncio.Protocol]:
    """`base` (a uvicorn WebSocket protocol), with the socket's kernel send
    buffer fixed at `size` bytes once the connection is upgraded."""

    class BoundedSendBuffer(base):  # type: ignore[valid-type,misc]
        def connection_made(self, transport: Any) -> None:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
            super().connection_made(transport)

        async def send(self, message: Any) -> None:
            if message["type"].startswith("websocket.http.") and self.transport.is_closing():
                # uvicorn's shutdown already answered this half-done
                # handshake (500); a second answer would trip websockets.
                return
            await super().send(message)
            # uvicorn's websockets-sansio protocol forgets that a denial
            # response (our 401/403/404 answer to a bad handshake) ended the
            # handshake, and logs an ERROR for every refused screen
            # (Kludex/uvicorn#3138, open). wsproto already does this.
            if message["type"] == "websocket.http.response.body" and not message.get(
                "more_body", False
            ):
                self.handshake_complete = True

    return BoundedSendBuffer


def server_config(
    app: Starlette,
    *,
    access_log: bool = False,
    log_level: str = "info",
    ws_send_buffer: int = WS_SEND_BUFFER_BYTES,
) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        ws=bounded_send_buffer(WebSocketsSansIOProtocol, ws_send_buffer),
        log_level=log_level,
        access_log=access_log,
        lifespan="on",
        timeout_graceful_shutdown=5,
        # Deflate would keep a compressor per socket: several times the memory
        # of an idle screen, for frames of a few hundred bytes.
        ws_per_message_deflate=False,
        ws_max_size=WS_MAX_BYTES,
        # Protocol pings find dead peers (a screen unplugged without a FIN).
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
    )


class QmsServer(uvicorn.Server):
    """uvicorn's server, closing screens with 1001 ("going away") before it
    shuts down, where uvicorn alone would send 1012."""

    def __init__(self, config: uvicorn.Config, app: Starlette) -> None:
        super().__init__(config)
        self.qms_app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # Stop accepting first: a screen reconnecting right after its 1001
        # must reach another replica, not this one on its way out.
        for server in self.servers:
            server.close()
        gateway = getattr(self.qms_app.state, "gateway", None)
        if isinstance(gateway, Gateway):
            await gateway.close_all(GOING_AWAY)
        await super().shutdown(sockets)


# A fan-out to 5,000 screens allocates ~30,000 short-lived objects (a drain
# task per screen) in one burst. With CPython's default first threshold
# (700) most of them are still alive at a young collection, get promoted,
# and every few calls set off a full collection of the ~900,000 objects
# that screens keep: 450 ms with the event loop stopped. A young generation
# larger than a burst lets those objects die young.
GC_THRESHOLDS = (50_000, 20, 10)


def tune_gc() -> None:
    """Set the collector for a server holding many long-lived sockets, and
    move everything loaded so far (modules, hall config) out of its sight:
    it lives as long as the process."""
    gc.set_threshold(*GC_THRESHOLDS)
    gc.freeze()
