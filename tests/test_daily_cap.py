"""`[[service]] daily_cap`: how many tickets of a service one hall day may
hold. Past it the kiosk and the phone get 409 `service_full` and nothing
changes; a booked appointment still checks in (and counts); the next local
day starts afresh; many kiosks at once never get past the cap; `GET
/services` says how many are left so the kiosk shows the service as taken."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from queue_core.config import ConfigError
from queue_core.errors import QmsError
from queue_core.keys import HallKeys
from queue_core.redis_client import RedisClient
from queue_core.scripts import Scripts
from queue_core.store import HallStore
from tests.conftest import HallKit, api_client, delete_hall
from tests.support import TOKENS, Clock, capped_config
from tests.test_http_api import hall_state

CAP = 3
KIOSK = {"Authorization": f"Bearer {TOKENS['kiosk']}"}


def test_the_cap_is_read_and_checked(tmp_path: Path) -> None:
    config = capped_config(tmp_path, CAP)
    assert config.service_by_id["housing-fund"].daily_cap == CAP
    assert config.service_by_id["social-security"].daily_cap is None
    for bad, says in (("0", "must be 1 or more"), ('"ten"', "whole number"), ("2.5", "whole")):
        with pytest.raises(ConfigError) as problem:
            capped_config(tmp_path, bad)
        assert "daily_cap" in str(problem.value) and says in str(problem.value)


@pytest.fixture
async def capped(redis: RedisClient, tmp_path: Path) -> AsyncIterator[HallKit]:
    config = capped_config(tmp_path, CAP, remote="enabled = true\nper_client_per_hour = 100")
    clock = Clock()
    store = HallStore(redis, Scripts.register(redis), config, clock=clock)
    kit = HallKit(store, clock, config, redis)
    yield kit
    await delete_hall(redis, kit.keys)


@pytest.mark.redis
async def test_past_the_cap_the_kiosk_and_the_phone_are_refused_and_nothing_changes(
    capped: HallKit,
) -> None:
    store = capped.store
    for _ in range(CAP - 1):
        await store.issue("housing-fund")
    await store.issue_remote("housing-fund", "198.51.100.7", None)
    before = await hall_state(capped)
    for attempt in (
        store.issue("housing-fund"),
        store.issue("housing-fund", idempotency="k1"),
        store.issue_remote("housing-fund", "198.51.100.8", None),
    ):
        with pytest.raises(QmsError) as refused:
            await attempt
        assert refused.value.code == "service_full"
        assert refused.value.details == {"service": "housing-fund"}
        assert "公积金" in refused.value.message
    assert await hall_state(capped) == before
    # Other services of the same prefix and group are not capped by it.
    assert (await store.issue("social-security")).value.ticket.number == "A004"


@pytest.mark.redis
async def test_a_retry_of_an_issued_ticket_is_answered_past_the_cap(
    capped: HallKit,
) -> None:
    store = capped.store
    first = await store.issue("housing-fund", idempotency="key")
    for _ in range(CAP - 1):
        await store.issue("housing-fund")
    again = await store.issue("housing-fund", idempotency="key")
    assert again.replayed and again.value.ticket.id == first.value.ticket.id


@pytest.mark.redis
async def test_a_booked_appointment_checks_in_past_the_cap_and_counts(
    capped: HallKit,
) -> None:
    store, clock = capped.store, capped.clock
    booked = await store.book_appointment("housing-fund", round(clock.now * 1000))
    for _ in range(CAP):
        await store.issue("housing-fund")
    ticket = (await store.check_in(booked.value.code)).value.ticket
    assert ticket.service == "housing-fund"
    snap = await store.snapshot()
    assert snap.issued_by_service["housing-fund"] == CAP + 1


@pytest.mark.redis
async def test_the_next_day_starts_afresh(capped: HallKit) -> None:
    store, clock = capped.store, capped.clock
    for _ in range(CAP):
        await store.issue("housing-fund")
    with pytest.raises(QmsError):
        await store.issue("housing-fund")
    clock.advance(minutes=24 * 60)
    assert (await store.issue("housing-fund")).value.ticket.service == "housing-fund"
    assert (await store.snapshot()).issued_by_service == {"housing-fund": 1}


@pytest.mark.redis
async def test_many_kiosks_at_once_never_get_past_the_cap(
    capped: HallKit,
) -> None:
    store = capped.store

    async def one() -> str | None:
        try:
            return (await store.issue("housing-fund")).value.ticket.number
        except QmsError as exc:
            assert exc.code == "service_full"
            return None

    numbers = await asyncio.gather(*(one() for _ in range(40)))
    issued = [n for n in numbers if n is not None]
    assert len(issued) == CAP and len(set(issued)) == CAP
    assert (await store.snapshot()).issued_by_service["housing-fund"] == CAP


def _full_count(hall: str) -> float:
    labels = {"hall": hall, "service": "housing-fund"}
    return REGISTRY.get_sample_value("qms_service_full_total", labels) or 0.0


@pytest.mark.redis
async def test_over_http_the_services_list_says_what_is_left_and_a_refusal_is_counted(
    redis_url: str, redis: RedisClient, tmp_path: Path
) -> None:
    config = capped_config(tmp_path, CAP)
    base = f"/api/v1/halls/{config.id}"
    try:
        async with api_client([config], redis_url, Clock()) as client:

            async def left() -> dict[str, object]:
                body = (await client.get(f"{base}/services", headers=KIOSK)).json()
                return {s["id"]: (s["daily_cap"], s["left"]) for s in body["services"]}

            assert (await left())["housing-fund"] == (CAP, CAP)
            assert (await left())["social-security"] == (None, None)
            for _ in range(CAP):
                r = await client.post(f"{base}/tickets", json={"service": "housing-fund"},
                                      headers=KIOSK)  # fmt: skip
                assert r.status_code == 201, r.text
            counted = _full_count(config.id)
            r = await client.post(f"{base}/tickets", json={"service": "housing-fund"},
                                  headers=KIOSK)  # fmt: skip
            assert r.status_code == 409
            error = r.json()["error"]
            assert error["code"] == "service_full" and error["service"] == "housing-fund"
            assert _full_count(config.id) == counted + 1
        # Another process (this one's /services may be a second old).
        async with api_client([config], redis_url, Clock()) as client:
            body = (await client.get(f"{base}/services", headers=KIOSK)).json()
            found = {s["id"]: (s["daily_cap"], s["left"]) for s in body["services"]}
            assert found["housing-fund"] == (CAP, 0)
    finally:
        await delete_hall(redis, HallKeys(config.id))
