"""The HTTP contract (/work/shared/spec/API.md, "HTTP") against the whole app.

Every request goes through the real Starlette app in-process (httpx's ASGI
transport) to a real redis-server; the hall's clock is the test's to move.
A rejected request is checked three ways: its status, the contract's error
shape with the exact code, and that the hall's Redis state is byte-for-byte
what it was before.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from qms.app import create_app
from queue_core.keys import HallKeys
from queue_core.redis_client import RedisClient
from tests.conftest import ApiKit, api_client
from tests.support import TOKENS, eta_fields, make_config, prior_estimates

pytestmark = pytest.mark.redis

TICKET_KEYS = {
    "id",
    "number",
    "service",
    "group",
    "priority",
    "status",
    "issued_at",
    "called_at",
    "window",
    "position",
    "eta_seconds",
    "eta_range_seconds",  # additions to the contract's ticket: docs/api-notes.md
    "recalls",
    "rejoin_until",
    "notify",
    "snoozed_until",
}
TICKET_ID = re.compile(r"[A-Za-z0-9_-]{22}")
SNAKE_CASE = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")

# The test clock starts at 2026-11-21 09:00 in the hall's zone (Asia/Shanghai).
TODAY = "2026-11-21"


def at(hh_mm_ss: str) -> str:
    """The contract's rendering of a time today in the hall: ISO 8601 with +08:00."""
    return f"{TODAY}T{hh_mm_ss}+08:00"


# Mean expected minutes of the "natural" group (social-security 8, housing-fund 6), in seconds.
NATURAL_MEAN_S = 7 * 60
LEGAL_MEAN_S = 12 * 60

UNUSED_TICKET_ID = "A" * 22  # the shape of a ticket id, naming no ticket


# --------------------------------------------------------------------------- helpers


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def headers(role: str | None = "admin", key: str | None = None) -> dict[str, str]:
    """Authorization for one of the test hall's TOKENS (None: no credential), and an
    optional Idempotency-Key."""
    out = bearer(TOKENS[role]) if role is not None else {}
    if key is not None:
        out["Idempotency-Key"] = key
    return out


async def issue_response(
    kit: ApiKit,
    service: str = "social-security",
    priority: str | None = None,
    *,
    role: str = "kiosk",
    key: str | None = None,
) -> httpx.Response:
    body: dict[str, Any] = {"service": service}
    if priority is not None:
        body["priority"] = priority
    return await kit.client.post(f"{kit.base}/tickets", json=body, headers=headers(role, key))


async def issue(
    kit: ApiKit,
    service: str = "social-security",
    priority: str | None = None,
    *,
    role: str = "kiosk",
    key: str | None = None,
) -> dict[str, Any]:
    """Issue a ticket that must be issued; its JSON."""
    response = await issue_response(kit, service, priority, role=role, key=key)
    assert response.status_code == 201, response.text
    return json_object(response)


async def get_ticket(kit: ApiKit, ticket_id: str) -> dict[str, Any]:
    response = await kit.client.get(f"{kit.base}/tickets/{ticket_id}")
    assert response.status_code == 200, response.text
    return json_object(response)


async def window_op(
    kit: ApiKit,
    window: str,
    op: str,
    *,
    role: str = "admin",
    key: str | None = None,
    json: dict[str, Any] | None = None,
) -> httpx.Response:
    return await kit.client.post(
        f"{kit.base}/windows/{window}/{op}", json=json, headers=headers(role, key)
    )


async def open_window(kit: ApiKit, window: str) -> None:
    response = await window_op(kit, window, "open")
    assert response.status_code == 200, response.text
    assert json_object(response)["status"] == "open"


async def call_next(kit: ApiKit, window: str, *, key: str | None = None) -> dict[str, Any]:
    """Call-next that must call someone; the called ticket (without the
    call's `reason`, which only a call's answer has: checked where it matters)."""
    response = await window_op(kit, window, "call-next", key=key)
    assert response.status_code == 200, response.text
    called = json_object(response)
    assert set(called.pop("reason")) == {"code", "text", "ahead_of"}
    return called


async def book(kit: ApiKit, service: str, start: str, *, key: str | None = None) -> dict[str, Any]:
    response = await kit.client.post(
        f"{kit.base}/appointments",
        json={"service": service, "start": start},
        headers=headers("kiosk", key),
    )
    assert response.status_code == 201, response.text
    return json_object(response)


async def snapshot(kit: ApiKit, role: str = "display") -> dict[str, Any]:
    response = await kit.client.get(f"{kit.base}/snapshot", headers=headers(role))
    assert response.status_code == 200, response.text
    return json_object(response)


def json_object(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body, dict), body
    return body


def assert_ticket_shape(ticket: dict[str, Any], *, called: bool = False) -> None:
    """A ticket's body; a call's answer has the call's `reason` too."""
    assert set(ticket) == TICKET_KEYS | ({"reason"} if called else set())
    assert TICKET_ID.fullmatch(ticket["id"])


def assert_staff_ticket_shape(ticket: dict[str, Any], *, called: bool = False) -> None:
    """A ticket in a window operation's answer: the ticket without its id
    (the visitor's credential, which staff never get)."""
    assert set(ticket) == TICKET_KEYS - {"id"} | ({"reason"} if called else set())


def staff(ticket: dict[str, Any]) -> dict[str, Any]:
    """A visitor's ticket body as staff get it: without the id."""
    return {k: v for k, v in ticket.items() if k != "id"}


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    """The contract's error: this status and `{"error": {"code", "message"}}` with this code."""
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text
    body = json_object(response)
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict) and set(error) == {"code", "message"}, body
    assert error["code"] == code, body
    assert SNAKE_CASE.fullmatch(error["code"])
    assert isinstance(error["message"], str) and error["message"].strip(), body


HallState = dict[str, tuple[str, Any]]


class OfHall(Protocol):
    """Whatever knows a hall's Redis and keys (an `ApiKit`, a `HallKit`)."""

    @property
    def redis(self) -> RedisClient: ...

    @property
    def keys(self) -> HallKeys: ...


async def hall_state(kit: OfHall, *, with_limiter: bool = False) -> HallState:
    """Every key of the hall in Redis with its type and whole value; the rate
    limiter's counters (not hall state: every request counts) only when asked."""
    redis = kit.redis
    state: HallState = {}
    async for key in redis.scan_iter(match=kit.keys.match_all(), count=1000):
        if ":limit:" in key and not with_limiter:
            continue
        kind = await redis.type(key)
        value: Any
        if kind == "string":
            value = await redis.get(key)
        elif kind == "hash":
            value = await redis.hgetall(key)
        elif kind == "zset":
            value = await redis.zrange(key, 0, -1, withscores=True)
        elif kind == "list":
            value = await redis.lrange(key, 0, -1)
        elif kind == "set":
            value = await redis.smembers(key)
        elif kind == "stream":
            value = await redis.xrange(key)
        else:
            raise AssertionError(f"unexpected Redis type {kind!r} of {key}")
        state[key] = (kind, value)
    return state


async def assert_rejected(
    kit: ApiKit, method: str, path: str, status: int, code: str, **request: Any
) -> httpx.Response:
    """Send one request that must be refused with this status and code, changing nothing.

    `path` is relative to the hall's API prefix; pass `absolute=True` for a path of the
    app itself. Other keywords go to httpx's `request`."""
    absolute = request.pop("absolute", False)
    url = path if absolute else kit.base + path
    before = await hall_state(kit)
    response = await kit.client.request(method, url, **request)
    assert_error(response, status, code)
    assert await hall_state(kit) == before, f"{method} {url} changed the hall's state"
    return response


