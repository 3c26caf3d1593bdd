"""The Starlette app: mounts each package's operations, owns the Redis
client and the periodic tasks through its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from typing import Any, cast

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.websockets import WebSocket

from dispatcher.operations import OPERATIONS as WINDOW_OPERATIONS
from displays.gateway import Gateway, GatewaySettings, gateway_routes
from displays.pages import page_routes
from qms.http import (
    JSON,
    api_routes,
    bearer_token,
    deny_websocket,
    error_response,
    halls_of,
    http_exception,
    unexpected,
)
from queue_core import metrics
from queue_core.auth import Credentials
from queue_core.config import HallConfig
from queue_core.errors import QmsError
from queue_core.operations import Hall
from queue_core.redis_client import create_blocking_reader, create_redis
from queue_core.scripts import Scripts
from queue_core.store import HallStore
from ticketing.operations import OPERATIONS as TICKET_OPERATIONS

log = logging.getLogger("qms")

BackgroundTask = Callable[[Mapping[str, Hall]], Coroutine[Any, Any, None]]
"""A coroutine the app runs for its lifetime (the demo's simulated hall)."""


async def healthz(request: Request) -> Response:
    return JSON({"status": "ok"})


async def readyz(request: Request) -> Response:
    # Every hall shares one Redis client: asking through any of them is enough.
    hall = next(iter(halls_of(request).values()))
    try:
        await asyncio.wait_for(hall.store.ping(), timeout=2.0)
    except (QmsError, TimeoutError):
        return error_response(503, "redis_unavailable", "Redis cannot be reached.")
    return JSON({"status": "ready"})


async def metrics_endpoint(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def refresh_gauges(halls: Mapping[str, Hall], interval_s: float) -> None:
    """Keep Redis-derived gauges fresh so a scrape never touches Redis."""
    while True:
        for hall_id, hall in halls.items():
            try:
                metrics.record_snapshot(hall_id, await hall.store.snapshot())
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


def _gateway_of(ws: WebSocket) -> Gateway:
    return cast(Gateway, ws.state.gateway)


def create_app(
    configs: Sequence[HallConfig],
    redis_url: str,
    *,
    redis_max_connections: int = 64,
    stream_maxlen: int = 10_000,
    metrics_interval_s: float = 5.0,
    background: Sequence[BackgroundTask] = (),
    clock: Callable[[], float] | None = None,
    gateway_settings: GatewaySettings | None = None,
) -> Starlette:
    """The whole qms app. `app.state.gateway` holds the screen gateway while
    the lifespan runs (the server closes its sockets with 1001 on shutdown)."""
    screens = gateway_settings or GatewaySettings()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        redis = create_redis(redis_url, max_connections=redis_max_connections)
        scripts = Scripts.register(redis)
        extra: dict[str, Any] = {} if clock is None else {"clock": clock}
        halls = {
            c.id: Hall(
                c,
                HallStore(
                    redis,
                    scripts,
                    c,
                    stream_maxlen=stream_maxlen,
                    observer=metrics.observe,
                    **extra,
                ),
                Credentials(c.credentials),
            )
            for c in configs
        }
        block_s = screens.hub.heartbeat_s
        gateway = Gateway(
            halls,
            redis,
            scripts,
            lambda: create_blocking_reader(redis_url, block_timeout_s=block_s),
            screens,
        )
        gateway.start()
        app.state.gateway = gateway
        tasks = [asyncio.create_task(refresh_gauges(halls, metrics_interval_s))]
        tasks += [asyncio.create_task(run(halls)) for run in background]
        try:
            yield {"halls": halls, "gateway": gateway}
        finally:
            await gateway.aclose()
            await cancel_all(tasks)
            await redis.aclose()

    routes: list[BaseRoute] = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_endpoint),
        *api_routes(TICKET_OPERATIONS + WINDOW_OPERATIONS),
        *gateway_routes(_gateway_of, deny_websocket, bearer_token),
        *page_routes(),
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_exception, Exception: unexpected},
    )
