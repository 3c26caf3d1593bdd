"""queue_core.redis_client against a real redis-server: pool, timeouts, cancellation."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from queue_core.redis_client import (
    RedisClient,
    create_blocking_reader,
    create_redis,
    describe_url,
    is_cluster,
)


def unique_key(label: str, tag: str | None = None) -> str:
    """A fresh key; keys given one ``tag`` share a Cluster slot."""
    return f"qms-test:{{{tag or uuid.uuid4()}}}:{label}:{uuid.uuid4()}"


async def connection_id(client: RedisClient, key: str) -> int:
    """CLIENT ID of the connection ``client`` uses for ``key`` (on a Cluster:
    its connection to the primary of ``key``'s slot)."""
    if isinstance(client, RedisCluster):
        await client.initialize()  # a fresh client knows no slots yet
        return int(await client.client_id(target_nodes=client.get_node_from_key(key)))
    return int(await client.client_id())


plain_only = pytest.mark.skipif(
    is_cluster(os.environ.get("QMS_TEST_REDIS_URL", ""))
    or bool(os.environ.get("QMS_TEST_REDIS_CLUSTER")),
    reason="the plain client's one shared pool: a Cluster client has a pool per node, "
    "and it raises when that pool is full instead of waiting",
)


@asynccontextmanager
async def client_of(factory: Callable[[], RedisClient]) -> AsyncIterator[RedisClient]:
    client = factory()
    try:
        yield client
    finally:
        await client.aclose()


async def wait_until_blocked(probe: RedisClient, client_id: int, command: str, key: str) -> None:
    """Poll CLIENT LIST (on ``key``'s node) until connection ``client_id`` runs ``command``."""
    deadline = time.monotonic() + 5.0
    while True:
        if isinstance(probe, RedisCluster):
            await probe.initialize()
            node = probe.get_node_from_key(key)
            [info] = await probe.client_list(client_id=[client_id], target_nodes=node)
        else:
            [info] = await probe.client_list(client_id=[client_id])
        if info["cmd"] == command:
            return
        assert time.monotonic() < deadline, f"client {client_id} never ran {command}: {info}"
        await asyncio.sleep(0.01)


async def done_within(task: Awaitable[object], seconds: float) -> bool:
    done, _ = await asyncio.wait({asyncio.ensure_future(task)}, timeout=seconds)
    return bool(done)


@pytest.mark.parametrize(
    ("url", "described"),
    [
        ("redis://localhost:6379/0", "redis://localhost:6379/0"),
        ("redis://:s3cret@redis:6379/0", "redis://:***@redis:6379/0"),
        ("rediss://qms:s3cret@redis.example:6380", "rediss://qms:***@redis.example:6380"),
        ("redis://qms@redis", "redis://qms@redis"),
        ("unix:///var/run/redis.sock?db=1", "unix:///var/run/redis.sock?db=1"),
        ("unix:///r.sock?db=1&password=s3cret", "unix:///r.sock?db=1&password=***"),
        ("redis://[::1", "<unparseable Redis URL>"),
    ],
)
def test_describe_url_hides_passwords(url: str, described: str) -> None:
    assert describe_url(url) == described


@pytest.mark.redis
async def test_round_trip(redis: RedisClient) -> None:
    key = unique_key("round-trip")
    try:
        assert await redis.set(key, "大冶 A001")
        assert await redis.get(key) == "大冶 A001"  # decoded str
        # RESP3 answers HELLO's map as a dict; RESP2 as a flat list.
        kwargs = (
            redis.get_connection_kwargs()
            if isinstance(redis, RedisCluster)
            else redis.connection_pool.connection_kwargs
        )
        assert kwargs["protocol"] == 3
    finally:
        await redis.delete(key)


@pytest.mark.redis
async def test_cancelled_command_never_leaks_its_reply(redis_url: str, redis: RedisClient) -> None:
    """CVE-2023-28858/28859: a cancelled command's late reply must not reach the next one."""
    tag = str(uuid.uuid4())
    key, mine = unique_key("cancel", tag), unique_key("mine", tag)
    async with client_of(lambda: create_redis(redis_url, max_connections=1)) as client:
        try:
            first_connection = await connection_id(client, key)
            blocked = asyncio.ensure_future(client.blpop([key], timeout=2))
            await wait_until_blocked(redis, first_connection, "blpop", key)
            blocked.cancel()
            with pytest.raises(asyncio.CancelledError):
                await blocked
            # Had the connection gone back to the pool with BLPOP pending, the
            # SET would queue behind it and, 2 s later, read BLPOP's nil reply.
            started = time.monotonic()
            assert await client.set(mine, "mine")
            assert time.monotonic() - started < 1.0
            assert await client.get(mine) == "mine"
            # The mechanism: the interrupted connection was dropped, not reused.
            assert await connection_id(client, key) != first_connection
        finally:
            await redis.delete(key, mine)


@plain_only
@pytest.mark.redis
async def test_pool_waits_for_a_busy_connection(redis_url: str, redis: RedisClient) -> None:
    key = unique_key("wait")
    factory = lambda: create_redis(redis_url, max_connections=1, pool_timeout=5)  # noqa: E731
    async with client_of(factory) as client:
        try:
            connection = await client.client_id()
            holder = asyncio.ensure_future(client.blpop([key], timeout=5))
            await wait_until_blocked(redis, connection, "blpop", key)
            waiter = asyncio.ensure_future(client.echo("next"))
            # A non-blocking pool would fail at once; this one queues the call.
            assert not await done_within(waiter, 0.2)
            await redis.rpush(key, "go")
            assert await holder == [key, "go"]
            assert await waiter == "next"
        finally:
            await redis.delete(key)


@plain_only
@pytest.mark.redis
async def test_pool_timeout_raises_when_no_connection_frees_up(
    redis_url: str, redis: RedisClient
) -> None:
    key = unique_key("pool-timeout")
    factory = lambda: create_redis(redis_url, max_connections=1, pool_timeout=0.2)  # noqa: E731
    async with client_of(factory) as client:
        try:
            connection = await client.client_id()
            holder = asyncio.ensure_future(client.blpop([key], timeout=5))
            await wait_until_blocked(redis, connection, "blpop", key)
            started = time.monotonic()
            with pytest.raises(RedisConnectionError, match="No connection available"):
                await client.echo("never sent")
            assert 0.15 <= time.monotonic() - started < 2.0
            await redis.rpush(key, "release")
            assert await holder == [key, "release"]
        finally:
            await redis.delete(key)


@pytest.mark.redis
async def test_socket_timeout_trips_a_long_blocking_read(redis_url: str) -> None:
    """Why the blocking reader exists: a normal client gives up on a long XREAD."""
    stream = unique_key("stream")
    async with client_of(lambda: create_redis(redis_url, socket_timeout=0.2)) as client:
        with pytest.raises(RedisTimeoutError):
            await client.xread({stream: "$"}, block=2000)


@pytest.mark.redis
async def test_blocking_reader_outlasts_its_block(redis_url: str) -> None:
    stream = unique_key("stream")
    async with client_of(lambda: create_blocking_reader(redis_url, block_timeout_s=0.5)) as reader:
        started = time.monotonic()
        assert not await reader.xread({stream: "$"}, block=500)  # empty: timed out server-side
        assert time.monotonic() - started >= 0.45


@pytest.mark.redis
async def test_blocking_reader_gets_an_entry_added_while_it_waits(
    redis_url: str, redis: RedisClient
) -> None:
    stream = unique_key("stream")
    async with client_of(lambda: create_blocking_reader(redis_url, block_timeout_s=5)) as reader:
        try:
            connection = await connection_id(reader, stream)
            read = asyncio.ensure_future(reader.xread({stream: "$"}, block=5000))
            await wait_until_blocked(redis, connection, "xread", stream)
            entry_id = await redis.xadd(stream, {"type": "called", "number": "A001"})
            assert await read == {stream: [[(entry_id, {"type": "called", "number": "A001"})]]}
        finally:
            await redis.delete(stream)
