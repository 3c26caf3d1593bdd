"""No ticket id in what hall staff get (issue 18, security review item 2).

A ticket's id is its visitor's only credential: whoever holds it can
cancel the ticket and rate its service. Clerks, managers, admins and
screens therefore never get one: not in the answers of the window
operations, not in the console's or the dashboard's reads, not in a
report, not in an event.

The walk below is derived from the declarations (`ticketing` and
`dispatcher` operations, the report routes): an endpoint added to them is
called by every staff role that may call it, and its answers are searched
as raw text for every ticket id the test has seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.routing import Route
from websockets.asyncio.client import connect

from dispatcher.operations import OPERATIONS as WINDOW_OPERATIONS
from qms.http import API_PREFIX
from qms.reports_http import REPORT_READERS, report_routes
from queue_core.config import HallConfig
from queue_core.keys import HallKeys
from queue_core.models import Role
from queue_core.operations import Operation
from queue_core.redis_client import RedisClient
from tests.conftest import api_client, delete_hall
from tests.live import live_server
from tests.support import TOKENS, Clock, make_config
from ticketing.operations import OPERATIONS as TICKET_OPERATIONS

pytestmark = pytest.mark.redis

OPERATIONS: tuple[Operation, ...] = TICKET_OPERATIONS + WINDOW_OPERATIONS
STAFF = {Role.CLERK: "clerk", Role.MANAGER: "manager", Role.ADMIN: "admin", Role.DISPLAY: "display"}
"""Each staff role and its token in tests/support.py (the clerk's is window 1's)."""

BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/tickets"): {"service": "social-security"},
    ("POST", "/tickets/{ticket}/snooze"): {"minutes": 5},
    ("POST", "/appointments"): {"service": "social-security", "start": "2026-11-21T09:30"},
    ("POST", "/tickets/{ticket}/rating"): {"score": "satisfied", "reason": "快"},
    ("POST", "/remote/tickets"): {"service": "social-security"},
    ("POST", "/windows/{window}/transfer"): {"service": "housing-fund"},
    # The two below name a ticket number, filled in when called.
    ("POST", "/windows/{window}/call"): {},
    ("POST", "/windows/{window}/resume"): {},
}
"""A body for each operation that takes one. Every such operation must have
an entry (`test_every_operation_with_a_body_has_one_here`), so a new one is
walked with a body that does something, not refused as empty."""

ISSUING = frozenset(
    {("POST", "/tickets"), ("POST", "/appointments/{code}/check-in"), ("POST", "/remote/tickets")}
)
"""The answers that hand a new ticket's id to whoever issues it for the
visitor (a kiosk; an admin may stand in): that id, and no other."""


def test_every_operation_with_a_body_has_one_here() -> None:
    declared = {(op.method, op.path) for op in OPERATIONS if op.takes_body}
    assert declared <= set(BODIES), sorted(declared - set(BODIES))


@dataclass
class Walk:
    """The hall under test and every ticket id it has seen."""

    client: httpx.AsyncClient
    config: HallConfig
    ids: set[str] = field(default_factory=set)
    answered: dict[tuple[str, str], list[int]] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return API_PREFIX.replace("{hall}", self.config.id)

    async def request(
        self, method: str, path: str, who: str | None, body: dict[str, Any] | None = None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {TOKENS[who]}"} if who else {}
        return await self.client.request(method, self.base + path, headers=headers, json=body)

    async def visitor_ticket(self, service: str = "social-security") -> str:
        """A ticket issued at the kiosk: its id is the visitor's."""
        r = await self.request("POST", "/tickets", "kiosk", {"service": service})
        assert r.status_code == 201, r.text
        tid = str(r.json()["id"])
        self.ids.add(tid)
        return tid

    async def staff(
        self, method: str, path: str, who: str, body: dict[str, Any] | None = None
    ) -> httpx.Response:
        """A request with a staff token: its answer names no ticket id."""
        r = await self.request(method, path, who, body)
        self.assert_no_id(r, method, path, who)
        return r

    def assert_no_id(
        self, r: httpx.Response, method: str, path: str, who: str, allowed: str = ""
    ) -> None:
        leaked = sorted(i for i in self.ids if i != allowed and i in r.text)
        assert not leaked, (
            f"{who} {method} {path} → {r.status_code}: ticket ids {leaked} in {r.text}"
        )

    async def window_current(self, window: str) -> dict[str, Any] | None:
        r = await self.staff("GET", f"/windows/{window}", "admin")
        current: dict[str, Any] | None = r.json()["current"]
        return current

    async def prepare(self) -> dict[str, str]:
        """A hall with something for every operation to act on: the hall and
        windows 1 and 2 open, people waiting, a ticket called at window 1, a
        parked one; the numbers that `call` and `resume` can name."""
        await self.staff("POST", "/open", "admin")
        for w in ("1", "2"):
            await self.staff("POST", f"/windows/{w}/open", "admin")
        for _ in range(3):
            await self.visitor_ticket()
        if await self.window_current("1") is None:
            assert (await self.staff("POST", "/windows/1/call-next", "admin")).status_code == 200
        parked = (await self.staff("GET", "/parked", "admin")).json()
        if not parked:
            await self.staff("POST", "/windows/2/call-next", "admin")
            assert (await self.staff("POST", "/windows/2/park", "admin")).status_code == 200
            parked = (await self.staff("GET", "/parked", "admin")).json()
        line = (await self.staff("GET", "/windows/1", "admin")).json()["waiting"]
        return {"waiting": line[0]["number"], "parked": parked[0]["number"]}

    async def samples(self) -> list[str]:
        """Ticket ids in several states, for the operations that take one
        (the visitor's: whoever calls them holds that id already)."""
        waiting = await self.visitor_ticket("household")
        completed = await self.visitor_ticket("household")
        no_show = await self.visitor_ticket("household")
        await self.staff("POST", "/windows/9/open", "admin")
        for end in ("complete", "no-show"):
            await self.staff("POST", "/windows/9/call-next", "admin")
            await self.staff("POST", f"/windows/9/{end}", "admin")
        await self.staff("POST", "/windows/9/close", "admin")
        return [waiting, completed, no_show]

    async def appointment(self) -> str:
        r = await self.request("POST", "/appointments", "kiosk", BODIES[("POST", "/appointments")])
        assert r.status_code == 201, r.text
        return str(r.json()["code"])

    async def call(self, op_method: str, op_path: str, who: str, samples: list[str]) -> None:
        """`op` as `who`, with whatever it needs; its answers checked."""
        numbers = await self.prepare()
        body = dict(BODIES.get((op_method, op_path), {}))
        if op_path.endswith("/call"):
            body = {"number": numbers["waiting"]}
        elif op_path.endswith("/resume"):
            body = {"number": numbers["parked"]}
        template = op_path.replace("{window}", "1").replace("{day}", "2026-11-21")
        if "{code}" in template:
            template = template.replace("{code}", await self.appointment())
        # (path, the ticket id it names: the one id its answer may hold)
        calls = [(template, "")]
        if "{ticket}" in template:
            calls = [(template.replace("{ticket}", tid), tid) for tid in samples]
        for path, named in calls:
            r = await self.request(op_method, path, who, body or None)
            self.answered.setdefault((op_method, op_path), []).append(r.status_code)
            if (op_method, op_path) in ISSUING and r.status_code == 201:
                # The new ticket's own id goes to its issuer, and nowhere after.
                named = str(r.json()["id"])
                self.ids.add(named)
            self.assert_no_id(r, op_method, path, who, allowed=named)


