"""Shared fixtures: every test talks to a real redis-server.

Set ``QMS_TEST_REDIS_URL`` to test against a Redis you run yourself, or
``QMS_TEST_REDIS_CLUSTER=<n>`` for a Cluster of n primaries started from the
bundled redis-server (``loadtests/redis_cluster.py``); otherwise one embedded
redis-server is started for the whole session.

That Redis may be shared with other people or test runs, so tests never
FLUSHDB/FLUSHALL: each test writes under keys (or hall ids) of its own,
made unique with ``uuid4``, and deletes what it must.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from loadtests.redis_cluster import LocalCluster
from qms.app import create_app
from qms.embedded_redis import EmbeddedRedis
from queue_core.config import HallConfig
from queue_core.keys import HallKeys
from queue_core.redis_client import RedisClient, create_redis
from queue_core.scripts import Scripts
from queue_core.store import HallStore
from tests.fuzz_tally import TRIED
from tests.support import NOTIFY_SECRET, Clock, make_config


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of the session's Redis."""
    override = os.environ.get("QMS_TEST_REDIS_URL")
    if override:
        yield override
        return
    primaries = os.environ.get("QMS_TEST_REDIS_CLUSTER")
    if primaries:
        cluster = LocalCluster.start(tmp_path_factory.mktemp("cluster"), int(primaries))
        try:
            yield cluster.url
        finally:
            cluster.stop()
        return
    # everysec: the tests do not need a disk flush per write, and it is faster.
    server = EmbeddedRedis.start(tmp_path_factory.mktemp("redis"), fsync="everysec")
    try:
        yield server.url
    finally:
        server.stop()


