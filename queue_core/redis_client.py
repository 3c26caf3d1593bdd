"""The one place that builds async Redis clients for qms.

A plain Redis (``redis://``, ``rediss://``, ``unix://``) gets a client on a
``BlockingConnectionPool``: when all connections are busy a caller waits up
to ``pool_timeout`` for one, where the default pool would raise at once.
``redis+sentinel://[[user]:password@]host:port[,host:port…]/<service>[/db]``
(``rediss+sentinel://`` for TLS) gets redis-py's own Sentinel client: it
asks the Sentinels for the service's primary on every new connection, so
after a failover the next connection goes to the promoted replica. Its
pool raises at once when all ``max_connections`` are busy.
``redis+cluster://[[user]:password@]host:port[,host:port…]`` (``rediss+cluster://``
for TLS) gets redis-py's own ``RedisCluster``: it learns the slot map from any
of the nodes named and sends each command to the primary of its key's slot
(following MOVED and ASK). Every key of a hall carries the hash tag
``{<hall>}`` (``queue_core.keys``), so each script and each multi-key command
stays on one slot. Responses are decoded to ``str`` and spoken in RESP3.

The rest of qms takes a `RedisClient`, whichever kind it is.

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

import redis
import redis.asyncio
import redis.cluster
import redis.sentinel
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import (
    ClusterDownError,
    ClusterError,
    NoScriptError,
    ResponseError,
    SlotNotCoveredError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from queue_core import metrics
from queue_core.errors import Unavailable

__all__ = [
    "ClusterTarget",
    "RedisClient",
    "SentinelTarget",
    "create_blocking_reader",
    "create_redis",
    "create_sync_redis",
    "describe_url",
    "guarded",
    "is_cluster",
    "parse_cluster_url",
    "parse_sentinel_url",
    "register_script",
    "run_and_wait",
]

T = TypeVar("T")

RedisClient = redis.asyncio.Redis | RedisCluster
"""What the rest of qms takes: a plain or Sentinel-backed client, or a Cluster's."""

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
) -> RedisClient:
    """A client with a pool of up to ``max_connections`` connections.

    ``pool_timeout``: how long a command waits for a free connection before
    ``redis.exceptions.ConnectionError``. ``socket_timeout``: how long one
    reply may take before ``redis.exceptions.TimeoutError``. For a Cluster,
    ``max_connections`` is per node. Close the client with ``await
    client.aclose()``; that closes its pool too.
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
) -> RedisClient:
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
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")


def is_cluster(url: str) -> bool:
    """Whether ``url`` names a Redis Cluster."""
    return urlsplit(url).scheme in CLUSTER_SCHEMES


def _userinfo(netloc: str) -> tuple[str | None, str | None, str]:
    """``(username, password, hosts)`` of a URL's ``netloc``."""
    userinfo, _, hosts = netloc.rpartition("@")
    username = password = None
    if userinfo:
        user, sep, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if sep else None
    return username, password, hosts


def _host_ports(hosts: str, what: str) -> tuple[tuple[str, int], ...]:
    found = []
    for item in hosts.split(","):
        host, sep, port = item.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{item.strip()!r} is not a {what}'s host:port")
        found.append((host.strip("[]"), int(port)))
    return tuple(found)


@dataclass(frozen=True, slots=True)
class ClusterTarget:
    """What a ``redis+cluster://`` URL names: some of the Cluster's nodes
    (any one that answers tells the client the rest)."""

    nodes: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None
    tls: bool = False


def parse_cluster_url(url: str) -> ClusterTarget:
    """``redis+cluster://[[user]:password@]host:port[,host:port…]``; ``ValueError``
    with a sentence when it is not one. A Cluster has one database, so no ``/db``."""
    parts = urlsplit(url)
    if parts.scheme not in CLUSTER_SCHEMES:
        raise ValueError(f"a Cluster URL starts with redis+cluster://, not {parts.scheme}://")
    username, password, hosts = _userinfo(parts.netloc)
    if parts.path.strip("/"):
        raise ValueError("a Redis Cluster has only database 0: nothing may follow the hosts")
    if parts.query:
        raise ValueError(f"unknown option {parts.query.split('=')[0]!r} in the Cluster URL")
    return ClusterTarget(
        nodes=_host_ports(hosts, "Cluster node"),
        username=username,
        password=password,
        tls=parts.scheme == "rediss+cluster",
    )


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
    username, password, hosts = _userinfo(parts.netloc)
    sentinels = _host_ports(hosts, "Sentinel")
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
        sentinels=sentinels,
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