async def events_of_type(kit: ApiKit, event_type: str) -> list[dict[str, str]]:
    """The hall's stream entries of one type, oldest first."""
    entries = await kit.redis.xrange(kit.keys.events)
    assert entries is not None
    return [
        {str(k): str(v) for k, v in fields.items()}
        for _, fields in entries
        if fields is not None and fields.get("type") == event_type
    ]


# ------------------------------------------------------------ 1. the happy path


async def test_hall_state_sees_every_kind_of_key_the_hall_has(api: ApiKit) -> None:
    """The "changes nothing" checks are only as good as this capture."""
    empty = await hall_state(api)
    await issue(api)
    await issue(api)
    await open_window(api, "1")
    await call_next(api, "1", key="k")
    state = await hall_state(api)
    assert state != empty
    kinds = {kind for kind, _ in state.values()}
    assert kinds == {"string", "hash", "zset", "list", "set", "stream"}
    # a retried request (replayed, nothing written) leaves it as it was
    await call_next(api, "1", key="k")
    assert await hall_state(api) == state


async def test_issue_answers_201_with_exactly_the_contract_ticket(api: ApiKit) -> None:
    response = await issue_response(api, "social-security")
    assert response.status_code == 201
    ticket = json_object(response)
    assert_ticket_shape(ticket)
    assert ticket == {
        "id": ticket["id"],
        "number": "A001",
        "service": "social-security",
        "group": "natural",
        "priority": "normal",
        "status": "waiting",
        "issued_at": at("09:00:00"),
        "called_at": None,
        "window": None,
        "position": 0,
        "eta_seconds": None,  # no window serving the group is open
        "eta_range_seconds": None,
        "recalls": 0,
        "rejoin_until": None,
        "notify": False,
        "snoozed_until": None,
    }


async def test_issue_with_a_configured_priority_class(api: ApiKit) -> None:
    await issue(api)
    elderly = await issue(api, priority="elderly")
    assert (elderly["number"], elderly["priority"]) == ("A002", "elderly")
    assert elderly["position"] == 0  # 20 minutes of credit: ahead of A001


async def test_ticket_numbers_count_per_prefix(api: ApiKit) -> None:
    numbers = [
        (await issue(api, service))["number"]
        for service in ["social-security", "housing-fund", "business-licence", "household"]
    ]
    assert numbers == ["A001", "A002", "C001", "D001"]


async def test_get_ticket_shows_the_live_position_and_eta(api: ApiKit) -> None:
    first, _, third = [await issue(api) for _ in range(3)]
    ticket = await get_ticket(api, third["id"])
    assert_ticket_shape(ticket)
    assert ticket == third | {"position": 2, "eta_seconds": None, "eta_range_seconds": None}

    line = {"natural": ["social-security"] * 3}
    await open_window(api, "2")  # serves natural: A001 and A002 first, one visit each
    one = prior_estimates(api.config, line, [("2", None, 0)])
    live = await get_ticket(api, third["id"])
    assert live == third | {"position": 2} | eta_fields(one, "natural", 2)
    assert live["eta_seconds"] > 0
    low, high = live["eta_range_seconds"]
    assert low < live["eta_seconds"] < high

    await open_window(api, "1")  # natural too: two windows share the line
    two = prior_estimates(api.config, line, [("1", None, 0), ("2", None, 0)])
    shared = await get_ticket(api, third["id"])
    assert shared == third | {"position": 2} | eta_fields(two, "natural", 2)
    assert shared["eta_seconds"] < live["eta_seconds"]

    called = await call_next(api, "2")
    assert called["number"] == first["number"]
    now = prior_estimates(
        api.config,
        {"natural": ["social-security"] * 2},
        [("1", None, 0), ("2", "social-security", 0)],
    )
    live = await get_ticket(api, third["id"])
    assert live == third | {"position": 1} | eta_fields(now, "natural", 1)


async def test_open_pause_close_answer_the_window(api: ApiKit) -> None:
    for op, status in [("open", "open"), ("pause", "paused"), ("close", "closed")]:
        response = await window_op(api, "1", op, role="clerk")
        assert response.status_code == 200, response.text
        assert json_object(response) == {
            "id": "1",
            "name": "1号窗口",
            "status": status,
            "ticket": None,
        }


async def test_open_window_answer_shows_its_current_ticket(api: ApiKit) -> None:
    await issue(api)
    await open_window(api, "1")
    api.clock.advance(minutes=2)
    await call_next(api, "1")
    response = await window_op(api, "1", "pause", role="manager")
    assert response.status_code == 200
    assert json_object(response)["ticket"] == {
        "number": "A001",
        "service": "social-security",
        "called_at": at("09:02:00"),
    }


async def test_call_next_calls_in_order_then_answers_204(api: ApiKit) -> None:
    first = await issue(api)
    api.clock.advance(minutes=1)
    second = await issue(api, "housing-fund")
    await open_window(api, "2")
    api.clock.advance(minutes=4)

    response = await window_op(api, "2", "call-next", role="clerk2")
    assert response.status_code == 200, response.text
    called = json_object(response)
    assert_staff_ticket_shape(called, called=True)
    assert called == staff(first) | {
        "status": "called",
        "window": "2",
        "called_at": at("09:05:00"),
        "position": None,
        "eta_seconds": None,
        "reason": {"code": "place", "text": "按取号顺序", "ahead_of": 0},
    }

    api.clock.advance(minutes=3)
    called = await call_next(api, "2")
    assert called["number"] == second["number"]
    assert (called["status"], called["called_at"]) == ("called", at("09:08:00"))
    # calling the next one completed the one before
    assert (await get_ticket(api, first["id"]))["status"] == "completed"

    empty = await window_op(api, "2", "call-next", role="clerk2")
    assert empty.status_code == 204
    assert empty.content == b""
    assert (await get_ticket(api, second["id"]))["status"] == "completed"


async def test_call_a_number_out_of_turn(api: ApiKit) -> None:
    first, _, third = [await issue(api) for _ in range(3)]
    await open_window(api, "1")
    response = await window_op(api, "1", "call", json={"number": third["number"]}, role="clerk")
    assert response.status_code == 200, response.text
    called = json_object(response)
    assert_staff_ticket_shape(called, called=True)
    assert (called["number"], called["status"], called["window"]) == (
        third["number"],
        "called",
        "1",
    )
    assert called["reason"] == {
        "code": "out_of_turn", "text": "窗口指定叫号：先于 2 位更早取号的群众", "ahead_of": 2,
    }  # fmt: skip
    assert (called["position"], called["eta_seconds"]) == (None, None)
    # the line itself is untouched: the next in turn is still the first
    assert (await call_next(api, "1"))["number"] == first["number"]


async def test_recall_announces_the_current_ticket_again(api: ApiKit) -> None:
    ticket = await issue(api)
    await open_window(api, "1")
    called = await call_next(api, "1")
    api.clock.advance(minutes=1)
    response = await window_op(api, "1", "recall", role="clerk")
    assert response.status_code == 200, response.text
    assert json_object(response) == called | {"recalls": 1}
    calls = (await snapshot(api))["recent_calls"]
    assert calls == [
        {"number": ticket["number"], "window": "1", "at": at("09:01:00")},
        {"number": ticket["number"], "window": "1", "at": at("09:00:00")},
    ]


