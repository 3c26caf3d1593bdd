"""Issue 5's monitoring against a real Redis, through the whole app:
Prometheus counters and histograms, the Redis-derived gauges, the manager's
dashboard, estimate bookkeeping, and two replicas on one Redis agreeing.

The hall's clock is the test's `Clock` (09:00 on 2026-11-21, Asia/Shanghai,
to start with); each test has a hall id of its own, so the process-global
Prometheus series labelled with it start at zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from dispatcher.estimator import OpenWindow, WaitingTicket, eta_table, model_from_visits
from dispatcher.figures import HallFigures, record_figures
from dispatcher.monitor import HallMonitor
from qms.app import create_app
from queue_core.config import HallConfig
from queue_core.keys import HallKeys
from queue_core.models import Role, ScreenPage, ScreenPresence
from queue_core.operations import Hall
from queue_core.presence import PresenceStore
from queue_core.redis_client import RedisClient
from queue_core.scripts import Scripts
from tests.conftest import ApiKit, delete_hall
from tests.support import REDIS_GAUGES, Clock, make_config, make_config_with_targets
from tests.test_http_api import (
    call_next,
    headers,
    issue,
    json_object,
    metric_total,
    open_window,
    window_op,
)

pytestmark = pytest.mark.redis

TARGETS = {"social-security": 10.0, "business-licence": 15.0}


def at(hh_mm: str) -> str:
    return f"2026-11-21T{hh_mm}:00+08:00"


# --------------------------------------------------------------------- fixtures


@dataclass
class MonKit(ApiKit):
    """An `ApiKit` (the test_http_api helpers take it) with the app's hall,
    for its monitor and store."""

    hall: Hall

    @property
    def monitor(self) -> HallMonitor:
        assert isinstance(self.hall.monitor, HallMonitor)
        return self.hall.monitor


@contextlib.asynccontextmanager
async def serve(
    config: HallConfig,
    redis_url: str,
    redis: RedisClient,
    clock: Clock,
    *,
    metrics_interval_s: float = 3600,
    estimate_max_age_s: float = 0,
) -> AsyncIterator[MonKit]:
    """The whole app in-process, as conftest's `api_client` runs it, but
    keeping the lifespan's state so a test can reach the hall's monitor."""
    app = create_app(
        [config],
        redis_url,
        clock=clock,
        metrics_interval_s=metrics_interval_s,
        estimate_max_age_s=estimate_max_age_s,
    )
    async with app.router.lifespan_context(app) as state:
        assert state is not None

        async def with_state(scope: Any, receive: Any, send: Any) -> None:
            scope["state"] = dict(state)
            await app(scope, receive, send)

        transport = httpx.ASGITransport(app=with_state, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://qms.test") as client:
            halls: Mapping[str, Hall] = state["halls"]
            yield MonKit(client, config, clock, redis, HallKeys(config.id), halls[config.id])


@pytest.fixture
async def mon(redis_url: str, redis: RedisClient, tmp_path: Path) -> AsyncIterator[MonKit]:
    """A fresh hall whose social-security and business-licence have targets
    (10 and 15 minutes), served by the whole app; estimates read afresh."""
    config = make_config_with_targets(tmp_path, TARGETS)
    async with serve(config, redis_url, redis, Clock()) as kit:
        # Let the periodic task's first read (started with the app) finish
        # before the test writes: a request arriving while a read is in flight
        # shares that read even with estimate_max_age_s=0, and would not see
        # the test's own writes (test_a_read_in_flight_is_not_shared_by_a_later_request).
        await kit.monitor.view()
        yield kit
    await delete_hall(redis, kit.keys)


async def refresh(kit: MonKit) -> HallFigures:
    """What the app's periodic task does once: read the hall (its screens
    too), set the gauges."""
    await kit.monitor.refresh()
    figures = await kit.monitor.figures()
    record_figures(kit.config.id, figures)
    return figures


def gauge(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def scrape(kit: ApiKit) -> str:
    response = await kit.client.get("/metrics")
    assert response.status_code == 200
    return response.text


async def ok(response: Any) -> dict[str, Any]:
    r = await response
    assert isinstance(r, httpx.Response)
    assert r.status_code in (200, 201), r.text
    return json_object(r)


async def stored_ticket(kit: ApiKit, ticket_id: str) -> dict[str, Any]:
    raw = await kit.redis.hget(kit.keys.tickets, ticket_id)
    assert raw is not None
    doc = json.loads(raw)
    assert isinstance(doc, dict)
    return doc


async def stats(kit: ApiKit) -> dict[str, int]:
    raw = await kit.redis.hgetall(kit.keys.stats("20261121"))
    return {str(k): int(v) for k, v in raw.items()}


def credential_id(kit: MonKit, role: Role, window: str | None = None) -> str:
    """The label a credential leaves on tickets: its name, else its role and an
    HMAC of its token's digest under the deployment's secret."""
    for c in kit.config.credentials:
        if c.role is role and (window is None or window in c.windows):
            label = kit.hall.credentials.label(c)
            assert c.token_sha256[:8] not in label  # never the token's plain hash
            return label
    raise AssertionError(f"no {role} credential")


# ------------------------------------------------- 1. counters and histograms


async def test_counters_and_histograms_after_a_scripted_day(mon: MonKit) -> None:
    """Every outcome counted once, by hall, service and priority; waits are
    first calls only, service times end at completion."""
    kit, clock, hall = mon, mon.clock, mon.config.id
    # 09:00: windows 1 (natural + legal), 2 (natural) open; five tickets
    await open_window(kit, "1")
    await open_window(kit, "2")
    a1 = await issue(kit, "social-security")
    a2 = await issue(kit, "social-security", "elderly")  # 20 min credit: effective 08:40
    a3 = await issue(kit, "housing-fund")
    c1 = await issue(kit, "business-licence")
    a4 = await issue(kit, "social-security")
    clock.advance(minutes=5)  # 09:05
    assert (await call_next(kit, "2"))["number"] == a2["number"]  # waited 300 s
    # A001 waited 300 s (called before C001: issued first)
    assert (await call_next(kit, "1"))["number"] == a1["number"]
    clock.advance(minutes=3)  # 09:08
    await ok(window_op(kit, "2", "complete"))  # A002 served 180 s
    assert (await call_next(kit, "2"))["number"] == a3["number"]  # waited 480 s
    clock.advance(minutes=2)  # 09:10
    await ok(window_op(kit, "1", "transfer", json={"service": "household"}))  # A001 → police
    assert (await call_next(kit, "1"))["number"] == c1["number"]  # waited 600 s
    await open_window(kit, "9")
    assert (await call_next(kit, "9"))["number"] == a1["number"]  # second call: no wait of its own
    clock.advance(minutes=4)  # 09:14
    await ok(window_op(kit, "2", "no-show"))  # A003
    await ok(window_op(kit, "9", "complete"))  # A001 served 240 s (from its second call)
    await ok(kit.client.post(f"{kit.base}/tickets/{a4['id']}/cancel"))
    await ok(window_op(kit, "1", "complete"))  # C001 served 240 s
    for ticket, score in ((a2, "satisfied"), (a1, "very_satisfied")):
        await ok(
            kit.client.post(f"{kit.base}/tickets/{ticket['id']}/rating", json={"score": score})
        )
    # refused operations count nothing
    assert (await window_op(kit, "1", "complete")).status_code == 409

    text = await scrape(kit)

    def count(name: str, **labels: str) -> float:
        return metric_total(text, name, hall=hall, **labels)

    ss, hf, bl, hh = "social-security", "housing-fund", "business-licence", "household"
    issued = "qms_tickets_issued_total"
    assert count(issued, service=ss, priority="normal") == 2  # A001, A004
    assert count(issued, service=ss, priority="elderly") == 1
    assert count(issued, service=hf, priority="normal") == 1
    assert count(issued, service=bl, priority="normal") == 1
    assert count(issued) == 5
    called = "qms_tickets_called_total"
    assert count(called, service=ss, priority="elderly") == 1  # A002
    assert count(called, service=ss, priority="normal") == 1  # A001's first call
    assert count(called, service=hf, priority="normal") == 1  # A003
    assert count(called, service=bl, priority="normal") == 1  # C001
    assert count(called, service=hh, priority="normal") == 1  # A001's second call
    assert count(called) == 5
    completed = "qms_tickets_completed_total"
    assert count(completed, service=ss, priority="elderly") == 1
    assert count(completed, service=hh, priority="normal") == 1
    assert count(completed, service=bl, priority="normal") == 1
    assert count(completed) == 3
    assert count("qms_tickets_no_show_total", service=hf, priority="normal") == 1
    assert count("qms_tickets_no_show_total") == 1
    assert count("qms_tickets_cancelled_total", service=ss, priority="normal") == 1
    assert count("qms_tickets_cancelled_total") == 1
    assert count("qms_tickets_transferred_total", priority="normal") == 1

    # waits: four first calls; A001's second call (police) adds none
    wait = "qms_wait_seconds"
    assert count(f"{wait}_count") == 4
    assert count(f"{wait}_sum") == 300 + 300 + 480 + 600
    assert count(f"{wait}_count", group="natural", priority="elderly") == 1
    assert count(f"{wait}_sum", group="natural", priority="elderly") == 300
    assert count(f"{wait}_count", group="natural", priority="normal") == 2
    assert count(f"{wait}_sum", group="natural", priority="normal") == 780
    assert count(f"{wait}_count", group="legal", priority="normal") == 1
    assert count(f"{wait}_sum", group="legal", priority="normal") == 600
    assert count(f"{wait}_count", group="police") == 0
    natural = {"group": "natural", "priority": "normal"}
    assert count(f"{wait}_bucket", **natural, le="120.0") == 0
    assert count(f"{wait}_bucket", **natural, le="300.0") == 1  # A001's 300 s: le is <=
    assert count(f"{wait}_bucket", **natural, le="600.0") == 2

    # service times: the three completions (a no-show is not a visit)
    svc = "qms_service_seconds"
    assert count(f"{svc}_count") == 3
    assert count(f"{svc}_sum") == 180 + 240 + 240
    assert count(f"{svc}_sum", group="natural", priority="elderly") == 180
    assert count(f"{svc}_sum", group="police", priority="normal") == 240
    assert count(f"{svc}_sum", group="legal", priority="normal") == 240
    assert count(f"{svc}_count", group="natural", priority="normal") == 0

    ratings = "qms_ratings_total"
    assert count(ratings, service=ss, window="2", score="satisfied") == 1
    assert count(ratings, service=hh, window="9", score="very_satisfied") == 1
    assert count(ratings) == 2


# ------------------------------------------------------ 2. Redis-derived gauges


async def test_gauges_follow_the_periodic_refresh(
    redis_url: str, redis: RedisClient, tmp_path: Path
) -> None:
    """Window 2 opens at 09:00, calls at 09:05, completes at 09:13: busy
    480 s of 780 s open, idle 300 s. The app's own task sets the gauges."""
    config = make_config_with_targets(tmp_path, TARGETS)
    hall = config.id
    try:
        async with serve(config, redis_url, redis, Clock(), metrics_interval_s=0.02) as kit:
            # Issued before any window opens: no estimate is told, so none is
            # measured (with a read every 20 ms, one would race the issue:
            # see test_a_read_in_flight_is_not_shared_by_a_later_request).
            a1 = await issue(kit, "social-security")
            await issue(kit, "social-security")
            await issue(kit, "business-licence")
            await open_window(kit, "2")
            kit.clock.advance(minutes=5)
            assert (await call_next(kit, "2"))["number"] == a1["number"]  # waited 300 s
            kit.clock.advance(minutes=8)
            await ok(window_op(kit, "2", "complete"))
            # 09:13: A002 (issued 09:00) waited 780 s > 600: over target;
            # C001 waited 780 s < 900: not
            expected: dict[tuple[str, str, str], float] = {
                ("qms_waiting_tickets", "group", "natural"): 1,
                ("qms_waiting_tickets", "group", "legal"): 1,
                ("qms_waiting_tickets", "group", "police"): 0,
                ("qms_oldest_waiting_seconds", "group", "natural"): 780,
                ("qms_oldest_waiting_seconds", "group", "legal"): 780,
                ("qms_oldest_waiting_seconds", "group", "police"): 0,
                ("qms_tickets_over_target", "service", "social-security"): 1,
                ("qms_tickets_over_target", "service", "business-licence"): 0,
                ("qms_tickets_over_target", "service", "housing-fund"): 0,
                ("qms_wait_target_seconds", "service", "social-security"): 600,
                ("qms_wait_target_seconds", "service", "business-licence"): 900,
                ("qms_windows", "status", "open"): 1,
                ("qms_windows", "status", "paused"): 0,
                ("qms_windows", "status", "closed"): 3,
                ("qms_window_served", "window", "2"): 1,
                ("qms_window_busy_seconds", "window", "2"): 480,
                ("qms_window_idle_seconds", "window", "2"): 300,
                ("qms_window_served", "window", "1"): 0,
                ("qms_window_busy_seconds", "window", "1"): 0,
                ("qms_window_idle_seconds", "window", "1"): 0,
                # A001 was called, but told no estimate at issue
                ("qms_wait_estimate_samples", "span", "1h"): 0,
                ("qms_wait_estimate_samples", "span", "today"): 0,
            }

            def seen() -> dict[tuple[str, str, str], float | None]:
                return {k: gauge(k[0], hall=hall, **{k[1]: k[2]}) for k in expected}

            # bounded wait for a refresh that saw the writes above (no scrape reads Redis)
            for _ in range(500):
                if seen() == expected:
                    break
                await asyncio.sleep(0.01)
            assert seen() == expected
            assert gauge("qms_wait_target_seconds", hall=hall, service="housing-fund") is None
            for span in ("1h", "today"):  # no samples: no figure (NaN), not a perfect 0
                assert math.isnan(gauge("qms_wait_estimate_mae_seconds", hall=hall, span=span) or 0)
                ratio = gauge("qms_wait_estimate_in_range_ratio", hall=hall, span=span)
                assert math.isnan(ratio or 0)
            assert gauge("qms_redis_up", hall=hall) == 1
    finally:
        await delete_hall(redis, HallKeys(hall))


