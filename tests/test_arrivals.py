"""The arrival index (`HallKeys.arrivals`): it lists exactly the waiting
tickets of every queue, through every way a ticket joins or leaves one, and
is rebuilt from the queues where it is missing (a hall upgraded with people
waiting) so the `ahead_of` of a call is never counted from a wrong index."""

from __future__ import annotations

import pytest

from queue_core.models import Actor, WindowStatus
from tests.conftest import HallKit

pytestmark = pytest.mark.redis

CLERK = Actor("clerk-2", "clerk", "10.0.0.5")


def text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def index_and_queues(kit: HallKit) -> tuple[set[str], set[str]]:
    index = {text(m) for m in await kit.redis.zrange(kit.keys.arrivals, 0, -1)}
    queued = set()
    for group in kit.config.groups:
        for member in await kit.redis.zrange(kit.keys.queue(group.id), 0, -1):
            queued.add(f"{group.id}|{text(member)}")
    return index, queued


async def assert_mirrors(kit: HallKit) -> None:
    index, queued = await index_and_queues(kit)
    assert index == queued


async def test_the_index_follows_every_way_in_and_out_of_a_queue(hall: HallKit) -> None:
    kit = hall
    ids = [(await kit.store.issue("social-security")).value.ticket.id for _ in range(4)]
    await kit.store.issue("business-licence", "elderly")
    await assert_mirrors(kit)
    assert len((await index_and_queues(kit))[0]) == 5

    await kit.store.cancel(ids[3])
    await assert_mirrors(kit)

    for window in ("1", "2", "3"):
        await kit.store.set_window(window, WindowStatus.OPEN, actor=CLERK)
    kit.clock.advance(minutes=1)
    await kit.store.call_next("2", actor=CLERK)  # A001
    await assert_mirrors(kit)
    await kit.store.transfer("2", "business-licence", actor=CLERK)  # A001 to the legal queue
    await assert_mirrors(kit)
    await kit.store.call_number("2", "A003", actor=CLERK)
    await assert_mirrors(kit)
    await kit.store.no_show("2", actor=CLERK)  # A003 leaves
    kit.clock.advance(minutes=1)
    await kit.store.rejoin(ids[2])  # and comes back, at the end
    await assert_mirrors(kit)
    while (await kit.store.call_next("1", actor=CLERK)).value is not None:
        await assert_mirrors(kit)
    assert await kit.redis.zcard(kit.keys.arrivals) == 0


async def test_a_missing_index_is_rebuilt_before_it_is_counted(hall: HallKit) -> None:
    """A hall whose tickets were issued before the index existed (deleted
    here): a call still counts every earlier ticket it goes ahead of."""
    kit = hall
    for _ in range(5):
        await kit.store.issue("social-security")
        kit.clock.advance(seconds=10)
    await kit.redis.delete(kit.keys.arrivals)
    await kit.store.set_window("2", WindowStatus.OPEN, actor=CLERK)

    called = (await kit.store.call_number("2", "A004", actor=CLERK)).value
    assert called.ticket.why is not None
    assert (called.ticket.why.code, called.ticket.why.ahead_of) == ("out_of_turn", 3)
    await assert_mirrors(kit)

    # An index that drifted (a script of an older qms removed a ticket
    # without it) is rebuilt the same way.
    await kit.redis.zadd(kit.keys.arrivals, {"natural|000000000000001:000000000001:gone": 0})
    called = (await kit.store.call_number("2", "A005", actor=CLERK)).value
    assert called.ticket.why is not None and called.ticket.why.ahead_of == 3
    await assert_mirrors(kit)
