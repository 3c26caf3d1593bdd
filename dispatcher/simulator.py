"""A simulated hall: visitors arrive, clerks call, serve and finish.

It drives the real store, so the demo hall's screens, metrics and API show
a living hall. Time runs `speed` times faster than life: an 8-minute
service lasts 8/speed minutes. Arrivals are Poisson at about 90% of what
the open windows give each group, so queues form and drain as in a real
hall.

The demo runs the whole app on a `SimulatedClock`, so tickets, waits, the
estimates and their measured accuracy, and the hall's calendar all live on
the same (fast) time. Visitors come only while the kiosk issues; when it
stops (lunch, evening) the clerks serve whoever still waits, and once the
hall is empty the simulator moves the clock on to the next opening.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from queue_core import calendar
from queue_core.config import HallConfig, Window
from queue_core.errors import QmsError
from queue_core.event_log import EventLog
from queue_core.models import NOBODY, Actor, Role, Snapshot, WindowStatus
from queue_core.operations import Hall
from queue_core.store import HallClosed

log = logging.getLogger("qms.simulator")

T = TypeVar("T")

ELDERLY_SHARE = 0.08
DISABLED_SHARE = 0.02
APPOINTMENT_SHARE = 0.06
NO_SHOW_SHARE = 0.04
TRANSFER_SHARE = 0.03
PARK_SHARE = 0.03
"""Visits where the visitor goes to fetch a paper: the clerk parks the
ticket and resumes it when they are back."""
PARKED_MINUTES = (3.0, 15.0)
"""How long a parked visitor is away (uniform, simulated minutes)."""
REJOIN_SHARE = 0.3
"""No-shows who come back within the hall's late-return time and rejoin."""
OPEN_SHARE = 0.85
UTILISATION = 0.9
IDLE_MINUTES = (0.1, 0.4)
"""How long a clerk with nobody to call waits before trying again (a
clerk's console shows a new ticket at once: seconds, not minutes)."""
MIN_PAUSE_S = 0.01
"""The shortest real pause of a clerk or a visitor: a very fast demo must
not spin on Redis."""
CLOSED_POLL_S = 0.5
"""Real seconds between two looks at a hall that does not issue."""


class SimulatedClock:
    """Epoch seconds running `speed` times faster than real time from `start`.

    The demo's whole app lives on it (store, estimates, day keeper,
    simulator). `jump_to` moves it forward to a later moment, the quiet
    hours of a closed hall skipped; it never goes back. `real` is the real
    clock it follows (monotonic: a stepped system clock does not move it)."""

    def __init__(
        self, start: float, speed: float, real: Callable[[], float] = time.monotonic
    ) -> None:
        if not speed > 0:
            raise ValueError(f"a clock's speed must be positive, not {speed!r}")
        self.start = start
        self.speed = speed
        self.real = real
        self.skipped_s = 0.0
        """Simulated seconds skipped by jumps so far."""
        # Where the clock stood at a real moment; one tuple, replaced whole.
        self._origin = (start, real())

    def __call__(self) -> float:
        at, real_at = self._origin
        return at + (self.real() - real_at) * self.speed

    def jump_to(self, moment: float) -> bool:
        """Move on to `moment` (epoch seconds); False, and no change, when
        the clock is already there or past it."""
        now = self()
        if moment <= now:
            return False
        self._origin = (moment, self.real())
        self.skipped_s += moment - now
        return True


def arrival_mix(config: HallConfig, opened: list[Window]) -> tuple[list[str], list[float]]:
    """The services visitors come for, each with its arrivals per minute:
    every group gets `UTILISATION` of what the open windows give it (a
    window serving two groups gives each half), shared equally among the
    group's services. A group that no open window serves gets nobody."""
    capacity: dict[str, float] = {}
    for w in opened:
        for gid in w.groups:
            capacity[gid] = capacity.get(gid, 0.0) + 1 / len(w.groups)
    services, weights = [], []
    for group in config.groups:
        of_group = [s for s in config.services if s.group == group.id]
        if not of_group or group.id not in capacity:
            continue
        minutes = sum(s.expected_minutes for s in of_group) / len(of_group)
        for s in of_group:
            services.append(s.id)
            weights.append(UTILISATION * capacity[group.id] / minutes / len(of_group))
    return services, weights


def demo_start(config: HallConfig, now_s: float) -> float:
    """Where the demo's clock starts: now if the hall issues now, else at
    its next opening (now when it has none within the calendar's horizon)."""
    now_ms = round(now_s * 1000)
    if calendar.issuing_at(config.hours, config.timezone, now_ms):
        return now_s
    opens = calendar.next_issuing(config.hours, config.timezone, now_ms)
    return now_s if opens is None else opens / 1000


