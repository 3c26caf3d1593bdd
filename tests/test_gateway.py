"""The screen gateway over real sockets: snapshot, live events, resume,
formats, auth, slow screens, replicas, presence and shutdown."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from displays.codec import decode
from displays.gateway import GatewaySettings
from displays.hub import HubSettings
from qms.embedded_redis import EmbeddedRedis
from queue_core.config import HallConfig
from queue_core.keys import HallKeys
from queue_core.presence import PresenceStore
from queue_core.redis_client import RedisClient
from queue_core.scripts import Scripts
from tests.live import LiveServer, live_server, post
from tests.support import write_hall
from tests.test_cli import free_port, qms_env, running_qms
from tests.test_failover import until

pytestmark = pytest.mark.redis

DISPLAY = "display-token"
KIOSK = "kiosk-token"
CLERK1 = "clerk-1-token"


@pytest.fixture
async def live(hall_config: HallConfig, redis_url: str) -> AsyncIterator[LiveServer]:
    async with live_server([hall_config], redis_url) as server:
        yield server


def ws_url(live: LiveServer, hall: str, **query: str | int) -> str:
    params = "&".join(f"{k}={v}" for k, v in {"token": DISPLAY, **query}.items())
    return f"{live.ws}/ws/halls/{hall}/display?{params}"


async def frame(ws: ClientConnection) -> dict[str, Any]:
    data = await ws.recv()
    doc = msgpack.unpackb(data) if isinstance(data, bytes) else json.loads(data)
    assert isinstance(doc, dict)
    return doc


async def test_snapshot_then_live_events(live: LiveServer, hall_config: HallConfig) -> None:
    hall = hall_config.id
    await post(live, hall, "/windows/1/open", CLERK1)
    async with connect(ws_url(live, hall)) as ws:
        snap = await frame(ws)
        assert snap["type"] == "snapshot"
        assert snap["seq"] == 1
        assert [w["status"] for w in snap["windows"] if w["id"] == "1"] == ["open"]
        ticket = await post(live, hall, "/tickets", KIOSK, service="social-security")
        issued = await frame(ws)
        await post(live, hall, "/windows/1/call-next", CLERK1)
        called = await frame(ws)
    assert issued["type"] == "issued" and issued["seq"] == 2
    assert issued["number"] == ticket["number"] and issued["window"] is None
    assert issued["waiting"] == {"natural": 1, "legal": 0, "police": 0}
    assert called == {
        "type": "called",
        "seq": 3,
        "at": called["at"],
        "number": ticket["number"],
        "window": "1",
        "service": "social-security",
        "waiting": {"natural": 0, "legal": 0, "police": 0},
        "reason": {"code": "place", "text": "按取号顺序", "ahead_of": 0},
    }
    assert called["at"].endswith("+08:00")


async def issue(live: LiveServer, hall: str, n: int = 1) -> list[dict[str, Any]]:
    return [await post(live, hall, "/tickets", KIOSK, service="social-security") for _ in range(n)]


async def frames(ws: ClientConnection, n: int) -> list[dict[str, Any]]:
    return [await frame(ws) for _ in range(n)]


async def test_resume_with_since_gets_exactly_the_missed_events(
    live: LiveServer, hall_config: HallConfig
) -> None:
    hall = hall_config.id
    async with connect(ws_url(live, hall)) as ws:
        snap = await frame(ws)
        await issue(live, hall, 2)
        seen = await frames(ws, 2)
    assert [f["seq"] for f in seen] == [snap["seq"] + 1, snap["seq"] + 2]
    last = seen[-1]["seq"]
    missed = await issue(live, hall, 3)  # while the screen is away
    async with connect(ws_url(live, hall, since=last)) as ws:
        replay = await frames(ws, 3)
        live_ticket = (await issue(live, hall))[0]
        after = await frame(ws)
    assert [f["type"] for f in replay] == ["issued"] * 3
    assert [f["seq"] for f in replay] == [last + 1, last + 2, last + 3]
    assert [f["number"] for f in replay] == [t["number"] for t in missed]
    assert after["seq"] == last + 4 and after["number"] == live_ticket["number"]


async def test_resume_older_than_memory_is_read_from_the_log(
    hall_config: HallConfig, redis_url: str
) -> None:
    # A ring of 2: a screen 5 events behind is replayed from Redis, not memory.
    settings = GatewaySettings(hub=HubSettings(ring_size=2))
    async with live_server([hall_config], redis_url, gateway_settings=settings) as live:
        hall = hall_config.id
        async with connect(ws_url(live, hall)) as ws:
            await frame(ws)
            await issue(live, hall, 6)
            seqs = [f["seq"] for f in await frames(ws, 6)]
        async with connect(ws_url(live, hall, since=seqs[0])) as ws:
            replay = await frames(ws, 5)
    assert [f["seq"] for f in replay] == seqs[1:]


async def test_resume_at_the_head_gets_a_heartbeat_then_the_next_event(
    live: LiveServer, hall_config: HallConfig
) -> None:
    hall = hall_config.id
    await issue(live, hall, 2)
    async with connect(ws_url(live, hall)) as ws:
        head = (await frame(ws))["seq"]
    async with connect(ws_url(live, hall, since=head)) as ws:
        beat = await frame(ws)
        await issue(live, hall)
        nxt = await frame(ws)
    assert beat["type"] == "heartbeat" and beat["seq"] == head
    assert nxt["type"] == "issued" and nxt["seq"] == head + 1


async def test_since_trimmed_from_the_log_gets_a_snapshot(
    live: LiveServer, hall_config: HallConfig, redis: RedisClient, redis_url: str
) -> None:
    hall = hall_config.id
    await issue(live, hall, 5)
    # Events 1-3 leave the log. A second replica, whose memory holds only
    # the last 2 events, must answer since=1 with a snapshot.
    await redis.xtrim(HallKeys(hall).events, maxlen=2, approximate=False)
    settings = GatewaySettings(hub=HubSettings(ring_size=2))
    async with (
        live_server([hall_config], redis_url, gateway_settings=settings) as b,
        connect(ws_url(b, hall, since=1)) as ws,
    ):
        first = await frame(ws)
    assert first["type"] == "snapshot" and first["seq"] == 5
    assert sum(g["waiting"] for g in first["groups"]) == 5


async def test_since_too_far_behind_gets_a_snapshot(
    hall_config: HallConfig, redis_url: str
) -> None:
    settings = GatewaySettings(hub=HubSettings(max_replay=3))
    async with live_server([hall_config], redis_url, gateway_settings=settings) as live:
        await issue(live, hall_config.id, 5)
        async with connect(ws_url(live, hall_config.id, since=1)) as ws:
            first = await frame(ws)
        async with connect(ws_url(live, hall_config.id, since=2)) as ws:
            replay = await frames(ws, 3)
    assert first["type"] == "snapshot" and first["seq"] == 5
    assert [f["seq"] for f in replay] == [3, 4, 5]


async def test_since_beyond_the_hall_gets_a_snapshot(
    live: LiveServer, hall_config: HallConfig
) -> None:
    # A screen that saw events Redis no longer has (Redis lost its data).
    await issue(live, hall_config.id, 2)
    async with connect(ws_url(live, hall_config.id, since=99)) as ws:
        first = await frame(ws)
    assert first["type"] == "snapshot" and first["seq"] == 2


async def test_msgpack_frames_decode(live: LiveServer, hall_config: HallConfig) -> None:
    hall = hall_config.id
    async with connect(ws_url(live, hall, format="msgpack")) as ws:
        raw_snapshot = await ws.recv()
        ticket = (await issue(live, hall))[0]
        raw_event = await ws.recv()
    assert isinstance(raw_snapshot, bytes) and isinstance(raw_event, bytes)
    snapshot = decode(raw_snapshot)
    event = decode(raw_event)
    assert snapshot["type"] == "snapshot" and snapshot["seq"] == 0
    assert [w["name"] for w in snapshot["windows"]][:1] == ["1号窗口"]
    assert event["type"] == "issued" and event["number"] == ticket["number"]
    assert event["seq"] == 1


@pytest.mark.parametrize(
    ("query", "headers", "status", "code"),
    [
        ({}, {}, 401, "unauthorized"),
        ({"token": "nope"}, {}, 401, "unauthorized"),
        ({"token": KIOSK}, {}, 403, "forbidden"),
        ({"token": DISPLAY, "format": "xml"}, {}, 422, "invalid_format"),
        ({"token": DISPLAY, "since": "-1"}, {}, 422, "invalid_since"),
        ({"token": DISPLAY, "since": "x"}, {}, 422, "invalid_since"),
        ({"token": DISPLAY, "screen": "a%20b"}, {}, 422, "invalid_screen"),
        ({"token": DISPLAY, "page": "tv"}, {}, 422, "invalid_page"),
        ({"token": DISPLAY, "window": "77"}, {}, 404, "window_not_found"),
    ],
)
async def test_bad_handshakes_are_refused_with_the_error_shape(
    live: LiveServer,
    hall_config: HallConfig,
    query: dict[str, str],
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    params = "&".join(f"{k}={v}" for k, v in query.items())
    url = f"{live.ws}/ws/halls/{hall_config.id}/display?{params}"
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, additional_headers=headers):
            pass
    response = refused.value.response
    assert response.status_code == status
    assert json.loads(response.body or b"{}")["error"]["code"] == code


async def test_unknown_hall_is_404(live: LiveServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(ws_url(live, "no-such-hall")):
            pass
    assert refused.value.response.status_code == 404


async def test_bearer_header_works_instead_of_the_query(
    live: LiveServer, hall_config: HallConfig
) -> None:
    url = f"{live.ws}/ws/halls/{hall_config.id}/display"
    async with connect(url, additional_headers={"Authorization": f"Bearer {DISPLAY}"}) as ws:
        assert (await frame(ws))["type"] == "snapshot"


async def test_window_events_carry_the_status(live: LiveServer, hall_config: HallConfig) -> None:
    hall = hall_config.id
    async with connect(ws_url(live, hall)) as ws:
        await frame(ws)
        await post(live, hall, "/windows/1/open", CLERK1)
        await post(live, hall, "/windows/1/pause", CLERK1)
        opened, paused = await frames(ws, 2)
    assert opened["type"] == "window" and opened["status"] == "open"
    assert paused["status"] == "paused"
    assert opened["window"] == "1" and opened["number"] is None and opened["service"] is None


async def test_seq_rises_by_one_for_every_event_under_concurrent_operations(
    live: LiveServer, hall_config: HallConfig
) -> None:
    hall = hall_config.id
    await post(live, hall, "/windows/1/open", CLERK1)
    async with connect(ws_url(live, hall)) as ws:
        start = (await frame(ws))["seq"]
        async with live.client() as client:
            auth = {"Authorization": f"Bearer {KIOSK}"}
            body = {"service": "social-security"}
            replies = await asyncio.gather(
                *(client.post(f"/api/v1/halls/{hall}/tickets", json=body, headers=auth)
                  for _ in range(40))
            )  # fmt: skip
        assert all(r.status_code == 201 for r in replies)
        got = await frames(ws, 40)
    assert [f["seq"] for f in got] == list(range(start + 1, start + 41))
    assert sorted(f["number"] for f in got) == sorted(r.json()["number"] for r in replies)


async def test_a_slow_screen_is_cut_off_while_others_keep_receiving(
    hall_config: HallConfig, redis_url: str
) -> None:
    hall = hall_config.id
    settings = GatewaySettings(hub=HubSettings(queue_frames=4), close_grace_s=0.3)
    async with live_server(
        [hall_config], redis_url, gateway_settings=settings, ws_send_buffer=4096
    ) as live:
        # The slow screen reads nothing and has a tiny receive buffer, so the
        # server's writes back up, its queue fills and it must be dropped.
        slow_sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Before connecting, so the window the client advertises stays small.
        slow_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow_sock.connect(("127.0.0.1", live.port))
        async with (
            connect(
                ws_url(live, hall, screen="slow"), sock=slow_sock, max_queue=1, ping_interval=None
            ) as slow,
            connect(ws_url(live, hall, screen="fast")) as fast,
        ):
            await frame(fast)
            total = 0
            while live.gateway.screens(hall) > 1:
                await issue(live, hall, 50)
                total += 50
                got = await frames(fast, 50)
                assert [f["seq"] for f in got] == list(range(total - 49, total + 1))
            # The fast screen is still served after the slow one was dropped.
            await issue(live, hall)
            assert (await frame(fast))["seq"] == total + 1
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await slow.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013


async def test_a_screen_that_reads_nothing_is_reset_once_dropped(
    hall_config: HallConfig, redis_url: str
) -> None:
    """A screen that never reads cannot take its 1013 either: once dropped,
    its connection is reset after `close_grace_s`. Before, the close waited
    for it for as long as its TCP stack answered, holding the socket, its
    buffers and the task closing it (found by `loadtests.ws_bench --stalled`)."""
    hall = hall_config.id
    settings = GatewaySettings(hub=HubSettings(queue_frames=4), close_grace_s=0.3)
    async with live_server(
        [hall_config], redis_url, gateway_settings=settings, ws_send_buffer=4096
    ) as live:
        stalled = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", live.port))
        stalled.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(
            stalled,
            f"GET /ws/halls/{hall}/display?token={DISPLAY} HTTP/1.1\r\nHost: x\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".encode(),
        )
        try:
            async with asyncio.timeout(30):
                await until(lambda: live.gateway.screens(hall) == 1, 10, "joined")
                while live.gateway.screens(hall) == 1:  # never read: it must be dropped
                    await issue(live, hall, 50)
            # Then the server resets the connection, what was unsent with it,
            # while the screen still reads nothing (before: never, the server
            # waiting on its close; then a FIN queued behind unread data).
            await until(
                lambda: stalled.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNRESET,
                10,
                "reset",
            )
        finally:
            stalled.close()


async def test_shutdown_closes_screens_with_1001(hall_config: HallConfig, redis_url: str) -> None:
    async with live_server([hall_config], redis_url) as live:
        ws = await connect(ws_url(live, hall_config.id))
        await frame(ws)
    with pytest.raises(ConnectionClosed) as closed:
        await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001


async def test_presence_is_recorded_with_a_ttl(
    live: LiveServer, hall_config: HallConfig, redis: RedisClient
) -> None:
    keys = HallKeys(hall_config.id)
    url = ws_url(live, hall_config.id, screen="hall-main", page="strip", window="1")
    async with connect(url) as ws:
        await frame(ws)  # presence is written before the first frame
        ttl = await redis.ttl(keys.screen("hall-main"))
        doc = json.loads(await redis.get(keys.screen("hall-main")) or "{}")
        store = PresenceStore(redis, Scripts.register(redis), hall_config.id, ttl_s=45)
        online = await store.online()
    assert 0 < ttl <= GatewaySettings().presence_ttl_s
    assert doc["screen"] == "hall-main" and doc["page"] == "strip" and doc["window"] == "1"
    assert doc["replica"] == live.gateway.settings.replica
    assert [p.screen for p in online] == ["hall-main"]
    assert "hall-main" in await store.last_seen()


@pytest.mark.slow
async def test_two_processes_share_one_redis(
    hall_config: HallConfig, redis_url: str, tmp_path: Path
) -> None:
    """A call made through replica A (a `qms serve` process) reaches a
    screen connected to replica B (this process)."""
    (tmp_path / "a").mkdir()
    config_path = write_hall(tmp_path / "a", hall=hall_config.id)
    port = free_port()
    args = ["serve", "--config", config_path, "--port", port]
    clerk = {"Authorization": f"Bearer {CLERK1}"}
    kiosk = {"Authorization": f"Bearer {KIOSK}"}
    hall = hall_config.id
    with running_qms(args, cwd=tmp_path / "a", port=port, env=qms_env(redis_url)) as a_process:
        async with (
            live_server([hall_config], redis_url) as b,
            connect(ws_url(b, hall)) as ws,
            httpx.AsyncClient(base_url=a_process.base_url, timeout=10) as a,
        ):
            await frame(ws)
            r = await a.post(f"/api/v1/halls/{hall}/windows/1/open", headers=clerk)
            assert r.status_code == 200
            body = {"service": "social-security"}
            r = await a.post(f"/api/v1/halls/{hall}/tickets", json=body, headers=kiosk)
            number = r.json()["number"]
            r = await a.post(f"/api/v1/halls/{hall}/windows/1/call-next", headers=clerk)
            assert r.status_code == 200
            opened, issued, called = await frames(ws, 3)
    assert opened["type"] == "window"
    assert issued["number"] == number
    assert called["type"] == "called" and called["number"] == number and called["window"] == "1"


async def test_the_reader_survives_a_redis_restart(hall_config: HallConfig, tmp_path: Path) -> None:
    data = tmp_path / "redis"
    data.mkdir()
    server = EmbeddedRedis.start(data, fsync="always")
    try:
        settings = GatewaySettings(hub=HubSettings(heartbeat_s=1.0, backoff_max_s=0.2))
        async with live_server([hall_config], server.url, gateway_settings=settings) as live:
            hall = hall_config.id
            async with connect(ws_url(live, hall)) as ws:
                await frame(ws)
                await issue(live, hall)
                assert (await frame(ws))["seq"] == 1
                server.stop()
                server = EmbeddedRedis.start(data, fsync="always")
                # The hub reconnects and resyncs the screen with a snapshot;
                # heartbeats may come first while it is reconnecting.
                resync = await next_of_type(ws, "snapshot")
                assert resync["seq"] == 1  # the AOF kept the event
                ticket = (await issue(live, hall))[0]
                after = await next_of_type(ws, "issued")
    finally:
        server.stop()
    assert after["seq"] == 2 and after["number"] == ticket["number"]


async def next_of_type(ws: ClientConnection, kind: str) -> dict[str, Any]:
    async with asyncio.timeout(30):
        while True:
            f = await frame(ws)
            if f["type"] == kind:
                return f


async def test_screens_joining_during_a_burst_see_no_gap_and_no_repeat(
    live: LiveServer, hall_config: HallConfig
) -> None:
    """60 screens connect while 120 tickets are being issued: each one's
    first frame is a snapshot at some seq S, then exactly S+1, S+2, … up to
    the last event, whatever moment it joined (one snapshot read may be
    shared by many of them)."""
    hall = hall_config.id
    total = 120

    async def screen() -> list[int]:
        async with connect(ws_url(live, hall)) as ws:
            first = await frame(ws)
            assert first["type"] == "snapshot"
            seqs = [first["seq"]]
            while seqs[-1] < total:
                f = await frame(ws)
                if f["type"] != "heartbeat":
                    seqs.append(f["seq"])
            return seqs

    async with asyncio.timeout(60):
        screens = []
        # Four concurrent issues, then two more screens start connecting,
        # while the previous ones are still mid-handshake.
        for _ in range(total // 4):
            screens += [asyncio.create_task(screen()) for _ in range(2)]
            await asyncio.gather(*(issue(live, hall) for _ in range(4)))
        results = await asyncio.gather(*screens)
    assert len(results) == 60
    for seqs in results:
        assert seqs == list(range(seqs[0], total + 1))
    # Some joined before the burst ended, so the test did exercise joins mid-burst.
    assert min(r[0] for r in results) < total


async def test_a_quiet_hall_sends_heartbeats_without_tripping_the_read_timeout(
    hall_config: HallConfig, redis_url: str
) -> None:
    # Each heartbeat is a blocking XREAD that returned empty: had its socket
    # timed out instead, the hub would have resynced the screen (a snapshot).
    settings = GatewaySettings(hub=HubSettings(heartbeat_s=0.3))
    async with (
        live_server([hall_config], redis_url, gateway_settings=settings) as live,
        connect(ws_url(live, hall_config.id)) as ws,
    ):
        snap = await frame(ws)
        beats = await frames(ws, 3)
    assert [b["type"] for b in beats] == ["heartbeat"] * 3
    assert {b["seq"] for b in beats} == {snap["seq"]}
    assert all(b["at"].endswith("+08:00") for b in beats)


async def test_the_reader_stops_when_its_last_screen_leaves_and_restarts(
    hall_config: HallConfig, redis_url: str
) -> None:
    settings = GatewaySettings(hub=HubSettings(heartbeat_s=0.2, linger_s=0))
    async with live_server([hall_config], redis_url, gateway_settings=settings) as live:
        hall = hall_config.id
        hub = live.gateway.hub(hall)
        async with connect(ws_url(live, hall)) as ws:
            await frame(ws)
            reader = hub.reader
            assert reader is not None
        await asyncio.wait_for(reader, 5)
        assert hub.reader is None
        await issue(live, hall)  # while no reader runs
        async with connect(ws_url(live, hall, since=0)) as ws:
            missed = await frame(ws)
            await issue(live, hall)
            fresh = await frame(ws)
    assert (missed["type"], missed["seq"]) == ("issued", 1)
    assert (fresh["type"], fresh["seq"]) == ("issued", 2)


async def test_connected_screens_are_counted_in_metrics(
    live: LiveServer, hall_config: HallConfig
) -> None:
    line = f'qms_screens_connected{{hall="{hall_config.id}",page="display"}}'

    async def gauge() -> float:
        text = (await live.api.get("/metrics")).text
        return float(next(ln for ln in text.splitlines() if ln.startswith(line)).split()[-1])

    async with connect(ws_url(live, hall_config.id, page="display")) as ws:
        await frame(ws)
        assert await gauge() == 1.0


async def test_a_refused_handshake_logs_no_error(
    live: LiveServer, hall_config: HallConfig, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(InvalidStatus):
        async with connect(f"{live.ws}/ws/halls/{hall_config.id}/display?token=nope"):
            pass
    # The refusal is logged by uvicorn at INFO; nothing may claim a failure.
    async with connect(ws_url(live, hall_config.id)) as ws:
        await frame(ws)  # the server has moved on to the next connection
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