# Named by ``name=`` so the function does not shadow the ``redis`` package here.
@pytest.fixture(name="redis")
async def redis_client(redis_url: str) -> AsyncIterator[RedisClient]:
    """A fresh ``create_redis`` client per test, closed afterwards.

    Async fixtures and tests share one session-wide event loop (pyproject's
    ``asyncio_default_*_loop_scope``); the client is per test so that a test
    that breaks its connections cannot affect the next one.
    """
    client = create_redis(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@dataclass
class HallKit:
    """One fresh hall in the test Redis, with a clock the test moves."""

    store: HallStore
    clock: Clock
    config: HallConfig
    redis: RedisClient
    keys: HallKeys = field(init=False)

    def __post_init__(self) -> None:
        self.keys = self.store.keys

    def store_time_ms(self, minutes: float) -> int:
        """The store's time `minutes` after the test day's 09:00 start."""
        return round((Clock().now + minutes * 60) * 1000)


HallFactory = Callable[..., Awaitable[HallKit]]


@pytest.fixture
async def hall_factory(redis: RedisClient, tmp_path: Path) -> AsyncIterator[HallFactory]:
    """Makes halls of their own (unique ids); deletes their keys afterwards."""
    made: list[HallKit] = []
    scripts = Scripts.register(redis)

    async def make(
        extra_priority: str = "", extra_windows: int = 0, extra: str = "", **store_options: Any
    ) -> HallKit:
        config = make_config(
            tmp_path, extra_priority=extra_priority, extra_windows=extra_windows, extra=extra
        )
        clock = Clock()
        store = HallStore(redis, scripts, config, clock=clock, **store_options)
        made.append(HallKit(store, clock, config, redis))
        return made[-1]

    yield make
    for kit in made:
        await delete_hall(redis, kit.keys)


@pytest.fixture
async def hall(hall_factory: HallFactory) -> HallKit:
    return await hall_factory()


@pytest.fixture
async def hall_config(tmp_path: Path, redis: RedisClient) -> AsyncIterator[HallConfig]:
    """The test hall's config with an id of its own; its keys deleted afterwards."""
    config = make_config(tmp_path)
    yield config
    await delete_hall(redis, HallKeys(config.id))


async def delete_hall(redis: RedisClient, keys: HallKeys) -> None:
    doomed = [k async for k in redis.scan_iter(match=keys.match_all(), count=1000)]
    if doomed:
        await redis.delete(*doomed)


@contextlib.asynccontextmanager
async def api_client(
    configs: list[HallConfig],
    redis_url: str,
    clock: Clock | None = None,
    metrics_interval_s: float = 3600,
    id_digest_key: bytes | None = None,
    notify_sweep_s: float = 2.0,
) -> AsyncIterator[httpx.AsyncClient]:
    """The whole app in-process: lifespan run, state handed to each request
    the way uvicorn does it, requests over httpx's ASGI transport."""
    async with (
        served_app(
            configs, redis_url, clock, metrics_interval_s, id_digest_key, notify_sweep_s
        ) as app,
        asgi_client(app) as client,
    ):
        yield client


def asgi_client(
    app: Any, address: str = "127.0.0.1", base_url: str = "http://qms.test"
) -> httpx.AsyncClient:
    """A client of `app` (from `served_app`) whose requests come from `address`."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=(address, 123))
    return httpx.AsyncClient(transport=transport, base_url=base_url)


@contextlib.asynccontextmanager
async def served_app(
    configs: list[HallConfig],
    redis_url: str,
    clock: Clock | None = None,
    metrics_interval_s: float = 3600,
    id_digest_key: bytes | None = None,
    notify_sweep_s: float = 2.0,
    **options: Any,
) -> AsyncIterator[Any]:
    """The whole app with its lifespan running, as an ASGI callable that
    hands each request the lifespan's state the way uvicorn does; `options`
    go to `create_app`."""
    # Estimates read afresh on every request: what a test did is what it sees.
    app = create_app(
        configs,
        redis_url,
        clock=clock,
        metrics_interval_s=metrics_interval_s,
        estimate_max_age_s=0,
        id_digest_key=id_digest_key,
        notify_secrets={c.id: NOTIFY_SECRET for c in configs if c.notify.enabled},
        notify_sweep_s=notify_sweep_s,
        **options,
    )
    async with lifespan_of(app) as served:
        yield served


@contextlib.asynccontextmanager
async def lifespan_of(app: Starlette) -> AsyncIterator[Any]:
    """`app` with its lifespan run, as an ASGI callable that hands each
    request the lifespan's state the way uvicorn does it."""
    async with app.router.lifespan_context(app) as state:

        async def with_state(scope: Any, receive: Any, send: Any) -> None:
            scope["state"] = dict(state or {})
            await app(scope, receive, send)

        yield with_state


@contextlib.asynccontextmanager
async def app_client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """A client of `app` in-process: its lifespan run, requests over httpx's
    ASGI transport."""
    async with lifespan_of(app) as served, asgi_client(served) as client:
        yield client


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    """One headless Chromium for every page test of the session (each test
    opens its own context: fresh storage). Skips where none can run."""
    from tests.browser import CHROMIUM, NO_CHROMIUM

    if CHROMIUM is None:
        pytest.skip(NO_CHROMIUM)
    api = pytest.importorskip("playwright.async_api", reason="playwright is not installed")
    async with api.async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        await chromium.close()


@dataclass
class ApiKit:
    client: httpx.AsyncClient
    config: HallConfig
    clock: Clock
    redis: RedisClient
    keys: HallKeys

    @property
    def base(self) -> str:
        return f"/api/v1/halls/{self.config.id}"


@pytest.fixture
async def api(redis_url: str, redis: RedisClient, tmp_path: Path) -> AsyncIterator[ApiKit]:
    """A fresh hall served by the whole app (see tests/support.py for its tokens)."""
    config = make_config(tmp_path)
    clock = Clock()
    keys = HallKeys(config.id)
    async with api_client([config], redis_url, clock) as client:
        yield ApiKit(client, config, clock, redis, keys)
    await delete_hall(redis, keys)


async def stream_events(redis: RedisClient, keys: HallKeys) -> list[tuple[str, dict[str, str]]]:
    """Every event still in the hall's stream, oldest first."""
    entries = await redis.xrange(keys.events) or []
    return [
        (str(eid), {str(k): str(v) for k, v in (fields or {}).items()}) for eid, fields in entries
    ]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """How many inputs each fuzz test tried (`tests/fuzz_tally.py`)."""
    if TRIED:
        terminalreporter.write_sep("-", "fuzz: inputs tried")
        for what, n in sorted(TRIED.items()):
            terminalreporter.write_line(f"{n:>8} {what}")
