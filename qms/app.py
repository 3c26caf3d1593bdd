"""The Starlette app: mounts each package's operations, owns the Redis
client and the periodic tasks through its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import importlib.metadata
import logging
import os
import platform
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping, Sequence
from typing import Any, cast

import httpx
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.websockets import WebSocket

from dispatcher.day_keeper import DayKeeper
from dispatcher.figures import record_figures
from dispatcher.monitor import HallMonitor
from dispatcher.operations import OPERATIONS as WINDOW_OPERATIONS
from displays.gateway import Gateway, GatewaySettings, gateway_routes
from displays.pages import page_routes
from notify.sender import TIMEOUT_S, HallOutbox, Sender
from qms.archiving import ArchiveHandle, Sweeper
from qms.http import (
    JSON,
    api_routes,
    bearer_token,
    deny_websocket,
    error_response,
    halls_of,
    http_exception,
    redis_budget_s,
    unexpected,
)
from qms.openapi import openapi_document
from qms.overload import DEFAULT_MAX_IN_FLIGHT, InFlightLimit
from qms.reports_http import report_routes
from qms.security import SecurityHeaders, StrictCors
from qms.settings import SettingsError, require_id_digest_key
from queue_core import metrics
from queue_core.auth import Credentials
from queue_core.config import HallConfig
from queue_core.errors import QmsError
from queue_core.operations import Hall
from queue_core.outbox import Outbox
from queue_core.presence import PresenceStore
from queue_core.redis_client import RedisClient, create_blocking_reader, create_redis
from queue_core.scripts import Scripts
from queue_core.store import HallStore, load_audit_secret
from ticketing.operations import OPERATIONS as TICKET_OPERATIONS

log = logging.getLogger("qms")

# The Redis client's bounds (docs/operations.md#failover). Requests are held
# to `qms.http.REDIS_BUDGET_S` on top of these; these bound the rest (the
# screens' hub, the day keeper, gauges, the archive sweep) and keep a hung
# Redis from holding connections.
CONNECT_TIMEOUT_S = 0.5
"""A connect takes a millisecond on a LAN: a host that drops packets fails fast."""
POOL_TIMEOUT_S = 0.5
"""How long a command waits for a free connection (all 64 busy for that
long means Redis is not answering)."""
COMMAND_TIMEOUT_S = 2.0
"""One reply; a script that ran this long would have stalled Redis for every
client anyway. Longer when a change waits longer for its replicas."""


def command_timeout_s(min_replicas: int, wait_ms: int) -> float:
    if min_replicas <= 0:
        return COMMAND_TIMEOUT_S
    return max(COMMAND_TIMEOUT_S, wait_ms / 1000 + 1.0)


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:  # run from a source tree
        return "unknown"


BackgroundTask = Callable[[Mapping[str, Hall]], Coroutine[Any, Any, None]]
"""A coroutine the app runs for its lifetime (the demo's simulated hall)."""


async def healthz(request: Request) -> Response:
    return JSON({"status": "ok"})


def readyz_endpoint(budget_s: float) -> Callable[[Request], Coroutine[Any, Any, Response]]:
    async def readyz(request: Request) -> Response:
        # Every hall shares one Redis client: asking through any of them is enough.
        hall = next(iter(halls_of(request).values()))
        try:
            async with asyncio.timeout(budget_s):
                await hall.store.ping()
        except QmsError as exc:
            # Say why: a Redis that refuses changes (redis_disk: it cannot
            # write its files, and refuses PING too) is not an unreachable one.
            return error_response(503, exc.code, exc.message)
        except TimeoutError:
            return error_response(503, "redis_unavailable", "Redis cannot be reached.")
        return JSON({"status": "ready"})

    return readyz


def metrics_endpoint(token: str | None) -> Callable[[Request], Coroutine[Any, Any, Response]]:
    """`/metrics`, open, or with `token` only to `Authorization: Bearer <token>`."""
    expected = None if token is None else hashlib.sha256(token.encode()).digest()

    async def metrics_text(request: Request) -> Response:
        if expected is not None:
            given = hashlib.sha256((bearer_token(request) or "").encode()).digest()
            # Digests of equal length: the comparison's time tells nothing.
            if not hmac.compare_digest(given, expected):
                return error_response(
                    401, "unauthorized", "The metrics need the metrics token (QMS_METRICS_TOKEN)."
                )
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return metrics_text


async def refresh_gauges(monitors: Mapping[str, HallMonitor], interval_s: float) -> None:
    """Keep Redis-derived gauges fresh so a scrape never touches Redis.

    A hall whose estimates were read in the last `max_age_s` (its visitors'
    requests keep it read) is not read again for the gauges: a read of a big
    hall costs milliseconds of CPU here and in Redis. Its screen presence is
    read each time (bounded by the presence caps)."""
    while True:
        for hall_id, monitor in monitors.items():
            try:
                record_figures(hall_id, await monitor.figures())
            except QmsError:
                metrics.record_redis_down(hall_id)
        await asyncio.sleep(interval_s)


async def cancel_all(tasks: Sequence[asyncio.Task[None]]) -> None:
    """Cancel until every task has ended.

    One cancel is not always enough: on Python 3.11, redis-py awaits through
    `asyncio.wait_for`, which can swallow a cancellation that lands as the
    command completes, and the task would then sleep on."""
    pending = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=1.0)


