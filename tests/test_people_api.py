"""The API behind the people's pages: the public list of services, remote
tickets and their guards, ratings (好差评), and the clerk console's read of
its window. Each refusal is checked for its status, its code, and that it
changed nothing in Redis."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from queue_core.keys import HallKeys
from queue_core.redis_client import RedisClient
from tests.conftest import ApiKit, api_client, delete_hall
from tests.support import Clock, eta_fields, make_config, prior_estimates
from tests.test_http_api import hall_state, headers, issue, open_window, window_op

pytestmark = pytest.mark.redis

REMOTE = "enabled = true\ndaily_cap = 3\nper_client_per_hour = 2"
PHONE_REMOTE = "enabled = true\nrequire_phone = true\nper_client_per_hour = 50"


@pytest.fixture
async def remote_api(
    redis_url: str, redis: RedisClient, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[ApiKit]:
    """A hall offering remote tickets (`[remote]` from the test's param)."""
    remote = getattr(request, "param", REMOTE)
    config = make_config(tmp_path, remote=remote)
    clock = Clock()
    keys = HallKeys(config.id)
    async with api_client([config], redis_url, clock) as client:
        yield ApiKit(client, config, clock, redis, keys)
    await delete_hall(redis, keys)


async def remote_issue(kit: ApiKit, body: dict[str, Any], key: str | None = None) -> httpx.Response:
    extra = {"Idempotency-Key": key} if key else {}
    return await kit.client.post(f"{kit.base}/remote/tickets", json=body, headers=extra)


def error_code(response: httpx.Response) -> str:
    code = response.json()["error"]["code"]
    assert isinstance(code, str)
    return code


async def assert_refused(kit: ApiKit, request: Any, status: int, code: str) -> None:
    before = await hall_state(kit)
    response = await request
    assert response.status_code == status, response.text
    assert error_code(response) == code
    assert await hall_state(kit) == before


# ------------------------------------------------------------------ services


async def test_services_are_public_with_waiting_and_eta(api: ApiKit) -> None:
    await open_window(api, "2")
    await issue(api, "social-security")
    await issue(api, "housing-fund", "elderly")
    response = await api.client.get(f"{api.base}/services")  # no credential
    assert response.status_code == 200
    body = response.json()
    assert body["hall"] == {"id": api.config.id, "name": "测试政务服务中心"}
    assert body["groups"][0] == {"id": "natural", "name": "自然人综合窗口", "waiting": 2}
    social = body["services"][0]
    assert social == {
        "id": "social-security",
        "name": "社保医保",
        "group": "natural",
        "prefix": "A",
        "waiting": 1,
        # A ticket taken now: after the elderly one and A001, at the one open window.
        "eta_seconds": eta_fields(
            prior_estimates(
                api.config, {"natural": ["housing-fund", "social-security"]}, [("2", None, 0)]
            ),
            "natural",
            2,
        )["eta_seconds"],
        # No [[service]] daily_cap (tests/test_daily_cap.py).
        "daily_cap": None,
        "left": None,
    }
    assert body["priorities"] == ["disabled", "elderly", "normal"]
    assert body["remote"] == {"enabled": False, "require_phone": False}


# ------------------------------------------------------------------- remote


async def test_a_hall_without_remote_tickets_refuses_them(api: ApiKit) -> None:
    await assert_refused(
        api, remote_issue(api, {"service": "social-security"}), 404, "remote_not_offered"
    )


async def test_a_remote_ticket_needs_no_token_and_is_normal(remote_api: ApiKit) -> None:
    response = await remote_issue(remote_api, {"service": "household"})
    assert response.status_code == 201, response.text
    ticket = response.json()
    assert ticket["number"] == "D001" and ticket["priority"] == "normal"
    assert ticket["status"] == "waiting" and ticket["position"] == 0
    # The visitor's page reads it by its id, like any ticket.
    again = await remote_api.client.get(f"{remote_api.base}/tickets/{ticket['id']}")
    assert again.json()["number"] == "D001"


async def test_remote_tickets_are_limited_per_client_per_hour(remote_api: ApiKit) -> None:
    kit = remote_api
    for _ in range(2):
        assert (await remote_issue(kit, {"service": "household"})).status_code == 201
    kit.clock.advance(minutes=15)
    await assert_refused(kit, remote_issue(kit, {"service": "household"}), 429, "rate_limited")
    refused = await remote_issue(kit, {"service": "household"})
    assert refused.headers["retry-after"] == str(45 * 60)  # at 10:00 the next hour's count starts
    kit.clock.advance(minutes=45)  # the next clock hour
    assert (await remote_issue(kit, {"service": "household"})).status_code == 201


@pytest.mark.parametrize(
    "remote_api", ["enabled = true\ndaily_cap = 3\nper_client_per_hour = 100"], indirect=True
)
async def test_remote_tickets_are_capped_per_service_per_day(remote_api: ApiKit) -> None:
    kit = remote_api
    for _ in range(3):
        assert (await remote_issue(kit, {"service": "household"})).status_code == 201
    await assert_refused(
        kit, remote_issue(kit, {"service": "household"}), 409, "remote_quota_exhausted"
    )
    # Another service has its own cap; a kiosk is not capped.
    assert (await remote_issue(kit, {"service": "social-security"})).status_code == 201
    await issue(kit, "household")
    kit.clock.advance(minutes=24 * 60)
    assert (await remote_issue(kit, {"service": "household"})).status_code == 201


@pytest.mark.parametrize(
    "remote_api", ["enabled = true\ndaily_cap = 5\nper_client_per_hour = 100"], indirect=True
)
async def test_the_daily_cap_holds_under_concurrent_requests(remote_api: ApiKit) -> None:
    kit = remote_api
    replies = await asyncio.gather(
        *(remote_issue(kit, {"service": "household"}) for _ in range(30))
    )
    statuses = sorted(r.status_code for r in replies)
    assert statuses == [201] * 5 + [409] * 25
    numbers = sorted(r.json()["number"] for r in replies if r.status_code == 201)
    assert numbers == ["D001", "D002", "D003", "D004", "D005"]


async def test_a_retried_remote_request_gets_the_same_ticket(remote_api: ApiKit) -> None:
    kit = remote_api
    first = await remote_issue(kit, {"service": "household"}, key="phone-tap-1")
    again = await remote_issue(kit, {"service": "household"}, key="phone-tap-1")
    assert first.status_code == 201 and again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    # The retry did not use up the client's hourly allowance of 2.
    assert (await remote_issue(kit, {"service": "household"})).status_code == 201


@pytest.mark.parametrize("remote_api", [PHONE_REMOTE], indirect=True)
async def test_one_active_remote_ticket_per_phone(remote_api: ApiKit) -> None:
    kit = remote_api
    first = await remote_issue(kit, {"service": "household", "phone": "138 0013 8000"})
    assert first.status_code == 201, first.text
    await assert_refused(
        kit,
        remote_issue(kit, {"service": "social-security", "phone": "+8613800138000"}),
        409,
        "phone_has_ticket",
    )
    other = await remote_issue(kit, {"service": "household", "phone": "13900139000"})
    assert other.status_code == 201
    # Once the first ticket is cancelled, the number may take another.
    tid = first.json()["id"]
    assert (await kit.client.post(f"{kit.base}/tickets/{tid}/cancel")).status_code == 200
    third = await remote_issue(kit, {"service": "household", "phone": "13800138000"})
    assert third.status_code == 201
    # The number itself is nowhere in Redis: not in tickets, keys or events.
    dump = json.dumps(await hall_state(kit), ensure_ascii=False, default=str)
    assert "13800138000" not in dump and "13900139000" not in dump


@pytest.mark.parametrize("remote_api", [PHONE_REMOTE], indirect=True)
async def test_phone_and_address_digests_are_keyed_with_the_deployment_key(
    remote_api: ApiKit,
) -> None:
    """Mobile numbers are ~10^10: an unkeyed hash of one is undone by trying
    them all. The digests are HMACs under the deployment key, which the
    first replica makes and keeps in Redis (`qms:secret:audit`)."""
    kit, hall = remote_api, remote_api.config.id
    phone, client = "13800138000", "127.0.0.1"  # httpx's ASGI transport's address
    assert (await remote_issue(kit, {"service": "household", "phone": phone})).status_code == 201
    [phones] = [k async for k in kit.redis.scan_iter(match=f"qms:{{{hall}}}:remote-phones:*")]
    [stored] = list(await kit.redis.hgetall(phones))
    [client_key] = [k async for k in kit.redis.scan_iter(match=f"qms:{{{hall}}}:remote-client:*")]

    def bare(value: str) -> set[str]:
        """Unkeyed SHA-256 digests of a value, as a brute force would try them
        (the hall id in front is no key: it is public)."""
        hexes = {hashlib.sha256(v.encode()).hexdigest() for v in (value, f"{hall}\x00{value}")}
        return hexes | {h[:n] for h in hexes for n in (16, 32)}

    assert stored not in bare(phone)
    assert not any(client_key.endswith(":" + h) for h in bare(client))
    secret = bytes.fromhex(str(await kit.redis.get("qms:secret:audit")))

    def keyed(kind: str, value: str) -> str:
        text = f"{kind}\x00{hall}\x00{value}".encode()
        return hmac.new(secret, text, hashlib.sha256).hexdigest()[:32]

    assert stored == keyed("phone", phone)
    assert client_key.endswith(":" + keyed("client", client))


@pytest.mark.parametrize("remote_api", [PHONE_REMOTE], indirect=True)
@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"service": "household"}, 422, "missing_field"),
        ({"service": "household", "phone": "12345"}, 422, "invalid_phone"),
        ({"service": "household", "phone": "23800138000"}, 422, "invalid_phone"),
        ({"service": "household", "phone": 13800138000}, 422, "invalid_field"),
        ({"service": "nope", "phone": "13800138000"}, 404, "service_not_found"),
        ({"service": "household", "phone": "13800138000", "x": 1}, 422, "unknown_field"),
        ({}, 422, "missing_field"),
    ],
)
async def test_bad_remote_requests(
    remote_api: ApiKit, body: dict[str, Any], status: int, code: str
) -> None:
    await assert_refused(remote_api, remote_issue(remote_api, body), status, code)


