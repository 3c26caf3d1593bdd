"""The WebSocket gateway: `/ws/halls/{hall}/display`.

Each socket gets the hall's snapshot (or the events it missed, with
`since=`), then one frame per event: JSON text frames, or msgpack binary
frames with `format=msgpack`. An event's frame is written straight to every
socket that can take it (see `DIRECT_WRITE_EXTENSION`); the rest queue it, up
to `queue_frames`: a screen that falls that far behind is closed with 1013
(its connection reset if it cannot take even that within `close_grace_s`)
and expected to reconnect with `since`. Shutdown closes every socket with
1001 so screens move to another replica.

Credentials: `?token=` or an `Authorization` header is checked during the
handshake, as before. With `auth=message` the handshake carries no secret:
the socket is accepted, and its first message must be `{"type": "auth",
"token": …}` within `auth_timeout_s`; nothing is sent to it, and nothing is
read from Redis for it, until that token is accepted. A refusal then closes
the socket with 4401 (no valid token) or 4403 (a role screens may not use),
codes a browser can see, unlike a refused handshake.

Presence: every named screen (`screen=`) is written to Redis with a TTL when
it joins and every `presence_interval_s` after, whichever replica it is on,
within the caps of `PresenceCaps`. A socket without `screen=` has none.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import re
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from displays.codec import Format
from displays.frames import Frame
from displays.hub import DirectWrite, HallHub, HubSettings, Subscriber
from queue_core import metrics
from queue_core.auth import authorize
from queue_core.config import Credential
from queue_core.errors import Forbidden, Invalid, NotFound, QmsError, Unauthorized, Unavailable
from queue_core.models import Event, Role, ScreenPage, ScreenPresence
from queue_core.operations import Hall
from queue_core.presence import PresenceCaps, PresenceStore
from queue_core.redis_client import RedisClient
from queue_core.scripts import Scripts

__all__ = [
    "ABORT_EXTENSION",
    "DIRECT_WRITE_EXTENSION",
    "SCREEN_ROLES",
    "Gateway",
    "GatewaySettings",
    "gateway_routes",
]

log = logging.getLogger("qms.displays")

# Clerks too: the console follows its hall live. Events carry nothing a
# hall's wall screens do not already show.
SCREEN_ROLES = frozenset({Role.DISPLAY, Role.CLERK, Role.MANAGER, Role.ADMIN})
GOING_AWAY = 1001
TRY_AGAIN_LATER = 1013
UNAUTHORIZED = 4401
"""Close code: the first message brought no valid token (`auth=message`)."""
FORBIDDEN = 4403
"""Close code: the token is valid, but not for a screen (a kiosk's)."""
AUTH_BY_MESSAGE = "message"
_SCREEN_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")

ABORT_EXTENSION = "qms.websocket.abort"
"""A server may put a callable under this key in the scope's `extensions`
that drops the connection at once (a TCP reset): used for a screen too slow
to take even its close frame (see `Gateway.serve`)."""

DIRECT_WRITE_EXTENSION = "qms.websocket.write_frame"
"""A server may put a `DirectWrite` under this key in the scope's
`extensions`: a fan-out then writes each event's pre-built frame straight to
every open socket instead of going through a task and `send()` per screen.
Without it (another ASGI server, the test client) frames take the ASGI way."""

Denial = Callable[[WebSocket, QmsError], Any]
"""Sends the contract's error body as the handshake's HTTP answer."""


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    hub: HubSettings = field(default_factory=HubSettings)
    presence_interval_s: float = 15.0
    presence_ttl_s: int = 45
    presence_caps: PresenceCaps = field(default_factory=PresenceCaps)
    auth_timeout_s: float = 10.0
    """How long an `auth=message` socket may take to send its token."""
    close_grace_s: float = 5.0
    """How long a screen the server closes (too slow, shutdown) has to take
    its close frame before its connection is reset (`ABORT_EXTENSION`)."""
    replica: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")


@dataclass(frozen=True, slots=True)
class ScreenRequest:
    """A validated handshake."""

    hall: Hall
    fmt: Format
    since: int | None
    page: ScreenPage
    window: str | None
    screen: str | None
    """The screen's name for presence; None: an anonymous socket, which has none."""
    credential: Credential | None
    """None until the first message brings it (`auth=message`)."""


class Gateway:
    """Every hall's hub in this process, and the sockets they feed."""

    def __init__(
        self,
        halls: Mapping[str, Hall],
        redis: RedisClient,
        scripts: Scripts,
        reader_factory: Callable[[], RedisClient],
        settings: GatewaySettings,
    ) -> None:
        self.halls = halls
        self.settings = settings
        self.closing = False
        self._redis = redis
        self._scripts = scripts
        self._reader_factory = reader_factory
        self._hubs: dict[str, HallHub] = {}
        self._presence = {
            hid: PresenceStore(
                redis, scripts, hid, ttl_s=settings.presence_ttl_s, caps=settings.presence_caps
            )
            for hid in halls
        }
        self._sessions = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._presence_task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._presence_task = asyncio.create_task(self._refresh_presence(), name="presence")

    def hub(self, hall: str) -> HallHub:
        found = self._hubs.get(hall)
        if found is None:
            found = self._hubs[hall] = HallHub(
                self.halls[hall],
                self._redis,
                self._reader_factory,
                self.settings.hub,
                on_publish=_observe_lag,
            )
        return found

    def screens(self, hall: str) -> int:
        hub = self._hubs.get(hall)
        return len(hub.subscribers) if hub else 0

    async def close_all(self, code: int = GOING_AWAY, timeout_s: float = 5.0) -> None:
        """Refuse new screens and close every socket with `code`."""
        self.closing = True
        for hub in self._hubs.values():
            hub.stop_all(code, "server shutting down; reconnect")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout_s)

    async def aclose(self) -> None:
        await self.close_all()
        if self._presence_task is not None:
            self._presence_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._presence_task
        for hub in self._hubs.values():
            await hub.aclose()

    # ------------------------------------------------------------ sockets

    async def authenticate(self, ws: WebSocket, req: ScreenRequest) -> ScreenRequest | None:
        """The request with the credential an accepted `auth=message` socket
        sends first, or None once the socket is closed: 4401 for no valid
        token within `auth_timeout_s`, 4403 for a role screens may not use."""
        try:
            async with asyncio.timeout(self.settings.auth_timeout_s):
                message = await ws.receive()
        except TimeoutError:
            await _close(ws, UNAUTHORIZED, "auth_timeout")
            return None
        except _GONE:
            return None
        if message["type"] == "websocket.disconnect":
            return None
        try:
            token = auth_message_token(message.get("text"), message.get("bytes"))
            credential = authorize(req.hall.credentials.find(token), SCREEN_ROLES)
        except QmsError as exc:
            await _close(ws, FORBIDDEN if isinstance(exc, Forbidden) else UNAUTHORIZED, exc.code)
            return None
        if self.closing:
            await _close(ws, GOING_AWAY, "server shutting down; reconnect")
            return None
        return dataclasses.replace(req, credential=credential)

    async def serve(self, ws: WebSocket, req: ScreenRequest) -> None:
        """Run one accepted, authenticated screen until it leaves or is stopped."""
        assert req.credential is not None
        hall_id = req.hall.config.id
        hub = self.hub(hall_id)
        sub = Subscriber(req.fmt, None, self.settings.hub.queue_frames)
        gauge = metrics.SCREENS.labels(hall_id, req.page.value)
        gauge.inc()
        self._sessions += 1
        self._idle.clear()
        reason = "client"
        try:
            try:
                if req.screen is not None:
                    sub.presence = self._presence_of(req, req.credential)
                    recorded = await self._presence[hall_id].record([sub.presence], _now_ms())
                    if not recorded:
                        metrics.SCREENS_UNRECORDED.labels(hall_id).inc()
                first = await hub.join(sub, req.since)
            except Unavailable:
                sub.stop(TRY_AGAIN_LATER, "events unavailable; reconnect later")
                reason = "redis_unavailable"
            else:
                if self.closing:
                    # It joined while close_all was stopping the others.
                    sub.stop(GOING_AWAY, "server shutting down; reconnect")
                await _run_session(ws, sub, first)
                if sub.stop_code is not None:
                    reason = _reason(sub.stop_code)
        finally:
            hub.leave(sub)
            gauge.dec()
            self._sessions -= 1
            if self._sessions == 0:
                self._idle.set()
            metrics.SCREENS_CLOSED.labels(hall_id, reason).inc()
        if sub.stop_code is not None:
            await _close_or_abort(ws, sub.stop_code, sub.stop_reason, self.settings.close_grace_s)

    def _presence_of(self, req: ScreenRequest, credential: Credential) -> ScreenPresence:
        """A named screen's presence; its owner is the credential's label
        (which needs the deployment's key: Unavailable until it is read)."""
        assert req.screen is not None
        owner = req.hall.credentials.label(credential)
        now = _now_ms()
        return ScreenPresence(
            req.screen, req.page, req.window, self.settings.replica, now, now, owner
        )

    async def _refresh_presence(self) -> None:
        while True:
            await asyncio.sleep(self.settings.presence_interval_s)
            for hall_id, hub in list(self._hubs.items()):
                screens = [s.presence for s in hub.subscribers if s.presence is not None]
                if not screens:
                    continue
                try:
                    await self._presence[hall_id].record(screens, _now_ms())
                except Unavailable:
                    log.warning("hall %s: cannot record screen presence", hall_id)
                except Exception:
                    # Presence must not stop for good over one bad round.
                    log.exception("hall %s: recording screen presence failed", hall_id)