async def _share_audit_secret(redis: RedisClient, halls: Iterable[Hall]) -> None:
    """Read the deployment's audit key (retrying while Redis is down) and
    hand it to every hall's credentials; until then staff changes answer 503."""
    while True:
        try:
            secret = await load_audit_secret(redis)
        except QmsError:
            await asyncio.sleep(1.0)
            continue
        for hall in halls:
            hall.credentials.set_secret(secret)
        return


def _gateway_of(ws: WebSocket) -> Gateway:
    return cast(Gateway, ws.state.gateway)


def create_app(
    configs: Sequence[HallConfig],
    redis_url: str,
    *,
    redis_max_connections: int = 64,
    redis_min_replicas: int = 0,
    redis_wait_ms: int = 500,
    stream_maxlen: int = 10_000,
    metrics_interval_s: float = 5.0,
    background: Sequence[BackgroundTask] = (),
    clock: Callable[[], float] | None = None,
    gateway_settings: GatewaySettings | None = None,
    archive_url: str | None = None,
    archive_interval_s: float = 3600.0,
    estimate_max_age_s: float = 2.0,
    clock_rate: float = 1.0,
    id_digest_key: bytes | None = None,
    notify_secrets: Mapping[str, bytes] | None = None,
    notify_sweep_s: float = 2.0,
    cors_origins: Sequence[str] = (),
    metrics_token: str | None = None,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
) -> Starlette:
    """The whole qms app. `app.state.gateway` holds the screen gateway while
    the lifespan runs (the server closes its sockets with 1001 on shutdown).
    Wait estimates and the dashboard reuse a read of the hall for
    `estimate_max_age_s` (0: read on every request, as tests want).
    `clock_rate` is how fast `clock` runs against real time (the demo's runs
    faster), so the day keeper wakes at each calendar boundary.
    `id_digest_key` (`QMS_ID_DIGEST_KEY`) keys the digests of identity
    numbers; a hall with `[issuing] one_active_per_person` needs it.
    `notify_secrets` holds the webhook key of each hall with a gateway
    (`[notify] url`, `qms.settings.notify_secrets`); such a hall needs one.
    `cors_origins` (`QMS_CORS_ORIGINS`) may read answers from a browser;
    every answer carries `qms.security`'s headers. With `metrics_token`
    (`QMS_METRICS_TOKEN`) `/metrics` answers only to that bearer token.
    `max_in_flight` (`QMS_MAX_IN_FLIGHT`) bounds the HTTP requests served at
    once; the excess is answered 503 `overloaded` at once (`qms.overload`)."""
    require_id_digest_key(configs, id_digest_key)
    keys = dict(notify_secrets or {})
    missing = [c.id for c in configs if c.notify.enabled and c.id not in keys]
    if missing:
        raise SettingsError(f"no webhook key for the gateway of hall(s) {', '.join(missing)}")
    screens = gateway_settings or GatewaySettings()
    budget_s = redis_budget_s(redis_min_replicas, redis_wait_ms)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        metrics.record_build(_version("qms"), platform.python_version(), _version("redis"))
        redis = create_redis(
            redis_url,
            max_connections=redis_max_connections,
            pool_timeout=POOL_TIMEOUT_S,
            socket_timeout=command_timeout_s(redis_min_replicas, redis_wait_ms),
            connect_timeout=CONNECT_TIMEOUT_S,
        )
        scripts = Scripts.register(redis)
        extra: dict[str, Any] = {} if clock is None else {"clock": clock}
        consumer = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        sender = Sender(
            {
                c.id: HallOutbox(c, Outbox(redis, scripts, c.id, consumer), keys[c.id])
                for c in configs
                if c.notify.enabled
            },
            httpx.AsyncClient(timeout=TIMEOUT_S, follow_redirects=False),
            clock=clock or time.time,
            sweep_s=notify_sweep_s,
        )
        monitors = {
            c.id: HallMonitor(
                HallStore(
                    redis,
                    scripts,
                    c,
                    stream_maxlen=stream_maxlen,
                    observer=metrics.observe,
                    min_replicas=redis_min_replicas,
                    wait_ms=redis_wait_ms,
                    id_digest_key=id_digest_key,
                    outbox_hook=sender.wake if c.notify.enabled else None,
                    **extra,
                ),
                PresenceStore(
                    redis,
                    scripts,
                    c.id,
                    ttl_s=screens.presence_ttl_s,
                    caps=screens.presence_caps,
                ),
                max_age_s=estimate_max_age_s,
            )
            for c in configs
        }
        try:
            secret: bytes | None = await load_audit_secret(redis)
        except QmsError:
            secret = None  # Redis is down: read it when it is back
        halls = {
            c.id: Hall(c, monitors[c.id].store, Credentials(c.credentials, secret), monitors[c.id])
            for c in configs
        }
        # The day's end passed while no replica ran: expire its leftovers
        # before serving anyone. Redis down now is the keeper's next tick's job.
        keeper = DayKeeper({h: m.store for h, m in monitors.items()}, rate=clock_rate)
        await keeper.tick()
        block_s = screens.hub.heartbeat_s
        gateway = Gateway(
            halls,
            redis,
            scripts,
            lambda: create_blocking_reader(
                redis_url, block_timeout_s=block_s, connect_timeout=CONNECT_TIMEOUT_S
            ),
            screens,
        )
        gateway.start()
        app.state.gateway = gateway
        tasks = [
            asyncio.create_task(refresh_gauges(monitors, metrics_interval_s)),
            asyncio.create_task(keeper.run()),
        ]
        if secret is None:
            tasks.append(asyncio.create_task(_share_audit_secret(redis, halls.values())))
        if sender.halls:
            tasks.append(asyncio.create_task(sender.run()))
        tasks += [asyncio.create_task(run(halls)) for run in background]
        # No archive URL (tests): no sweep, and reports read Redis alone.
        archive = None if archive_url is None else ArchiveHandle(archive_url)
        sweeper = None
        if archive is not None:
            sweeper = Sweeper(halls, archive, archive_interval_s, clock or time.time)
            tasks.append(asyncio.create_task(sweeper.run()))
        try:
            yield {
                "halls": halls,
                "gateway": gateway,
                "archive": archive,
                "sweeper": sweeper,
                "day_keeper": keeper,
                "sender": sender,
            }
        finally:
            await gateway.aclose()
            await cancel_all(tasks)
            await sender.http.aclose()
            for monitor in monitors.values():
                await monitor.aclose()
            if archive is not None:
                await asyncio.to_thread(archive.close)  # waits for a write in flight
            await redis.aclose()

    operations = TICKET_OPERATIONS + WINDOW_OPERATIONS
    description = openapi_document(operations, _version("qms"))

    async def openapi(request: Request) -> Response:
        return JSON(description)

    routes: list[BaseRoute] = [
        Route("/healthz", healthz),
        Route("/openapi.json", openapi),
        Route("/readyz", readyz_endpoint(budget_s)),
        Route("/metrics", metrics_endpoint(metrics_token)),
        *api_routes(operations, budget_s),
        *report_routes(),
        *gateway_routes(_gateway_of, deny_websocket, bearer_token),
        *page_routes(),
    ]
    # The first is the outermost: a refused preflight, or a request refused
    # as overload, gets the headers too (and an allowed origin can read why).
    middleware = [Middleware(SecurityHeaders)]
    if cors_origins:
        middleware.append(Middleware(StrictCors, origins=cors_origins))
    middleware.append(Middleware(InFlightLimit, limit=max_in_flight))
    return Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_exception, Exception: unexpected},
    )