def routes_of_reports() -> list[tuple[str, str]]:
    """The report routes, relative to the hall (GET, as they are declared)."""
    found = []
    for route in report_routes():
        assert isinstance(route, Route) and route.methods is not None
        found += [(m, route.path.removeprefix(API_PREFIX)) for m in route.methods if m != "HEAD"]
    return found


@pytest.fixture
async def walk(redis_url: str, redis: RedisClient, tmp_path: Path) -> AsyncIterator[Walk]:
    config = make_config(
        tmp_path,
        remote="enabled = true",
        extra="[calling]\nmax_snooze_minutes = 30\nlate_return_minutes = 10",
    )
    keys = HallKeys(config.id)
    async with api_client([config], redis_url, Clock()) as client:
        yield Walk(client, config)
    await delete_hall(redis, keys)


async def test_no_staff_answer_carries_a_ticket_id(walk: Walk) -> None:
    declared: list[tuple[str, str, frozenset[Role] | None]]
    declared = [(op.method, op.path, op.roles) for op in OPERATIONS]
    declared += [(m, p, REPORT_READERS) for m, p in routes_of_reports()]
    for role, who in STAFF.items():
        samples = await walk.samples()
        for method, path, roles in declared:
            # roles None: anyone holding the path's ticket id, staff included.
            if roles is None or role in roles:
                await walk.call(method, path, who, samples)

    # The walk did reach the operations: each staff operation answered 2xx
    # at least once (the visitor's own, with their many states, may refuse).
    silent = [
        f"{method} {path}: {walk.answered.get((method, path))}"
        for method, path, roles in declared
        if roles is not None
        and roles & set(STAFF)
        and not any(200 <= s < 300 for s in walk.answered.get((method, path), []))
    ]
    assert not silent
    assert len(walk.ids) > 50