async def test_complete_finishes_the_current_ticket(api: ApiKit) -> None:
    ticket = await issue(api)
    await open_window(api, "1")
    called = await call_next(api, "1")
    api.clock.advance(minutes=8)
    response = await window_op(api, "1", "complete", role="clerk")
    assert response.status_code == 200, response.text
    done = json_object(response)
    assert_staff_ticket_shape(done)
    assert done == called | {"status": "completed"}
    assert await get_ticket(api, ticket["id"]) == {"id": ticket["id"]} | done
    assert (await snapshot(api))["windows"][0]["ticket"] is None


async def test_no_show_finishes_the_current_ticket(api: ApiKit) -> None:
    ticket = await issue(api)
    await open_window(api, "1")
    called = await call_next(api, "1")
    response = await window_op(api, "1", "no-show", role="clerk")
    assert response.status_code == 200, response.text
    # the test hall lets a no-show come back within 10 minutes
    rejoin_until = at("09:10:00")
    assert json_object(response) == called | {"status": "no_show", "rejoin_until": rejoin_until}
    assert (await get_ticket(api, ticket["id"]))["status"] == "no_show"


async def test_transfer_sends_the_ticket_back_to_wait_keeping_number_and_place(
    api: ApiKit,
) -> None:
    first = await issue(api, "social-security")  # A001 at 09:00
    api.clock.advance(minutes=5)
    later = await issue(api, "business-licence")  # C001 at 09:05, group legal
    await open_window(api, "2")
    called = await call_next(api, "2")
    assert called["number"] == first["number"]

    response = await window_op(
        api, "2", "transfer", json={"service": "business-licence"}, role="clerk2"
    )
    assert response.status_code == 200, response.text
    moved = json_object(response)
    assert_staff_ticket_shape(moved)
    assert moved == {
        "number": "A001",
        "service": "business-licence",
        "group": "legal",
        "priority": "normal",
        "status": "waiting",
        "issued_at": at("09:00:00"),
        "called_at": None,
        "window": None,
        "position": 0,  # it came at 09:00, so it stays ahead of C001 (09:05)
        "eta_seconds": None,  # no legal window open
        "eta_range_seconds": None,
        "recalls": 0,
        "rejoin_until": None,
        "notify": False,
        "snoozed_until": None,
    }
    assert (await get_ticket(api, later["id"]))["position"] == 1
    assert (await snapshot(api))["windows"][1]["ticket"] is None


async def test_cancel_a_waiting_ticket_without_any_token(api: ApiKit) -> None:
    ticket = await issue(api)
    behind = await issue(api)
    response = await api.client.post(f"{api.base}/tickets/{ticket['id']}/cancel")
    assert response.status_code == 200, response.text
    cancelled = json_object(response)
    assert_ticket_shape(cancelled)
    assert cancelled == ticket | {"status": "cancelled", "position": None}
    assert await get_ticket(api, ticket["id"]) == cancelled
    assert (await get_ticket(api, behind["id"]))["position"] == 0


async def test_cancel_once_called_is_409(api: ApiKit) -> None:
    ticket = await issue(api)
    await open_window(api, "1")
    await call_next(api, "1")
    await assert_rejected(api, "POST", f"/tickets/{ticket['id']}/cancel", 409, "ticket_not_waiting")


async def test_cancel_twice_is_409_the_second_time(api: ApiKit) -> None:
    ticket = await issue(api)
    assert (await api.client.post(f"{api.base}/tickets/{ticket['id']}/cancel")).status_code == 200
    await assert_rejected(api, "POST", f"/tickets/{ticket['id']}/cancel", 409, "ticket_not_waiting")


@pytest.mark.parametrize(
    ("start", "rendered"),
    [
        ("2026-11-21T09:30", at("09:30:00")),  # no offset: the hall's local time
        ("2026-11-21T09:30:00", at("09:30:00")),
        ("2026-11-21T01:30:00Z", at("09:30:00")),  # an offset is honoured
        ("2026-11-21T01:30:00+00:00", at("09:30:00")),
        ("2026-11-21T10:30:00+09:00", at("09:30:00")),
        ("2026-11-20T16:00:00", "2026-11-20T16:00:00+08:00"),  # in the past: accepted
        ("2026-11-21T08:00", at("08:00:00")),
    ],
)
async def test_book_an_appointment(api: ApiKit, start: str, rendered: str) -> None:
    response = await api.client.post(
        f"{api.base}/appointments",
        json={"service": "household", "start": start},
        headers=headers("kiosk"),
    )
    assert response.status_code == 201, response.text
    appointment = json_object(response)
    assert set(appointment) == {"code", "service", "start"}
    assert appointment["service"] == "household"
    assert appointment["start"] == rendered
    assert isinstance(appointment["code"], str) and appointment["code"]


async def test_on_time_check_in_issues_an_appointment_ticket(api: ApiKit) -> None:
    await issue(api, "household")  # D001, normal, at 09:00
    api.clock.advance(minutes=5)
    code = (await book(api, "household", "2026-11-21T09:20"))["code"]
    response = await api.client.post(
        f"{api.base}/appointments/{code}/check-in", headers=headers("kiosk")
    )
    assert response.status_code == 201, response.text
    ticket = json_object(response)
    assert_ticket_shape(ticket)
    assert ticket == {
        "id": ticket["id"],
        "number": "D002",
        "service": "household",
        "group": "police",
        "priority": "appointment",
        "status": "waiting",
        "issued_at": at("09:05:00"),
        "called_at": None,
        "window": None,
        "position": 0,  # 30 minutes of credit: ahead of D001
        "eta_seconds": None,
        "eta_range_seconds": None,
        "recalls": 0,
        "rejoin_until": None,
        "notify": False,
        "snoozed_until": None,
    }
    assert await get_ticket(api, ticket["id"]) == ticket


async def test_late_check_in_issues_a_normal_ticket(api: ApiKit) -> None:
    code = (await book(api, "household", "2026-11-21T08:00"))["code"]  # an hour ago
    response = await api.client.post(
        f"{api.base}/appointments/{code}/check-in", headers=headers("admin")
    )
    assert response.status_code == 201, response.text
    ticket = json_object(response)
    assert (ticket["priority"], ticket["status"], ticket["number"]) == ("normal", "waiting", "D001")


async def test_check_in_twice_is_409(api: ApiKit) -> None:
    code = (await book(api, "household", "2026-11-21T09:00"))["code"]
    path = f"/appointments/{code}/check-in"
    first = await api.client.post(api.base + path, headers=headers("kiosk"))
    assert first.status_code == 201
    await assert_rejected(api, "POST", path, 409, "already_checked_in", headers=headers("kiosk"))


