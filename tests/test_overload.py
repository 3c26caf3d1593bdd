"""A bounded number of requests in flight per process (API.md, "Overload,
abuse and bad input"): the excess is answered at once with 503
`overloaded` and `Retry-After`, never queued; health checks and scrapes
are never refused.

Slots are held by requests whose bodies the test streams: the app reads a
body only after it admitted the request, and the body's last chunk waits
on an `asyncio.Event` the test sets. No sleeps, no clocks.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from starlette.applications import Starlette

from qms.app import create_app
from qms.overload import RETRY_AFTER_S, InFlightLimit
from qms.settings import Settings, SettingsError
from queue_core.keys import HallKeys
from queue_core.redis_client import RedisClient
from tests.conftest import app_client, delete_hall
from tests.support import TOKENS, make_config

pytestmark = pytest.mark.redis

LIMIT = 2
EXCESS = 7
DEADLOCK_GUARD_S = 30  # only so a regression (a queue) fails instead of hanging


def _limiter(app: Starlette) -> InFlightLimit:
    """The app's own `InFlightLimit` (Starlette builds its stack on first use)."""
    layer = app.middleware_stack
    while layer is not None and not isinstance(layer, InFlightLimit):
        layer = getattr(layer, "app", None)
    assert isinstance(layer, InFlightLimit)
    return layer


def _refused() -> float:
    value = REGISTRY.get_sample_value("qms_requests_refused_total", {"reason": "overloaded"})
    return value or 0.0


async def test_the_excess_is_refused_at_once_and_the_slots_come_back(
    redis_url: str, redis: RedisClient, tmp_path: Path
) -> None:
    config = make_config(tmp_path)
    base = f"/api/v1/halls/{config.id}"
    kiosk = {"Authorization": f"Bearer {TOKENS['kiosk']}"}
    app = create_app([config], redis_url, metrics_interval_s=3600, max_in_flight=LIMIT)
    admitted = asyncio.Semaphore(0)
    release = asyncio.Event()

    async def held_body() -> AsyncIterator[bytes]:
        # Asked for only once the request is in: its slot is taken.
        admitted.release()
        await release.wait()
        yield json.dumps({"service": "social-security"}).encode()

    refused_before = _refused()
    try:
        async with app_client(app) as client, asyncio.timeout(DEADLOCK_GUARD_S):
            holders = [
                asyncio.create_task(
                    client.post(f"{base}/tickets", headers=kiosk, content=held_body())
                )
                for _ in range(LIMIT)
            ]
            for _ in range(LIMIT):
                await admitted.acquire()
            limiter = _limiter(app)
            assert limiter.in_flight == LIMIT

            # Every kind of request past the bound: refused at once, while the
            # holders still hold their slots (a queued one would never finish).
            excess = await asyncio.gather(
                *(
                    client.post(f"{base}/tickets", headers=kiosk, json={"service": "household"})
                    if i % 2
                    else client.get(f"{base}/services")
                    for i in range(EXCESS)
                )
            )
            for response in excess:
                assert response.status_code == 503
                assert response.headers["retry-after"] == str(RETRY_AFTER_S)
                assert response.json() == {
                    "error": {
                        "code": "overloaded",
                        "message": "The server is busy; try again in a moment.",
                    }
                }
            assert _refused() - refused_before == EXCESS

            # Probes and scrapes get through a full process, and take no slot.
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/readyz")).status_code == 200
            scrape = await client.get("/metrics")
            assert scrape.status_code == 200
            assert f"qms_requests_in_flight {LIMIT}.0" in scrape.text
            assert limiter.in_flight == LIMIT

            release.set()
            held = await asyncio.gather(*holders)
            assert [r.status_code for r in held] == [201] * LIMIT
            assert limiter.in_flight == 0

            # Free again: the next request is served.
            after = await client.post(
                f"{base}/tickets", headers=kiosk, json={"service": "household"}
            )
            assert after.status_code == 201
            assert limiter.in_flight == 0
            # Nothing refused was issued: two held + one after.
            numbers = sorted(r.json()["number"] for r in [*held, after])
            assert numbers == ["A001", "A002", "D001"]
    finally:
        await delete_hall(redis, HallKeys(config.id))


async def test_a_failing_request_gives_its_slot_back(
    redis_url: str, redis: RedisClient, tmp_path: Path
) -> None:
    config = make_config(tmp_path)
    app = create_app([config], redis_url, metrics_interval_s=3600, max_in_flight=1)
    try:
        async with app_client(app) as client:
            for _ in range(3):
                bad = await client.post(f"/api/v1/halls/{config.id}/tickets", content=b"{")
                assert bad.status_code == 401
                assert (await client.get("/no/such/page")).status_code == 404
            assert _limiter(app).in_flight == 0
    finally:
        await delete_hall(redis, HallKeys(config.id))


def test_a_limit_below_one_is_refused() -> None:
    async def app(scope: object, receive: object, send: object) -> None:  # never called
        raise AssertionError

    with pytest.raises(ValueError, match="at least 1"):
        InFlightLimit(app, 0)


def test_the_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QMS_MAX_IN_FLIGHT", "7")
    assert Settings.from_env(configs=()).max_in_flight == 7
    monkeypatch.setenv("QMS_MAX_IN_FLIGHT", "0")
    with pytest.raises(SettingsError, match="QMS_MAX_IN_FLIGHT"):
        Settings.from_env(configs=())
    monkeypatch.delenv("QMS_MAX_IN_FLIGHT")
    assert Settings.from_env(configs=()).max_in_flight == 128
