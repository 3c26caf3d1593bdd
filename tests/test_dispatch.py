"""The dispatch rule and the ticket lifecycle, against a real redis-server."""

from __future__ import annotations

import json

import pytest

from queue_core.errors import Conflict, Invalid, NotFound
from queue_core.models import TicketStatus, WindowStatus
from tests.conftest import HallFactory, HallKit, stream_events

pytestmark = pytest.mark.redis


async def numbers_called(kit: HallKit, window: str, n: int) -> list[str]:
    called = []
    for _ in range(n):
        result = await kit.store.call_next(window)
        assert result.value is not None
        called.append(result.value.ticket.number)
    return called


async def test_numbers_count_per_prefix_and_normal_tickets_go_in_arrival_order(
    hall: HallKit,
) -> None:
    issued = []
    for service in ["social-security", "housing-fund", "business-licence", "social-security"]:
        issued.append((await hall.store.issue(service)).value.ticket.number)
        hall.clock.advance(seconds=10)
    # social-security and housing-fund share prefix A and so one counter
    assert issued == ["A001", "A002", "C001", "A003"]
    await hall.store.set_window("2", WindowStatus.OPEN)  # natural only
    assert await numbers_called(hall, "2", 3) == ["A001", "A002", "A003"]
    assert (await hall.store.call_next("2")).value is None


async def test_elderly_credit_overtakes_only_those_who_came_less_than_20_minutes_before(
    hall: HallKit,
) -> None:
    await hall.store.issue("social-security")  # A001 at 0'
    hall.clock.advance(minutes=15)
    await hall.store.issue("social-security")  # A002 at 15'
    hall.clock.advance(minutes=10)
    await hall.store.issue("social-security")  # A003 at 25'
    hall.clock.advance(minutes=5)
    elderly = await hall.store.issue("social-security", "elderly")  # A004 at 30', e = 10'
    # ahead of A002 (15') and A003 (25'), behind A001 (0'): position 1
    assert elderly.value.position == 1
    await hall.store.set_window("2", WindowStatus.OPEN)
    assert await numbers_called(hall, "2", 4) == ["A001", "A004", "A002", "A003"]


async def test_disabled_credit_and_ties_go_to_the_earlier_issue(hall: HallKit) -> None:
    await hall.store.issue("social-security")  # A001 at 0'
    hall.clock.advance(minutes=20)
    # e = 20' - 20' = 0': the same effective time as A001, issued later
    tie = await hall.store.issue("social-security", "disabled")
    assert tie.value.ticket.effective_ms == hall.store_time_ms(minutes=0)
    assert tie.value.position == 1
    await hall.store.set_window("2", WindowStatus.OPEN)
    assert await numbers_called(hall, "2", 2) == ["A001", "A002"]


async def test_strict_priority_class_goes_first_in_arrival_order(
    hall_factory: HallFactory,
) -> None:
    kit = await hall_factory(extra_priority="veteran = inf")
    await kit.store.issue("social-security")  # A001
    kit.clock.advance(minutes=300)
    await kit.store.issue("social-security", "veteran")  # A002
    kit.clock.advance(minutes=1)
    await kit.store.issue("social-security", "elderly")  # A003
    kit.clock.advance(minutes=1)
    await kit.store.issue("social-security", "veteran")  # A004
    await kit.store.set_window("2", WindowStatus.OPEN)
    assert await numbers_called(kit, "2", 4) == ["A002", "A004", "A001", "A003"]


async def test_window_serving_two_groups_takes_the_smallest_effective_time_across_them(
    hall: HallKit,
) -> None:
    await hall.store.issue("business-licence")  # C001 at 0' (legal)
    hall.clock.advance(minutes=5)
    await hall.store.issue("social-security")  # A001 at 5' (natural)
    hall.clock.advance(minutes=5)
    await hall.store.issue("business-licence")  # C002 at 10'
    hall.clock.advance(minutes=5)
    await hall.store.issue("social-security", "elderly")  # A002 at 15', e = -5'
    hall.clock.advance(minutes=1)
    await hall.store.issue("household")  # D001: police, not served by window 1
    await hall.store.set_window("1", WindowStatus.OPEN)  # natural + legal
    assert await numbers_called(hall, "1", 4) == ["A002", "C001", "A001", "C002"]
    assert (await hall.store.call_next("1")).value is None
    snap = await hall.store.snapshot()
    assert snap.waiting_by_group == {"natural": 0, "legal": 0, "police": 1}


