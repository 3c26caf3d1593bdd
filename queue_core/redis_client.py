"""The one place that builds async Redis clients for qms.

Every client is built on a ``BlockingConnectionPool``: when all connections
are busy a caller waits up to ``pool_timeout`` for one, where the default
pool would raise at once. Responses are decoded to ``str`` and spoken in
RESP3. ``redis://``, ``rediss://`` and ``unix://`` URLs all work.

No automatic retries: a command that timed out may still have run on the
server, and replaying a state-changing Lua script would apply it twice.
Callers retry at the request level, where idempotency keys make it safe.

Cancellation: a task cancelled while its command is in flight (a request
whose client went away, a shutdown) leaves the command's reply on its way
back. redis-py before 4.5.3 returned such a connection to the pool and the
*next* command read the stale reply (CVE-2023-28858 / CVE-2023-28859). From
4.5.3 a connection whose read is interrupted by any exception, cancellation
included, is disconnected before it goes back to the pool, so a late reply
never reaches another caller. qms relies on that; ``tests/test_redis_client.py``
checks it against a real server.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from queue_core.errors import Unavailable

__all__ = ["create_blocking_reader", "create_redis", "describe_url", "guarded"]

T = TypeVar("T")

# PING an idle connection before reuse when it has been idle this long, so a
# connection dropped by a proxy or a Redis restart fails there, not mid-command.
HEALTH_CHECK_INTERVAL_S = 30.0
# How much longer than the server-side BLOCK the reader's socket may wait.
_BLOCKING_READ_MARGIN_S = 5.0


def create_redis(
    url: str,
    *,
    max_connections: int = 64,
    pool_timeout: float = 5.0,
    socket_timeout: float = 5.0,
    connect_timeout: float = 2.0,
) -> redis.asyncio.Redis:
    """A client with a pool of up to ``max_connections`` connections.

    ``pool_timeout``: how long a command waits for a free connection before
    ``redis.exceptions.ConnectionError``. ``socket_timeout``: how long one
    reply may take before ``redis.exceptions.TimeoutError``. Close the client
    with ``await client.aclose()``; that closes its pool too.
    """
    return _client(
        url,
        max_connections=max_connections,
        pool_timeout=pool_timeout,
        socket_timeout=socket_timeout,
        connect_timeout=connect_timeout,
    )


def create_blocking_reader(
    url: str, *, block_timeout_s: float, connect_timeout: float = 2.0
) -> redis.asyncio.Redis:
    """A client with ONE dedicated connection for blocking reads (``XREAD BLOCK``).

    Its socket timeout exceeds ``block_timeout_s``, so a read that blocks on
    the server for the full time is not mistaken for a dead connection. Keep
    it apart from ``create_redis`` clients: a blocked read holds its
    connection for the whole block. Concurrent callers queue for the one
    connection.
    """
    if block_timeout_s < 0:
        raise ValueError("block_timeout_s must be >= 0")
    socket_timeout = block_timeout_s + _BLOCKING_READ_MARGIN_S
    return _client(
        url,
        max_connections=1,
        pool_timeout=socket_timeout,
        socket_timeout=socket_timeout,
        connect_timeout=connect_timeout,
    )


def _client(
    url: str,
    *,
    max_connections: int,
    pool_timeout: float,
    socket_timeout: float,
    connect_timeout: float,
) -> redis.asyncio.Redis:
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=pool_timeout,
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect_timeout,
        decode_responses=True,
        protocol=3,
        health_check_interval=HEALTH_CHECK_INTERVAL_S,
        retry=Retry(NoBackoff(), 0),
    )
    # from_pool: the client owns the pool, and aclose() disconnects it.
    return redis.asyncio.Redis.from_pool(pool)


def describe_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, for logs and error messages."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, hostinfo = netloc.rsplit("@", 1)
            if ":" in userinfo:
                userinfo = userinfo.split(":", 1)[0] + ":***"
            netloc = f"{userinfo}@{hostinfo}"
        query = parts.query
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() == "password" for k, _ in pairs):
            query = urlencode(
                [(k, "***" if k.lower() == "password" else v) for k, v in pairs], safe="*/"
            )
        # Not urlunsplit: it would turn unix:///path into unix:/path.
        described = f"{parts.scheme}://{netloc}{parts.path}"
        if query:
            described += f"?{query}"
        return described
    except ValueError:
        return "<unparseable Redis URL>"


async def guarded(awaitable: Awaitable[T]) -> T:
    """Await a Redis call; a lost or timed-out connection becomes `Unavailable`."""
    try:
        return await awaitable
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        raise Unavailable(
            "redis_unavailable", "The queue store cannot be reached right now; try again."
        ) from exc
