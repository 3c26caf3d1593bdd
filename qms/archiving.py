"""The archive as `qms serve` uses it: one handle, and the periodic sweep.

Every `QMS_ARCHIVE_INTERVAL` seconds (and once at start) each hall's
finished tickets of past local days move from Redis to the archive
(`archive_hall`), which keeps Redis bounded, and its audit entries not yet
copied are copied there (`archive_audit`). A failed round (Redis or the
database down) is one log line; the next round retries, and the sweep is
idempotent and safe to run on every replica at once (see
`queue_core.archive.redis_sweep`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from queue_core.archive import (
    Archive,
    ArchivedAudit,
    ArchivedTicket,
    open_archive,
    sqlite_path,
)
from queue_core.archive.redis_sweep import archive_audit, archive_hall
from queue_core.config import HallConfig
from queue_core.operations import Hall
from queue_core.redis_client import RedisClient, describe_url

log = logging.getLogger("qms.archive")

T = TypeVar("T")


def one_line(exc: BaseException) -> str:
    """An exception as one short line for a log or a terminal."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


class ArchiveHandle:
    """The archive at a URL, opened on first use and reopened after a failure.

    Lazily, so that a database that is down when qms starts delays the
    first sweep instead of the hall, and a broken PostgreSQL connection
    (a server restart) is replaced instead of failing every later round.
    Reading a day from a SQLite file that does not exist yet gives no rows
    and creates nothing: a report never makes an archive. Blocking, like
    `Archive`; safe to share across threads.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.Lock()
        self._archive: Archive | None = None
        self._closed = False

    def __str__(self) -> str:
        shown = describe_url(self.url)
        return "<unparsable URL>" if shown.startswith("<") else shown

    def put(self, tickets: Sequence[ArchivedTicket]) -> None:
        self._use(lambda archive: archive.put(tickets))

    def day(self, hall: str, day: str) -> list[ArchivedTicket]:
        if self._no_file():
            return []
        return self._use(lambda archive: archive.day(hall, day))

    def put_audit(self, entries: Sequence[ArchivedAudit]) -> None:
        self._use(lambda archive: archive.put_audit(entries))

    def audit_day(self, hall: str, day: str) -> list[ArchivedAudit]:
        if self._no_file():
            return []
        return self._use(lambda archive: archive.audit_day(hall, day))

    def _no_file(self) -> bool:
        """A SQLite archive whose file does not exist (yet): read as empty."""
        path = sqlite_path(self.url)
        return path is not None and path != ":memory:" and not Path(path).exists()

    def close(self) -> None:
        with self._lock:
            archive, self._archive, self._closed = self._archive, None, True
        if archive is not None:
            archive.close()

    def _use(self, action: Callable[[Archive], T]) -> T:
        with self._lock:
            if self._closed:
                raise RuntimeError("the archive handle is closed")
            if self._archive is None:
                self._archive = open_archive(_bounded_connect(self.url))
            archive = self._archive
        try:
            return action(archive)
        except Exception:
            with self._lock:
                if self._archive is archive:
                    self._archive = None
            # Whatever state the connection is in, the next use starts afresh.
            with contextlib.suppress(Exception):
                archive.close()
            raise


def _bounded_connect(url: str) -> str:
    """A PostgreSQL URL with a connect timeout (10 s) unless it sets one:
    libpq waits for the OS otherwise (minutes) on an unreachable host, and
    every report would queue behind that connection attempt."""
    if not url.startswith(("postgresql://", "postgres://")) or "connect_timeout=" in url:
        return url
    return f"{url}{'&' if '?' in url else '?'}connect_timeout=10"


async def sweep_once(
    halls: Iterable[tuple[HallConfig, RedisClient]], archive: Archive, clock: Callable[[], float]
) -> int:
    """One round over every hall (its config and Redis); how many tickets
    left Redis. Each hall's tickets, then its audit entries: the audit copy
    is tried even when the tickets failed, since Redis trims audit entries
    after three days whether archived or not. A hall that fails is one log
    line and the others still go: this never raises, so the next round
    retries."""
    total = 0
    for config, redis in halls:
        today = datetime.fromtimestamp(clock(), config.timezone).date()
        failure: Exception | None = None
        moved = copied = 0
        try:
            moved = await archive_hall(redis, config, archive, today)
        except Exception as exc:
            failure = exc
        try:
            copied = await archive_audit(redis, config, archive)
        except Exception as exc:
            failure = failure or exc
        if failure is not None:
            log.warning("qms: archiving hall %s failed, next try in one round: %s",
                        config.id, one_line(failure))  # fmt: skip
        if moved:
            log.info("qms: archived %d finished tickets of hall %s issued before %s",
                     moved, config.id, today.isoformat())  # fmt: skip
        if copied:
            log.info("qms: archived %d audit entries of hall %s", copied, config.id)
        total += moved
    return total


class Sweeper:
    """The sweep of one process: `run` is a task for the app's lifetime."""

    def __init__(
        self,
        halls: Mapping[str, Hall],
        archive: Archive,
        interval_s: float,
        clock: Callable[[], float],
    ) -> None:
        self.halls = halls
        self.archive = archive
        self.interval_s = interval_s
        self.clock = clock
        self.rounds = 0
        """Rounds finished, failed ones included."""
        self._round_done = asyncio.Condition()

    async def run(self) -> None:
        """`sweep_once` at start, then every `interval_s` seconds, until cancelled."""
        while True:
            halls = [(hall.config, hall.store.redis) for hall in self.halls.values()]
            await sweep_once(halls, self.archive, self.clock)
            async with self._round_done:
                self.rounds += 1
                self._round_done.notify_all()
            await asyncio.sleep(self.interval_s)

    async def wait_rounds(self, n: int) -> None:
        """Until `n` rounds have finished (tests wait on it)."""
        async with self._round_done:
            await self._round_done.wait_for(lambda: self.rounds >= n)
