"""Screen presence stays bounded: anonymous sockets have none, named screens
are remembered only within the caps per hall and per credential, and the
public endpoints never read it, so they cost the same however many screens
a hall has."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio
from prometheus_client import REGISTRY
from websockets.asyncio.client import ClientConnection, connect

from displays.gateway import GatewaySettings
from qms.settings import Settings, SettingsError
from queue_core.config import HallConfig
from queue_core.keys import HallKeys
from queue_core.models import ScreenPage, ScreenPresence
from queue_core.presence import FORGET_AFTER_MS, PresenceCaps, PresenceStore
from queue_core.redis_client import RedisClient
from queue_core.scripts import Scripts
from tests.conftest import ApiKit
from tests.live import LiveServer, live_server, post

pytestmark = pytest.mark.redis

DISPLAY = "display-token"
MANAGER = "manager-token"
CLERK1 = "clerk-1-token"
KIOSK = "kiosk-token"

# Presence written every 0.1 s, so a test sees a refresh round soon.
FAST = GatewaySettings(presence_interval_s=0.1)


def ws_url(live: LiveServer, hall: str, token: str = DISPLAY, **query: str) -> str:
    params = "&".join(f"{k}={v}" for k, v in {"token": token, **query}.items())
    return f"{live.ws}/ws/halls/{hall}/display?{params}"


async def frame(ws: ClientConnection) -> dict[str, Any]:
    doc = json.loads(await ws.recv())
    assert isinstance(doc, dict)
    return doc


async def until(condition: Callable[[], bool | Awaitable[bool]], timeout_s: float = 10.0) -> None:
    """Wait until `condition` holds (checked every 20 ms), failing after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        held = condition()
        if held if isinstance(held, bool) else await held:
            return
        assert time.monotonic() < deadline, f"not within {timeout_s:g} s"
        await asyncio.sleep(0.02)


async def presence_keys(redis: RedisClient, keys: HallKeys) -> list[str]:
    """The hall's keys of presence: `screens`, `screen:<id>`, `screens-of:<owner>`."""
    found = [str(k) async for k in redis.scan_iter(match=keys.match_all(), count=1000)]
    return sorted(k for k in found if k.startswith(keys.screen("")[: -len(":")]))


async def remembered(redis: RedisClient, keys: HallKeys) -> list[str]:
    return sorted(str(i) for i in await redis.zrange(keys.screens, 0, -1))


async def refreshed_after(redis: RedisClient, keys: HallKeys, screen: str, ms: float) -> bool:
    """Whether a refresh round has written `screen`'s presence since `ms`."""
    return (await redis.zscore(keys.screens, screen) or 0) > ms


def unrecorded(hall: str) -> float:
    labels = {"hall": hall}
    return REGISTRY.get_sample_value("qms_screens_unrecorded_total", labels) or 0.0


async def test_anonymous_screens_leave_no_presence(
    hall_config: HallConfig, redis_url: str, redis: RedisClient
) -> None:
    hall, keys = hall_config.id, HallKeys(hall_config.id)
    async with contextlib.AsyncExitStack() as stack:
        live = await stack.enter_async_context(
            live_server([hall_config], redis_url, gateway_settings=FAST)
        )
        named = await stack.enter_async_context(connect(ws_url(live, hall, screen="named")))
        await frame(named)
        before = await presence_keys(redis, keys)
        joined = await redis.zscore(keys.screens, "named") or 0
        # Many sockets without `screen=`, the old way and the pages' way.
        anonymous = []
        for i in range(60):
            if i % 2:
                ws = await stack.enter_async_context(connect(ws_url(live, hall, page="display")))
            else:
                url = f"{live.ws}/ws/halls/{hall}/display?auth=message&page=strip&window=1"
                ws = await stack.enter_async_context(connect(url))
                await ws.send(json.dumps({"type": "auth", "token": MANAGER}))
            await frame(ws)
            anonymous.append(ws)
        assert live.gateway.screens(hall) == 61
        # A refresh round, with all of them connected, writes only the named one.
        await until(lambda: refreshed_after(redis, keys, "named", joined))
        assert await presence_keys(redis, keys) == before
        assert await remembered(redis, keys) == ["named"]


async def test_named_screens_beyond_the_caps_are_not_recorded(
    hall_config: HallConfig, redis_url: str, redis: RedisClient
) -> None:
    hall, keys = hall_config.id, HallKeys(hall_config.id)
    caps = PresenceCaps(per_hall=4, per_credential=2)
    settings = GatewaySettings(presence_interval_s=0.1, presence_caps=caps)
    async with contextlib.AsyncExitStack() as stack:
        live = await stack.enter_async_context(
            live_server([hall_config], redis_url, gateway_settings=settings)
        )

        async def join(token: str, screen: str) -> ClientConnection:
            ws = await stack.enter_async_context(connect(ws_url(live, hall, token, screen=screen)))
            assert (await frame(ws))["type"] == "snapshot"
            return ws

        screens = {
            "d1": await join(DISPLAY, "d1"),
            "d2": await join(DISPLAY, "d2"),
            "d3": await join(DISPLAY, "d3"),  # a third for the display token: over its cap
            "m1": await join(MANAGER, "m1"),
            "m2": await join(MANAGER, "m2"),  # the hall's fourth
            "c1": await join(CLERK1, "c1"),  # the clerk's first, but the hall is full
        }
        assert await remembered(redis, keys) == ["d1", "d2", "m1", "m2"]
        assert not await redis.exists(keys.screen("d3"), keys.screen("c1"))
        assert unrecorded(hall) == 2
        # The screens not recorded are served all the same.
        ticket = await post(live, hall, "/tickets", KIOSK, service="social-security")
        for ws in screens.values():
            assert (await frame(ws))["number"] == ticket["number"]

        # Refresh rounds keep the recorded ones and add no other.
        seen = {s: await redis.zscore(keys.screens, s) or 0 for s in ("d1", "d2", "m1", "m2")}
        for screen, at in seen.items():
            await until(functools.partial(refreshed_after, redis, keys, screen, at))
        assert await remembered(redis, keys) == ["d1", "d2", "m1", "m2"]
        assert not await redis.exists(keys.screen("d3"), keys.screen("c1"))
        assert await redis.exists(*(keys.screen(s) for s in seen)) == 4

        # A known screen that reconnects keeps its place, caps full or not.
        await screens["d1"].close()
        at = await redis.zscore(keys.screens, "d1") or 0
        await join(DISPLAY, "d1")
        assert await refreshed_after(redis, keys, "d1", at)
        assert await remembered(redis, keys) == ["d1", "d2", "m1", "m2"]
        assert unrecorded(hall) == 2


