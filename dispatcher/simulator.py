"""A simulated hall: visitors arrive, clerks call, serve and finish.

It drives the real store, so the demo hall's screens, metrics and API show
a living hall. Time runs `speed` times faster than life: an 8-minute
service lasts 8/speed minutes. Arrivals are Poisson at about 90% of the
open windows' capacity, so queues form and drain as in a real hall.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from queue_core.config import Window
from queue_core.errors import QmsError
from queue_core.models import NOBODY, Actor, Role, WindowStatus
from queue_core.operations import Hall

log = logging.getLogger("qms.simulator")

T = TypeVar("T")

ELDERLY_SHARE = 0.08
DISABLED_SHARE = 0.02
APPOINTMENT_SHARE = 0.06
NO_SHOW_SHARE = 0.04
TRANSFER_SHARE = 0.03
OPEN_SHARE = 0.85
UTILISATION = 0.9


@dataclass
class HallSimulator:
    speed: float = 30.0
    seed: int | None = None
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    async def run(self, halls: Mapping[str, Hall]) -> None:
        """Simulate every hall until cancelled."""
        await asyncio.gather(*(self._hall(h) for h in halls.values()))

    async def _hall(self, hall: Hall) -> None:
        store, config = hall.store, hall.config
        # The first windows open, the last stay closed: a hall as staffed on a
        # normal day, and the same windows every run, so examples can name one.
        opened = list(config.windows[: max(1, math.ceil(OPEN_SHARE * len(config.windows)))])
        # A restarted demo finds the windows as it left them: set every one.
        for w in config.windows:
            status = WindowStatus.OPEN if w in opened else WindowStatus.CLOSED
            await self._safely(store.set_window(w.id, status))
        clerks = [self._clerk(hall, w) for w in opened]
        await asyncio.gather(self._visitors(hall, len(opened)), *clerks)

    async def _visitors(self, hall: Hall, windows: int) -> None:
        store, config = hall.store, hall.config
        mean_minutes = sum(s.expected_minutes for s in config.services) / len(config.services)
        per_second = UTILISATION * windows / (mean_minutes * 60 / self.speed)
        kiosk = sorted(config.kiosk_classes() - {"normal"})
        while True:
            await asyncio.sleep(self.rng.expovariate(per_second))
            service = self.rng.choice(config.services).id
            roll = self.rng.random()
            if roll < APPOINTMENT_SHARE and "appointment" in config.priority:
                booked = await self._safely(store.book_appointment(service, _now_ms()))
                if booked is not None:
                    checked_in = await self._safely(store.check_in(booked.value.code))
                    if checked_in is not None:
                        await self._safely(hall.monitor.issued(checked_in))
                continue
            priority = "normal"
            if kiosk and roll < APPOINTMENT_SHARE + ELDERLY_SHARE + DISABLED_SHARE:
                priority = self.rng.choice(kiosk)
            issued = await self._safely(store.issue(service, priority))
            if issued is not None:
                # As a kiosk's ticket: its estimate kept, to be measured at its call.
                await self._safely(hall.monitor.issued(issued))

    async def _clerk(self, hall: Hall, window: Window) -> None:
        store, config = hall.store, hall.config
        # The window's own clerk, as the reports per clerk and the audit expect.
        clerk = next(
            (c for c in config.credentials if c.role is Role.CLERK and window.id in c.windows),
            None,
        )
        actor = NOBODY
        if clerk is not None:
            actor = Actor(hall.credentials.label(clerk), Role.CLERK.value, "simulator")
        while True:
            called = await self._safely(store.call_next(window.id, actor=actor))
            if called is None or called.value is None:
                await asyncio.sleep(self.rng.uniform(1.0, 3.0))
                continue
            service = config.service_by_id[called.value.ticket.service]
            minutes = self.rng.expovariate(1 / service.expected_minutes)
            roll = self.rng.random()
            if roll < NO_SHOW_SHARE:
                await asyncio.sleep(min(minutes, 1.0) * 60 / self.speed)
                await self._safely(store.recall(window.id, actor=actor))
                await asyncio.sleep(0.5 * 60 / self.speed)
                await self._safely(store.no_show(window.id, actor=actor))
            elif roll < NO_SHOW_SHARE + TRANSFER_SHARE:
                await asyncio.sleep(minutes / 3 * 60 / self.speed)
                other = self.rng.choice(config.services).id
                await self._safely(store.transfer(window.id, other, actor=actor))
            else:
                await asyncio.sleep(minutes * 60 / self.speed)
                # The next call-next completes this ticket, as a clerk's one button does.

    async def _safely(self, op: Awaitable[T]) -> T | None:
        try:
            return await op
        except QmsError as exc:
            log.debug("simulator: %s", exc.message)
            if exc.code == "redis_unavailable":
                await asyncio.sleep(1.0)
            return None


def _now_ms() -> int:
    return int(time.time() * 1000)