async def test_snapshot_has_exactly_the_contract_shape(api: ApiKit) -> None:
    await issue(api, "social-security")  # A001
    await issue(api, "business-licence")  # C001
    await open_window(api, "1")
    api.clock.advance(minutes=3)
    await call_next(api, "1")  # A001 (09:00) before C001 (09:00, issued later)

    response = await api.client.get(f"{api.base}/snapshot", headers=headers("display"))
    assert response.status_code == 200
    body = json_object(response)
    # `hall` (open, opens_at …) and `parked` are additions: docs/api-notes.md
    assert set(body) == {"seq", "windows", "groups", "services", "recent_calls", "hall", "parked"}
    assert body["seq"] == 4  # issued, issued, window, called
    for window in body["windows"]:
        assert set(window) == {"id", "name", "status", "ticket"}
    assert body["windows"] == [
        {
            "id": "1",
            "name": "1号窗口",
            "status": "open",
            "ticket": {
                "number": "A001",
                "service": "social-security",
                "called_at": at("09:03:00"),
            },
        },
        {"id": "2", "name": "2号窗口", "status": "closed", "ticket": None},
        {"id": "3", "name": "3号窗口", "status": "closed", "ticket": None},
        {"id": "9", "name": "9号窗口", "status": "closed", "ticket": None},
    ]
    assert body["groups"] == [
        {"id": "natural", "waiting": 0},
        {"id": "legal", "waiting": 1},
        {"id": "police", "waiting": 0},
    ]
    # Window 1 serves natural and legal; A001 has been at it for no time yet.
    table = prior_estimates(
        api.config,
        {"natural": [], "legal": ["business-licence"]},
        [("1", "social-security", 0)],
    )
    natural, legal = table.at("natural", 0), table.at("legal", 1)
    assert natural is not None and legal is not None
    assert body["services"] == [
        {"id": "social-security", "waiting": 0, "eta_seconds": round(natural.central)},
        {"id": "housing-fund", "waiting": 0, "eta_seconds": round(natural.central)},
        {"id": "business-licence", "waiting": 1, "eta_seconds": round(legal.central)},
        {"id": "household", "waiting": 0, "eta_seconds": None},  # no police window open
    ]
    # The one window serves both lines: a ticket taken now, natural or legal,
    # comes after C001 (09:00) there, so both wait for A001's visit and C001's.
    assert natural == legal
    assert natural.mean == 60 * (8 + 12)
    assert body["recent_calls"] == [{"number": "A001", "window": "1", "at": at("09:03:00")}]
    # UTF-8, CJK readable as the config spells it
    assert "1号窗口".encode() in response.content


async def test_ticket_ids_are_22_url_safe_characters_of_128_bits_and_distinct(
    api: ApiKit,
) -> None:
    ids = [(await issue(api))["id"] for _ in range(20)]
    assert len(set(ids)) == len(ids)
    for ticket_id in ids:
        assert TICKET_ID.fullmatch(ticket_id)
        assert len(base64.urlsafe_b64decode(ticket_id + "==")) >= 16


# ------------------------------------------------------------ 2. the auth matrix

KIOSK_ROLES = frozenset({"kiosk", "admin"})
SUPERVISOR_ROLES = frozenset({"clerk", "manager", "admin"})
CLERK_ROLES = frozenset({"clerk", "admin"})
READER_ROLES = frozenset({"display", "manager", "admin"})
MANAGER_ROLES = frozenset({"manager", "admin"})

# Who calls, as (the role they hold or None, their Authorization header). Window
# endpoints below act on window 1: "clerk_of_window" holds it, "clerk_of_other_window"
# holds windows 2 and 3.
CALLERS: dict[str, tuple[str | None, dict[str, str]]] = {
    "kiosk": ("kiosk", bearer(TOKENS["kiosk"])),
    "clerk_of_window": ("clerk", bearer(TOKENS["clerk"])),
    "clerk_of_other_window": ("clerk", bearer(TOKENS["clerk2"])),
    "manager": ("manager", bearer(TOKENS["manager"])),
    "admin": ("admin", bearer(TOKENS["admin"])),
    "display": ("display", bearer(TOKENS["display"])),
    "no_token": (None, {}),
    "wrong_token": (None, bearer("not-a-token-of-this-hall")),
    "basic_scheme": (
        None,
        {"Authorization": "Basic " + base64.b64encode(TOKENS["kiosk"].encode()).decode()},
    ),
}


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str
    """Relative to the hall; `{ticket}` and `{code}` name the staged waiting ticket
    and appointment."""
    allowed: frozenset[str] | None
    """Roles the contract lets through; None = anyone holding the ticket id."""
    success: int
    """What an allowed caller gets on the staged hall."""
    body: dict[str, Any] | None = None


ENDPOINTS = (
    Endpoint("POST", "/tickets", KIOSK_ROLES, 201, {"service": "social-security"}),
    Endpoint("GET", "/tickets/{ticket}", None, 200),
    Endpoint("POST", "/tickets/{ticket}/cancel", None, 200),
    Endpoint(
        "POST",
        "/appointments",
        KIOSK_ROLES,
        201,
        {"service": "household", "start": "2026-11-21T10:00"},
    ),
    Endpoint("POST", "/appointments/{code}/check-in", KIOSK_ROLES, 201),
    Endpoint("POST", "/windows/1/open", SUPERVISOR_ROLES, 200),
    Endpoint("POST", "/windows/1/pause", SUPERVISOR_ROLES, 200),
    Endpoint("POST", "/windows/1/close", SUPERVISOR_ROLES, 200),
    Endpoint("POST", "/windows/1/call-next", CLERK_ROLES, 200),
    Endpoint("POST", "/windows/1/call", CLERK_ROLES, 200, {"number": "A002"}),
    Endpoint("POST", "/windows/1/recall", CLERK_ROLES, 200),
    Endpoint("POST", "/windows/1/complete", CLERK_ROLES, 200),
    Endpoint("POST", "/windows/1/no-show", CLERK_ROLES, 200),
    Endpoint("POST", "/windows/1/transfer", CLERK_ROLES, 200, {"service": "business-licence"}),
    Endpoint("GET", "/snapshot", READER_ROLES, 200),
    Endpoint("POST", "/tickets/{no_show}/rejoin", None, 200),
    Endpoint("POST", "/windows/1/park", CLERK_ROLES, 200),
    Endpoint("POST", "/windows/1/resume", CLERK_ROLES, 200, {"number": "A004"}),
    Endpoint("GET", "/parked", SUPERVISOR_ROLES, 200),
    Endpoint("POST", "/close", MANAGER_ROLES, 200),
    Endpoint("POST", "/open", MANAGER_ROLES, 200),
    Endpoint("GET", "/audit", MANAGER_ROLES, 200),
)


def expected_refusal(endpoint: Endpoint, caller: str) -> tuple[int, str] | None:
    """The contract's (status, code) for this caller, or None when it gets through."""
    role, _ = CALLERS[caller]
    if endpoint.allowed is None:
        return None
    if role is None:
        return 401, "unauthorized"
    if role not in endpoint.allowed:
        return 403, "forbidden"
    if caller == "clerk_of_other_window" and endpoint.path.startswith("/windows/"):
        return 403, "window_forbidden"
    return None


@dataclass(frozen=True, slots=True)
class Staged:
    waiting_id: str
    code: str
    no_show_id: str


async def stage(kit: ApiKit) -> Staged:
    """Window 1 open with A001 at it, A002 waiting, A003 a no-show that may
    rejoin, A004 parked, an appointment booked: every endpoint has something
    to act on."""
    await issue(kit, role="admin")  # A001
    waiting = await issue(kit, role="admin")  # A002
    no_show = await issue(kit, role="admin")  # A003
    await issue(kit, role="admin")  # A004
    code = (await book(kit, "household", "2026-11-21T09:10"))["code"]
    await open_window(kit, "1")
    for number, then in (("A003", "no-show"), ("A004", "park")):
        response = await window_op(kit, "1", "call", json={"number": number})
        assert response.status_code == 200, response.text
        assert (await window_op(kit, "1", then)).status_code == 200
    assert (await call_next(kit, "1"))["number"] == "A001"
    return Staged(waiting["id"], code, no_show["id"])


