"""A hall's day, every day: hours, closing, expiry, recall limit, late
return, park and resume, a manager's close, the audit trail. Against a
real redis-server, with the clock moved by the test (never slept)."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from dispatcher.day_keeper import DayKeeper
from queue_core.errors import Conflict, NotFound, QmsError
from queue_core.models import Actor, TicketStatus, WindowStatus
from queue_core.redis_client import RedisClient, create_redis
from queue_core.scripts import Scripts
from queue_core.store import HallStore
from tests.conftest import HallFactory, HallKit, stream_events

pytestmark = pytest.mark.redis

SHANGHAI = ZoneInfo("Asia/Shanghai")

# 2026-11-23 is a Monday; the 24th a holiday; the 29th (a Sunday) a working day.
HOURS = """
[hours]
mon = ["08:30-12:00", "13:30-17:30"]
tue = ["08:30-12:00", "13:30-17:30"]
wed = ["08:30-12:00", "13:30-17:30"]
thu = ["08:30-12:00", "13:30-17:30"]
fri = ["08:30-12:00", "13:30-17:30"]
sat = ["09:00-12:00"]
closed = ["2026-11-24"]
open = { "2026-11-29" = ["09:00-12:00"] }
issue_until_minutes = 15

[calling]
recall_limit = 2
late_return_minutes = 10
"""

CLERK = Actor("李四", "clerk", "10.0.0.5")
MANAGER = Actor("王主任", "manager", "10.0.0.9")


def set_time(kit: HallKit, when: str) -> None:
    """Move the test's clock to a local time of the hall ("2026-11-23 09:00")."""
    kit.clock.now = datetime.strptime(when, "%Y-%m-%d %H:%M").replace(tzinfo=SHANGHAI).timestamp()


def replica(client: RedisClient, kit: HallKit) -> HallStore:
    """The hall's store as another replica has it: its own client, the same clock."""
    return HallStore(client, Scripts.register(client), kit.config, clock=kit.clock)


async def day_hall(hall_factory: HallFactory, when: str = "2026-11-23 09:00") -> HallKit:
    kit = await hall_factory(extra=HOURS)
    set_time(kit, when)
    return kit


async def events(kit: HallKit, etype: str) -> list[dict[str, str]]:
    return [f for _, f in await stream_events(kit.redis, kit.keys) if f["type"] == etype]


async def status_of(kit: HallKit, ticket_id: str) -> TicketStatus:
    return (await kit.store.ticket(ticket_id)).ticket.status


async def refused(kit: HallKit, code: str, op: object) -> QmsError:
    """`op` is refused with `code`, and changes nothing (the event log stands still)."""
    seq = int(await kit.redis.get(kit.keys.seq) or 0)
    with pytest.raises(QmsError) as info:
        await op  # type: ignore[misc]
    assert info.value.code == code, info.value.message
    assert int(await kit.redis.get(kit.keys.seq) or 0) == seq
    return info.value


# ------------------------------------------------------------------ hours


@pytest.mark.parametrize(
    ("when", "message"),
    [
        # the lunch break
        ("2026-11-23 12:05", "现在不是取号时间，13:30 开始取号。"),
        # 15 minutes before the day's last span ends; tomorrow is a holiday
        ("2026-11-23 17:20", "今日已停止取号，后天 08:30 开始取号。"),
        # before opening
        ("2026-11-23 07:00", "现在不是取号时间，08:30 开始取号。"),
        # the holiday itself
        ("2026-11-24 10:00", "今日已停止取号，明天 08:30 开始取号。"),
        # Saturday afternoon: Sunday the 29th is a working day
        ("2026-11-28 12:30", "今日已停止取号，明天 09:00 开始取号。"),
    ],
)
async def test_outside_the_hours_issuing_is_refused_naming_the_next_opening(
    hall_factory: HallFactory, when: str, message: str
) -> None:
    kit = await day_hall(hall_factory, when)
    error = await refused(kit, "hall_closed", kit.store.issue("social-security"))
    assert isinstance(error, Conflict)
    assert error.message == message
    code = (await kit.store.book_appointment("household", int(kit.clock.now * 1000))).value.code
    await refused(kit, "hall_closed", kit.store.check_in(code))
    assert not await kit.redis.hlen(kit.keys.tickets)


