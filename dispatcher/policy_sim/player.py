"""Plays a day through the hall's own scripts: `HallStore` on a scratch
Redis, its clock a `SimulatedClock` that jumps from event to event.

Visitors take tickets (or check in their appointments) when they come; a
window calls next (`call_next.lua`, the rule that serves the hall) as soon
as it is free, and an idle window is woken by the next ticket of a group it
serves (the one idle longest); a visit ends after its length, a no-show
after `NO_SHOW_MINUTES`. Windows call only during the day's serving spans
and finish their visit when a span ends. Who is called, when and where is
what the scripts answered: nothing here decides it.

Each event costs one or two script calls, so a 3,000-visitor day takes a
few seconds.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from dispatcher.policy_sim.day import NO_SHOW_MINUTES, Arrival, Day
from dispatcher.policy_sim.rules import config_for_rule
from dispatcher.policy_sim.stats import PlayedDay, RuleOutcome, Visit, outcome
from dispatcher.simulator import SimulatedClock
from queue_core.calendar import MINUTE_MS
from queue_core.config import HallConfig
from queue_core.models import APPOINTMENT, TicketView, WindowStatus
from queue_core.redis_client import RedisClient
from queue_core.scripts import Scripts
from queue_core.store import HallClosed, HallStore


class HallInUse(RuntimeError):
    """The hall already has state in this Redis: a simulation plays only on a fresh one."""


async def play_day(redis: RedisClient, scripts: Scripts, config: HallConfig, day: Day) -> PlayedDay:
    """Play `day` in hall `config` (its windows all open) on `redis`, then
    delete the hall's keys. `HallInUse` when the hall already has state there."""
    store_probe = HallStore(redis, scripts, config)
    if await redis.exists(store_probe.keys.seq):
        raise HallInUse(f"hall {config.id} already has state in this Redis")
    start = min(day.serving[0][0], day.arrivals[0].at_ms if day.arrivals else day.serving[0][0])
    clock = SimulatedClock(start / 1000, 1.0, real=_still)
    store = HallStore(redis, scripts, config, clock=clock)
    try:
        return await _Player(store, config, day, clock).run()
    finally:
        doomed = [k async for k in redis.scan_iter(match=store.keys.match_all(), count=1000)]
        for i in range(0, len(doomed), 500):
            await redis.delete(*doomed[i : i + 500])


def _still() -> float:
    """The real clock a `SimulatedClock` follows here: it stands still, so
    the simulated clock moves only when the player jumps it."""
    return 0.0


_FREE, _SPAN, _ARRIVE = 0, 1, 2
"""Event kinds, in the order they happen at the same millisecond: windows
free up, a span opens, then visitors come."""


@dataclass
class _Open:
    priority: str
    group: str
    issued_ms: int
    arrival: Arrival
    called_ms: int | None = None
    call: int | None = None
    window: str | None = None


