"""The hall's day, kept: every replica passes each hall's calendar boundaries.

A boundary (a span's start or end, a local midnight; `queue_core.calendar`)
is passed by one Lua script that records it, so however many replicas run
the keeper, exactly one of them expires a day's leftovers and announces the
hall open or closed; the others find it done. Passing the latest boundary
does what every missed one would have, so a replica that was down at
closing time catches up with its first `tick`, which the app runs before
it serves.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from queue_core import calendar, metrics
from queue_core.errors import QmsError
from queue_core.store import HallStore

log = logging.getLogger("qms.day")

MAX_SLEEP_S = 30.0
"""The longest the keeper sleeps: a clock stepped by NTP, or a boundary a
manager's close moved, is noticed within this."""


@dataclass(frozen=True, slots=True)
class Passed:
    """What one tick did for one hall."""

    at_ms: int
    expired: int


class DayKeeper:
    """Passes the calendar boundaries of every hall, on the stores' clock.

    `rate` is how many clock seconds pass per real second (1 in life; the
    demo's clock runs faster), so the keeper wakes in time for the next
    boundary. By default it sleeps at most `MAX_SLEEP_S / max(rate, 1)`
    real seconds, so a demo's clock that jumps ahead is noticed within
    `MAX_SLEEP_S` of its own time."""

    def __init__(
        self,
        stores: Mapping[str, HallStore],
        *,
        rate: float = 1.0,
        max_sleep_s: float | None = None,
    ) -> None:
        self.stores = stores
        self.rate = rate
        self.max_sleep_s = MAX_SLEEP_S / max(rate, 1.0) if max_sleep_s is None else max_sleep_s
        self._passed: dict[str, int] = {}

    async def tick(self) -> dict[str, Passed]:
        """Pass the latest boundary of each hall that this replica has not
        seen passed; what this replica itself passed, by hall. A hall whose
        Redis fails is logged and retried next tick."""
        done: dict[str, Passed] = {}
        for hall_id, store in self.stores.items():
            config = store.config
            boundary = calendar.latest_boundary(config.hours, config.timezone, store.now_ms())
            if self._passed.get(hall_id, 0) >= boundary.at_ms:
                continue
            try:
                passed, expired = await store.pass_boundary(boundary)
            except QmsError as exc:
                log.warning("qms: hall %s: passing %d failed: %s", hall_id, boundary.at_ms, exc)
                continue
            self._passed[hall_id] = boundary.at_ms
            if passed:
                metrics.DAY_BOUNDARIES.labels(hall_id).inc()
                done[hall_id] = Passed(boundary.at_ms, expired)
                if expired:
                    log.info("qms: hall %s: the day ended, %d tickets expired", hall_id, expired)
        return done

    def seconds_to_next(self) -> float:
        """Real seconds until the earliest next boundary of any hall (capped)."""
        soonest = self.max_sleep_s
        for store in self.stores.values():
            config = store.config
            now = store.now_ms()
            nxt = calendar.next_boundary(config.hours, config.timezone, now).at_ms
            soonest = min(soonest, max(0.0, (nxt - now) / 1000 / self.rate))
        return soonest

    async def run(self) -> None:
        """Tick at every boundary until cancelled (the app's lifetime)."""
        while True:
            await self.tick()
            # A little past the boundary, so the clock has reached it.
            await asyncio.sleep(self.seconds_to_next() + 0.05)