async def test_remote_refusals_are_counted(remote_api: ApiKit) -> None:
    labels = {"hall": remote_api.config.id, "reason": "rate_limited"}
    before = REGISTRY.get_sample_value("qms_remote_tickets_refused_total", labels) or 0.0
    for _ in range(3):
        await remote_issue(remote_api, {"service": "household"})
    after = REGISTRY.get_sample_value("qms_remote_tickets_refused_total", labels)
    assert after == before + 1


# ------------------------------------------------------------------- rating


async def served(kit: ApiKit, service: str = "social-security") -> dict[str, Any]:
    """A ticket called at window 1 and completed there."""
    ticket = await issue(kit, service)
    await open_window(kit, "1")
    assert (await window_op(kit, "1", "call-next")).status_code == 200
    assert (await window_op(kit, "1", "complete")).status_code == 200
    return ticket


async def rate(kit: ApiKit, ticket_id: str, body: dict[str, Any]) -> httpx.Response:
    return await kit.client.post(f"{kit.base}/tickets/{ticket_id}/rating", json=body)


async def test_a_completed_visit_is_rated_once(api: ApiKit) -> None:
    ticket = await served(api)
    labels = {
        "hall": api.config.id,
        "service": "social-security",
        "window": "1",
        "score": "very_satisfied",
    }
    before = REGISTRY.get_sample_value("qms_ratings_total", labels) or 0.0
    response = await rate(api, ticket["id"], {"score": "very_satisfied", "reason": " 办事快 "})
    assert response.status_code == 201, response.text
    assert response.json() == {
        "score": "very_satisfied",
        "reason": "办事快",
        "rated_at": "2026-11-21T09:00:00+08:00",
    }
    assert REGISTRY.get_sample_value("qms_ratings_total", labels) == before + 1
    got = await api.client.get(f"{api.base}/tickets/{ticket['id']}/rating")
    assert got.json()["score"] == "very_satisfied"
    await assert_refused(
        api, rate(api, ticket["id"], {"score": "dissatisfied"}), 409, "already_rated"
    )
    assert REGISTRY.get_sample_value("qms_ratings_total", labels) == before + 1


