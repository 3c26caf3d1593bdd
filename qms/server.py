"""uvicorn, set up for qms: one place for the server options the HTTP API
and the screen gateway need, used by the CLI and by the tests alike."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
import struct
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any, cast

import uvicorn
from starlette.applications import Starlette
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

from displays.gateway import ABORT_EXTENSION, DIRECT_WRITE_EXTENSION, GOING_AWAY, Gateway
from qms.security import DEFAULT_CSP, loggable_path, security_headers

# Screens send nothing but control frames; a large frame from one is abuse.
WS_MAX_BYTES = 16 * 1024
# Kernel send buffer of a WebSocket. Linux sizes a loopback or LAN socket's
# buffer for bulk transfer (up to 4 MiB): a stalled screen would hold
# thousands of frames there before the gateway noticed it was slow.
WS_SEND_BUFFER_BYTES = 64 * 1024


class OneWritePerTurn:
    """A transport that sends what one loop turn wrote in one system call.

    uvicorn writes a response's head and body separately, and a loop writes
    each at once: two sends, two TCP segments per answer. Collected until the
    end of the loop turn (both writes come from one step of the handler), they
    go out together. Everything else is the real transport's.
    """

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def unwrap(self) -> asyncio.Transport:
        """The real transport, with what was written so far sent."""
        self._flush()
        return self._transport

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def bounded_send_buffer(base: type[asyncio.Protocol], size: int) -> type[asyncio.Protocol]:
    """`base` (a uvicorn WebSocket protocol), with the socket's kernel send
    buffer fixed at `size` bytes once the connection is upgraded."""

    class BoundedSendBuffer(base):  # type: ignore[valid-type,misc]
        def connection_made(self, transport: Any) -> None:
            if isinstance(transport, OneWritePerTurn):
                # An upgrade: frames go straight to the socket, as they come.
                transport = transport.unwrap()
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


def screen_protocol(size: int) -> type[asyncio.Protocol]:
    """The protocol qms serves screens with: uvicorn's websockets-sansio, its
    kernel send buffer bounded, offering the gateway's direct frame writer
    (`DIRECT_WRITE_EXTENSION`) in the scope."""
    base = cast(type[WebSocketsSansIOProtocol], bounded_send_buffer(WebSocketsSansIOProtocol, size))

    class ScreenProtocol(base):  # type: ignore[valid-type,misc]
        def handle_connect(self, event: Any) -> None:
            super().handle_connect(event)
            scope = getattr(self, "scope", None)
            if scope is not None:  # an upgrade (not refused by websockets itself)
                scope["extensions"][DIRECT_WRITE_EXTENSION] = self.write_frame
                scope["extensions"][ABORT_EXTENSION] = self.abort

        def abort(self) -> None:
            """Drop the connection now with a reset, whatever is still unsent.
            A plain close of the socket would leave the kernel holding what
            it had not sent (up to the send buffer) for a peer that reads
            nothing, until it gives up on it minutes later; SO_LINGER 0
            frees it at once."""
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.transport.abort()

        def send_receive_event_to_app(self) -> None:
            # uvicorn decodes a text message itself and, when it is not
            # UTF-8, closes with 1007 but logs an ERROR with a traceback:
            # any client could fill the log with them. The same close,
            # logged as the client's fault it is.
            if self.curr_msg_data_type == "text" and not self.close_sent:
                try:
                    b"".join(self.frames).decode()
                except UnicodeDecodeError:
                    self.frames: list[bytes] = []
                    self.logger.info("WebSocket text message is not UTF-8: closed with 1007")
                    self.conn.send_close(1007, "text message is not UTF-8")
                    self.handle_parser_exception()
                    return
            super().send_receive_event_to_app()

        def write_frame(self, data: bytes) -> bool:
            """Write a whole server frame now, or say it cannot go now.

            Writes only while the socket is open for messages and its
            transport is not paused (above its high-water mark): a slow
            screen's frames then wait in the gateway's bounded queue, and go
            through `send()`, which waits for the transport, as before.
            Frames are whole bytes written in one call on the loop's thread,
            so they never interleave with the pings and closes uvicorn writes.
            """
            if (
                self.close_sent
                or self.disconnected
                or not self.handshake_complete
                or self.initial_response is not None
                or not self.writable.is_set()
                or self.conn.state is not State.OPEN
                or self.transport.is_closing()
            ):
                return False
            self.transport.write(data)
            return True

    return ScreenProtocol


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, sending each response in one write, and
    its own 400 with the headers of every answer."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(
            cast(asyncio.Transport, OneWritePerTurn(cast(asyncio.Transport, transport), self.loop))
        )

    def send_400_response(self, msg: str) -> None:
        # uvicorn answers a request it cannot parse (a raw space in a query
        # value) itself, before the app and its `SecurityHeaders`: the same
        # headers here, else as uvicorn's own.
        scheme = "https" if self.transport.get_extra_info("sslcontext") else "http"
        ours = {**security_headers(scheme), "Content-Security-Policy": DEFAULT_CSP}
        body = msg.encode()
        headers = [
            *self.server_state.default_headers,
            *((name.lower().encode(), value.encode()) for name, value in ours.items()),
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        head = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
        self.transport.write(b"HTTP/1.1 400 Bad Request\r\n" + head + b"\r\n" + body)
        self.transport.close()


UVICORN_LOGGERS = ("uvicorn.error", "uvicorn.access")
"""Where uvicorn logs a request's path: every WebSocket handshake at INFO
(even with the access log off), and each request with the access log on."""


class NoQueryStrings(logging.Filter):
    """Cuts the query string off every path in a uvicorn log record, and
    puts a digest in place of each ticket id and appointment code in it
    (`qms.security.loggable_path`).

    A query string may carry a credential: `?token=` on a screen's socket
    (an older screen, or another program) or on a page's address (a hall PC
    booting into its page); a path may too: `/tickets/{id}` is the visitor's
    credential. uvicorn logs it with the path; this filter, on the loggers
    uvicorn writes to, rewrites the record before any handler (or formatter)
    sees it, so no log line holds one.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_without_query(a) for a in record.args)
        return True