async def _run_session(ws: WebSocket, sub: Subscriber, first: list[Frame]) -> None:
    """Send until the screen leaves, a send fails or the hub stops `sub`."""
    receiver = asyncio.create_task(_drain(ws))
    stopped = asyncio.create_task(sub.stopped())
    tasks = (receiver, stopped)
    try:
        text = sub.fmt is Format.JSON
        try:
            for frame in first:
                await _write(ws, frame, sub.fmt, text)
        except _GONE:
            return
        first.clear()  # a snapshot is large; do not keep it for the session

        async def sink(frame: Frame) -> None:
            await _write(ws, frame, sub.fmt, text)

        sub.start(sink, _direct_write(ws))
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await sub.aclose()
    # A screen that vanished mid-send is routine; anything else is a bug.
    if sub.lost is not None and not isinstance(sub.lost, _GONE):
        log.error("screen session failed", exc_info=sub.lost)


def _direct_write(ws: WebSocket) -> DirectWrite | None:
    extensions = ws.scope.get("extensions") or {}
    direct = extensions.get(DIRECT_WRITE_EXTENSION)
    return cast(DirectWrite, direct) if callable(direct) else None


async def _write(ws: WebSocket, frame: Frame, fmt: Format, text: bool) -> None:
    data = frame.encoded(fmt)
    if text:
        await ws.send_text(cast(str, data))
    else:
        await ws.send_bytes(cast(bytes, data))