@pytest.mark.parametrize(
    "when", ["2026-11-23 08:30", "2026-11-23 13:30", "2026-11-23 17:14", "2026-11-29 09:00"]
)
async def test_within_the_hours_the_kiosk_issues(hall_factory: HallFactory, when: str) -> None:
    kit = await day_hall(hall_factory, when)
    assert kit.store.hall_hours().open
    assert (await kit.store.issue("social-security")).value.ticket.number == "A001"


async def test_a_retry_after_closing_gets_the_ticket_it_was_issued(
    hall_factory: HallFactory,
) -> None:
    kit = await day_hall(hall_factory, "2026-11-23 17:14")
    first = await kit.store.issue("social-security", idempotency="kiosk-7:click-1")
    kit.clock.now += 120  # the kiosk's retry lands after issuing stopped
    again = await kit.store.issue("social-security", idempotency="kiosk-7:click-1")
    assert again.replayed and again.value.ticket.id == first.value.ticket.id
    await refused(kit, "hall_closed", kit.store.issue("social-security", idempotency="click-2"))


async def test_english_halls_are_told_in_english(hall_factory: HallFactory) -> None:
    kit = await hall_factory(extra=HOURS)
    english = dataclasses.replace(kit.config, language="en")
    store = HallStore(kit.redis, Scripts.register(kit.redis), english, clock=kit.clock)
    set_time(kit, "2026-11-23 12:05")
    with pytest.raises(Conflict) as info:
        await store.issue("social-security")
    assert info.value.message == "The hall is not issuing tickets now; it opens at 13:30."


# ---------------------------------------------------------------- closing


async def a_busy_morning(kit: HallKit) -> tuple[list[str], str, str]:
    """Four tickets: one served at window 2, one parked, two left waiting.
    Returns (the waiting ids, the parked id, the one at the window)."""
    ids = [(await kit.store.issue("social-security")).value.ticket.id for _ in range(4)]
    await kit.store.set_window("2", WindowStatus.OPEN, actor=CLERK)
    kit.clock.now += 60
    await kit.store.call_next("2", actor=CLERK)  # A001
    await kit.store.park("2", actor=CLERK)  # A001 parked
    await kit.store.call_next("2", actor=CLERK)  # A002 at the window
    return ids[2:], ids[0], ids[1]