@pytest.mark.parametrize("caller", list(CALLERS))
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
async def test_auth_matrix(api: ApiKit, endpoint: Endpoint, caller: str) -> None:
    staged = await stage(api)
    path = endpoint.path.format(
        ticket=staged.waiting_id, code=staged.code, no_show=staged.no_show_id
    )
    _, auth = CALLERS[caller]
    refusal = expected_refusal(endpoint, caller)
    if refusal is not None:
        status, code = refusal
        response = await assert_rejected(
            api, endpoint.method, path, status, code, headers=auth, json=endpoint.body
        )
        if status == 401:
            assert response.headers["www-authenticate"].lower().startswith("bearer")
        return
    response = await api.client.request(
        endpoint.method, api.base + path, headers=auth, json=endpoint.body
    )
    assert response.status_code == endpoint.success, response.text


@pytest.mark.parametrize(
    "authorization",
    ["Bearer", "Bearer ", "kiosk-token", "Token kiosk-token", "Bearer kiosk-token-x"],
)
async def test_other_malformed_credentials_are_401(api: ApiKit, authorization: str) -> None:
    await assert_rejected(
        api,
        "POST",
        "/tickets",
        401,
        "unauthorized",
        json={"service": "social-security"},
        headers={"Authorization": authorization},
    )


# ------------------------------------------------------------ 3. bad input


@pytest.mark.parametrize(
    ("request_kwargs", "status", "code"),
    [
        pytest.param({"json": {"service": "passport"}}, 404, "service_not_found", id="unknown-svc"),
        pytest.param(
            {"json": {"service": "social-security", "priority": "vip"}},
            422,
            "unknown_priority",
            id="unknown-priority",
        ),
        pytest.param(
            {"json": {"service": "social-security", "priority": "appointment"}},
            422,
            "unknown_priority",
            id="appointment-priority-from-a-kiosk",
        ),
        pytest.param(
            {"content": b'{"service": "social-security"'}, 400, "malformed_json", id="truncated"
        ),
        pytest.param({"content": b""}, 400, "malformed_json", id="empty-body"),
        pytest.param({"content": b"service=social-security"}, 400, "malformed_json", id="form"),
        pytest.param({"content": b'{"service": NaN}'}, 400, "malformed_json", id="nan"),
        pytest.param({"content": b'{"service": "\xff"}'}, 400, "malformed_json", id="not-utf8"),
        pytest.param({"json": ["social-security"]}, 422, "invalid_body", id="a-list"),
        pytest.param({"json": "social-security"}, 422, "invalid_body", id="a-string"),
        pytest.param({"content": b"null"}, 422, "invalid_body", id="null"),
        pytest.param({"json": {"service": 5}}, 422, "invalid_field", id="service-a-number"),
        pytest.param({"json": {"service": ""}}, 422, "invalid_field", id="service-empty"),
        pytest.param(
            {"json": {"service": "social-security", "priority": []}},
            422,
            "invalid_field",
            id="priority-a-list",
        ),
        pytest.param({"json": {"priority": "elderly"}}, 422, "missing_field", id="no-service"),
        pytest.param({"json": {}}, 422, "missing_field", id="empty-object"),
        pytest.param(
            {"json": {"service": "social-security", "colour": "red"}},
            422,
            "unknown_field",
            id="unknown-field",
        ),
    ],
)
async def test_bad_ticket_requests_are_refused_and_change_nothing(
    api: ApiKit, request_kwargs: dict[str, Any], status: int, code: str
) -> None:
    await issue(api)  # some state for "changes nothing" to compare
    kwargs = dict(request_kwargs)
    if "content" in kwargs:
        kwargs["headers"] = headers("kiosk") | {"Content-Type": "application/json"}
    else:
        kwargs["headers"] = headers("kiosk")
    await assert_rejected(api, "POST", "/tickets", status, code, **kwargs)


def padded_ticket_body(size: int) -> bytes:
    """A valid ticket request of exactly `size` bytes (JSON allows trailing blanks)."""
    body = b'{"service": "social-security"}'
    return body + b" " * (size - len(body))


async def chunked(body: bytes, chunk: int = 1000) -> AsyncIterator[bytes]:
    """A streamed body: httpx sends it chunked, without a Content-Length."""
    for i in range(0, len(body), chunk):
        yield body[i : i + chunk]


async def test_a_body_over_16_kib_with_content_length_is_413(api: ApiKit) -> None:
    response = await assert_rejected(
        api,
        "POST",
        "/tickets",
        413,
        "body_too_large",
        content=padded_ticket_body(16 * 1024 + 1),
        headers=headers("kiosk") | {"Content-Type": "application/json"},
    )
    assert response.request.headers["content-length"] == str(16 * 1024 + 1)


async def test_a_streamed_body_over_16_kib_without_content_length_is_413(api: ApiKit) -> None:
    response = await assert_rejected(
        api,
        "POST",
        "/tickets",
        413,
        "body_too_large",
        content=chunked(padded_ticket_body(16 * 1024 + 1)),
        headers=headers("kiosk") | {"Content-Type": "application/json"},
    )
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"


async def test_a_huge_streamed_body_is_413(api: ApiKit) -> None:
    await assert_rejected(
        api,
        "POST",
        "/appointments",
        413,
        "body_too_large",
        content=chunked(b"[" + b"1," * 200_000 + b"1]", chunk=8192),
        headers=headers("kiosk"),
    )


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
async def test_a_body_over_16_kib_is_413_on_an_endpoint_that_takes_no_body(
    api: ApiKit, streamed: bool
) -> None:
    """The limit holds for every request, not only those whose body is read: a streamed
    body must not slip past it where a Content-Length would have been refused."""
    await issue(api)
    await open_window(api, "1")
    body = padded_ticket_body(16 * 1024 + 1)
    await assert_rejected(
        api,
        "POST",
        "/windows/1/call-next",
        413,
        "body_too_large",
        content=chunked(body) if streamed else body,
        headers=headers() | {"Content-Type": "application/json"},
    )


async def test_a_deeply_nested_body_is_400_not_a_server_error(api: ApiKit) -> None:
    """Valid JSON by the grammar, but nested past what the parser takes (RecursionError
    in `json.loads`): it is still the client's fault, not a 500."""
    depth = 8000  # 16,000 bytes: under the size limit
    await assert_rejected(
        api,
        "POST",
        "/tickets",
        400,
        "malformed_json",
        content=b"[" * depth + b"]" * depth,
        headers=headers("kiosk") | {"Content-Type": "application/json"},
    )


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
async def test_a_body_of_exactly_16_kib_is_accepted(api: ApiKit, streamed: bool) -> None:
    body = padded_ticket_body(16 * 1024)
    content: bytes | AsyncIterator[bytes] = chunked(body) if streamed else body
    response = await api.client.post(
        f"{api.base}/tickets",
        content=content,
        headers=headers("kiosk") | {"Content-Type": "application/json"},
    )
    assert response.status_code == 201, response.text


async def test_unknown_hall_is_404(api: ApiKit) -> None:
    await assert_rejected(
        api,
        "POST",
        "/api/v1/halls/no-such-hall/tickets",
        404,
        "hall_not_found",
        absolute=True,
        json={"service": "social-security"},
        headers=headers("kiosk"),
    )
    response = await api.client.get("/api/v1/halls/no-such-hall/snapshot", headers=headers())
    assert_error(response, 404, "hall_not_found")


@pytest.mark.parametrize("op", ["open", "pause", "close", "call-next", "recall", "complete"])
async def test_unknown_window_is_404(api: ApiKit, op: str) -> None:
    await assert_rejected(
        api, "POST", f"/windows/77/{op}", 404, "window_not_found", headers=headers()
    )