async def _drain(ws: WebSocket) -> None:
    """Read until the screen goes; screens have nothing to say."""
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return


async def _close(ws: WebSocket, code: int, reason: str) -> None:
    with contextlib.suppress(RuntimeError, WebSocketDisconnect, OSError):
        await ws.close(code, reason)


async def _close_or_abort(ws: WebSocket, code: int, reason: str, grace_s: float) -> None:
    """Close a screen (too slow for its frames, or at shutdown), or reset its
    connection if the close frame cannot go out within `grace_s`. A screen that reads nothing
    cannot take a close frame either: the close would wait for it for as long
    as its TCP stack answers, holding the socket, its kernel buffers and this
    task (found by `loadtests.ws_bench --stalled`)."""
    try:
        async with asyncio.timeout(grace_s):
            await _close(ws, code, reason)
    except TimeoutError:
        abort = (ws.scope.get("extensions") or {}).get(ABORT_EXTENSION)
        if callable(abort):
            abort()


# What sending to a socket that is already gone raises, depending on when
# (uvicorn's ClientDisconnected is an OSError).
_GONE = (WebSocketDisconnect, OSError, RuntimeError)


def _reason(code: int) -> str:
    return {GOING_AWAY: "shutdown", TRY_AGAIN_LATER: "too_slow"}.get(code, str(code))


