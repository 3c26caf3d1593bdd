"""A hall's day over HTTP and the screens' WebSocket: hall_closed answers,
`/services` saying when the hall opens, a manager's close and open, the
parked list, rejoin, the audit trail with its cursor, and a replica that
starts after closing time."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from queue_core.keys import HallKeys
from queue_core.redis_client import RedisClient
from tests.conftest import ApiKit, api_client, delete_hall
from tests.live import live_server, post
from tests.support import Clock, make_config
from tests.test_hall_day import HOURS, SHANGHAI
from tests.test_http_api import (
    assert_error,
    call_next,
    get_ticket,
    headers,
    issue,
    issue_response,
    json_object,
    open_window,
    window_op,
)

pytestmark = pytest.mark.redis


def moment(when: str) -> float:
    return datetime.strptime(when, "%Y-%m-%d %H:%M").replace(tzinfo=SHANGHAI).timestamp()


@pytest.fixture
async def day_api(redis_url: str, redis: RedisClient, tmp_path: Path) -> AsyncIterator[ApiKit]:
    """The test hall with [hours] and [calling], served at Monday 2026-11-23 09:00."""
    config = make_config(tmp_path, extra=HOURS)
    clock = Clock(moment("2026-11-23 09:00"))
    keys = HallKeys(config.id)
    async with api_client([config], redis_url, clock) as client:
        yield ApiKit(client, config, clock, redis, keys)
    await delete_hall(redis, keys)


async def services(kit: ApiKit) -> dict[str, Any]:
    response = await kit.client.get(f"{kit.base}/services")
    assert response.status_code == 200, response.text
    return json_object(response)


async def seq(kit: ApiKit) -> int:
    return int(await kit.redis.get(kit.keys.seq) or 0)


async def test_outside_the_hours_the_kiosk_gets_409_hall_closed_and_services_say_when(
    day_api: ApiKit,
) -> None:
    body = await services(day_api)
    assert (body["open"], body["opens_at"]) == (True, None)
    assert body["hours"]["closes_at"] == "2026-11-23T11:45:00+08:00"  # 15 minutes early

    day_api.clock.now = moment("2026-11-23 17:20")
    before = await seq(day_api)
    response = await issue_response(day_api)
    assert_error(response, 409, "hall_closed")
    # tomorrow is a holiday: the next opening is the day after
    assert response.json()["error"]["message"] == "今日已停止取号，后天 08:30 开始取号。"
    assert await seq(day_api) == before
    body = await services(day_api)
    assert (body["open"], body["opens_at"]) == (False, "2026-11-25T08:30:00+08:00")
    assert body["hours"]["message"] == {
        "zh": "今日已停止取号，后天 08:30 开始取号。",
        "en": "The hall is not issuing tickets now; it opens on Wed 25 Nov at 08:30.",
    }
    # still within the span: visitors who wait are still called
    assert body["hours"]["in_span"] is True


async def test_a_manager_closes_and_opens_the_hall(day_api: ApiKit) -> None:
    waiting = await issue(day_api)
    await open_window(day_api, "1")
    for role in ("clerk", "kiosk", "display"):
        response = await day_api.client.post(f"{day_api.base}/close", headers=headers(role))
        assert_error(response, 403, "forbidden")

    response = await day_api.client.post(f"{day_api.base}/close", headers=headers("manager"))
    assert response.status_code == 200, response.text
    closed = json_object(response)
    assert closed["open"] is False and closed["closed_by_manager"] is True
    assert closed["opens_at"] == "2026-11-23T13:30:00+08:00"
    assert (await get_ticket(day_api, waiting["id"]))["status"] == "expired"
    assert_error(await issue_response(day_api), 409, "hall_closed")
    snap = json_object(
        await day_api.client.get(f"{day_api.base}/snapshot", headers=headers("display"))
    )
    assert snap["hall"]["open"] is False
    assert [w["status"] for w in snap["windows"]] == ["closed"] * 4
    assert (await services(day_api))["open"] is False

    response = await day_api.client.post(f"{day_api.base}/open", headers=headers("admin"))
    assert response.status_code == 200, response.text
    assert json_object(response)["open"] is True
    assert (await issue(day_api))["number"] == "A002"
    metrics = (await day_api.client.get("/metrics")).text
    hall = day_api.config.id
    expired = (
        f'qms_tickets_expired_total{{hall="{hall}",priority="normal",service="social-security"}}'
    )
    assert f"{expired} 1.0" in metrics


async def test_park_list_resume_and_rejoin_over_http(day_api: ApiKit) -> None:
    first = await issue(day_api)
    await issue(day_api)
    await open_window(day_api, "1")
    await call_next(day_api, "1")
    day_api.clock.now += 60
    response = await window_op(day_api, "1", "park", role="clerk")
    assert response.status_code == 200, response.text
    assert json_object(response)["status"] == "parked"
    response = await day_api.client.get(f"{day_api.base}/parked", headers=headers("clerk2"))
    assert response.status_code == 200
    assert response.json() == [
        {
            "number": "A001",
            "service": "social-security",
            "group": "natural",
            "window": "1",
            "parked_at": "2026-11-23T09:01:00+08:00",
        }
    ]
    assert (await get_ticket(day_api, first["id"]))["status"] == "parked"
    response = await window_op(day_api, "1", "resume", role="clerk", json={"number": "A009"})
    assert_error(response, 404, "number_not_parked")
    response = await window_op(day_api, "1", "resume", role="clerk", json={"number": "a001"})
    assert response.status_code == 200, response.text
    assert json_object(response)["window"] == "1"

    # A001 missed its call: the visitor's phone brings it back (no token)
    assert (await window_op(day_api, "1", "no-show", role="clerk")).status_code == 200
    missed = await get_ticket(day_api, first["id"])
    assert missed["rejoin_until"] == "2026-11-23T09:11:00+08:00"
    day_api.clock.now += 5 * 60
    response = await day_api.client.post(f"{day_api.base}/tickets/{first['id']}/rejoin")
    assert response.status_code == 200, response.text
    back = json_object(response)
    assert (back["status"], back["number"], back["position"]) == ("waiting", "A001", 1)
    assert back["rejoin_until"] is None
    response = await day_api.client.post(f"{day_api.base}/tickets/{first['id']}/rejoin")
    assert_error(response, 409, "late_return_closed")


async def test_recall_past_the_limit_is_409(day_api: ApiKit) -> None:
    await issue(day_api)
    await open_window(day_api, "1")
    await call_next(day_api, "1")
    for _ in range(2):
        assert (await window_op(day_api, "1", "recall", role="clerk")).status_code == 200
    assert_error(await window_op(day_api, "1", "recall", role="clerk"), 409, "recall_limit")
    view = json_object(
        await day_api.client.get(f"{day_api.base}/windows/1", headers=headers("clerk"))
    )
    assert (view["recall_limit"], view["current"]["recalls"]) == (2, 2)


async def test_the_audit_trail_pages_with_its_cursor(day_api: ApiKit) -> None:
    await issue(day_api)
    await issue(day_api, role="admin")
    await open_window(day_api, "1")  # as admin
    await window_op(day_api, "1", "call-next", role="clerk")
    await window_op(day_api, "1", "complete", role="clerk")
    url = f"{day_api.base}/audit"
    for role in ("clerk", "kiosk", "display"):
        assert_error(await day_api.client.get(url, headers=headers(role)), 403, "forbidden")
    body = json_object(await day_api.client.get(url, headers=headers("manager")))
    actions = [(e["role"], e["action"], e["window"], e["number"]) for e in body["entries"]]
    assert actions == [
        ("admin", "issue", None, "A002"),
        ("admin", "open_window", "1", None),
        ("clerk", "call_next", "1", "A001"),
        ("clerk", "complete", "1", "A001"),
    ]
    entry = body["entries"][2]
    assert set(entry) == {"id", "at", "actor", "role", "action", "window", "number", "client",
                          "reason", "ahead_of"}  # fmt: skip
    # A call's entry keeps why: A001 was called in its turn.
    assert (entry["reason"], entry["ahead_of"]) == ("place", 0)
    assert "reason" not in body["entries"][3]
    assert entry["at"] == "2026-11-23T09:00:00.000+08:00"
    # an unnamed credential: its role and an HMAC-derived id, never the token's hash
    assert entry["actor"].startswith("clerk-") and len(entry["actor"]) == len("clerk-") + 8
    page = json_object(await day_api.client.get(url + "?limit=3", headers=headers("manager")))
    assert len(page["entries"]) == 3
    rest = json_object(
        await day_api.client.get(
            url, params={"since": page["next"], "limit": 3}, headers=headers("manager")
        )
    )
    assert page["entries"] + rest["entries"] == body["entries"]
    last = json_object(
        await day_api.client.get(url, params={"since": rest["next"]}, headers=headers("admin"))
    )
    assert last == {"entries": [], "next": rest["next"]}
    for bad in ("x", "1-2-3", "-1"):
        response = await day_api.client.get(url, params={"since": bad}, headers=headers("admin"))
        assert_error(response, 422, "invalid_cursor")
    assert_error(
        await day_api.client.get(url + "?limit=0", headers=headers("admin")), 422, "invalid_limit"
    )


async def test_a_replica_started_after_closing_expires_leftovers_before_it_serves(
    redis_url: str, redis: RedisClient, tmp_path: Path
) -> None:
    config = make_config(tmp_path, extra=HOURS)
    keys = HallKeys(config.id)
    clock = Clock(moment("2026-11-23 16:00"))
    try:
        async with api_client([config], redis_url, clock) as client:
            kit = ApiKit(client, config, clock, redis, keys)
            left = [await issue(kit) for _ in range(3)]
        # every replica down from Monday 16:00 to Wednesday 08:35
        clock.now = moment("2026-11-25 08:35")
        async with api_client([config], redis_url, clock) as client:
            kit = ApiKit(client, config, clock, redis, keys)
            # the first request already finds Monday's day closed
            assert [(await get_ticket(kit, t["id"]))["status"] for t in left] == ["expired"] * 3
            assert (await issue(kit))["number"] == "A001"
    finally:
        await delete_hall(redis, keys)


async def test_screens_see_the_hall_close_and_open_without_a_reload(
    redis_url: str, redis: RedisClient, tmp_path: Path
) -> None:
    config = make_config(tmp_path, extra=HOURS)
    clock = Clock(moment("2026-11-23 09:00"))
    try:
        async with live_server([config], redis_url, clock=clock) as live:
            await post(live, config.id, "/tickets", "kiosk-token", service="household")
            url = f"{live.ws}/ws/halls/{config.id}/display?token=display-token"
            async with connect(url) as ws:
                snap = json.loads(await ws.recv())
                assert snap["hall"]["open"] is True
                await post(live, config.id, "/close", "manager-token")
                expired = json.loads(await ws.recv())
                assert (expired["type"], expired["number"]) == ("expired", "D001")
                closed = json.loads(await ws.recv())
                assert {k: closed[k] for k in ("type", "status", "number", "window")} == {
                    "type": "hall",
                    "status": "closed",
                    "number": None,
                    "window": None,
                }
                await post(live, config.id, "/open", "manager-token")
                opened = json.loads(await ws.recv())
                assert (opened["type"], opened["status"]) == ("hall", "open")
                assert opened["seq"] == closed["seq"] + 1
    finally:
        await delete_hall(redis, HallKeys(config.id))


async def test_services_opens_at_is_null_for_a_hall_that_never_opens(
    redis_url: str, redis: RedisClient, tmp_path: Path
) -> None:
    config = make_config(tmp_path, extra="[hours]\n")
    keys = HallKeys(config.id)
    try:
        async with api_client([config], redis_url, Clock()) as client:
            kit = ApiKit(client, config, Clock(), redis, keys)
            body = await services(kit)
            assert (body["open"], body["opens_at"]) == (False, None)
            response = await issue_response(kit)
            assert_error(response, 409, "hall_closed")
            assert isinstance(response.json()["error"]["message"], str)
    finally:
        await delete_hall(redis, keys)