async def test_appointment_on_time_gets_its_credit_and_late_one_is_normal(hall: HallKit) -> None:
    slot = hall.store_time_ms(minutes=40)
    on_time = (await hall.store.book_appointment("social-security", slot)).value
    late = (await hall.store.book_appointment("social-security", slot)).value
    await hall.store.issue("social-security")  # A001 at 0'
    hall.clock.advance(minutes=20)
    await hall.store.issue("social-security")  # A002 at 20'
    hall.clock.advance(minutes=15)  # 35': 5 minutes early, inside early_minutes
    checked = (await hall.store.check_in(on_time.code)).value
    # e = min(35', 40') - 30' = 5': after A001 (0'), before A002 (20')
    assert checked.ticket.priority == "appointment"
    assert checked.ticket.number == "A003"
    assert checked.position == 1
    hall.clock.advance(minutes=20)  # 55': 15 minutes late, past grace_minutes (10)
    late_ticket = (await hall.store.check_in(late.code)).value
    assert late_ticket.ticket.priority == "normal"
    assert late_ticket.position == 3
    with pytest.raises(Conflict) as again:
        await hall.store.check_in(on_time.code)
    assert again.value.code == "already_checked_in"
    with pytest.raises(NotFound):
        await hall.store.check_in("ZZZZ2222")
    await hall.store.set_window("2", WindowStatus.OPEN)
    assert await numbers_called(hall, "2", 4) == ["A001", "A003", "A002", "A004"]


async def test_transfer_keeps_effective_time_and_number(hall: HallKit) -> None:
    await hall.store.issue("social-security")  # A001 at 0'
    hall.clock.advance(minutes=5)
    for _ in range(3):
        await hall.store.issue("business-licence")  # C001..C003 at 5'
    await hall.store.set_window("2", WindowStatus.OPEN)
    await hall.store.set_window("3", WindowStatus.OPEN)
    called = (await hall.store.call_next("2")).value
    assert called is not None and called.ticket.number == "A001"
    hall.clock.advance(minutes=10)
    moved = (await hall.store.transfer("2", "business-licence")).value
    assert moved.ticket.number == "A001"
    assert moved.ticket.status is TicketStatus.WAITING
    assert moved.ticket.group == "legal"
    assert moved.ticket.window is None
    assert moved.position == 0  # issued at 0', ahead of C001..C003 issued at 5'
    assert await numbers_called(hall, "3", 2) == ["A001", "C001"]
    window_2 = (await hall.store.snapshot()).windows[1]
    assert window_2.ticket is None


async def test_no_show_and_complete_end_the_ticket_and_free_the_window(hall: HallKit) -> None:
    a = (await hall.store.issue("social-security")).value.ticket
    b = (await hall.store.issue("social-security")).value.ticket
    await hall.store.set_window("2", WindowStatus.OPEN)
    await hall.store.call_next("2")
    gone = (await hall.store.no_show("2")).value.ticket
    assert gone.id == a.id and gone.status is TicketStatus.NO_SHOW
    with pytest.raises(Conflict):
        await hall.store.complete("2")  # nothing at the window now
    await hall.store.call_next("2")
    done = (await hall.store.complete("2")).value.ticket
    assert done.id == b.id and done.status is TicketStatus.COMPLETED


async def test_call_next_completes_the_current_ticket_first(hall: HallKit) -> None:
    a = (await hall.store.issue("social-security")).value.ticket
    await hall.store.issue("social-security")
    await hall.store.set_window("2", WindowStatus.OPEN)
    await hall.store.call_next("2")
    result = await hall.store.call_next("2")
    assert [o.type.value for o in result.outcomes] == ["completed", "called"]
    assert (await hall.store.ticket(a.id)).ticket.status is TicketStatus.COMPLETED


