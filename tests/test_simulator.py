"""The demo's simulated hall drives the real store: tickets flow through windows."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from dispatcher.monitor import HallMonitor
from dispatcher.simulator import HallSimulator, SimulatedClock
from qms.app import cancel_all
from queue_core import calendar
from queue_core.auth import Credentials
from queue_core.config import HallConfig
from queue_core.operations import Hall
from queue_core.presence import PresenceStore
from queue_core.scripts import Scripts
from queue_core.store import HallClosed, HallStore, ticket_from_json
from tests.conftest import HallFactory, HallKit, stream_events
from tests.support import START_S

pytestmark = pytest.mark.redis

WAIT_S = 8.0
"""The longest a test waits for the simulated hall to get somewhere."""


@contextlib.asynccontextmanager
async def simulating(
    kit: HallKit, simulator: HallSimulator, store: HallStore | None = None
) -> AsyncIterator[Hall]:
    """The simulator running on the kit's hall (through `store` when given)
    until the block ends."""
    store = store or kit.store
    presence = PresenceStore(kit.redis, Scripts.register(kit.redis), kit.config.id, ttl_s=45)
    monitor = HallMonitor(store, presence)
    hall = Hall(kit.config, store, Credentials(kit.config.credentials), monitor)
    task = asyncio.create_task(simulator.run({kit.config.id: hall}))
    try:
        yield hall
    finally:
        # One cancel must end it (the demo's --duration relies on that), even
        # one that redis-py swallows as a reply lands.
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=WAIT_S)
        if not done:
            await cancel_all([task])
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # A read of the hall the simulator started may outlive it; it must end
        # before the test's Redis client is closed, or it opens a connection
        # nobody closes (a ResourceWarning at the end of the session).
        await monitor.aclose()
        assert done, "the simulator did not end when cancelled"


async def wait_for(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll `condition` (no fixed sleep) until it holds; fail after WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while not await condition():
        if time.monotonic() > deadline:
            pytest.fail(f"the simulated hall never got there: {what}")
        await asyncio.sleep(0.01)


async def test_simulated_hall_issues_calls_and_finishes_tickets(hall_factory: HallFactory) -> None:
    kit = await hall_factory()
    types: set[str] = set()

    async def flowing() -> bool:
        nonlocal types
        types = {fields["type"] for _, fields in await stream_events(kit.redis, kit.keys)}
        return {"issued", "called", "completed"} <= types

    async with simulating(kit, HallSimulator(speed=3000, seed=7)):
        await wait_for(flowing, "tickets issued, called and completed")
    assert {"window", "issued", "called", "completed"} <= types


class RecordingClock(SimulatedClock):
    """A simulated clock that remembers its jumps: (from, to), epoch seconds."""

    def __init__(self, start: float, speed: float) -> None:
        super().__init__(start, speed)
        self.jumps: list[tuple[float, float]] = []

    def jump_to(self, moment: float) -> bool:
        before = self()
        jumped = super().jump_to(moment)
        if jumped:
            self.jumps.append((before, moment))
        return jumped


# The test day, Saturday 2026-11-21, has two short spans; the kiosk stops
# issuing 5 minutes before each ends. The break between them is long enough
# for the windows to serve the queue left at 09:25.
HOURS = """
[hours]
sat = ["09:00-09:30", "12:00-12:30"]
issue_until_minutes = 5
"""
FIRST_OPENING_S = START_S  # 09:00
SECOND_OPENING_S = START_S + 3 * 3600  # 12:00
SPEED = 3000.0
"""A 25-minute issuing span lasts half a real second."""


def _issuing(config: HallConfig, ms: int) -> bool:
    return calendar.issuing_at(config.hours, config.timezone, ms)


async def test_the_simulated_hall_keeps_its_hours_and_skips_the_empty_closed_time(
    hall_factory: HallFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    kit = await hall_factory(extra=HOURS)
    # Ten minutes before the doors open, on the demo's kind of clock.
    clock = RecordingClock(FIRST_OPENING_S - 600, SPEED)
    store = HallStore(kit.redis, Scripts.register(kit.redis), kit.config, clock=clock)
    # Every ticket the simulator asks for, and whether the calendar allowed it.
    asked: list[tuple[int, bool]] = []
    refused = 0

    def spy(op: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def asking(*args: Any, **kwargs: Any) -> Any:
            nonlocal refused
            asked.append((store.now_ms(), _issuing(kit.config, store.now_ms())))
            try:
                return await op(*args, **kwargs)
            except HallClosed:
                refused += 1
                raise

        return asking

    monkeypatch.setattr(store, "issue", spy(store.issue))
    monkeypatch.setattr(store, "check_in", spy(store.check_in))

    async def issued_after_second_opening() -> bool:
        return any(
            f["type"] == "issued" and int(f["at"]) >= SECOND_OPENING_S * 1000
            for _, f in await stream_events(kit.redis, kit.keys)
        )

    async with simulating(kit, HallSimulator(seed=11, clock=clock), store):
        await wait_for(issued_after_second_opening, "a ticket issued after 12:00")

    # The empty hall skipped to its opening at once; after the first span's
    # queue was served, to the second opening.
    assert [to for _, to in clock.jumps] == [FIRST_OPENING_S, SECOND_OPENING_S], clock.jumps
    gap_from, gap_to = (round(s * 1000) for s in clock.jumps[1])
    assert gap_from >= (FIRST_OPENING_S + 25 * 60) * 1000  # after the kiosk stopped, 09:25
    # Visitors came only while the kiosk issued: no refused tickets to
    # hammer the API with (one at most, when the kiosk stops during an
    # appointment's booking, between its check of the hours and its check-in).
    assert asked and refused <= 1, (len(asked), refused)
    assert sum(1 for _, allowed in asked if not allowed) <= 1, asked
    issued = [
        int(f["at"]) for _, f in await stream_events(kit.redis, kit.keys) if f["type"] == "issued"
    ]
    assert issued and all(_issuing(kit.config, at) for at in issued)
    # Nobody was left in the hall across the jump: every ticket lived
    # either wholly before it or wholly after it.
    raw = await kit.redis.hgetall(kit.keys.tickets)
    tickets = [ticket_from_json(json.loads(doc)) for doc in raw.values()]
    assert any(t.issued_ms < gap_from for t in tickets)
    for t in tickets:
        moments = [t.issued_ms, t.called_ms, t.finished_ms, t.parked_ms, t.rejoined_ms]
        times = [m for m in moments if m is not None]
        assert all(m <= gap_from for m in times) or all(m >= gap_to for m in times), t


async def test_a_restarted_demo_goes_on_from_where_its_hall_was_left(
    hall_factory: HallFactory,
) -> None:
    kit = await hall_factory()
    # The last run left the hall at the kit's time (09:00): a ticket issued then.
    await kit.store.issue("social-security")
    left_ms = kit.store.now_ms()
    # This run's clock starts a day earlier.
    clock = SimulatedClock(START_S - 86_400, 60.0)
    store = HallStore(kit.redis, Scripts.register(kit.redis), kit.config, clock=clock)

    async def caught_up() -> bool:
        return clock.skipped_s > 0

    async with simulating(kit, HallSimulator(seed=3, clock=clock), store):
        await wait_for(caught_up, "the clock moved on to where the hall was left")
    # A hall open all day goes on from the moment it was left, never before it.
    assert left_ms / 1000 <= clock() < left_ms / 1000 + WAIT_S * 60