async def test_estimate_accuracy_gauges_last_hour_and_today(mon: MonKit) -> None:
    """Three calls with an estimate told at issue; the last hour holds only
    the last. Expected errors from the ETAs the tickets were given (rounded
    seconds, while the store keeps ms: 1 s tolerance)."""
    kit, clock, hall = mon, mon.clock, mon.config.id
    await open_window(kit, "2")
    x1 = await issue(kit, "housing-fund")  # 09:00, next in line, window free: told 0
    x2 = await issue(kit, "housing-fund")  # behind one visit
    assert x1["eta_seconds"] == 0 and x1["eta_range_seconds"] == [0, 60]
    assert x2["eta_seconds"] > 0
    assert (await call_next(kit, "2"))["number"] == x1["number"]  # waited 0: exact, in [0, 60]
    clock.advance(minutes=7)
    assert (await call_next(kit, "2"))["number"] == x2["number"]  # waited 420 s
    clock.advance(minutes=83)  # 10:30: the calls above are over an hour old by 10:40
    y = await issue(kit, "housing-fund")
    assert y["eta_seconds"] is not None
    clock.advance(minutes=10)
    assert (await call_next(kit, "2"))["number"] == y["number"]  # waited 600 s

    def inside(wait: int, body: dict[str, Any]) -> int:
        lo, hi = body["eta_range_seconds"]
        assert abs(wait - lo) > 1 and abs(wait - hi) > 1, "too near a bound to tell"
        return int(lo <= wait <= hi)

    err_x2, err_y = abs(420 - x2["eta_seconds"]), abs(600 - y["eta_seconds"])
    in_x2, in_y = inside(420, x2), inside(600, y)

    await refresh(kit)
    assert gauge("qms_wait_estimate_samples", hall=hall, span="1h") == 1
    assert gauge("qms_wait_estimate_mae_seconds", hall=hall, span="1h") == pytest.approx(
        err_y, abs=1
    )
    assert gauge("qms_wait_estimate_in_range_ratio", hall=hall, span="1h") == in_y
    assert gauge("qms_wait_estimate_samples", hall=hall, span="today") == 3
    assert gauge("qms_wait_estimate_mae_seconds", hall=hall, span="today") == pytest.approx(
        (0 + err_x2 + err_y) / 3, abs=1
    )
    assert gauge("qms_wait_estimate_in_range_ratio", hall=hall, span="today") == pytest.approx(
        (1 + in_x2 + in_y) / 3
    )
    # the dashboard says the same
    body = await ok(kit.client.get(f"{kit.base}/dashboard", headers=headers("manager")))
    assert body["estimates"]["last_hour"]["samples"] == 1
    assert body["estimates"]["last_hour"]["mae_seconds"] == pytest.approx(err_y, abs=1)
    assert body["estimates"]["today"]["samples"] == 3
    assert body["estimates"]["today"]["in_range"] == round((1 + in_x2 + in_y) / 3, 3)


