"""Screens authenticate without a secret in a URL (`auth=message`: the
token in the socket's first message), and no log line qms or uvicorn writes
holds a query string or a token, whichever way a screen or a page got it."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from displays.gateway import GatewaySettings
from queue_core.config import HallConfig
from tests.live import LiveServer, live_server, post

pytestmark = pytest.mark.redis

DISPLAY = "display-token"
KIOSK = "kiosk-token"
CLERK1 = "clerk-1-token"
MANAGER = "manager-token"


@pytest.fixture
async def live(hall_config: HallConfig, redis_url: str) -> AsyncIterator[LiveServer]:
    async with live_server([hall_config], redis_url) as server:
        yield server


def by_message_url(live: LiveServer, hall: str, **query: str | int) -> str:
    params = "&".join(f"{k}={v}" for k, v in {"auth": "message", **query}.items())
    return f"{live.ws}/ws/halls/{hall}/display?{params}"


def auth(token: str) -> str:
    return json.dumps({"type": "auth", "token": token})


async def frame(ws: ClientConnection) -> dict[str, Any]:
    doc = json.loads(await ws.recv())
    assert isinstance(doc, dict)
    return doc


async def closed_code(ws: ClientConnection) -> tuple[int | None, str | None]:
    """The close code and reason the server sent, once it closes; it must
    send nothing before."""
    with pytest.raises(ConnectionClosed) as closed:
        await ws.recv()
    rcvd = closed.value.rcvd
    return (rcvd.code, rcvd.reason) if rcvd is not None else (None, None)


async def test_the_token_in_the_first_message_opens_the_socket(
    live: LiveServer, hall_config: HallConfig
) -> None:
    hall = hall_config.id
    await post(live, hall, "/windows/1/open", CLERK1)
    async with connect(by_message_url(live, hall, page="display", screen="east")) as ws:
        await ws.send(auth(DISPLAY))
        snap = await frame(ws)
        ticket = await post(live, hall, "/tickets", KIOSK, service="social-security")
        issued = await frame(ws)
    assert snap["type"] == "snapshot" and snap["seq"] == 1
    assert issued["type"] == "issued" and issued["seq"] == 2
    assert issued["number"] == ticket["number"]


async def test_resume_works_the_same_with_the_token_in_a_message(
    live: LiveServer, hall_config: HallConfig
) -> None:
    hall = hall_config.id
    first = await post(live, hall, "/tickets", KIOSK, service="social-security")
    second = await post(live, hall, "/tickets", KIOSK, service="social-security")
    async with connect(by_message_url(live, hall, since=1)) as ws:
        await ws.send(auth(MANAGER))
        replay = await frame(ws)
    assert (replay["type"], replay["seq"], replay["number"]) == ("issued", 2, second["number"])
    assert first["number"] != second["number"]


@pytest.mark.parametrize(
    ("message", "code", "reason"),
    [
        (auth("nope"), 4401, "unauthorized"),
        (auth(KIOSK), 4403, "forbidden"),
        (DISPLAY, 4401, "unauthorized"),  # the bare token: not the auth message
        (json.dumps({"type": "hello", "token": DISPLAY}), 4401, "unauthorized"),
        # A lone surrogate (valid JSON, not valid Unicode): 1011 and an
        # unhandled error before the fix (found by tests/test_fuzz_live.py).
        (auth("\ud800"), 4401, "unauthorized"),
    ],
)
async def test_a_refused_first_message_closes_with_a_code_the_page_can_see(
    live: LiveServer, hall_config: HallConfig, message: str, code: int, reason: str
) -> None:
    async with connect(by_message_url(live, hall_config.id)) as ws:
        await ws.send(message)
        assert await closed_code(ws) == (code, reason)


async def test_a_text_frame_that_is_not_utf8_is_closed_1007_with_no_error_logged(
    live: LiveServer, hall_config: HallConfig
) -> None:
    """uvicorn logged each one at ERROR with a traceback (found by
    tests/test_fuzz_live.py): any client could fill the log with them."""
    with capturing() as records:
        async with connect(by_message_url(live, hall_config.id)) as ws:
            await ws.send(b"\xed\xa0\x80", text=True)  # a lone surrogate, UTF-8-style
            assert (await closed_code(ws))[0] == 1007
        assert live.gateway.screens(hall_config.id) == 0
    assert [r.getMessage() for r in records.records if r.levelno >= logging.WARNING] == []


async def test_a_socket_that_sends_no_token_gets_nothing_and_is_closed(
    hall_config: HallConfig, redis_url: str
) -> None:
    settings = GatewaySettings(auth_timeout_s=0.2)
    async with live_server([hall_config], redis_url, gateway_settings=settings) as live:
        await post(live, hall_config.id, "/tickets", KIOSK, service="social-security")
        async with connect(by_message_url(live, hall_config.id, screen="silent")) as ws:
            # No frame (no snapshot, no event) comes before the close.
            assert await closed_code(ws) == (4401, "auth_timeout")
        assert live.gateway.screens(hall_config.id) == 0


async def test_the_handshake_checks_everything_but_the_token(
    live: LiveServer, hall_config: HallConfig
) -> None:
    for query, status in [({"format": "xml"}, 422), ({"window": "77"}, 404), ({"auth": "x"}, 422)]:
        params = "&".join(f"{k}={v}" for k, v in query.items())
        with pytest.raises(InvalidStatus) as refused:
            async with connect(by_message_url(live, hall_config.id) + "&" + params):
                pass
        assert refused.value.response.status_code == status
    # Without auth=message, a socket with no token is refused at the handshake, as before.
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{live.ws}/ws/halls/{hall_config.id}/display"):
            pass
    assert refused.value.response.status_code == 401


# ------------------------------------------------------------------- logs


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self) -> list[str]:
        """Each record as a handler would write it: its message, its
        arguments and its traceback, if any."""
        out = []
        for r in self.records:
            text = f"{r.name} {r.getMessage()} {r.args!r}"
            if r.exc_info:
                text += logging.Formatter().formatException(r.exc_info)
            out.append(text)
        return out


@contextlib.contextmanager
def capturing() -> Iterator[Records]:
    """Every record logged in the block. uvicorn's loggers do not propagate
    to the root, so the handler goes on them too; and after the server's
    config, which replaces their handlers."""
    handler = Records()
    loggers = [logging.getLogger(n) for n in ("", "uvicorn", "uvicorn.access")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield handler
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


async def use_every_way_in(live: LiveServer, hall: str) -> None:
    """Screens and pages given a token every way there is."""
    # The old way: the token in the socket's URL (kept for other programs).
    async with connect(f"{live.ws}/ws/halls/{hall}/display?token={DISPLAY}&screen=a") as ws:
        assert (await frame(ws))["type"] == "snapshot"
    # ... refused.
    with pytest.raises(InvalidStatus):
        async with connect(f"{live.ws}/ws/halls/{hall}/display?token=not-a-token"):
            pass
    # The pages' way: the token in the first message.
    async with connect(by_message_url(live, hall, page="display", screen="b")) as ws:
        await ws.send(auth(MANAGER))
        assert (await frame(ws))["type"] == "snapshot"
    # Pages opened with the token in their own address (a hall PC's start).
    pages = [
        f"/halls/{hall}/display?token={DISPLAY}&screen=hall-east",
        f"/halls/{hall}/windows/1/strip?token={DISPLAY}",
        f"/halls/{hall}/windows/1?token={CLERK1}",
        f"/halls/{hall}/dashboard?token={MANAGER}",
        f"/halls/{hall}/kiosk?token={KIOSK}",
    ]
    for path in pages:
        assert (await live.api.get(path)).status_code == 200
    # An API answer with a query string, and a refused one.
    r = await live.api.get(
        f"/api/v1/halls/{hall}/audit?limit=5", headers={"Authorization": f"Bearer {MANAGER}"}
    )
    assert r.status_code == 200
    assert (await live.api.get(f"/api/v1/halls/{hall}/snapshot?token={DISPLAY}")).status_code == 401


async def test_no_log_line_holds_a_query_string_or_a_token(
    hall_config: HallConfig, redis_url: str
) -> None:
    hall = hall_config.id
    secrets = [DISPLAY, MANAGER, CLERK1, KIOSK, "not-a-token"]
    logs = contextlib.ExitStack()  # left after the server, to hear its shutdown too
    with logs:
        async with live_server([hall_config], redis_url, log_level="info", access_log=True) as live:
            records = logs.enter_context(capturing())
            await use_every_way_in(live, hall)

    lines = records.lines()
    # Logging was on: the handshakes and the requests were logged ...
    assert any("WebSocket /ws/halls/" in line and "[accepted]" in line for line in lines)
    assert any(f"GET /halls/{hall}/display" in line for line in lines)
    assert any(f"GET /api/v1/halls/{hall}/audit" in line for line in lines)
    # ... without a query string or a token.
    leaks = [line for line in lines if "?" in line or any(s in line for s in secrets)]
    assert leaks == []


async def test_no_log_line_holds_a_ticket_id_or_an_appointment_code(
    hall_config: HallConfig, redis_url: str
) -> None:
    hall = hall_config.id
    base = f"/api/v1/halls/{hall}"
    logs = contextlib.ExitStack()
    with logs:
        async with live_server([hall_config], redis_url, log_level="info", access_log=True) as live:
            records = logs.enter_context(capturing())
            ticket = await post(live, hall, "/tickets", KIOSK, service="social-security")
            tid = ticket["id"]
            booked = await post(
                live,
                hall,
                "/appointments",
                KIOSK,
                service="social-security",
                start="2026-11-21T11:00",
            )
            code = booked["code"]
            for path in (
                f"{base}/tickets/{tid}",
                f"{base}/tickets/{tid}/rating",
                f"/halls/{hall}/tickets/{tid}",
                f"/halls/{hall}/tickets/{tid}/qr.svg",
                f"/halls/{hall}/tickets/{tid}?lang=en",
            ):
                assert (await live.api.get(path)).status_code == 200, path
            await post(live, hall, f"/tickets/{tid}/cancel", None)
            await post(live, hall, f"/appointments/{code}/check-in", KIOSK)

    lines = records.lines()
    assert any(f"GET {base}/tickets/~" in line for line in lines)
    assert any(f"POST {base}/appointments/~" in line for line in lines)
    leaks = [line for line in lines if tid in line or code in line]
    assert leaks == []
    # One id, one digest, wherever it was logged: a ticket's requests can be followed.
    digests = {line.split("/tickets/~")[1][:8] for line in lines if "/tickets/~" in line}
    assert len(digests) == 1