def _without_query(arg: object) -> object:
    if isinstance(arg, str) and (arg.startswith("/") or "://" in arg):
        return loggable_path(arg)
    return arg


def keep_query_strings_out_of_logs() -> None:
    """Put `NoQueryStrings` on uvicorn's loggers, once per process."""
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, NoQueryStrings) for f in logger.filters):
            logger.addFilter(NoQueryStrings())


def server_config(
    app: Starlette,
    *,
    access_log: bool = False,
    log_level: str = "info",
    ws_send_buffer: int = WS_SEND_BUFFER_BYTES,
    trusted_proxies: Sequence[str] = (),
) -> uvicorn.Config:
    """uvicorn's config for qms; no log line it writes holds a query string.
    `X-Forwarded-For` and `X-Forwarded-Proto` are believed only from the
    addresses or networks of `trusted_proxies` (`QMS_TRUSTED_PROXIES`); by
    default from nobody, not even loopback as uvicorn alone would."""
    config = uvicorn.Config(
        app,
        proxy_headers=bool(trusted_proxies),
        forwarded_allow_ips=list(trusted_proxies) or None,
        ws=screen_protocol(ws_send_buffer),
        http=HttpProtocol,
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
    # After uvicorn.Config, which (re)configures those loggers.
    keep_query_strings_out_of_logs()
    return config


class QmsServer(uvicorn.Server):
    """uvicorn's server, closing screens with 1001 ("going away") before it
    shuts down, where uvicorn alone would send 1012."""

    def __init__(
        self, config: uvicorn.Config, app: Starlette, exiting: threading.Event | None = None
    ) -> None:
        super().__init__(config)
        self.qms_app = app
        self.exiting = exiting if exiting is not None else threading.Event()
        """Set by the signal that stops the server (SIGINT, SIGTERM): what else
        the signal reaches (the embedded redis-server, in qms's process
        group) is then ending with it, not failing."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.exiting.set()
        super().handle_exit(sig, frame)

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