async def test_screen_gauges(mon: MonKit) -> None:
    """Online: a live presence key. Offline: seen in the last day, key lapsed."""
    kit, hall = mon, mon.config.id
    presence = PresenceStore(kit.redis, Scripts.register(kit.redis), hall, ttl_s=60)
    now_ms = round(kit.clock.now * 1000)
    screens = [ScreenPresence(s, ScreenPage.DISPLAY, None, "r1", now_ms, now_ms) for s in "abc"]
    await presence.record(screens, now_ms - 3_600_000)
    await kit.redis.delete(kit.keys.screen("b"))  # b's presence lapsed (an hour ago)
    await refresh(kit)
    assert gauge("qms_screens_online", hall=hall) == 2
    assert gauge("qms_screens_offline", hall=hall) == 1
    body = await ok(kit.client.get(f"{kit.base}/dashboard", headers=headers("manager")))
    assert [s["id"] for s in body["screens"]["online"]] == ["a", "c"]
    assert body["screens"]["offline"] == [
        {"id": "b", "page": None, "window": None, "last_seen": at("08:00")}
    ]


# ------------------------------------------------- 3. two replicas, one Redis


async def test_two_replicas_on_one_redis_agree(
    redis_url: str, redis: RedisClient, tmp_path: Path
) -> None:
    """Two app instances (two replicas) on the same Redis and config, each
    doing half the work, then reading back the same hall.

    prometheus_client's registry is process-global, so two in-process apps
    share every counter and gauge: a sum over "the two processes" cannot be
    taken here. What is tested instead: the counters moved by exactly the
    operations done across both apps (each operation counted once, by the
    replica that did it), and the Redis-derived figures each replica
    computes (hence its gauges and its dashboard) are equal."""
    config = make_config_with_targets(tmp_path, TARGETS)
    hall = config.id
    clock = Clock()
    try:
        async with (
            serve(config, redis_url, redis, clock) as a,
            serve(config, redis_url, redis, clock) as b,
        ):
            before = await scrape(a)
            await open_window(a, "1")
            await open_window(b, "2")
            t1 = await issue(a, "social-security")
            t2 = await issue(b, "social-security", "elderly")
            t3 = await issue(a, "business-licence")
            t4 = await issue(b, "housing-fund")
            t5 = await issue(a, "social-security")
            t6 = await issue(b, "social-security")
            clock.advance(minutes=4)
            assert (await call_next(b, "2"))["number"] == t2["number"]
            assert (await call_next(a, "1"))["number"] == t1["number"]
            clock.advance(minutes=3)
            await ok(window_op(b, "1", "complete"))
            assert (await call_next(a, "2"))["number"] == t4["number"]  # completes t2
            await ok(a.client.post(f"{a.base}/tickets/{t5['id']}/cancel"))
            clock.advance(minutes=13)  # 09:20: several tickets past their targets
            after = await scrape(b)

            def delta(name: str) -> float:
                return metric_total(after, name, hall=hall) - metric_total(before, name, hall=hall)

            assert delta("qms_tickets_issued_total") == 6
            assert delta("qms_tickets_called_total") == 3
            assert delta("qms_tickets_completed_total") == 2  # t1 explicitly, t2 by call-next
            assert delta("qms_tickets_cancelled_total") == 1
            assert delta("qms_wait_seconds_count") == 3

            # each replica's own read of Redis gives the same figures ...
            fa, fb = (await a.monitor.refresh()).figures, (await b.monitor.refresh()).figures
            assert fa == fb
            assert fa.breach_count > 0 and fa.groups[0].waiting > 0  # not an empty hall
            # ... hence the same gauges (set one replica's, then the other's)
            record_figures(hall, fa)
            gauges_a = hall_gauges(hall)
            record_figures(hall, fb)
            assert hall_gauges(hall) == gauges_a
            assert gauges_a  # there are some
            # ... the same dashboard (but for when it was read) ...
            da = await ok(a.client.get(f"{a.base}/dashboard", headers=headers("manager")))
            db = await ok(b.client.get(f"{b.base}/dashboard", headers=headers("admin")))
            da.pop("at")
            db.pop("at")
            assert da == db
            # ... and the same ETA for a waiting ticket
            for t in (t3, t6):
                ta = await ok(a.client.get(f"{a.base}/tickets/{t['id']}"))
                tb = await ok(b.client.get(f"{b.base}/tickets/{t['id']}"))
                assert ta == tb
                assert ta["status"] == "waiting" and ta["eta_seconds"] is not None
    finally:
        await delete_hall(redis, HallKeys(hall))


