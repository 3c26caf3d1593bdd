"""`[limits]`: tickets per credential and public requests per client address
a minute. Past a limit: 429 `rate_limited` with `Retry-After`, and nothing in
the hall changes but the limiter's own counter."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from queue_core.keys import HallKeys
from queue_core.redis_client import RedisClient
from tests.conftest import ApiKit, asgi_client, delete_hall, served_app
from tests.support import Clock, make_config
from tests.test_http_api import hall_state, headers, issue_response

pytestmark = pytest.mark.redis

LIMITS = "[limits]\nissue_per_minute = 3\npublic_per_minute = 4\n"


@pytest.fixture
async def limited(redis_url: str, redis: RedisClient, tmp_path: Path) -> AsyncIterator[ApiKit]:
    """A hall with small limits; its clients come from 10.0.0.1 (`other` from 10.0.0.2)."""
    config = make_config(tmp_path, extra=LIMITS)
    clock = Clock()
    keys = HallKeys(config.id)
    async with (
        served_app([config], redis_url, clock) as app,
        asgi_client(app, "10.0.0.1") as client,
        asgi_client(app, "10.0.0.2") as other,
    ):
        kit = ApiKit(client, config, clock, redis, keys)
        kit.other = other  # type: ignore[attr-defined]
        yield kit
    await delete_hall(redis, keys)


def assert_limited(response: httpx.Response, retry_after: int) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["error"]["code"] == "rate_limited"
    assert response.json()["error"]["message"]
    assert response.headers["retry-after"] == str(retry_after)


async def test_a_kiosk_past_its_limit_gets_429_and_changes_nothing(limited: ApiKit) -> None:
    kit = limited
    for _ in range(3):
        assert (await issue_response(kit)).status_code == 201
    kit.clock.advance(seconds=20)
    before = await hall_state(kit, with_limiter=True)
    refused = await issue_response(kit, key="k-past-limit")
    assert_limited(refused, 40)
    # Nothing changed, not even the limiter's counter: a refusal is not counted.
    assert await hall_state(kit, with_limiter=True) == before
    # Another credential issues on.
    assert (await issue_response(kit, role="admin")).status_code == 201
    # The next minute lets the kiosk through again.
    kit.clock.advance(seconds=40)
    assert (await issue_response(kit, key="k-past-limit")).status_code == 201


async def test_a_check_in_counts_as_issuing(limited: ApiKit) -> None:
    kit = limited
    booked = await kit.client.post(
        f"{kit.base}/appointments",
        json={"service": "social-security", "start": "2026-03-02T09:10:00"},
        headers=headers("kiosk"),
    )
    assert booked.status_code == 201, booked.text
    for _ in range(3):
        assert (await issue_response(kit)).status_code == 201
    before = await hall_state(kit)
    response = await kit.client.post(
        f"{kit.base}/appointments/{booked.json()['code']}/check-in", headers=headers("kiosk")
    )
    assert_limited(response, 60)
    assert await hall_state(kit) == before


async def test_public_requests_are_limited_per_client_address(limited: ApiKit) -> None:
    kit = limited
    other: httpx.AsyncClient = kit.other  # type: ignore[attr-defined]
    for _ in range(4):
        assert (await kit.client.get(f"{kit.base}/services")).status_code == 200
    kit.clock.advance(seconds=59.5)
    assert_limited(await kit.client.get(f"{kit.base}/services"), 1)
    # Another address is not limited, nor are the endpoints that take a token.
    assert (await other.get(f"{kit.base}/services")).status_code == 200
    snapshot = await kit.client.get(f"{kit.base}/snapshot", headers=headers("display"))
    assert snapshot.status_code == 200
    # Kiosks poll the services with their token: never counted, whatever their number.
    for _ in range(6):
        polled = await kit.client.get(f"{kit.base}/services", headers=headers("kiosk"))
        assert polled.status_code == 200
    kit.clock.advance(seconds=0.5)
    assert (await kit.client.get(f"{kit.base}/services")).status_code == 200


async def test_a_tickets_own_endpoints_are_limited_per_ticket(limited: ApiKit) -> None:
    """A hall's phones share one Wi-Fi address and follow their tickets every
    2 s: counted per address they would be refused together. Each ticket
    has its own allowance instead (its id is its holder's credential)."""
    kit = limited
    mine = (await issue_response(kit, role="admin")).json()
    theirs = (await issue_response(kit, role="admin")).json()
    path = f"{kit.base}/tickets/{mine['id']}"
    for _ in range(4):
        assert (await kit.client.get(path)).status_code == 200
    kit.clock.advance(seconds=59.5)
    before = await hall_state(kit, with_limiter=True)
    assert_limited(await kit.client.post(f"{path}/cancel"), 1)
    assert await hall_state(kit, with_limiter=True) == before  # the ticket still waits
    # The same address follows another ticket, and asks for the hall's services.
    assert (await kit.client.get(f"{kit.base}/tickets/{theirs['id']}")).status_code == 200
    assert (await kit.client.get(f"{kit.base}/services")).status_code == 200
    kit.clock.advance(seconds=0.5)
    cancelled = await kit.client.post(f"{path}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"


async def test_limiter_keys_carry_the_hall_tag_and_no_address(limited: ApiKit) -> None:
    kit = limited
    assert (await kit.client.get(f"{kit.base}/services")).status_code == 200
    keys = [k async for k in kit.redis.scan_iter(match=kit.keys.match_all()) if ":limit:" in k]
    assert len(keys) == 1
    assert keys[0].startswith(f"qms:{{{kit.config.id}}}:limit:public:")
    assert "10.0.0.1" not in keys[0]
    assert 0 < await kit.redis.pttl(keys[0]) <= 120_000