def _now_ms() -> int:
    return int(time.time() * 1000)


def _observe_lag(event: Event) -> None:
    metrics.EVENT_LAG.observe(max(0.0, time.time() - event.at_ms / 1000))


# --------------------------------------------------------------- handshake


def parse_request(
    halls: Mapping[str, Hall],
    hall_id: str,
    query: Mapping[str, str],
    bearer: str | None,
) -> ScreenRequest:
    """Validate a handshake (pure): the hall, the credential, the options.

    Raises the contract's errors: 404 unknown hall or window, 401/403 for
    the token, 422 for a bad option. With `auth=message` the credential is
    not looked for here (the request's `credential` is None): the socket's
    first message brings it (`Gateway.authenticate`).
    """
    hall = halls.get(hall_id)
    if hall is None:
        raise NotFound("hall_not_found", f"There is no hall {hall_id!r} here.")
    auth = query.get("auth")
    if auth is not None and auth != AUTH_BY_MESSAGE:
        raise Invalid("invalid_auth", "auth must be 'message' (the token in the first message).")
    credential = None
    if auth is None:
        credential = authorize(hall.credentials.find(query.get("token") or bearer), SCREEN_ROLES)
    try:
        fmt = Format(query.get("format", Format.JSON.value))
    except ValueError:
        raise Invalid("invalid_format", "format must be json or msgpack.") from None
    since: int | None = None
    raw_since = query.get("since")
    if raw_since is not None and raw_since != "":
        if not raw_since.isascii() or not raw_since.isdigit() or len(raw_since) > 18:
            raise Invalid("invalid_since", "since must be an event number (0 or more).")
        since = int(raw_since)
    try:
        page = ScreenPage(query.get("page", ScreenPage.OTHER.value))
    except ValueError:
        raise Invalid(
            "invalid_page", "page must be display, strip, console, kiosk or other."
        ) from None
    window = query.get("window") or None
    if window is not None and window not in hall.config.window_by_id:
        raise NotFound("window_not_found", f"This hall has no window {window!r}.")
    screen = query.get("screen") or None
    if screen is not None and not _SCREEN_ID.fullmatch(screen):
        raise Invalid("invalid_screen", "screen must be 1-64 of A-Z a-z 0-9 . _ : -")
    return ScreenRequest(hall, fmt, since, page, window, screen, credential)


def auth_message_token(text: str | None, data: bytes | None) -> str:
    """The token of an `auth=message` socket's first message (pure):
    `{"type": "auth", "token": "…"}` as JSON, in a text frame or a binary one
    (UTF-8). Raises Unauthorized for anything else."""
    try:
        doc = json.loads(text if text is not None else (data or b"").decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        doc = None
    token = doc.get("token") if isinstance(doc, dict) and doc.get("type") == "auth" else None
    if not isinstance(token, str) or not token:
        raise Unauthorized(
            "unauthorized", 'The first message must be {"type": "auth", "token": "…"}.'
        )
    return token


def gateway_routes(
    gateway_of: Callable[[WebSocket], Gateway],
    deny: Denial,
    bearer_of: Callable[[WebSocket], str | None],
) -> list[WebSocketRoute]:
    """The WebSocket route. The web layer supplies how to find the gateway
    in the app's state and how to answer a refused handshake."""

    async def endpoint(ws: WebSocket) -> None:
        gateway = gateway_of(ws)
        if gateway.closing:
            await deny(ws, Unavailable("shutting_down", "This replica is shutting down."))
            return
        try:
            req = parse_request(
                gateway.halls, ws.path_params["hall"], ws.query_params, bearer_of(ws)
            )
        except QmsError as exc:
            await deny(ws, exc)
            return
        await ws.accept()
        if req.credential is None:
            authenticated = await gateway.authenticate(ws, req)
            if authenticated is None:
                return
            req = authenticated
        await gateway.serve(ws, req)

    return [WebSocketRoute("/ws/halls/{hall}/display", endpoint)]