def hall_gauges(hall: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every Redis-derived gauge sample of the hall (NaN as a string, so it compares)."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in REGISTRY.collect():
        if family.name not in REDIS_GAUGES:
            continue
        for s in family.samples:
            if s.labels.get("hall") == hall:
                value = s.value if s.value == s.value else -1.0  # NaN != NaN
                out[(s.name, tuple(sorted(s.labels.items())))] = value
    return out


# ------------------------------------------------------------------ 4. dashboard


@pytest.mark.parametrize(
    ("role", "status"),
    [
        (None, 401),
        ("clerk", 403),
        ("kiosk", 403),
        ("display", 403),
        ("manager", 200),
        ("admin", 200),
    ],
)
async def test_dashboard_is_for_managers_and_admins(
    mon: MonKit, role: str | None, status: int
) -> None:
    response = await mon.client.get(f"{mon.base}/dashboard", headers=headers(role))
    assert response.status_code == status, response.text
    if status == 401:
        assert response.json()["error"]["code"] == "unauthorized"
    if status == 403:
        assert response.json()["error"]["code"] == "forbidden"


async def test_dashboard_after_a_small_day(mon: MonKit) -> None:
    """09:00 window 2 opens; A001 (social-security), A002 (housing-fund) and
    C001 (business-licence, no window serves legal) are issued.
    09:06 A001 called (waited 360 s).  09:12 A003 (social-security) issued.
    09:20 A001 completed (840 s at the window).  09:22 A002 called (1320 s).
    A001 rated satisfied. Read at 09:30."""
    kit, clock = mon, mon.clock
    await open_window(kit, "2")
    a1 = await issue(kit, "social-security")
    a2 = await issue(kit, "housing-fund")
    c1 = await issue(kit, "business-licence")
    assert c1["eta_seconds"] is None
    clock.advance(minutes=6)
    assert (await call_next(kit, "2"))["number"] == a1["number"]
    clock.advance(minutes=6)
    await issue(kit, "social-security")
    clock.advance(minutes=8)
    await ok(window_op(kit, "2", "complete"))
    clock.advance(minutes=2)
    assert (await call_next(kit, "2"))["number"] == a2["number"]
    rated = kit.client.post(f"{kit.base}/tickets/{a1['id']}/rating", json={"score": "satisfied"})
    await ok(rated)
    clock.advance(minutes=8)

    body = await ok(kit.client.get(f"{kit.base}/dashboard", headers=headers("manager")))

    # A ticket taken now in natural comes after A003, while A002 (housing-fund)
    # has been at window 2 for 480 s; social-security learned A001's 840 s.
    model = model_from_visits(kit.config, {"social-security": [840.0]})
    a3_ticket = WaitingTicket("a3", "natural", "social-security", 720.0, 720.0)
    by_group = {"natural": ["social-security", "housing-fund"], "legal": ["business-licence"]}
    table = eta_table(
        model,
        {"natural": [a3_ticket], "legal": [], "police": []},
        [OpenWindow("2", ("natural",), "housing-fund", 480.0)],
        by_group | {"police": ["household"]},
    )
    natural_eta = table.at("natural", 1)
    assert natural_eta is not None
    eta = {
        "eta_seconds": round(natural_eta.central),
        "eta_low_seconds": round(natural_eta.p10),
        "eta_high_seconds": round(natural_eta.p90),
    }
    no_eta = {"eta_seconds": None, "eta_low_seconds": None, "eta_high_seconds": None}

    # accuracy: A001 was told 0 in [0, 0] and waited 360 s (out); A002 was
    # told what its issue said and waited 1320 s
    lo2, hi2 = a2["eta_range_seconds"]
    assert abs(1320 - lo2) > 1 and abs(1320 - hi2) > 1
    in2 = int(lo2 <= 1320 <= hi2)
    mae = (360 + abs(1320 - a2["eta_seconds"])) / 2
    estimates = body.pop("estimates")
    for span in ("last_hour", "today"):
        assert estimates[span]["samples"] == 2
        assert estimates[span]["mae_seconds"] == pytest.approx(mae, abs=1)
        assert estimates[span]["in_range"] == in2 / 2

    closed = {"status": "closed", "ticket": None, "served": 0}
    closed |= {"busy_seconds": 0, "idle_seconds": 0, "utilisation": None}
    assert body == {
        "at": "2026-11-21T09:30:00.000+08:00",
        "seq": 8,  # window opened, 4 issued, 2 called, 1 completed (ratings are no event)
        "hall": {
            "id": kit.config.id,
            "name": "测试政务服务中心",
            # a hall without [hours] is open all day; the kiosk stops at midnight
            "hours": {
                "open": True,
                "opens_at": None,
                "closes_at": "2026-11-22T00:00:00+08:00",
                "in_span": True,
                "closed_by_manager": False,
                "message": None,
            },
        },
        "parked": 0,
        "expired_today": 0,
        "groups": [
            {
                "id": "natural",
                "name": "自然人综合窗口",
                "waiting": 1,
                "oldest_wait_seconds": 1080,  # A003 since 09:12
                "open_windows": 1,
            },
            {
                "id": "legal",
                "name": "法人综合窗口",
                "waiting": 1,
                "oldest_wait_seconds": 1800,  # C001 since 09:00
                "open_windows": 0,
            },
            {
                "id": "police",
                "name": "公安专区",
                "waiting": 0,
                "oldest_wait_seconds": None,
                "open_windows": 0,
            },
        ],
        "services": [
            {
                "id": "social-security",
                "name": "社保医保",
                "group": "natural",
                "waiting": 1,
                **eta,
                "target_minutes": 10.0,
                "over_target": 1,  # A003: 1080 s > 600
            },
            {
                "id": "housing-fund",
                "name": "公积金",
                "group": "natural",
                "waiting": 0,
                **eta,
                "target_minutes": None,
                "over_target": 0,
            },
            {
                "id": "business-licence",
                "name": "营业执照",
                "group": "legal",
                "waiting": 1,
                **no_eta,
                "target_minutes": 15.0,
                "over_target": 1,  # C001: 1800 s > 900
            },
            {
                "id": "household",
                "name": "户籍办理",
                "group": "police",
                "waiting": 0,
                **no_eta,
                "target_minutes": None,
                "over_target": 0,
            },
        ],
        # two first calls: 360 and 1320 s; mean 840, nearest-rank p90 of 2 = 1320
        "waits": {"last_hour": {"called": 2, "mean_seconds": 840.0, "p90_seconds": 1320.0}},
        "hours": [
            {"hour": "09", "issued": 4, "called": 2, "served": 1, "mean_wait_seconds": 840.0}
        ],
        "windows": [
            {"id": "1", "name": "1号窗口", **closed},
            {
                "id": "2",
                "name": "2号窗口",
                "status": "open",
                "ticket": {"number": "A002", "service": "housing-fund", "called_at": at("09:22")},
                "served": 1,
                # A001 840 s + A002 480 s so far, of 1800 s open
                "busy_seconds": 1320,
                "idle_seconds": 480,
                "utilisation": round(1320 / 1800, 3),
            },
            {"id": "3", "name": "3号窗口", **closed},
            {"id": "9", "name": "9号窗口", **closed},
        ],
        "breaches": [
            {
                "number": "C001",
                "service": "business-licence",
                "group": "legal",
                "waited_seconds": 1800,
                "target_seconds": 900,
            },
            {
                "number": "A003",
                "service": "social-security",
                "group": "natural",
                "waited_seconds": 1080,
                "target_seconds": 600,
            },
        ],
        "breach_count": 2,
        "screens": {"online": [], "offline": []},
        "ratings": {
            "rated": 1,
            "satisfied_share": 1.0,
            "scores": {
                "very_satisfied": 0,
                "satisfied": 1,
                "neutral": 0,
                "dissatisfied": 0,
                "very_dissatisfied": 0,
            },
        },
    }


# ---------------------------------------------- 5. who did it, and estimates kept


async def test_the_clerks_credential_lands_on_the_ticket(mon: MonKit) -> None:
    kit = mon
    clerk1 = credential_id(kit, Role.CLERK, "1")
    clerk2 = credential_id(kit, Role.CLERK, "2")
    admin = credential_id(kit, Role.ADMIN)
    assert len({clerk1, clerk2, admin}) == 3
    await open_window(kit, "1")
    await open_window(kit, "2")
    t1 = await issue(kit, "social-security")
    t2 = await issue(kit, "social-security")
    assert "clerk" not in await stored_ticket(kit, t1["id"])

    # call-next by clerk 1, completed by the admin: the last hand counts
    assert (await ok(window_op(kit, "1", "call-next", role="clerk")))["number"] == t1["number"]
    assert (await stored_ticket(kit, t1["id"]))["clerk"] == clerk1
    await ok(window_op(kit, "1", "complete", role="admin"))
    assert (await stored_ticket(kit, t1["id"]))["clerk"] == admin

    # call-next by the admin, completed by clerk 2
    assert (await ok(window_op(kit, "2", "call-next", role="admin")))["number"] == t2["number"]
    assert (await stored_ticket(kit, t2["id"]))["clerk"] == admin
    await ok(window_op(kit, "2", "complete", role="clerk2"))
    done = await stored_ticket(kit, t2["id"])
    assert (done["clerk"], done["status"]) == (clerk2, "completed")


async def test_estimates_are_noted_at_issue_and_dropped_at_call_and_cancel(mon: MonKit) -> None:
    kit, clock = mon, mon.clock
    await open_window(kit, "2")
    a1 = await issue(kit, "social-security")
    a2 = await issue(kit, "social-security")
    a3 = await issue(kit, "social-security")
    c1 = await issue(kit, "business-licence")  # no open window serves legal: nothing told
    noted = {
        str(k): json.loads(v) for k, v in (await kit.redis.hgetall(kit.keys.estimates)).items()
    }
    assert set(noted) == {a1["id"], a2["id"], a3["id"]}
    for t in (a1, a2, a3):
        e = noted[t["id"]]
        # the store keeps ms; the response rounds to seconds
        assert abs(e["c"] / 1000 - t["eta_seconds"]) <= 0.5
        assert abs(e["lo"] / 1000 - t["eta_range_seconds"][0]) <= 0.5
        assert abs(e["hi"] / 1000 - t["eta_range_seconds"][1]) <= 0.5
    assert c1["id"] not in noted

    await ok(kit.client.post(f"{kit.base}/tickets/{a3['id']}/cancel"))
    assert not await kit.redis.hexists(kit.keys.estimates, a3["id"])
    clock.advance(minutes=2)
    assert (await call_next(kit, "2"))["number"] == a1["number"]
    assert set(await kit.redis.hkeys(kit.keys.estimates)) == {a2["id"]}
    assert (await stats(kit))["est:n"] == 1

    # A001 transferred to housing-fund: it waits again (keeping its place),
    # but is told no new estimate to be measured against
    clock.advance(minutes=1)
    await ok(window_op(kit, "2", "transfer", json={"service": "housing-fund"}))
    assert await kit.hall.store.note_estimate(a1["id"], 1000, 500, 2000) is False
    assert not await kit.redis.hexists(kit.keys.estimates, a1["id"])
    clock.advance(minutes=1)
    assert (await call_next(kit, "2"))["number"] == a1["number"]  # its second call
    s = await stats(kit)
    assert (s["est:n"], s["called:09"]) == (1, 1)
    assert await kit.redis.llen(kit.keys.waits) == 1
    clock.advance(minutes=1)
    assert (await call_next(kit, "2"))["number"] == a2["number"]  # a first call, with its estimate
    s = await stats(kit)
    assert (s["est:n"], s["called:09"]) == (2, 2)
    assert await kit.redis.hlen(kit.keys.estimates) == 0
    figures = await refresh(kit)
    assert figures.accuracy_today.samples == 2
    assert figures.accuracy_last_hour.samples == 2
    assert figures.last_hour.called == 2  # A001's second call is no wait of its own


# ---------------------------------------------------------- 6. reading Redis less


def hall_state_reads() -> float:
    return (
        REGISTRY.get_sample_value("qms_redis_command_seconds_count", {"command": "hall_state"})
        or 0.0
    )


async def test_a_read_is_reused_within_estimate_max_age(
    redis_url: str, redis: RedisClient, tmp_path: Path
) -> None:
    config = make_config(tmp_path)
    try:
        async with serve(config, redis_url, redis, Clock(), estimate_max_age_s=60) as kit:
            await kit.monitor.view()  # the first read (or the periodic task's, shared)
            await kit.monitor.settle()
            reads = hall_state_reads()
            seq = (await ok(kit.client.get(f"{kit.base}/dashboard", headers=headers("admin"))))[
                "seq"
            ]
            await open_window(kit, "2")
            t = await issue(kit, "social-security")
            # a window opened since the read: the issue's own answer reads the
            # hall again, once, so its estimate is never older than its view
            assert hall_state_reads() == reads + 1
            assert t["eta_seconds"] is not None
            await ok(kit.client.get(f"{kit.base}/tickets/{t['id']}"))
            again = await ok(kit.client.get(f"{kit.base}/dashboard", headers=headers("admin")))
            assert hall_state_reads() == reads + 1
            assert again["seq"] == seq + 2
            # with the same windows open, writes reuse the read
            await issue(kit, "social-security")
            again = await ok(kit.client.get(f"{kit.base}/dashboard", headers=headers("admin")))
            assert hall_state_reads() == reads + 1
            assert again["seq"] == seq + 2
            # a refresh reads it, once, and the next request sees the writes
            await kit.monitor.refresh()
            assert hall_state_reads() == reads + 2
            fresh = await ok(kit.client.get(f"{kit.base}/dashboard", headers=headers("admin")))
            assert fresh["seq"] == seq + 3
            assert hall_state_reads() == reads + 2

        # the tests' app (max age 0) reads on every request
        async with serve(config, redis_url, redis, Clock()) as kit:
            await kit.monitor.view()
            await kit.monitor.settle()  # the gauges' first read, started with the app
            reads = hall_state_reads()
            for _ in range(3):
                await ok(kit.client.get(f"{kit.base}/dashboard", headers=headers("admin")))
            assert hall_state_reads() == reads + 3
    finally:
        await delete_hall(redis, HallKeys(config.id))


async def test_a_window_open_in_redis_but_gone_from_the_config_forces_no_reads(
    redis_url: str, redis: RedisClient, tmp_path: Path
) -> None:
    config = make_config(tmp_path)
    try:
        async with serve(config, redis_url, redis, Clock(), estimate_max_age_s=60) as kit:
            await open_window(kit, "2")
            # an operator removed window "gone" from the file while it was open
            await redis.sadd(HallKeys(config.id).open_windows, "gone")
            await issue(kit, "social-security")
            await kit.monitor.settle()
            reads = hall_state_reads()
            for _ in range(3):
                assert (await issue(kit, "social-security"))["eta_seconds"] is not None
            assert hall_state_reads() == reads
    finally:
        await delete_hall(redis, HallKeys(config.id))


def gate_hall_reads(kit: MonKit, gate: asyncio.Event, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the monitor's reads of the hall wait for the test's go once
    their snapshot of Redis is taken (the Redis reads themselves are real):
    a read stays in flight after it has seen the hall."""
    store = kit.monitor.store
    read = store.hall_state

    async def gated(*args: Any, **kwargs: Any) -> Any:
        state = await read(*args, **kwargs)
        await gate.wait()
        return state

    monkeypatch.setattr(store, "hall_state", gated)


def command_count(command: str) -> float:
    labels = {"command": command}
    return REGISTRY.get_sample_value("qms_redis_command_seconds_count", labels) or 0.0


async def until(condition: Callable[[], bool]) -> None:
    """Let the event loop run (no time passes) until `condition`, boundedly."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


async def test_a_read_in_flight_is_not_shared_by_a_later_request(
    mon: MonKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With estimate_max_age_s=0 ("read on every request"), a request must see
    what was written before it arrived. The monitor shares a read already in
    flight with every caller arriving during it, even when that read took its
    snapshot of Redis before the caller's own write.

    Here the periodic task's read has taken its snapshot (window 2 closed)
    when window 2 opens; a ticket issued next, at the open window, is then
    answered from that read: no estimate, and none noted to measure later."""
    kit = mon
    gate = asyncio.Event()
    gate_hall_reads(kit, gate, monkeypatch)
    reads = command_count("hall_state")
    periodic = asyncio.ensure_future(kit.monitor.refresh())  # as refresh_gauges does
    await until(lambda: command_count("hall_state") > reads)  # its snapshot is taken
    await open_window(kit, "2")  # written after that snapshot ...
    issued = command_count("issue")
    request = asyncio.ensure_future(issue(kit, "housing-fund"))  # ... and before this request
    await until(lambda: command_count("issue") > issued)
    for _ in range(20):  # loop turns, no time: the request reaches the monitor and waits
        await asyncio.sleep(0)
    gate.set()
    ticket = await request
    await periodic
    assert ticket["position"] == 0
    # window 2 (natural) is open and free: the fresh answer is "called at once"
    assert (ticket["eta_seconds"], ticket["eta_range_seconds"]) == (0, [0, 60]), (
        "the request was answered from a read taken before the window opened"
    )
    assert await kit.redis.hexists(kit.keys.estimates, ticket["id"])