async def test_caps_count_screens_of_the_last_week_per_hall_and_per_owner(
    redis: RedisClient,
) -> None:
    hall = f"presence-{secrets.token_hex(4)}"
    keys = HallKeys(hall)
    store = PresenceStore(
        redis,
        Scripts.register(redis),
        hall,
        ttl_s=60,
        caps=PresenceCaps(per_hall=3, per_credential=2),
    )

    def screen(name: str, owner: str) -> ScreenPresence:
        return ScreenPresence(name, ScreenPage.DISPLAY, None, "r1", 0, 0, owner)

    t0 = 1_800_000_000_000
    try:
        # In one batch: a's owner takes two, the third of a's is not recorded,
        # b's owner takes the hall's last place, and then the hall is full.
        batch = [screen("a1", "a"), screen("a2", "a"), screen("a3", "a"), screen("b1", "b")]
        assert await store.record([*batch, screen("c1", "c")], t0) == 3
        assert await remembered(redis, keys) == ["a1", "a2", "b1"]
        # Those remembered keep being refreshed ...
        assert await store.record([screen("a1", "a"), screen("c1", "c")], t0 + 1000) == 1
        assert (await store.last_seen())["a1"] == t0 + 1000
        # ... until a week without them: then their places are free again.
        later = t0 + FORGET_AFTER_MS + 1
        assert await store.record([screen("c1", "c"), screen("a1", "a")], later) == 2
        assert await remembered(redis, keys) == ["a1", "c1"]
        # Each owner's set is bounded and expires with the week too.
        owner_ttl = await redis.pttl(keys.screens_of("c"))
        assert 0 < owner_ttl <= FORGET_AFTER_MS
    finally:
        doomed = [k async for k in redis.scan_iter(match=keys.match_all())]
        if doomed:
            await redis.delete(*doomed)


@pytest.fixture
async def monitor_client(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    if not redis_url.startswith(("redis://", "unix://")):
        pytest.skip("MONITOR is read from one plain Redis")
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


async def commands_during(
    client: redis.asyncio.Redis, action: Callable[[], Awaitable[None]]
) -> list[str]:
    """Every command Redis runs while `action` runs (those of its scripts
    too), as MONITOR shows them."""
    marker = f"qms-test-end-{secrets.token_hex(4)}"
    seen: list[str] = []
    async with client.monitor() as monitor:
        await action()
        await client.echo(marker)
        while True:
            command = (await monitor.next_command())["command"]
            if marker in command:
                return seen
            seen.append(command)


async def test_public_reads_never_read_screen_presence(
    api: ApiKit, monitor_client: redis.asyncio.Redis
) -> None:
    hall, keys = api.config.id, api.keys
    r = await api.client.post(
        f"{api.base}/tickets",
        json={"service": "social-security"},
        headers={"Authorization": f"Bearer {KIOSK}"},
    )
    ticket = r.json()["id"]
    # The gauges' first round (which reads presence) is over before we watch.
    await until(lambda: REGISTRY.get_sample_value("qms_redis_up", {"hall": hall}) == 1)
    # A hall with many screens remembered.
    store = PresenceStore(api.redis, Scripts.register(api.redis), hall, ttl_s=60)
    now_ms = round(api.clock.now * 1000)
    screens = [
        ScreenPresence(f"s{i}", ScreenPage.STRIP, None, "r1", now_ms, now_ms, "display-x")
        for i in range(300)
    ]
    assert await store.record(screens, now_ms) == 300

    async def public_reads() -> None:
        for path in ("/services", f"/tickets/{ticket}"):
            assert (await api.client.get(f"{api.base}{path}")).status_code == 200

    commands = await commands_during(monitor_client, public_reads)
    ours = [c for c in commands if f"{{{hall}}}" in c]
    assert ours, "the reads ran no command on the hall"
    presence = keys.screen("")[: -len(":")]  # qms:{hall}:screen, prefix of every presence key
    assert [c for c in commands if presence in c] == []


def test_the_caps_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings.from_env(configs=())
    assert (settings.screens_per_hall, settings.screens_per_credential) == (1000, 500)
    assert PresenceCaps() == PresenceCaps(per_hall=1000, per_credential=500)
    monkeypatch.setenv("QMS_SCREENS_PER_HALL", "300")
    monkeypatch.setenv("QMS_SCREENS_PER_CREDENTIAL", "40")
    settings = Settings.from_env(configs=())
    assert (settings.screens_per_hall, settings.screens_per_credential) == (300, 40)
    monkeypatch.setenv("QMS_SCREENS_PER_CREDENTIAL", "0")
    with pytest.raises(SettingsError, match="QMS_SCREENS_PER_CREDENTIAL='0' must be at least 1"):
        Settings.from_env(configs=())