def _sentinel_kwargs(target: SentinelTarget, base: dict[str, Any]) -> dict[str, Any]:
    """How to talk to the Sentinels themselves: `base`, with their password
    (their own, else the primary's) and TLS when the URL says so."""
    kwargs = dict(base)
    if target.sentinel_password or target.password:
        kwargs["password"] = target.sentinel_password or target.password
    if target.tls:
        kwargs["ssl"] = True
    return kwargs


def _sentinel_client(
    target: SentinelTarget, *, max_connections: int, socket_timeout: float, connect_timeout: float
) -> redis.asyncio.Redis:
    timeouts: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": connect_timeout,
    }
    sentinel = Sentinel(
        list(target.sentinels),
        sentinel_kwargs=_sentinel_kwargs(target, dict(timeouts, decode_responses=True)),
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


def _cluster_client(
    target: ClusterTarget, *, max_connections: int, socket_timeout: float, connect_timeout: float
) -> RedisCluster:
    return RedisCluster(
        startup_nodes=[ClusterNode(h, p) for h, p in target.nodes],
        # Halls on healthy shards keep working while another shard has no primary.
        require_full_coverage=False,
        username=target.username,
        password=target.password,
        ssl=target.tls,
        max_connections=max_connections,
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect_timeout,
        decode_responses=True,
        protocol=3,
        health_check_interval=HEALTH_CHECK_INTERVAL_S,
        # MOVED and ASK are still followed; what is not retried is a command
        # whose connection failed or timed out (it may have run: see above).
        retry=Retry(NoBackoff(), 0),
    )


def _client(
    url: str,
    *,
    max_connections: int,
    pool_timeout: float,
    socket_timeout: float,
    connect_timeout: float,
) -> RedisClient:
    if is_cluster(url):
        return _cluster_client(
            parse_cluster_url(url),
            max_connections=max_connections,
            socket_timeout=socket_timeout,
            connect_timeout=connect_timeout,
        )
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


SyncRedisClient = redis.Redis | redis.cluster.RedisCluster


def create_sync_redis(url: str, *, socket_timeout: float = 5.0) -> SyncRedisClient:
    """A blocking client for tools and benchmarks (one command at a time, from
    a thread), of the same kind as `create_redis` gives: decoded ``str``
    answers, no retries."""
    common: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": min(socket_timeout, 2.0),
        "decode_responses": True,
    }
    if is_cluster(url):
        cluster = parse_cluster_url(url)
        return redis.cluster.RedisCluster(
            startup_nodes=[redis.cluster.ClusterNode(h, p) for h, p in cluster.nodes],  # type: ignore[no-untyped-call]
            username=cluster.username,
            password=cluster.password,
            ssl=cluster.tls,
            **common,
        )
    if urlsplit(url).scheme in SENTINEL_SCHEMES:
        target = parse_sentinel_url(url)
        sentinel = redis.sentinel.Sentinel(
            list(target.sentinels),
            sentinel_kwargs=_sentinel_kwargs(target, common),
            username=target.username,
            password=target.password,
            db=target.db,
            ssl=target.tls,
            **common,
        )
        client: redis.Redis = sentinel.master_for(target.service)
        return client
    return redis.Redis.from_url(url, **common)


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


class _ClusterScript(AsyncScript):
    """On a Cluster, a script missing from a node (restarted, or a replica
    promoted since the last load) is loaded on that node alone. redis-py's
    own would SCRIPT LOAD on every primary, and fail while any one is down,
    stopping halls on healthy shards too."""

    async def __call__(
        self,
        keys: Any = None,
        args: Any = None,
        client: Any = None,
    ) -> Any:
        cluster = client or self.registered_client
        assert isinstance(cluster, RedisCluster)
        keys, args = list(keys or []), list(args or [])
        try:
            return await cluster.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            await _load_on_node(cluster, self.script, keys[0])
            return await cluster.evalsha(self.sha, len(keys), *keys, *args)


async def _load_on_node(client: RedisCluster, source: Any, key: str) -> None:
    await client.initialize()
    node = client.get_node_from_key(key)
    await client.execute_command("SCRIPT", "LOAD", source, target_nodes=node)


