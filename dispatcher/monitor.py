"""The hall monitor: one replica's current view of a hall, for estimates,
the dashboard and the gauges.

It reads the hall in one atomic script, learns the service times, replays
the dispatch into a table of wait estimates by place in line, and computes
the dashboard's figures. A read is reused for up to `max_age_s`, and
concurrent callers share one read: under load, ETAs cost a table lookup,
not a Redis round trip. Every replica computes the same figures from the
same Redis, so replicas agree (up to `max_age_s`).

Screen presence is not part of that read: public requests (a visitor's
ticket, the services' waits) use it, and must cost the same however many
screens a hall has. Only `figures()` (the dashboard, the gauges) reads the
presence, which its caps bound.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from dispatcher.estimator import EtaTable
from dispatcher.figures import (
    HOUR_MS,
    HallFigures,
    estimates,
    hall_figures,
    service_model,
    with_screens,
)
from queue_core.models import TicketView
from queue_core.presence import PresenceStore
from queue_core.store import HallStore, Result
from queue_core.wire import ticket_estimate

QUEUE_HEAD = 500
"""Tickets read from the head of each queue: the replay's horizon. Places
further back are extrapolated, and breaches past it are not listed."""


@dataclass(frozen=True, slots=True)
class View:
    table: EtaTable
    figures: HallFigures
    """Without screens (see `HallMonitor.figures`)."""
    read_at: float
    """`time.monotonic()` of the read."""
    open_windows: frozenset[str]
    """The windows open when the hall was read: the table estimates for them."""


class HallMonitor:
    """A hall's estimates and figures, at most `max_age_s` old."""

    def __init__(
        self,
        store: HallStore,
        presence: PresenceStore,
        *,
        max_age_s: float = 2.0,
    ) -> None:
        self.store = store
        self.presence = presence
        self.max_age_s = max_age_s
        self._view: View | None = None
        self._reading: asyncio.Task[View] | None = None
        self._reading_since = 0.0
        self._reads: set[asyncio.Task[View]] = set()
        self._window_ids = frozenset(w.id for w in store.config.windows)

    async def table(self, open_windows: frozenset[str] | None = None) -> EtaTable:
        """The estimates; with `open_windows` (the caller's own view of the
        hall), never a table computed for other open windows: a window that
        opened a moment ago must give its group an estimate at once."""
        return (await self.view(open_windows)).table

    async def issued(self, result: Result[TicketView]) -> EtaTable:
        """The table to answer a new ticket with, after keeping the estimate
        it is given in Redis: its call will measure it against the wait.

        A replayed issue keeps one too: the estimate is a second Redis call
        after the issuing script, and a qms killed between the two (or a
        lost connection) leaves the ticket without one until the client's
        retry. Redis keeps only the first (HSETNX), and only while the
        ticket waits, so a retry of an answered issue changes nothing."""
        table = await self.table(result.value.open_windows)
        est = ticket_estimate(result.value, self.store.config, table)
        if est is not None:
            ms = (round(1000 * est.central), round(1000 * est.p10), round(1000 * est.p90))
            await self.store.note_estimate(result.value.ticket.id, *ms)
        return table

    async def figures(self) -> HallFigures:
        """The latest view's figures with the hall's screens, read now."""
        figures = (await self.view()).figures
        online = await self.presence.online()
        last_seen = await self.presence.last_seen()
        return with_screens(figures, online, last_seen, self.store.now_ms())

    async def view(self, open_windows: frozenset[str] | None = None) -> View:
        """The latest view, read again when older than `max_age_s` or when
        its open windows differ from `open_windows` (the caller saw a newer
        hall than the view)."""
        if open_windows is not None:
            # A window gone from the config but left open in Redis is in no read.
            open_windows = open_windows & self._window_ids
        view = self._view
        if (
            view is not None
            and time.monotonic() - view.read_at <= self.max_age_s
            and (open_windows is None or view.open_windows == open_windows)
        ):
            return view
        view = await self.refresh()
        if open_windows is not None and view.open_windows != open_windows:
            # A shared read that began before the caller's change: read anew.
            view = await self.refresh(shared=False)
        return view

    async def refresh(self, *, shared: bool = True) -> View:
        """Read the hall now. Callers arriving during a read share it, if it
        began at most `max_age_s` before them: a read that began before a
        caller's own write must not answer it (with 0, nobody shares)."""
        now = time.monotonic()
        task = self._reading
        if not shared or task is None or self._reading_since < now - self.max_age_s:
            task = asyncio.ensure_future(self._read())
            self._reading, self._reading_since = task, now
            self._reads.add(task)
            task.add_done_callback(self._read_done)
        # A caller cancelled while waiting must not cancel the others' read.
        return await asyncio.shield(task)

    async def settle(self) -> None:
        """Until every read in flight has ended (tests count reads)."""
        while pending := {t for t in self._reads if not t.done()}:
            await asyncio.wait(pending)

    async def aclose(self) -> None:
        """End a read in flight: its callers may have been cancelled, but the
        shared read goes on until it is cancelled itself, and must not
        outlive the Redis client."""
        # One cancel may be swallowed by redis-py on Python 3.11 (see cancel_all in qms.app).
        while pending := {t for t in self._reads if not t.done()}:
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=1.0)

    def _read_done(self, task: asyncio.Task[View]) -> None:
        self._reads.discard(task)
        if self._reading is task:
            self._reading = None
        if task.cancelled() or task.exception() is not None:
            return
        view = task.result()
        # Reads may end out of order: keep the one that began last.
        if self._view is None or view.read_at >= self._view.read_at:
            self._view = view

    async def _read(self) -> View:
        started = time.monotonic()
        now_ms = self.store.now_ms()
        config = self.store.config
        state = await self.store.hall_state(head=QUEUE_HEAD, calls_since_ms=now_ms - HOUR_MS)
        model = service_model(config, state)
        table = estimates(config, state, model, now_ms)
        figures = hall_figures(config, state, table, (), {}, now_ms)
        return View(table, figures, started, state.open_windows)