async def test_the_days_last_span_end_expires_waiting_and_parked_tickets_once(
    hall_factory: HallFactory,
) -> None:
    kit = await day_hall(hall_factory)
    keeper = DayKeeper({kit.config.id: kit.store})
    await keeper.tick()  # today's 08:30 passed: the hall's first status, set silently
    waiting, parked, at_window = await a_busy_morning(kit)

    set_time(kit, "2026-11-23 12:00")  # lunch: closed for issuing, nothing expires
    assert (await keeper.tick())[kit.config.id].expired == 0
    assert [e["status"] for e in await events(kit, "hall")] == ["closed"]
    set_time(kit, "2026-11-23 13:30")
    await keeper.tick()
    assert [e["status"] for e in await events(kit, "hall")] == ["closed", "open"]
    assert await status_of(kit, waiting[0]) is TicketStatus.WAITING

    set_time(kit, "2026-11-23 17:30")
    passed = await keeper.tick()
    assert passed[kit.config.id].expired == 3
    for tid in [*waiting, parked]:
        assert await status_of(kit, tid) is TicketStatus.EXPIRED
    # the visitor at the window is still served
    assert await status_of(kit, at_window) is TicketStatus.CALLED
    expired = await events(kit, "expired")
    assert sorted(e["number"] for e in expired) == ["A001", "A003", "A004"]
    assert [e["status"] for e in await events(kit, "hall")] == ["closed", "open", "closed"]
    snap = await kit.store.snapshot()
    assert snap.waiting_by_group["natural"] == 0 and snap.parked == 0
    assert await kit.redis.zcard(kit.keys.arrivals) == 0  # the arrival index follows
    assert (await kit.store.hall_state(head=10, calls_since_ms=0)).stats["expired"] == 3

    # the same boundary again, from this replica or another: nothing more
    assert await keeper.tick() == {}
    other = DayKeeper({kit.config.id: HallStore(kit.redis, Scripts.register(kit.redis),
                                                kit.config, clock=kit.clock)})  # fmt: skip
    assert await other.tick() == {}
    assert len(await events(kit, "expired")) == 3

    # midnight: the ticket still called from yesterday is finished, so its
    # number can never be held twice
    set_time(kit, "2026-11-24 00:00")
    times_before = await kit.redis.hget(kit.keys.service_times, "social-security")
    await keeper.tick()
    finished = (await kit.store.ticket(at_window)).ticket
    assert finished.status is TicketStatus.COMPLETED
    # as of the day's end, and not learned as a seven-hour visit
    assert finished.finished_ms == round(
        datetime(2026, 11, 23, 17, 30, tzinfo=SHANGHAI).timestamp() * 1000
    )
    assert await kit.redis.hget(kit.keys.service_times, "social-security") == times_before


async def test_two_replicas_racing_to_close_the_day_expire_each_ticket_once(
    hall_factory: HallFactory, redis_url: str
) -> None:
    kit = await day_hall(hall_factory)
    for _ in range(30):
        await kit.store.issue("social-security")
    set_time(kit, "2026-11-23 17:31")
    clients = [create_redis(redis_url, max_connections=2) for _ in range(8)]
    try:
        keepers = [
            DayKeeper(
                {kit.config.id: HallStore(c, Scripts.register(c), kit.config, clock=kit.clock)}
            )
            for c in clients
        ]
        results = await asyncio.gather(*(k.tick() for k in keepers))
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    winners = [r[kit.config.id] for r in results if kit.config.id in r]
    assert len(winners) == 1 and winners[0].expired == 30
    expired = await events(kit, "expired")
    assert len(expired) == 30
    assert len({e["number"] for e in expired}) == 30


async def test_no_ticket_of_an_earlier_day_is_called_even_before_the_day_is_closed(
    hall_factory: HallFactory,
) -> None:
    # A hall without [hours]: open all day, its day ends at local midnight.
    kit = await hall_factory()
    yesterday = (await kit.store.issue("social-security")).value.ticket
    kit.clock.now += 86_400  # the next morning, and no replica closed the day
    await kit.store.set_window("2", WindowStatus.OPEN)
    assert (await kit.store.call_next("2")).value is None
    assert await status_of(kit, yesterday.id) is TicketStatus.EXPIRED
    # out of turn neither
    today = (await kit.store.issue("social-security")).value.ticket
    assert today.number == yesterday.number == "A001"
    # the day's keeper finds nothing more to expire; today's A001 is the only active one
    await DayKeeper({kit.config.id: kit.store}).tick()
    assert (await kit.store.call_next("2")).value.ticket.id == today.id  # type: ignore[union-attr]


async def test_a_replica_started_after_closing_expires_yesterdays_leftovers(
    hall_factory: HallFactory,
) -> None:
    kit = await day_hall(hall_factory, "2026-11-23 16:00")
    left = [(await kit.store.issue("social-security")).value.ticket.id for _ in range(3)]
    # every replica was down from 16:00 Monday until Wednesday morning
    set_time(kit, "2026-11-25 08:40")
    fresh = HallStore(kit.redis, Scripts.register(kit.redis), kit.config, clock=kit.clock)
    passed = await DayKeeper({kit.config.id: fresh}).tick()
    assert passed[kit.config.id].expired == 3
    for tid in left:
        assert await status_of(kit, tid) is TicketStatus.EXPIRED
    assert (await fresh.issue("social-security")).value.ticket.number == "A001"