def register_script(client: RedisClient, source: str) -> AsyncScript:
    """A script run by EVALSHA (loaded when the server lacks it). Every
    script of qms names at least one key: on a Cluster that picks its node."""
    if isinstance(client, RedisCluster):
        return _ClusterScript(client, source)
    return client.register_script(source)


async def run_and_wait(
    client: RedisClient,
    script: AsyncScript,
    keys: list[str],
    args: list[Any],
    replicas: int,
    timeout_ms: int,
) -> tuple[Any, int]:
    """Run ``script``, then ``WAIT replicas timeout_ms`` on the same connection
    (WAIT counts the replicas that have this connection's writes): its reply
    and how many replicas confirmed.

    WAIT waits for the primary's replication offset as of this connection's
    last command, a read included (redis-server 6.2 and 7 both), so a retry
    that only replays the first attempt's answer still waits until that
    attempt's change is on the replicas (``tests/test_cluster.py`` checks it
    with a replica that has stopped).

    On a Cluster both go, pipelined, to the primary of ``keys[0]``'s slot. If
    the slot moved while they ran, the script was redirected and WAIT asked
    the old primary: 0 confirmations are reported, and the caller's retry
    (same idempotency key) waits on the new one.
    """
    for attempt in (1, 2):
        try:
            if isinstance(client, RedisCluster):
                await client.initialize()  # a no-op once the slots are known
                node = client.get_node_from_key(keys[0])
                async with client.pipeline(transaction=False) as cpipe:
                    cpipe.evalsha(script.sha, len(keys), *keys, *args)
                    cpipe.execute_command("WAIT", replicas, timeout_ms, target_nodes=node)
                    reply, acked = await cpipe.execute()
                if client.get_node_from_key(keys[0]) is not node:
                    acked = 0
                return reply, int(acked)
            async with client.pipeline(transaction=False) as pipe:
                # A plain pipeline loads the script first when the server lacks it.
                await script(keys=keys, args=args, client=pipe)
                pipe.wait(replicas, timeout_ms)
                reply, acked = await pipe.execute()
            return reply, int(acked)
        except NoScriptError:
            # Nothing ran. A Cluster pipeline does not load scripts itself: a
            # node restarted or promoted since the last load has none.
            if attempt == 2:
                raise
            if isinstance(client, RedisCluster):
                await _load_on_node(client, script.script, keys[0])
            else:
                await client.script_load(script.script)
    raise AssertionError("unreachable")


# What says "Redis cannot serve this now" rather than "this request is wrong":
# a lost or refused connection, a timeout (MasterNotFoundError and
# MaxConnectionsError are ConnectionErrors), a Cluster that is down or whose
# slot has no node right now.
_UNREACHABLE = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
    ClusterDownError,
    ClusterError,
    SlotNotCoveredError,
)


# Redis refusing changes while it answers: out of memory under `noeviction`,
# a replica (read-only: a failover under way, or an address that points at
# one), or unable to persist (`MISCONF`: a full or failing disk). Redis 6.2
# reports them inside a script's error ("ERR Error running script ...: -OOM
# command not allowed ..."), Redis 7 with their own prefix: matched by text.
_REFUSALS = (
    ("OOM command not allowed", "redis_full",
     "The queue store is out of memory and refuses changes; try again shortly."),
    ("READONLY", "redis_read_only",
     "The queue store refuses changes: it is a read-only replica right now; try again."),
    ("MISCONF", "redis_disk",
     "The queue store cannot write to its disk and refuses changes; try again shortly."),
)  # fmt: skip


REFUSING_WRITES = frozenset(code for _, code, _ in _REFUSALS)
"""The codes of a Redis that answers but refuses changes."""


def refusal_of(message: str) -> tuple[str, str] | None:
    """The code and sentence for a Redis error that means "not now", or None."""
    for marker, code, sentence in _REFUSALS:
        if marker in message:
            return code, sentence
    return None


async def guarded(awaitable: Awaitable[T]) -> T:
    """Await a Redis call; a lost or timed-out connection, or a Redis that
    refuses changes for now (`refusal_of`), becomes `Unavailable`."""
    try:
        return await awaitable
    except _UNREACHABLE as exc:
        raise Unavailable(
            "redis_unavailable", "The queue store cannot be reached right now; try again."
        ) from exc
    except ResponseError as exc:
        refusal = refusal_of(str(exc))
        if refusal is None:
            raise
        metrics.REDIS_REFUSALS.labels(refusal[0]).inc()
        raise Unavailable(*refusal) from exc
