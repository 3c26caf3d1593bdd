"""A hall's daily report as the CLI and the dashboard give it: the archive's
tickets of the day merged with those of the day still in Redis.

Past days live in the archive once the sweep has run; today's finished
tickets are still in Redis. A ticket in both (the sweep archived it but has
not deleted it yet, or it was rated since) counts once, as Redis has it:
Redis holds the newer copy.

A day's audit trail merges the same two sources: the archive's copy and
the entries of the day still in Redis (kept three days), once each by id.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Callable
from datetime import date
from typing import TypeVar

from qms.archiving import one_line
from queue_core.archive import Archive, ArchivedAudit, ArchivedTicket, audit_id_key
from queue_core.archive.redis_sweep import audit_entries, finished_tickets
from queue_core.auth import Credentials
from queue_core.config import HallConfig
from queue_core.errors import Invalid, Unavailable
from queue_core.redis_client import RedisClient
from queue_core.report import DailyReport, hall_report

_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")

T = TypeVar("T")


class ArchiveUnavailable(Unavailable):
    """The archive could not be read; `reason` says why in one line."""

    def __init__(self, reason: str) -> None:
        super().__init__("archive_unavailable", "The report archive cannot be read right now.")
        self.reason = reason


def parse_day(raw: str) -> date:
    """A calendar day written YYYY-MM-DD, nothing else (`date.fromisoformat`
    alone would also take 20261121 and week dates)."""
    if _DAY.fullmatch(raw):
        try:
            return date.fromisoformat(raw)
        except ValueError:
            pass
    raise Invalid("invalid_day", f"{raw!r} is not a day: use YYYY-MM-DD, e.g. 2026-11-21.")


async def report_of_day(
    config: HallConfig,
    day: date,
    archive: Archive | None,
    redis: RedisClient | None,
    credentials: Credentials,
) -> DailyReport:
    """The report of the hall's local `day`. `archive` or `redis` None: that
    source is left out. Raises `Unavailable` when either cannot be read.
    Clerks recorded as credential ids (tickets archived before labels) are
    reported by `credentials.relabel`, never as they were recorded."""
    tickets: dict[str, ArchivedTicket] = {}
    live = [] if redis is None else await finished_tickets(redis, config, day)
    # Redis first, the archive second: the sweep commits a ticket to the
    # archive before deleting it from Redis, so one that leaves Redis
    # between the two reads is still found.
    if archive is not None:
        tickets.update((t.id, t) for t in await _read(archive.day, config.id, day))
    tickets.update((t.id, t) for t in live)
    rows = [
        t if t.clerk is None else dataclasses.replace(t, clerk=credentials.relabel(t.clerk))
        for t in tickets.values()
    ]
    return hall_report(rows, config, day.isoformat())


async def audit_of_day(
    config: HallConfig,
    day: date,
    archive: Archive | None,
    redis: RedisClient | None,
    credentials: Credentials,
) -> list[ArchivedAudit]:
    """The hall's audit entries of local `day`, by id: the archive's merged
    with those still in Redis, each once. `archive` or `redis` None: that
    source is left out. Raises `Unavailable` when either cannot be read.
    Actors pass through `credentials.relabel`, as clerks do in reports."""
    entries: dict[str, ArchivedAudit] = {}
    # Redis first, as for tickets: an entry the trim removes meanwhile has
    # been read already.
    live = [] if redis is None else await audit_entries(redis, config, day)
    if archive is not None:
        entries.update((e.id, e) for e in await _read(archive.audit_day, config.id, day))
    entries.update((e.id, e) for e in live)
    ordered = sorted(entries.values(), key=lambda e: audit_id_key(e.id))
    return [dataclasses.replace(e, actor=credentials.relabel(e.actor)) for e in ordered]


async def _read(read: Callable[[str, str], list[T]], hall: str, day: date) -> list[T]:
    """One day of the archive, in a worker thread; `ArchiveUnavailable` when
    it cannot be read, whatever the database said."""
    try:
        return await asyncio.to_thread(read, hall, day.isoformat())
    except Exception as exc:
        raise ArchiveUnavailable(one_line(exc)) from exc
