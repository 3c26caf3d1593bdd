"""The one place that builds async Redis clients for qms.

A plain Redis (``redis://``, ``rediss://``, ``unix://``) gets a client on a
``BlockingConnectionPool``: when all connections are busy a caller waits up
to ``pool_timeout`` for one, where the default pool would raise at once.
``redis+sentinel://[[user]:password@]host:port[,host:port…]/<service>[/db]``
(``rediss+sentinel://`` for TLS) gets redis-py's own Sentinel client: it
asks the Sentinels for the service's primary on every new connection, so
after a failover the next connection goes to the promoted replica. Its
pool raises at once when all ``max_connections`` are busy. Responses are
decoded to ``str`` and spoken in RESP3.

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
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from queue_core.errors import Unavailable

__all__ = [
    "SentinelTarget",
    "create_blocking_reader",
    "create_redis",
    "describe_url",
    "guarded",
    "parse_sentinel_url",
]

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


SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")


@dataclass(frozen=True, slots=True)
class SentinelTarget:
    """What a ``redis+sentinel://`` URL names."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    """For the primary and its replicas, and for the Sentinels unless
    ``?sentinel_password=`` gives theirs."""
    sentinel_password: str | None = None
    tls: bool = False


def parse_sentinel_url(url: str) -> SentinelTarget:
    """``redis+sentinel://[[user]:password@]host:port[,host:port…]/<service>[/db]
    [?sentinel_password=…]``; ``ValueError`` with a sentence when it is not one."""
    parts = urlsplit(url)
    if parts.scheme not in SENTINEL_SCHEMES:
        raise ValueError(f"a Sentinel URL starts with redis+sentinel://, not {parts.scheme}://")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username = password = None
    if userinfo:
        user, sep, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if sep else None
    sentinels = []
    for item in hosts.split(","):
        host, sep, port = item.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{item.strip()!r} is not a Sentinel's host:port")
        sentinels.append((host.strip("[]"), int(port)))
    path = [p for p in parts.path.split("/") if p]
    if not path or len(path) > 2:
        raise ValueError("name the Sentinel service after the hosts: …/<service>[/db]")
    db = 0
    if len(path) == 2:
        if not path[1].isdigit():
            raise ValueError(f"the database must be a number, not {path[1]!r}")
        db = int(path[1])
    query = dict(parse_qsl(parts.query))
    unknown = set(query) - {"sentinel_password"}
    if unknown:
        raise ValueError(f"unknown option {sorted(unknown)[0]!r} in the Sentinel URL")
    return SentinelTarget(
        sentinels=tuple(sentinels),
        service=unquote(path[0]),
        db=db,
        username=username,
        password=password,
        sentinel_password=query.get("sentinel_password"),
        tls=parts.scheme == "rediss+sentinel",
    )


class _SentinelRedis(redis.asyncio.Redis):
    """The primary's client; closing it also closes its Sentinels' clients."""

    # Not `sentinel`: redis.Redis has a SENTINEL command method of that name.
    qms_sentinel: Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        if self.qms_sentinel is not None:
            for client in self.qms_sentinel.sentinels:
                await client.aclose()


def _sentinel_client(
    target: SentinelTarget, *, max_connections: int, socket_timeout: float, connect_timeout: float
) -> redis.asyncio.Redis:
    timeouts: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": connect_timeout,
    }
    sentinel_kwargs: dict[str, Any] = dict(timeouts, decode_responses=True)
    if target.sentinel_password or target.password:
        sentinel_kwargs["password"] = target.sentinel_password or target.password
    if target.tls:
        sentinel_kwargs["ssl"] = True
    sentinel = Sentinel(
        list(target.sentinels),
        sentinel_kwargs=sentinel_kwargs,
        username=target.username,
        password=target.password,
        db=target.db,
        decode_responses=True,
        protocol=3,
        health_check_interval=HEALTH_CHECK_INTERVAL_S,
        retry=Retry(NoBackoff(), 0),
        ssl=target.tls,
        **timeouts,
    )
    client: _SentinelRedis = sentinel.master_for(
        target.service, redis_class=_SentinelRedis, max_connections=max_connections
    )
    client.qms_sentinel = sentinel
    return client


def _client(
    url: str,
    *,
    max_connections: int,
    pool_timeout: float,
    socket_timeout: float,
    connect_timeout: float,
) -> redis.asyncio.Redis:
    if urlsplit(url).scheme in SENTINEL_SCHEMES:
        return _sentinel_client(
            parse_sentinel_url(url),
            max_connections=max_connections,
            socket_timeout=socket_timeout,
            connect_timeout=connect_timeout,
        )
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
        if any(k.lower().endswith("password") for k, _ in pairs):
            query = urlencode(
                [(k, "***" if k.lower().endswith("password") else v) for k, v in pairs],
                safe="*/",
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