async def test_a_clerk_cannot_rate_or_cancel_what_it_called(walk: Walk) -> None:
    """The review's two abuses: a clerk rating its own service ahead of the
    visitor, and cancelling a ticket it transferred."""
    tid = await walk.visitor_ticket()
    await walk.staff("POST", "/windows/1/open", "clerk")
    called = (await walk.staff("POST", "/windows/1/call-next", "clerk")).json()
    assert "id" not in called and called["number"]
    transferred = (
        await walk.staff("POST", "/windows/1/transfer", "clerk", {"service": "housing-fund"})
    ).json()
    assert "id" not in transferred and transferred["status"] == "waiting"
    await walk.staff("POST", "/windows/1/call-next", "clerk")
    completed = (await walk.staff("POST", "/windows/1/complete", "clerk")).json()
    assert "id" not in completed and completed["status"] == "completed"
    # The visitor, who holds the id, rates it.
    r = await walk.request("POST", f"/tickets/{tid}/rating", None, {"score": "satisfied"})
    assert r.status_code == 201, r.text


async def test_no_event_a_screen_or_clerk_receives_carries_a_ticket_id(
    redis_url: str, redis: RedisClient, tmp_path: Path
) -> None:
    config = make_config(tmp_path)
    hall = config.id
    try:
        async with live_server([config], redis_url) as live:
            client = live.api
            w = Walk(client, config)
            url = f"{live.ws}/ws/halls/{hall}/display"
            async with contextlib.AsyncExitStack() as stack:
                sockets = {
                    who: await stack.enter_async_context(
                        connect(url, additional_headers={"Authorization": f"Bearer {TOKENS[who]}"})
                    )
                    for who in ("display", "clerk", "manager", "admin")
                }
                numbers = await w.prepare()
                await w.staff("POST", "/windows/1/recall", "clerk")
                await w.staff("POST", "/windows/1/transfer", "clerk", {"service": "housing-fund"})
                await w.staff("POST", "/windows/1/call", "clerk", {"number": numbers["waiting"]})
                await w.staff("POST", "/windows/1/no-show", "clerk")
                await w.staff("POST", "/windows/1/resume", "clerk", {"number": numbers["parked"]})
                await w.staff("POST", "/windows/1/park", "clerk")
                cancelled = await w.visitor_ticket()
                r = await w.request("POST", f"/tickets/{cancelled}/cancel", None)
                assert r.status_code == 200
                await w.staff(
                    "POST", "/close", "manager"
                )  # every waiting and parked ticket expires
                last = (await w.staff("GET", "/snapshot", "display")).json()["seq"]
                for who, ws in sockets.items():
                    seen: list[str] = []
                    while True:
                        raw = await asyncio.wait_for(ws.recv(), timeout=10)
                        text = raw if isinstance(raw, str) else raw.decode()
                        seen.append(text)
                        frame = json.loads(text)
                        live_event = frame["type"] not in ("snapshot", "heartbeat")
                        if live_event and frame["seq"] >= last:
                            break
                    types = {json.loads(t)["type"] for t in seen}
                    assert {"called", "recalled", "transferred", "no_show", "parked",
                            "cancelled", "expired", "hall"} <= types, (who, types)  # fmt: skip
                    leaked = sorted(i for i in w.ids if any(i in t for t in seen))
                    assert not leaked, (who, leaked)
    finally:
        await delete_hall(redis, HallKeys(hall))