@dataclass
class HallSimulator:
    """Visitors and clerks for every hall given to `run`, `speed` times
    faster than life (the clock's speed, when one is given)."""

    speed: float = 30.0
    seed: int | None = None
    clock: SimulatedClock | None = None
    """The halls' clock, when simulated: its speed is the simulator's, and a
    hall left empty while it does not issue moves it to its next opening
    (with several halls, once all of them are)."""
    rng: random.Random = field(init=False)
    _quiet: dict[str, int] = field(init=False, default_factory=dict)
    """Halls empty and not issuing, with their next opening (epoch ms)."""
    _halls: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        if self.clock is not None:
            self.speed = self.clock.speed

    async def run(self, halls: Mapping[str, Hall]) -> None:
        """Simulate every hall until cancelled."""
        self._halls = len(halls)
        await asyncio.gather(*(self._hall(h) for h in halls.values()))

    async def _hall(self, hall: Hall) -> None:
        store, config = hall.store, hall.config
        await self._catch_up(hall)
        # The first windows open, the last stay closed: a hall as staffed on a
        # normal day, and the same windows every run, so examples can name one.
        opened = list(config.windows[: max(1, math.ceil(OPEN_SHARE * len(config.windows)))])
        # A restarted demo finds the windows as it left them: set every one.
        for w in config.windows:
            status = WindowStatus.OPEN if w in opened else WindowStatus.CLOSED
            await self._safely(store.set_window(w.id, status))
        _stop_if_cancelled()
        # Visitors who come back later (rejoins) are tasks of their own.
        async with asyncio.TaskGroup() as visits:
            visits.create_task(self._visitors(hall, opened))
            for w in opened:
                visits.create_task(self._clerk(hall, w, visits))

    async def _catch_up(self, hall: Hall) -> None:
        """A restarted demo finds its hall where the last run's clock left
        it, maybe hours ahead of this run's start: the clock goes on from
        there (the hall's next opening), never back into its past."""
        if self.clock is None:
            return
        store = hall.store
        log_ = EventLog(store.redis, store.redis, hall.config.id)
        try:
            _, last = await log_.latest(1)
            day = await store.day_state()
        except (QmsError, ValueError):  # Redis down, or an event it cannot read
            return
        reached = max([day.done_ms, day.expired_through_ms, *(e.at_ms for e in last)])
        if reached <= store.now_ms():
            return
        config = hall.config
        opens = calendar.next_issuing(config.hours, config.timezone, reached) or reached
        if self.clock.jump_to(opens / 1000):
            log.info(
                "qms demo: hall %s was left at %s by an earlier run: the clock goes on from %s",
                config.id, _local(reached, config), _local(opens, config),
            )  # fmt: skip

    # ------------------------------------------------------------- visitors

    async def _visitors(self, hall: Hall, opened: list[Window]) -> None:
        store, config = hall.store, hall.config
        services, weights = arrival_mix(config, opened)
        if not services:
            return  # no open window serves anything: nobody comes
        per_minute = sum(weights)
        kiosk = sorted(config.kiosk_classes() - {"normal"})
        while True:
            if not store.hall_hours().open:
                await self._until_issuing(hall)
                continue
            await self._pause(self.rng.expovariate(per_minute) * 60)
            if not store.hall_hours().open:
                continue  # the kiosk stopped issuing meanwhile: nobody more comes
            try:
                await self._arrive(hall, self.rng.choices(services, weights)[0], kiosk)
            except HallClosed:
                # A manager closed the hall: wait for it to open again.
                await self._until_issuing(hall)
            except QmsError as exc:
                await self._failed(exc)

    async def _arrive(self, hall: Hall, service: str, kiosk: list[str]) -> None:
        """One visitor takes a ticket (or checks in an appointment)."""
        store, config = hall.store, hall.config
        roll = self.rng.random()
        if roll < APPOINTMENT_SHARE and "appointment" in config.priority:
            booked = await store.book_appointment(service, store.now_ms())
            issued = await store.check_in(booked.value.code)
        else:
            priority = "normal"
            if kiosk and roll < APPOINTMENT_SHARE + ELDERLY_SHARE + DISABLED_SHARE:
                priority = self.rng.choice(kiosk)
            issued = await store.issue(service, priority)
        # As a kiosk's ticket: its estimate kept, to be measured at its call.
        await hall.monitor.issued(issued)

    async def _until_issuing(self, hall: Hall) -> None:
        """Wait until the hall issues again. While it does not, the clerks
        serve whoever still waits; once nobody waits, is at a window or is
        parked, the clock moves on to the next opening."""
        store, hall_id = hall.store, hall.config.id
        try:
            while True:
                snapshot = await self._safely(store.snapshot())
                if snapshot is None:
                    await _sleep(CLOSED_POLL_S)
                    continue
                hours = store.hall_hours(snapshot.closed_until_ms)
                if hours.open:
                    return
                opens = hours.opens_at_ms
                if self.clock is not None and opens is not None and _empty(snapshot):
                    self._quiet[hall_id] = opens
                    self._jump_if_all_quiet(hall)
                else:
                    self._quiet.pop(hall_id, None)
                wait = CLOSED_POLL_S
                if opens is not None:
                    wait = min(wait, max(0.0, (opens - store.now_ms()) / 1000 / self.speed))
                await _sleep(wait)
        finally:
            self._quiet.pop(hall_id, None)

    def _jump_if_all_quiet(self, hall: Hall) -> None:
        if self.clock is None or len(self._quiet) < self._halls:
            return
        opens = min(self._quiet.values())
        if self.clock.jump_to(opens / 1000):
            log.info(
                "qms demo: hall %s is empty until it opens at %s: the clock jumps there",
                hall.config.id, _local(opens, hall.config),
            )  # fmt: skip

    async def _return_later(self, hall: Hall, ticket_id: str, minutes: float) -> None:
        """A visitor who missed the call comes back and rejoins the queue."""
        await self._pause(minutes * 60)
        await self._safely(hall.store.rejoin(ticket_id))

    # --------------------------------------------------------------- clerks

    async def _clerk(self, hall: Hall, window: Window, visits: asyncio.TaskGroup) -> None:
        store, config = hall.store, hall.config
        # The window's own clerk, as the reports per clerk and the audit expect.
        clerk = next(
            (c for c in config.credentials if c.role is Role.CLERK and window.id in c.windows),
            None,
        )
        actor = NOBODY
        if clerk is not None:
            actor = Actor(hall.credentials.label(clerk), Role.CLERK.value, "simulator")
        late_minutes = config.calling.late_return_minutes
        # Visitors parked here: (back at, parked at, number), times in ms.
        parked: list[tuple[int, int, str]] = []
        while True:
            now = store.now_ms()
            back = next((p for p in parked if p[0] <= now), None)
            if back is not None:
                parked.remove(back)
                # Parked before the last day's end: expired (and its number
                # may be someone else's today).
                if back[1] < calendar.latest_day_end(config.hours, config.timezone, now):
                    continue
                resumed = await self._safely(store.resume(window.id, back[2], actor=actor))
                if resumed is not None:
                    service = config.service_by_id[resumed.value.ticket.service]
                    await self._pause(self.rng.expovariate(2 / service.expected_minutes) * 60)
                continue
            called = await self._safely(store.call_next(window.id, actor=actor))
            if called is None or called.value is None:
                await self._pause(self.rng.uniform(*IDLE_MINUTES) * 60)
                continue
            ticket = called.value.ticket
            service = config.service_by_id[ticket.service]
            minutes = self.rng.expovariate(1 / service.expected_minutes)
            roll = self.rng.random()
            if roll < NO_SHOW_SHARE:
                await self._pause(min(minutes, 1.0) * 60)
                await self._safely(store.recall(window.id, actor=actor))
                await self._pause(0.5 * 60)
                gone = await self._safely(store.no_show(window.id, actor=actor))
                if gone is not None and late_minutes > 0 and self.rng.random() < REJOIN_SHARE:
                    later = self.rng.uniform(0.2, 0.9) * late_minutes
                    visits.create_task(self._return_later(hall, ticket.id, later))
            elif roll < NO_SHOW_SHARE + TRANSFER_SHARE:
                await self._pause(minutes / 3 * 60)
                other = self.rng.choice(config.services).id
                await self._safely(store.transfer(window.id, other, actor=actor))
            elif roll < NO_SHOW_SHARE + TRANSFER_SHARE + PARK_SHARE:
                await self._pause(minutes / 4 * 60)
                if await self._safely(store.park(window.id, actor=actor)) is not None:
                    at = store.now_ms()
                    away_ms = round(self.rng.uniform(*PARKED_MINUTES) * 60_000)
                    parked.append((at + away_ms, at, ticket.number))
            else:
                await self._pause(minutes * 60)
                # The next call-next completes this ticket, as a clerk's one button does.

    # ------------------------------------------------------------- plumbing

    async def _pause(self, seconds: float) -> None:
        """Let `seconds` of simulated time pass."""
        await _sleep(max(seconds / self.speed, MIN_PAUSE_S))

    async def _safely(self, op: Awaitable[T]) -> T | None:
        try:
            return await op
        except QmsError as exc:
            await self._failed(exc)
            return None

    async def _failed(self, exc: QmsError) -> None:
        log.debug("simulator: %s", exc.message)
        if exc.code == "redis_unavailable":
            await _sleep(1.0)


def _stop_if_cancelled() -> None:
    """Raise the cancellation of this task that redis-py swallowed: on
    Python 3.11 its `wait_for` returns a reply that lands as the task is
    cancelled, and the cancel is lost. The simulator must end when told
    (the demo's `--duration` waits for it)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def _sleep(seconds: float) -> None:
    """`asyncio.sleep`, ending the task if it was cancelled meanwhile. Every
    loop of the simulator sleeps here."""
    _stop_if_cancelled()
    await asyncio.sleep(seconds)


def _empty(snapshot: Snapshot) -> bool:
    """Nobody waits, is at a window or is parked."""
    return (
        not any(snapshot.waiting_by_group.values())
        and all(w.ticket is None for w in snapshot.windows)
        and snapshot.parked == 0
    )


def _local(ms: int, config: HallConfig) -> str:
    return datetime.fromtimestamp(ms / 1000, config.timezone).strftime("%a %Y-%m-%d %H:%M")
