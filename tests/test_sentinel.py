"""`redis+sentinel://` URLs: parsing, and the store on a real primary, replica
and Sentinel (the bundled redis-server in each role), through a failover."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis as redis_sync
from websockets.asyncio.client import connect

from loadtests.redis_procs import Deployment, sentinel_deployment
from queue_core.errors import QmsError
from queue_core.models import WindowStatus
from queue_core.redis_client import (
    SentinelTarget,
    create_redis,
    describe_url,
    guarded,
    parse_sentinel_url,
)
from queue_core.scripts import Scripts
from queue_core.store import HallStore
from tests.live import live_server, post
from tests.support import make_config

# ------------------------------------------------------------------ parsing


def test_a_sentinel_url_names_its_sentinels_service_db_and_secrets() -> None:
    target = parse_sentinel_url(
        "redis+sentinel://qms:s3cret@10.0.0.1:26379,10.0.0.2:26379,[::1]:26380/halls/2"
        "?sentinel_password=other"
    )
    assert target == SentinelTarget(
        sentinels=(("10.0.0.1", 26379), ("10.0.0.2", 26379), ("::1", 26380)),
        service="halls",
        db=2,
        username="qms",
        password="s3cret",
        sentinel_password="other",
    )
    assert parse_sentinel_url("rediss+sentinel://:pw@s1:26379/mymaster") == SentinelTarget(
        sentinels=(("s1", 26379),), service="mymaster", password="pw", tls=True
    )


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+sentinel://s1:26379", "service"),
        ("redis+sentinel://s1:26379/m/x", "database"),
        ("redis+sentinel://s1/m", "host:port"),
        ("redis+sentinel://s1:99999/m", "host:port"),
        ("redis+sentinel://s1:26379/m?tls=1", "unknown option"),
    ],
)
def test_a_bad_sentinel_url_says_what_is_wrong(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_sentinel_url(url)


def test_passwords_never_reach_a_log() -> None:
    shown = describe_url("redis+sentinel://qms:s3cret@s1:26379,s2:26379/m?sentinel_password=x")
    assert shown == "redis+sentinel://qms:***@s1:26379,s2:26379/m?sentinel_password=***"


# ------------------------------------------------ a primary, a replica, a Sentinel


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    with sentinel_deployment(tmp_path) as d:
        yield d


@pytest.fixture
async def sentinel_store(
    deployment: Deployment, tmp_path: Path
) -> AsyncIterator[tuple[HallStore, Deployment]]:
    client = create_redis(deployment.url, max_connections=4, socket_timeout=2.0)
    try:
        store = HallStore(client, Scripts.register(client), make_config(tmp_path))
        yield store, deployment
    finally:
        await client.aclose()


@pytest.mark.slow
@pytest.mark.redis
async def test_the_store_works_through_a_sentinel_and_follows_a_failover(
    sentinel_store: tuple[HallStore, Deployment],
) -> None:
    store, deployment = sentinel_store
    first = (await store.issue("social-security")).value.ticket
    # Acknowledged by the replica before the primary dies (what
    # QMS_REDIS_MIN_REPLICAS will make every change wait for).
    assert await guarded(store.redis.wait(1, 2000)) == 1
    deployment.primary.kill()

    # Requests fail fast while the Sentinel promotes the replica, then work
    # again on the new primary without restarting anything.
    started = time.monotonic()
    refused = 0
    while True:
        try:
            second = (await store.issue("social-security")).value.ticket
            break
        except QmsError as exc:
            assert exc.code == "redis_unavailable"
            refused += 1
            assert time.monotonic() - started < 30, "no new primary within 30 s"
            await asyncio.sleep(0.2)
    assert refused > 0
    assert (await store.ticket(first.id)).ticket.number == "A001"
    assert second.number == "A002"  # the acknowledged ticket's number is not given twice
    await store.set_window("2", WindowStatus.OPEN)
    called = (await store.call_next("2")).value
    assert called is not None and called.ticket.id == first.id


@pytest.mark.slow
@pytest.mark.redis
async def test_qms_serves_api_and_screens_through_a_sentinel(
    deployment: Deployment, tmp_path: Path
) -> None:
    config = make_config(tmp_path)
    async with live_server([config], deployment.url) as live:
        url = f"{live.ws}/ws/halls/{config.id}/display?token=display-token"
        async with connect(url) as ws:
            snap = json.loads(await ws.recv())
            assert snap["type"] == "snapshot"
            ticket = await post(live, config.id, "/tickets", "kiosk-token", service="household")
            event = json.loads(await ws.recv())
            assert (event["type"], event["number"]) == ("issued", ticket["number"])
        ready = await live.api.get("/readyz")
        assert ready.status_code == 200


@pytest.mark.slow
@pytest.mark.redis
async def test_with_min_replicas_a_change_is_acknowledged_only_once_replicated(
    deployment: Deployment, tmp_path: Path
) -> None:
    config = make_config(tmp_path)
    client = create_redis(deployment.url, max_connections=4, socket_timeout=2.0)
    try:
        scripts = Scripts.register(client)
        store = HallStore(client, scripts, config, min_replicas=1, wait_ms=300)
        first = (await store.issue("social-security", idempotency="k1")).value.ticket
        replica = redis_sync.Redis(port=deployment.replica.port, decode_responses=True)
        try:
            assert replica.hget(store.keys.tickets, first.id) is not None
        finally:
            replica.close()
        # Two replicas are asked for and there is one: the change is made on
        # the primary but not acknowledged, and its retry answers the same ticket.
        strict = HallStore(client, scripts, config, min_replicas=2, wait_ms=200)
        with pytest.raises(QmsError) as info:
            await strict.issue("social-security", idempotency="k2")
        assert info.value.code == "not_replicated"
        again = await store.issue("social-security", idempotency="k2")
        assert again.replayed and again.value.ticket.number == "A002"
        assert (await store.snapshot()).waiting_by_group["natural"] == 2
        # A refusal writes nothing and so needs no replica: it stays the refusal.
        with pytest.raises(QmsError) as refused:
            await strict.recall("2")
        assert refused.value.code == "no_current_ticket"
    finally:
        await client.aclose()