@dataclass
class _Player:
    store: HallStore
    config: HallConfig
    day: Day
    clock: SimulatedClock
    events: list[tuple[int, int, int, object]] = field(default_factory=list)
    order: Iterator[int] = field(default_factory=itertools.count)
    tickets: dict[str, _Open] = field(default_factory=dict)
    serving: dict[str, str] = field(default_factory=dict)
    """Window → the ticket it is serving."""
    idle: list[str] = field(default_factory=list)
    """Windows with nobody to call, idle longest first."""
    busy: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    calls: int = 0
    turned_away: int = 0
    last_done: int = 0
    now: int = 0

    async def run(self) -> PlayedDay:
        self._move(round(self.clock() * 1000))
        for w in self.config.windows:
            await self.store.set_window(w.id, WindowStatus.OPEN)
            self.busy[w.id] = []
        for span_start, _ in self.day.serving:
            self._at(span_start, _SPAN, None)
        for arrival in self.day.arrivals:
            self._at(arrival.at_ms, _ARRIVE, arrival)
        end = self.day.serving[-1][1]
        while self.events:
            at, kind, _, item = heapq.heappop(self.events)
            self._move(at)
            if kind == _FREE:
                assert isinstance(item, str)
                await self._free(item)
            elif at >= end:
                self.turned_away += kind == _ARRIVE
            elif kind == _SPAN:
                await self._open_span()
            else:
                assert isinstance(item, Arrival)
                await self._arrive(item)
        return self._played(end)

    def _played(self, end: int) -> PlayedDay:
        open_spans = list(self.day.serving)
        if self.day.all_day:
            # Open all day: the windows count as open until the work is done.
            a, b = open_spans[-1]
            issuing_end = self.day.issuing[-1][1]
            open_spans[-1] = (a, max(a, min(b, max(issuing_end, self.last_done))))
        visits = tuple(
            Visit(
                t.priority, t.group, t.issued_ms, t.called_ms, t.call, t.window, t.arrival.no_show
            )
            for t in self.tickets.values()
        )
        return PlayedDay(
            visits=visits,
            windows=self.config.windows,
            busy={w: tuple(spans) for w, spans in self.busy.items()},
            open=tuple(open_spans),
            end_ms=end,
            turned_away=self.turned_away,
        )

    # ------------------------------------------------------------ events

    async def _arrive(self, a: Arrival) -> None:
        store = self.store
        try:
            if a.priority == APPOINTMENT and a.slot_ms is not None:
                booked = await store.book_appointment(a.service, a.slot_ms)
                view = (await store.check_in(booked.value.code)).value
            else:
                view = (await store.issue(a.service, a.priority)).value
        except HallClosed:
            self.turned_away += 1
            return
        t = view.ticket
        self.tickets[t.id] = _Open(t.priority, t.group, t.issued_ms, a)
        if not self._serving_now():
            return
        for w in self.idle:
            if t.group in self.config.window_by_id[w].groups:
                self.idle.remove(w)
                await self._call(w)
                return

    async def _open_span(self) -> None:
        self.idle = []
        for w in self.config.windows:
            if w.id not in self.serving:
                await self._call(w.id)

    async def _free(self, window: str) -> None:
        ticket = self.tickets[self.serving.pop(window)]
        self.last_done = max(self.last_done, self.now)
        if ticket.arrival.no_show:
            await self.store.no_show(window)
        if self._serving_now():
            await self._call(window)  # completes the visit first, as a clerk's one button does
        elif not ticket.arrival.no_show:
            await self.store.complete(window)

    async def _call(self, window: str) -> None:
        called: TicketView | None = (await self.store.call_next(window)).value
        if called is None:
            self.idle.append(window)
            return
        t = self.tickets[called.ticket.id]
        t.called_ms, t.call, t.window = called.ticket.called_ms, self.calls, window
        self.calls += 1
        minutes = NO_SHOW_MINUTES if t.arrival.no_show else t.arrival.minutes
        done = self.now + round(minutes * MINUTE_MS)
        self.serving[window] = called.ticket.id
        self.busy[window].append((self.now, done))
        self._at(done, _FREE, window)

    # ------------------------------------------------------------ plumbing

    def _at(self, at_ms: int, kind: int, item: object) -> None:
        # The counter keeps events of one moment and kind in the order they were made.
        heapq.heappush(self.events, (at_ms, kind, next(self.order), item))

    def _move(self, at_ms: int) -> None:
        self.now = at_ms
        # Half a millisecond on: the store floors the clock to whole ms.
        self.clock.jump_to((at_ms + 0.5) / 1000)

    def _serving_now(self) -> bool:
        return any(a <= self.now < b for a, b in self.day.serving)


async def play_rules(
    redis: RedisClient, config: HallConfig, day: Day, rules: Sequence[str]
) -> tuple[dict[str, RuleOutcome], dict[str, float]]:
    """Play `day` once per rule (`config_for_rule`) on `redis`: what each
    rule gave, and how long each took to play (wall-clock seconds)."""
    scripts = Scripts.register(redis)
    outcomes: dict[str, RuleOutcome] = {}
    seconds: dict[str, float] = {}
    for rule in rules:
        started = time.perf_counter()
        played = await play_day(redis, scripts, config_for_rule(config, rule), day)
        outcomes[rule] = outcome(played)
        seconds[rule] = time.perf_counter() - started
    return outcomes, seconds