async def test_cancel_only_while_waiting(hall: HallKit) -> None:
    a = (await hall.store.issue("social-security")).value.ticket
    b = (await hall.store.issue("social-security")).value.ticket
    cancelled = (await hall.store.cancel(a.id)).value
    assert cancelled.ticket.status is TicketStatus.CANCELLED
    assert (await hall.store.ticket(b.id)).position == 0
    with pytest.raises(Conflict):
        await hall.store.cancel(a.id)
    await hall.store.set_window("2", WindowStatus.OPEN)
    await hall.store.call_next("2")
    with pytest.raises(Conflict) as called:
        await hall.store.cancel(b.id)
    assert called.value.code == "ticket_not_waiting"
    with pytest.raises(NotFound):
        await hall.store.cancel("A" * 22)


async def test_out_of_turn_call(hall: HallKit) -> None:
    await hall.store.issue("social-security")  # A001
    await hall.store.issue("social-security")  # A002
    await hall.store.issue("business-licence")  # C001
    await hall.store.set_window("2", WindowStatus.OPEN)  # natural only
    taken = (await hall.store.call_number("2", "A002")).value
    assert taken.ticket.number == "A002" and taken.ticket.window == "2"
    with pytest.raises(Conflict) as other_group:
        await hall.store.call_number("2", "C001")
    assert other_group.value.code == "group_not_served"
    with pytest.raises(NotFound):
        await hall.store.call_number("2", "A002")  # no longer waiting
    with pytest.raises(NotFound):
        await hall.store.call_number("2", "A999")
    # A002 was completed by the next call; A001 is still first in line
    assert await numbers_called(hall, "2", 1) == ["A001"]


async def test_window_states(hall: HallKit) -> None:
    await hall.store.issue("social-security")
    with pytest.raises(Conflict) as closed:
        await hall.store.call_next("2")
    assert closed.value.code == "window_not_open"
    await hall.store.set_window("2", WindowStatus.OPEN)
    await hall.store.call_next("2")
    paused = (await hall.store.set_window("2", WindowStatus.PAUSED)).value
    assert paused.status is WindowStatus.PAUSED and paused.ticket is not None
    with pytest.raises(Conflict):
        await hall.store.call_next("2")
    recalled = (await hall.store.recall("2")).value  # the person at a paused window is served
    assert recalled.ticket.status is TicketStatus.CALLED
    closed_window = (await hall.store.set_window("2", WindowStatus.CLOSED)).value
    assert closed_window.ticket is None
    assert (await hall.store.ticket(recalled.ticket.id)).ticket.status is TicketStatus.COMPLETED
    seq = (await hall.store.snapshot()).seq
    await hall.store.set_window("2", WindowStatus.CLOSED)  # no change, no event
    assert (await hall.store.snapshot()).seq == seq


async def test_unknown_service_priority_and_kiosk_appointment_class(hall: HallKit) -> None:
    with pytest.raises(NotFound):
        await hall.store.issue("no-such-service")
    with pytest.raises(Invalid):
        await hall.store.issue("social-security", "vip")
    with pytest.raises(Invalid):
        await hall.store.issue("social-security", "appointment")
    with pytest.raises(NotFound):
        await hall.store.call_next("42")
    assert (await hall.store.snapshot()).seq == 0


async def test_numbering_restarts_at_local_midnight(hall: HallKit) -> None:
    hall.clock.advance(minutes=14 * 60 + 59)  # 23:59 in Shanghai
    assert (await hall.store.issue("social-security")).value.ticket.number == "A001"
    assert (await hall.store.issue("social-security")).value.ticket.number == "A002"
    hall.clock.advance(minutes=2)  # 00:01 the next day
    assert (await hall.store.issue("social-security")).value.ticket.number == "A001"


async def test_events_carry_seq_and_waiting_for_every_group(hall: HallKit) -> None:
    await hall.store.issue("social-security")
    await hall.store.set_window("2", WindowStatus.OPEN)
    await hall.store.call_next("2")
    events = await stream_events(hall.redis, hall.keys)
    assert [eid for eid, _ in events] == ["1-0", "2-0", "3-0"]
    types = [fields["type"] for _, fields in events]
    assert types == ["issued", "window", "called"]
    called = events[2][1]
    assert called["number"] == "A001" and called["window"] == "2"
    assert json.loads(called["waiting"]) == {"natural": 0, "legal": 0, "police": 0}
    assert events[1][1]["status"] == "open"