async def test_an_unrated_ticket_reads_as_no_rating(api: ApiKit) -> None:
    ticket = await issue(api)
    got = await api.client.get(f"{api.base}/tickets/{ticket['id']}/rating")
    assert got.json() == {"score": None, "reason": None, "rated_at": None}


async def test_only_a_completed_visit_can_be_rated(api: ApiKit) -> None:
    waiting = await issue(api)
    await assert_refused(api, rate(api, waiting["id"], {"score": "neutral"}), 409, "not_completed")
    await open_window(api, "1")
    await window_op(api, "1", "call-next")
    await assert_refused(api, rate(api, waiting["id"], {"score": "neutral"}), 409, "not_completed")
    await window_op(api, "1", "no-show")
    await assert_refused(api, rate(api, waiting["id"], {"score": "neutral"}), 409, "not_completed")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"score": "great"}, 422, "invalid_rating"),
        ({"score": 5}, 422, "invalid_field"),
        ({}, 422, "missing_field"),
        ({"score": "neutral", "reason": "x" * 201}, 422, "invalid_field"),
        ({"score": "neutral", "reason": 3}, 422, "invalid_field"),
        ({"score": "neutral", "stars": 3}, 422, "unknown_field"),
    ],
)
async def test_bad_ratings(api: ApiKit, body: dict[str, Any], status: int, code: str) -> None:
    ticket = await served(api)
    await assert_refused(api, rate(api, ticket["id"], body), status, code)