@pytest.mark.parametrize("ticket_id", [UNUSED_TICKET_ID, "nope", "A001", "x" * 23])
async def test_unknown_ticket_is_404(api: ApiKit, ticket_id: str) -> None:
    await issue(api)
    await assert_rejected(api, "GET", f"/tickets/{ticket_id}", 404, "ticket_not_found")
    await assert_rejected(api, "POST", f"/tickets/{ticket_id}/cancel", 404, "ticket_not_found")


@pytest.mark.parametrize("code", ["ZZZZZZZZ", "abc", "00000000", "Z" * 40])
async def test_unknown_appointment_code_is_404(api: ApiKit, code: str) -> None:
    await book(api, "household", "2026-11-21T09:30")
    await assert_rejected(
        api,
        "POST",
        f"/appointments/{code}/check-in",
        404,
        "appointment_not_found",
        headers=headers("kiosk"),
    )


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"service": "household", "start": "tomorrow"}, 422, "invalid_field"),
        ({"service": "household", "start": "2026-13-01T09:00"}, 422, "invalid_field"),
        ({"service": "household", "start": "2026-11-21T09:00+25:00"}, 422, "invalid_field"),
        ({"service": "household", "start": 1_795_222_800}, 422, "invalid_field"),
        ({"service": "household", "start": ""}, 422, "invalid_field"),
        ({"service": "household"}, 422, "missing_field"),
        ({"start": "2026-11-21T09:00"}, 422, "missing_field"),
        ({"service": "household", "start": "2026-11-21T09:00", "name": "x"}, 422, "unknown_field"),
        ({"service": "passport", "start": "2026-11-21T09:00"}, 404, "service_not_found"),
    ],
)
async def test_bad_appointment_requests_are_refused(
    api: ApiKit, body: dict[str, Any], status: int, code: str
) -> None:
    await assert_rejected(
        api, "POST", "/appointments", status, code, json=body, headers=headers("kiosk")
    )


@pytest.mark.parametrize(
    "start",
    ["0001-01-01T00:00", "0001-01-01T00:00+14:00", "9999-12-31T23:59:59-12:00"],
)
async def test_an_appointment_start_the_hall_cannot_show_is_422(api: ApiKit, start: str) -> None:
    """A start that parses but has no date in the hall's zone (year 0 or 10000 there)
    is bad input: 422, and no appointment stored (not a 500 after storing it)."""
    await assert_rejected(
        api,
        "POST",
        "/appointments",
        422,
        "invalid_field",
        json={"service": "household", "start": start},
        headers=headers("kiosk"),
    )


@pytest.mark.parametrize(
    "body",
    [{"number": "hello"}, {"number": "A1"}, {"number": "A001; DROP"}, {"number": "001"}],
)
async def test_call_with_a_malformed_number_is_422(api: ApiKit, body: dict[str, Any]) -> None:
    await issue(api)
    await open_window(api, "1")
    await assert_rejected(
        api, "POST", "/windows/1/call", 422, "invalid_field", json=body, headers=headers()
    )


@pytest.mark.parametrize(
    ("body", "code"),
    [({"number": 1}, "invalid_field"), ({}, "missing_field"), ({"n": "A001"}, "unknown_field")],
)
async def test_call_with_a_bad_body_is_422(api: ApiKit, body: dict[str, Any], code: str) -> None:
    await issue(api)
    await open_window(api, "1")
    await assert_rejected(api, "POST", "/windows/1/call", 422, code, json=body, headers=headers())


async def test_call_a_number_that_is_not_waiting_is_404(api: ApiKit) -> None:
    await issue(api)  # A001
    cancelled = await issue(api)  # A002
    assert (await api.client.post(f"{api.base}/tickets/{cancelled['id']}/cancel")).is_success
    await open_window(api, "1")
    for number in ["A999", "C001", cancelled["number"]]:
        await assert_rejected(
            api,
            "POST",
            "/windows/1/call",
            404,
            "number_not_waiting",
            json={"number": number},
            headers=headers(),
        )


async def test_call_a_number_of_a_group_the_window_does_not_serve_is_409(api: ApiKit) -> None:
    legal = await issue(api, "business-licence")  # C001: group legal
    await open_window(api, "2")  # natural only
    await assert_rejected(
        api,
        "POST",
        "/windows/2/call",
        409,
        "group_not_served",
        json={"number": legal["number"]},
        headers=headers(),
    )


@pytest.mark.parametrize("state", ["closed", "paused"])
async def test_call_next_on_a_window_that_is_not_open_is_409(api: ApiKit, state: str) -> None:
    await issue(api)
    if state == "paused":
        assert (await window_op(api, "1", "pause")).status_code == 200
    await assert_rejected(
        api, "POST", "/windows/1/call-next", 409, "window_not_open", headers=headers()
    )
    ticket = await issue(api)
    await assert_rejected(
        api,
        "POST",
        "/windows/1/call",
        409,
        "window_not_open",
        json={"number": ticket["number"]},
        headers=headers(),
    )


@pytest.mark.parametrize(
    ("op", "body"),
    [
        ("recall", None),
        ("complete", None),
        ("no-show", None),
        ("transfer", {"service": "business-licence"}),
    ],
)
@pytest.mark.parametrize("window_open", [True, False], ids=["open", "closed"])
async def test_window_operations_without_a_current_ticket_are_409(
    api: ApiKit, op: str, body: dict[str, Any] | None, window_open: bool
) -> None:
    await issue(api)  # waiting, not called
    if window_open:
        await open_window(api, "1")
    await assert_rejected(
        api, "POST", f"/windows/1/{op}", 409, "no_current_ticket", json=body, headers=headers()
    )


async def test_window_operations_after_the_ticket_was_completed_are_409(api: ApiKit) -> None:
    await issue(api)
    await open_window(api, "1")
    await call_next(api, "1")
    assert (await window_op(api, "1", "complete")).status_code == 200
    for op in ["recall", "complete", "no-show"]:
        await assert_rejected(
            api, "POST", f"/windows/1/{op}", 409, "no_current_ticket", headers=headers()
        )


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"service": "passport"}, 404, "service_not_found"),
        ({"service": 3}, 422, "invalid_field"),
        ({}, 422, "missing_field"),
        ({"service": "household", "window": "9"}, 422, "unknown_field"),
    ],
)
async def test_bad_transfer_is_refused(
    api: ApiKit, body: dict[str, Any], status: int, code: str
) -> None:
    await issue(api)
    await open_window(api, "1")
    await call_next(api, "1")
    await assert_rejected(
        api, "POST", "/windows/1/transfer", status, code, json=body, headers=headers()
    )


@pytest.mark.parametrize(
    "key",
    ["k" * 129, "k" * 200, "has space", "tab\there", "", "ключ".encode()],
    ids=["129-chars", "200-chars", "space", "tab", "empty", "non-ascii"],
)
async def test_a_bad_idempotency_key_is_422(api: ApiKit, key: str | bytes) -> None:
    await issue(api)
    await open_window(api, "1")
    await assert_rejected(
        api,
        "POST",
        "/tickets",
        422,
        "invalid_idempotency_key",
        json={"service": "social-security"},
        headers=[("Authorization", f"Bearer {TOKENS['kiosk']}"), ("Idempotency-Key", key)],
    )
    await assert_rejected(
        api,
        "POST",
        "/windows/1/call-next",
        422,
        "invalid_idempotency_key",
        headers=[("Authorization", f"Bearer {TOKENS['admin']}"), ("Idempotency-Key", key)],
    )


