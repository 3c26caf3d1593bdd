"""A WebSocket client for a Locust user: websockets' Sans-I/O protocol, driven
by the one greenlet that reads, writes and closes the socket.

Why not `websockets.sync.client`: it runs a background thread (a greenlet
under gevent) that waits in `selectors.select()` on the socket, and closes
the socket from whichever thread ends the connection. Under gevent's
monkey-patching, a screen whose reader fell 16 frames behind (websockets'
flow control parks the background thread) and is then closed makes libev
abort the whole process ("I/O watcher with invalid fd found in epoll_ctl"):
seen at the end of a load test, reproduced in isolation with websockets 17.4
and gevent 26. Here nothing is shared between greenlets, so there is no such
race; the protocol itself (framing, masking, ping/pong, the closing
handshake) is still websockets', the maintained library qms depends on.

Plain `socket` is used: under locust it is gevent's, so a blocked `recv`
only parks its own greenlet, and killing the user raises GreenletExit in it.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from collections import deque
from collections.abc import Sequence

from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

RECV_BYTES = 65_536
MAX_MESSAGE_BYTES = 1 << 22
"""A hall snapshot is a few kB; anything this big is a bug, refused by the protocol."""


class GreenWebSocket:
    """One client connection. Not for sharing between greenlets."""

    def __init__(self, sock: socket.socket, protocol: ClientProtocol, close_timeout: float) -> None:
        self.sock = sock
        self.protocol = protocol
        self.close_timeout = close_timeout
        self._messages: deque[str | bytes] = deque()
        self._fragments: list[bytes] = []
        self._fragmented_text = False

    @classmethod
    def connect(
        cls, url: str, open_timeout: float = 10.0, close_timeout: float = 2.0
    ) -> GreenWebSocket:
        """Open the connection and finish the handshake, or raise: OSError
        (TimeoutError included) or a websockets exception (InvalidURI,
        InvalidStatus for a refused handshake, InvalidMessage …)."""
        uri = parse_uri(url)
        deadline = time.monotonic() + open_timeout
        sock = socket.create_connection((uri.host, uri.port), timeout=open_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if uri.secure:
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=uri.host)
            # No extensions: qms refuses compression anyway (api-notes.md).
            protocol = ClientProtocol(uri, max_size=MAX_MESSAGE_BYTES)
            ws = cls(sock, protocol, close_timeout)
            protocol.send_request(protocol.connect())
            ws._flush()
            while True:
                sock.settimeout(max(0.001, deadline - time.monotonic()))
                data = sock.recv(RECV_BYTES)
                if data:
                    protocol.receive_data(data)
                else:
                    protocol.receive_eof()
                events = protocol.events_received()
                if protocol.handshake_exc is not None:
                    raise protocol.handshake_exc
                if events:  # the first is the handshake's response
                    ws._take(events[1:])
                    break
                if not data:
                    raise ConnectionError("the server closed the connection during the handshake")
            sock.settimeout(None)
            return ws
        except BaseException:
            sock.close()
            raise

    @property
    def closed(self) -> bool:
        return self.protocol.state is State.CLOSED

    def recv(self) -> str | bytes:
        """The next message (str for text); raises ConnectionClosed once the
        connection is closed (by the server's close frame or a dropped socket)."""
        while not self._messages:
            if self.closed:
                self.sock.close()
                raise self.protocol.close_exc
            self._read_once()
        return self._messages.popleft()

    def close(self, code: int = 1000) -> None:
        """The closing handshake, at most `close_timeout` long; then the socket
        is closed whatever happened."""
        try:
            if self.protocol.state is State.OPEN:
                self.protocol.send_close(code)
                self._flush()
            deadline = time.monotonic() + self.close_timeout
            while not self.closed and time.monotonic() < deadline:
                self.sock.settimeout(max(0.001, deadline - time.monotonic()))
                self._read_once()
        except (OSError, ConnectionClosed):
            pass
        finally:
            self.sock.close()

    def _read_once(self) -> None:
        try:
            data = self.sock.recv(RECV_BYTES)
        except OSError:
            data = b""  # a reset or a timeout while closing: the end of the stream
        if data:
            self.protocol.receive_data(data)
        else:
            self.protocol.receive_eof()
        self._take(self.protocol.events_received())
        # Pongs, the reply to the server's close frame, or the half-close
        # the protocol asks for once the closing handshake is done.
        self._flush()

    def _flush(self) -> None:
        for data in self.protocol.data_to_send():
            if data:
                try:
                    self.sock.sendall(data)
                except OSError:
                    self.protocol.receive_eof()
                    return
            else:
                with contextlib.suppress(OSError):
                    self.sock.shutdown(socket.SHUT_WR)

    def _take(self, events: Sequence[object]) -> None:
        """Keep the data frames as messages (control frames are the protocol's)."""
        for event in events:
            if not isinstance(event, Frame):
                continue
            if event.opcode in (Opcode.TEXT, Opcode.BINARY):
                self._fragmented_text = event.opcode is Opcode.TEXT
                self._fragments = [bytes(event.data)]
            elif event.opcode is Opcode.CONT:
                self._fragments.append(bytes(event.data))
            else:
                continue
            if event.fin:
                payload = b"".join(self._fragments)
                self._fragments = []
                self._messages.append(payload.decode() if self._fragmented_text else payload)