async def test_a_manager_closes_the_hall_and_opens_it_again(hall_factory: HallFactory) -> None:
    kit = await day_hall(hall_factory, "2026-11-23 10:00")
    await DayKeeper({kit.config.id: kit.store}).tick()
    waiting, parked, at_window = await a_busy_morning(kit)
    await kit.store.set_window("1", WindowStatus.OPEN, actor=CLERK)

    closed = await kit.store.close_hall(actor=MANAGER)
    # until the next span starts (13:30 today)
    assert closed.value.closed_until_ms == round(
        datetime(2026, 11, 23, 13, 30, tzinfo=SHANGHAI).timestamp() * 1000
    )
    for tid in [*waiting, parked]:
        assert await status_of(kit, tid) is TicketStatus.EXPIRED
    assert await status_of(kit, at_window) is TicketStatus.COMPLETED
    snap = await kit.store.snapshot()
    assert {w.status for w in snap.windows} == {WindowStatus.CLOSED}
    assert [e["status"] for e in await events(kit, "hall")] == ["closed"]
    error = await refused(kit, "hall_closed", kit.store.issue("social-security"))
    assert error.message == "现在不是取号时间，13:30 开始取号。"
    assert not kit.store.hall_hours(snap.closed_until_ms).open

    await kit.store.open_hall(actor=MANAGER)
    assert [e["status"] for e in await events(kit, "hall")] == ["closed", "open"]
    assert (await kit.store.issue("social-security")).value.ticket.number == "A005"

    # a close runs out at the next span: the keeper lifts it and says so
    await kit.store.close_hall(actor=MANAGER)
    set_time(kit, "2026-11-23 13:30")
    await DayKeeper({kit.config.id: kit.store}).tick()
    assert (await kit.store.day_state()).closed_until_ms is None
    assert [e["status"] for e in await events(kit, "hall")][-1] == "open"
    assert (await kit.store.issue("social-security")).value.ticket.number == "A006"


# --------------------------------------------------------- ticket lifecycle


async def test_a_close_is_announced_even_before_the_calendar_set_a_status(
    hall_factory: HallFactory,
) -> None:
    kit = await day_hall(hall_factory)  # no keeper has run for this hall
    await kit.store.close_hall(actor=MANAGER)
    await kit.store.open_hall(actor=MANAGER)
    assert [e["status"] for e in await events(kit, "hall")] == ["closed", "open"]


async def test_recalls_stop_at_the_halls_limit(hall_factory: HallFactory) -> None:
    kit = await day_hall(hall_factory)
    await kit.store.issue("social-security")
    await kit.store.set_window("2", WindowStatus.OPEN)
    await kit.store.call_next("2")
    for n in (1, 2):
        assert (await kit.store.recall("2")).value.ticket.recalls == n
    error = await refused(kit, "recall_limit", kit.store.recall("2"))
    assert "2" in error.message
    assert (await kit.store.no_show("2")).value.ticket.status is TicketStatus.NO_SHOW


async def test_a_no_show_rejoins_once_within_the_late_return_time(
    hall_factory: HallFactory,
) -> None:
    kit = await day_hall(hall_factory)
    late = (await kit.store.issue("social-security", "elderly")).value.ticket  # A001
    await kit.store.set_window("2", WindowStatus.OPEN)
    await kit.store.call_next("2")
    await kit.store.no_show("2")
    kit.clock.now += 60
    for _ in range(3):
        await kit.store.issue("social-security")  # A002-A004, 09:01
    kit.clock.now += 9 * 60  # 10 minutes after the no-show: still in time
    back = (await kit.store.rejoin(late.id)).value
    assert back.ticket.status is TicketStatus.WAITING and back.ticket.number == "A001"
    # placed as if issued now with its 20 minutes of elderly credit: ahead of
    # all three, who came 9 minutes ago
    assert back.position == 0
    assert back.ticket.rejoined_ms == round(kit.clock.now * 1000)
    assert [e["number"] for e in await events(kit, "rejoined")] == ["A001"]
    # once only
    assert (await kit.store.call_next("2")).value.ticket.id == late.id  # type: ignore[union-attr]
    await kit.store.no_show("2")
    await refused(kit, "late_return_closed", kit.store.rejoin(late.id))