async def test_an_idempotency_key_of_128_printable_characters_is_accepted(api: ApiKit) -> None:
    key = "k" * 120 + "!~#$%^&*"
    assert len(key) == 128
    first = await issue(api, key=key)
    again = await issue(api, key=key)
    assert again == first


@pytest.mark.parametrize(
    "path",
    ["/api/v1/halls/{hall}/nothing", "/api/v1/halls/{hall}/windows", "/api/v2/x", "/nowhere"],
)
async def test_unknown_route_is_404_in_the_error_shape(api: ApiKit, path: str) -> None:
    await assert_rejected(
        api, "GET", path.format(hall=api.config.id), 404, "not_found", absolute=True
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/tickets"),
        ("DELETE", "/tickets/{ticket}"),
        ("PUT", "/tickets/{ticket}"),
        ("GET", "/windows/1/call-next"),
        ("POST", "/snapshot"),
    ],
)
async def test_wrong_method_is_405_in_the_error_shape(api: ApiKit, method: str, path: str) -> None:
    ticket = await issue(api)
    await assert_rejected(
        api,
        method,
        path.format(ticket=ticket["id"]),
        405,
        "method_not_allowed",
        headers=headers(),
    )


async def test_wrong_method_names_the_allowed_methods(api: ApiKit) -> None:
    """RFC 9110 §15.5.6: a 405 response MUST carry an Allow header."""
    response = await api.client.get(f"{api.base}/tickets", headers=headers())
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers.get("allow", "")


# ------------------------------------------------------------ 4. idempotency


async def test_the_same_key_issues_one_ticket(api: ApiKit) -> None:
    first = await issue(api, key="kiosk-7:0001")
    again = await issue(api, key="kiosk-7:0001")
    assert (again["id"], again["number"]) == (first["id"], first["number"])
    assert len(await events_of_type(api, "issued")) == 1
    other = await issue(api, key="kiosk-7:0002")
    assert other["number"] == "A002"


async def test_a_replay_answers_with_the_ticket_as_it_is_now(api: ApiKit) -> None:
    first = await issue(api, key="k1")
    await issue(api)  # A002 behind it
    await open_window(api, "1")
    await call_next(api, "1")
    again = await issue(api, key="k1")
    assert (again["id"], again["status"]) == (first["id"], "called")
    assert len(await events_of_type(api, "issued")) == 2


async def test_the_same_key_on_call_next_calls_nobody_else(api: ApiKit) -> None:
    first, second = await issue(api), await issue(api)
    await open_window(api, "1")
    called = await call_next(api, "1", key="console-1:42")
    again = await call_next(api, "1", key="console-1:42")
    assert called["number"] == again["number"] == first["number"]
    assert again["status"] == "called"
    still = await get_ticket(api, second["id"])
    assert (still["status"], still["position"]) == ("waiting", 0)
    assert len(await events_of_type(api, "called")) == 1
    assert await events_of_type(api, "completed") == []


async def test_the_same_key_on_an_empty_call_next_answers_204_again(api: ApiKit) -> None:
    await open_window(api, "1")
    assert (await window_op(api, "1", "call-next", key="k")).status_code == 204
    await issue(api)
    assert (await window_op(api, "1", "call-next", key="k")).status_code == 204
    assert await events_of_type(api, "called") == []


@pytest.mark.parametrize(("op", "status"), [("complete", "completed"), ("no-show", "no_show")])
async def test_the_same_key_on_a_finishing_operation_answers_the_same(
    api: ApiKit, op: str, status: str
) -> None:
    await issue(api)
    await open_window(api, "1")
    called = await call_next(api, "1")
    first = await window_op(api, "1", op, key="finish-1")
    again = await window_op(api, "1", op, key="finish-1")
    assert first.status_code == again.status_code == 200, again.text
    rejoin_until = at("09:10:00") if status == "no_show" else None
    finished = called | {"status": status, "rejoin_until": rejoin_until}
    assert json_object(first) == json_object(again) == finished


async def test_the_same_key_on_open_answers_the_window_again(api: ApiKit) -> None:
    first = await window_op(api, "1", "open", key="open-1")
    assert (await window_op(api, "1", "close")).status_code == 200
    again = await window_op(api, "1", "open", key="open-1")
    assert first.status_code == again.status_code == 200
    # the replay answers the window as it is now, and did not reopen it
    assert json_object(again)["status"] == "closed"
    assert len(await events_of_type(api, "window")) == 2


async def test_the_same_key_on_transfer_transfers_once(api: ApiKit) -> None:
    await issue(api)
    await open_window(api, "1")
    called = await call_next(api, "1")
    body = {"service": "business-licence"}
    first = await window_op(api, "1", "transfer", key="t-1", json=body)
    again = await window_op(api, "1", "transfer", key="t-1", json=body)
    assert first.status_code == again.status_code == 200, again.text
    assert json_object(again)["number"] == called["number"]
    assert len(await events_of_type(api, "transferred")) == 1


async def test_the_same_key_on_booking_books_once(api: ApiKit) -> None:
    first = await book(api, "household", "2026-11-21T09:30", key="b-1")
    again = await book(api, "household", "2026-11-21T09:30", key="b-1")
    assert again == first
    assert len(await api.redis.hgetall(api.keys.appointments)) == 1


async def test_the_same_key_on_check_in_answers_the_same_ticket(api: ApiKit) -> None:
    """A kiosk that lost the answer to a check-in retries with its key: it must get the
    ticket it was issued, not a 409 (the contract: a retried request returns the first
    answer; the store passes the key to the check-in script, whose replay comes first)."""
    code = (await book(api, "household", "2026-11-21T09:10"))["code"]
    path = f"{api.base}/appointments/{code}/check-in"
    first = await api.client.post(path, headers=headers("kiosk", "checkin-1"))
    again = await api.client.post(path, headers=headers("kiosk", "checkin-1"))
    assert first.status_code == 201, first.text
    assert again.status_code == 201, again.text
    assert json_object(again)["id"] == json_object(first)["id"]


async def test_the_same_key_on_cancel_answers_the_cancelled_ticket(api: ApiKit) -> None:
    ticket = await issue(api)
    path = f"{api.base}/tickets/{ticket['id']}/cancel"
    first = await api.client.post(path, headers={"Idempotency-Key": "c-1"})
    again = await api.client.post(path, headers={"Idempotency-Key": "c-1"})
    assert first.status_code == again.status_code == 200, again.text
    assert json_object(again) == json_object(first)
    assert len(await events_of_type(api, "cancelled")) == 1


async def test_a_key_is_scoped_per_credential(api: ApiKit) -> None:
    by_kiosk = await issue(api, role="kiosk", key="same")
    by_admin = await issue(api, role="admin", key="same")
    assert by_kiosk["id"] != by_admin["id"]
    assert [by_kiosk["number"], by_admin["number"]] == ["A001", "A002"]
    assert len(await events_of_type(api, "issued")) == 2


async def test_a_key_is_scoped_per_path(api: ApiKit) -> None:
    ticket = await issue(api, key="same")
    appointment = await book(api, "household", "2026-11-21T09:30", key="same")
    assert set(appointment) == {"code", "service", "start"}
    assert ticket["number"] == "A001"

    first, second = await issue(api), await issue(api)
    await open_window(api, "1")
    await open_window(api, "2")
    at_1 = await call_next(api, "1", key="console")
    at_2 = await call_next(api, "2", key="console")
    assert {at_1["number"], at_2["number"]} == {ticket["number"], first["number"]}
    assert second["number"] not in {at_1["number"], at_2["number"]}