async def test_rating_an_unknown_ticket_is_404(api: ApiKit) -> None:
    await assert_refused(api, rate(api, "A" * 22, {"score": "neutral"}), 404, "ticket_not_found")
    await assert_refused(api, rate(api, "short", {"score": "neutral"}), 404, "ticket_not_found")


async def test_concurrent_ratings_of_one_ticket_count_once(api: ApiKit) -> None:
    ticket = await served(api)
    replies = await asyncio.gather(
        *(rate(api, ticket["id"], {"score": "satisfied"}) for _ in range(10))
    )
    assert sorted(r.status_code for r in replies) == [201] + [409] * 9


# ------------------------------------------------------------------- console


async def console(kit: ApiKit, window: str, role: str = "clerk", query: str = "") -> httpx.Response:
    return await kit.client.get(f"{kit.base}/windows/{window}{query}", headers=headers(role))


async def test_the_console_lists_waiting_in_call_next_order(api: ApiKit) -> None:
    # Window 1 serves natural and legal: its list merges both groups by
    # effective time, as call-next does.
    await issue(api, "business-licence")
    api.clock.advance(minutes=1)
    await issue(api, "social-security")
    api.clock.advance(minutes=1)
    await issue(api, "housing-fund", "elderly")  # 20-minute credit: goes first
    api.clock.advance(minutes=1)
    await issue(api, "household")  # police: not window 1's
    await open_window(api, "1")
    response = await console(api, "1")
    assert response.status_code == 200, response.text
    body = response.json()
    listed = [(t["number"], t["priority"], t["position"]) for t in body["waiting"]]
    assert listed == [("A002", "elderly", 0), ("C001", "normal", 1), ("A001", "normal", 2)]
    assert body["waiting_total"] == 3
    assert body["current"] is None and body["window"]["status"] == "open"
    assert all("id" not in t for t in body["waiting"])  # ids are visitors' credentials
    called = []
    for _ in range(3):
        called.append((await window_op(api, "1", "call-next", role="clerk")).json()["number"])
    assert called == [n for n, _, _ in listed]
    after = (await console(api, "1")).json()
    assert after["current"]["number"] == "A001" and after["current"]["status"] == "called"
    assert after["current"]["called_at"] == "2026-11-21T09:03:00+08:00"
    assert after["waiting"] == [] and after["waiting_total"] == 0


async def test_the_console_limit(api: ApiKit) -> None:
    for _ in range(5):
        await issue(api)
    body = (await console(api, "1", query="?limit=2")).json()
    assert [t["number"] for t in body["waiting"]] == ["A001", "A002"]
    assert body["waiting_total"] == 5


@pytest.mark.parametrize(
    ("window", "role", "query", "status", "code"),
    [
        ("2", "clerk", "", 403, "window_forbidden"),
        ("1", "display", "", 403, "forbidden"),
        ("1", "kiosk", "", 403, "forbidden"),
        ("1", None, "", 401, "unauthorized"),
        ("77", "admin", "", 404, "window_not_found"),
        ("1", "clerk", "?limit=0", 422, "invalid_limit"),
        ("1", "clerk", "?limit=501", 422, "invalid_limit"),
        ("1", "clerk", "?limit=x", 422, "invalid_limit"),
    ],
)
async def test_console_refusals(
    api: ApiKit, window: str, role: str | None, query: str, status: int, code: str
) -> None:
    response = await api.client.get(f"{api.base}/windows/{window}{query}", headers=headers(role))
    assert response.status_code == status
    assert error_code(response) == code


async def test_managers_and_other_clerks_windows(api: ApiKit) -> None:
    assert (await console(api, "1", role="manager")).status_code == 200
    assert (await console(api, "3", role="clerk2")).status_code == 200


# -------------------------------------------------------------- credential


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        ("kiosk", {"role": "kiosk", "windows": []}),
        ("clerk2", {"role": "clerk", "windows": ["2", "3"]}),
        ("display", {"role": "display", "windows": []}),
        ("admin", {"role": "admin", "windows": []}),
    ],
)
async def test_a_device_can_ask_what_its_token_is(
    api: ApiKit, role: str, expected: dict[str, Any]
) -> None:
    response = await api.client.get(f"{api.base}/credential", headers=headers(role))
    assert response.status_code == 200
    assert response.json() == expected


async def test_an_unknown_token_is_401(api: ApiKit) -> None:
    for auth in ({}, {"Authorization": "Bearer nope-nope-nope"}):
        response = await api.client.get(f"{api.base}/credential", headers=auth)
        assert response.status_code == 401
        assert error_code(response) == "unauthorized"