async def test_rejoin_is_refused_late_never_and_for_other_states(
    hall_factory: HallFactory,
) -> None:
    kit = await day_hall(hall_factory)
    t = (await kit.store.issue("social-security")).value.ticket
    await refused(kit, "late_return_closed", kit.store.rejoin(t.id))  # still waiting
    await kit.store.set_window("2", WindowStatus.OPEN)
    await kit.store.call_next("2")
    await kit.store.no_show("2")
    kit.clock.now += 10 * 60 + 1
    await refused(kit, "late_return_closed", kit.store.rejoin(t.id))
    with pytest.raises(NotFound):
        await kit.store.rejoin("A" * 22)
    # a hall without a late return
    plain = await hall_factory(extra="[calling]\nlate_return_minutes = 0")
    p = (await plain.store.issue("social-security")).value.ticket
    await plain.store.set_window("2", WindowStatus.OPEN)
    await plain.store.call_next("2")
    await plain.store.no_show("2")
    await refused(plain, "late_return_closed", plain.store.rejoin(p.id))


async def test_many_rejoins_at_once_put_the_ticket_back_once(
    hall_factory: HallFactory, redis_url: str
) -> None:
    kit = await day_hall(hall_factory)
    t = (await kit.store.issue("social-security")).value.ticket
    await kit.store.set_window("2", WindowStatus.OPEN)
    await kit.store.call_next("2")
    await kit.store.no_show("2")
    clients = [create_redis(redis_url, max_connections=1) for _ in range(12)]
    try:
        stores = [HallStore(c, Scripts.register(c), kit.config, clock=kit.clock) for c in clients]
        results = await asyncio.gather(*(s.rejoin(t.id) for s in stores), return_exceptions=True)
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    ok = [r for r in results if not isinstance(r, BaseException)]
    refusals = [r for r in results if isinstance(r, QmsError)]
    assert len(ok) == 1 and len(refusals) == 11
    assert {r.code for r in refusals} == {"late_return_closed"}
    assert len(await events(kit, "rejoined")) == 1
    assert (await kit.store.snapshot()).waiting_by_group["natural"] == 1


async def test_park_and_resume_at_any_window_of_the_group(hall_factory: HallFactory) -> None:
    kit = await day_hall(hall_factory)
    t = (await kit.store.issue("social-security")).value.ticket
    nxt = (await kit.store.issue("social-security")).value.ticket
    for w in ("1", "2", "3"):
        await kit.store.set_window(w, WindowStatus.OPEN)
    await kit.store.call_next("2")
    kit.clock.now += 120
    parked = (await kit.store.park("2", actor=CLERK)).value.ticket
    assert parked.status is TicketStatus.PARKED and parked.parked_window == "2"
    assert (await kit.store.window_view("2")).state.ticket is None
    assert [p.number for p in await kit.store.parked()] == ["A001"]
    assert (await kit.store.call_next("2")).value.ticket.id == nxt.id  # type: ignore[union-attr]
    # window 3 serves only the legal group
    await refused(kit, "group_not_served", kit.store.resume("3", "A001"))
    await refused(kit, "number_not_parked", kit.store.resume("1", "A002"))
    resumed = (await kit.store.resume("1", "A001", actor=CLERK)).value.ticket
    assert (resumed.status, resumed.window, resumed.id) == (TicketStatus.CALLED, "1", t.id)
    assert await kit.store.parked() == []
    assert [e["number"] for e in await events(kit, "parked")] == ["A001"]
    assert [e["window"] for e in await events(kit, "called")] == ["2", "2", "1"]