async def test_a_refused_request_stores_nothing_so_its_key_can_be_retried(api: ApiKit) -> None:
    ticket = await issue(api)
    await assert_rejected(
        api, "POST", "/windows/1/call-next", 409, "window_not_open", headers=headers(key="retry")
    )
    await open_window(api, "1")
    called = await call_next(api, "1", key="retry")
    assert called["number"] == ticket["number"]


async def test_a_refused_issue_stores_nothing_so_its_key_can_be_retried(api: ApiKit) -> None:
    await assert_rejected(
        api,
        "POST",
        "/tickets",
        404,
        "service_not_found",
        json={"service": "passport"},
        headers=headers("kiosk", "retry"),
    )
    ticket = await issue(api, key="retry")
    assert ticket["number"] == "A001"


async def test_concurrent_duplicates_issue_exactly_one_ticket(api: ApiKit) -> None:
    responses = await asyncio.gather(*(issue_response(api, key="burst") for _ in range(20)))
    assert [r.status_code for r in responses] == [201] * 20
    assert len({json_object(r)["id"] for r in responses}) == 1
    assert len(await events_of_type(api, "issued")) == 1
    assert len(await api.redis.hgetall(api.keys.tickets)) == 1


async def test_concurrent_duplicate_call_next_calls_exactly_one(api: ApiKit) -> None:
    for _ in range(5):
        await issue(api)
    await open_window(api, "1")
    responses = await asyncio.gather(
        *(window_op(api, "1", "call-next", key="double-click") for _ in range(10))
    )
    assert [r.status_code for r in responses] == [200] * 10
    assert len({json_object(r)["number"] for r in responses}) == 1
    assert len(await events_of_type(api, "called")) == 1


# ------------------------------------------------------------ 5. Redis unreachable

UNREACHABLE_REDIS = "redis://127.0.0.1:1"  # port 1: nothing listens there


async def test_unreachable_redis_answers_503_and_healthz_stays_up(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    base = f"/api/v1/halls/{config.id}"
    async with api_client([config], UNREACHABLE_REDIS) as client:
        requests: list[tuple[str, str, dict[str, Any]]] = [
            ("POST", "/tickets", {"json": {"service": "social-security"}}),
            ("GET", f"/tickets/{UNUSED_TICKET_ID}", {}),
            ("POST", f"/tickets/{UNUSED_TICKET_ID}/cancel", {}),
            (
                "POST",
                "/appointments",
                {"json": {"service": "household", "start": "2026-11-21T10:00"}},
            ),
            ("POST", "/appointments/ZZZZZZZZ/check-in", {}),
            ("POST", "/windows/1/open", {}),
            ("POST", "/windows/1/call-next", {}),
            ("POST", "/windows/1/call", {"json": {"number": "A001"}}),
            ("POST", "/windows/1/complete", {}),
            ("POST", "/windows/1/transfer", {"json": {"service": "household"}}),
            ("GET", "/snapshot", {}),
        ]
        for method, path, kwargs in requests:
            response = await client.request(method, base + path, headers=headers(), **kwargs)
            assert_error(response, 503, "redis_unavailable")

        ready = await client.get("/readyz")
        assert_error(ready, 503, "redis_unavailable")

        health = await client.get("/healthz")
        assert health.status_code == 200
        assert "Traceback" not in health.text

        # validation and auth do not need Redis, and still answer as the contract says
        assert_error(await client.post(base + "/tickets", json={}), 401, "unauthorized")
        response = await client.post(base + "/tickets", json=[], headers=headers())
        assert_error(response, 422, "invalid_body")


async def test_readyz_is_200_with_redis_up(api: ApiKit) -> None:
    response = await api.client.get("/readyz")
    assert response.status_code == 200
    assert (await api.client.get("/healthz")).status_code == 200


# ------------------------------------------------------------ 6. /metrics


def metric_total(exposition: str, sample: str, **labels: str) -> float:
    """The sum of the samples named `sample` whose labels include `labels`."""
    total = 0.0
    for family in text_string_to_metric_families(exposition):
        for s in family.samples:
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


async def test_metrics_count_what_this_hall_did(api: ApiKit) -> None:
    hall = api.config.id
    for _ in range(3):
        await issue(api, "social-security")
    await issue(api, "social-security", "elderly")
    await open_window(api, "2")
    api.clock.advance(minutes=5)
    await call_next(api, "2")  # calls the elderly ticket (20 minutes of credit)
    api.clock.advance(minutes=5)
    await call_next(api, "2")  # completes it, calls A001
    assert (await window_op(api, "2", "complete")).status_code == 200  # completes A001
    # a refused request and a replay count nothing
    assert (await window_op(api, "2", "complete")).status_code == 409
    await issue(api, "housing-fund", key="once")
    await issue(api, "housing-fund", key="once")

    response = await api.client.get("/metrics")
    assert response.status_code == 200
    text = response.text
    issued = "qms_tickets_issued_total"
    ss = {"hall": hall, "service": "social-security"}
    assert metric_total(text, issued, **ss, priority="normal") == 3
    hf = {"hall": hall, "service": "housing-fund", "priority": "normal"}
    assert metric_total(text, issued, **hf) == 1  # issued once, replayed once
    assert metric_total(text, issued, **ss, priority="elderly") == 1
    assert metric_total(text, "qms_tickets_called_total", hall=hall) == 2
    # two completions: the second call-next completed the first called ticket,
    # and the explicit complete finished the second
    assert metric_total(text, "qms_tickets_completed_total", hall=hall) == 2
    assert metric_total(text, "qms_wait_seconds_count", hall=hall) == 2
    # elderly waited 5 minutes, A001 10 minutes
    assert metric_total(text, "qms_wait_seconds_sum", hall=hall) == 15 * 60
    # every series about this hall is named qms_*
    ours = {
        family.name
        for family in text_string_to_metric_families(text)
        if any(sample.labels.get("hall") == hall for sample in family.samples)
    }
    assert ours and all(name.startswith("qms_") for name in ours), ours


# ------------------------------------------------------------ 7. the app's own lifecycle


async def loop_turns(n: int) -> None:
    """Let the event loop run `n` times round; no time passes."""
    for _ in range(n):
        await asyncio.sleep(0)


async def test_the_app_stops_however_soon_after_it_starts(redis_url: str, tmp_path: Path) -> None:
    """Stopping qms (its lifespan's shutdown) must end, whenever it comes.

    The periodic gauge task starts with a Redis read; a cancellation that lands while
    redis-py sends that command is swallowed on Python 3.11 (`asyncio.wait_for` returns
    the finished inner result instead of raising CancelledError), the task goes on to
    sleep `metrics_interval_s`, and the lifespan's `gather` of its tasks waits forever."""
    config = make_config(tmp_path)
    for turns in range(40):
        app = create_app([config], redis_url, metrics_interval_s=3600)
        lifespan = app.router.lifespan_context(app)
        state = await lifespan.__aenter__()
        assert state is not None
        await loop_turns(turns)
        hung = False
        try:
            async with asyncio.timeout(3):
                await lifespan.__aexit__(None, None, None)
        except TimeoutError:
            hung = True
        if hung:
            # the timeout cancelled the gather, which cancelled the task again; the
            # lifespan never reached closing its Redis client, so close it here
            await state["halls"][config.id].store.redis.aclose()
            pytest.fail(f"the app's shutdown hung when it came {turns} loop turns after start")