async def test_two_windows_resuming_one_parked_ticket_one_wins(
    hall_factory: HallFactory, redis_url: str
) -> None:
    kit = await day_hall(hall_factory)
    await kit.store.issue("social-security")
    await kit.store.set_window("1", WindowStatus.OPEN)
    await kit.store.set_window("2", WindowStatus.OPEN)
    await kit.store.call_next("2")
    await kit.store.park("2")
    clients = [create_redis(redis_url, max_connections=1) for _ in range(10)]
    try:
        stores = [HallStore(c, Scripts.register(c), kit.config, clock=kit.clock) for c in clients]
        tries = [s.resume("1" if i % 2 else "2", "A001") for i, s in enumerate(stores)]
        results = await asyncio.gather(*tries, return_exceptions=True)
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    ok = [r for r in results if not isinstance(r, BaseException)]
    assert len(ok) == 1
    assert {r.code for r in results if isinstance(r, QmsError)} == {"number_not_parked"}
    called_at = [e["window"] for e in await events(kit, "called")][1:]
    assert len(called_at) == 1


# ------------------------------------------------------------------ audit


async def test_every_change_by_staff_has_its_audit_entry(hall_factory: HallFactory) -> None:
    kit = await day_hall(hall_factory)
    await kit.store.issue("social-security")  # a kiosk: not audited
    await kit.store.issue("social-security", actor=Actor("admin-1a2b3c4d", "admin", "10.0.0.1"))
    await kit.store.set_window("2", WindowStatus.OPEN, actor=CLERK)
    await kit.store.set_window("2", WindowStatus.OPEN, actor=CLERK)  # no change, no entry
    await kit.store.call_next("2", actor=CLERK)
    await kit.store.recall("2", actor=CLERK)
    await kit.store.park("2", actor=CLERK)
    await kit.store.resume("2", "A001", actor=CLERK)
    await kit.store.no_show("2", actor=CLERK)
    await kit.store.close_hall(actor=MANAGER)

    entries = await kit.store.audit(None, 100)
    assert [(e.actor, e.action, e.window, e.number) for e in entries] == [
        ("admin-1a2b3c4d", "issue", None, "A002"),
        ("李四", "open_window", "2", None),
        ("李四", "call_next", "2", "A001"),
        ("李四", "recall", "2", "A001"),
        ("李四", "park", "2", "A001"),
        ("李四", "resume", "2", "A001"),
        ("李四", "no_show", "2", "A001"),
        ("王主任", "close_hall", None, None),
    ]
    assert {e.client for e in entries[1:7]} == {"10.0.0.5"}
    assert entries[-1].role == "manager"
    # a cursor pages through them, none skipped, none twice
    paged, cursor = [], None
    while page := await kit.store.audit(cursor, 3):
        paged += page
        cursor = page[-1].id
    assert paged == entries
    # a refused change writes no entry
    await refused(kit, "no_current_ticket", kit.store.recall("2", actor=CLERK))
    assert len(await kit.store.audit(None, 100)) == len(entries)


async def test_audit_ids_keep_rising_when_a_replicas_clock_lags(hall_factory: HallFactory) -> None:
    kit = await day_hall(hall_factory)
    await kit.store.set_window("2", WindowStatus.OPEN, actor=CLERK)
    kit.clock.now -= 5  # another replica, five seconds behind
    await kit.store.set_window("2", WindowStatus.PAUSED, actor=CLERK)
    first, second = await kit.store.audit(None, 10)
    assert second.id > first.id or len(second.id) > len(first.id)
    assert [e.action for e in await kit.store.audit(first.id, 10)] == ["pause_window"]
