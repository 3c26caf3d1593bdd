"""The archive of finished tickets and audit entries: both backends, the
sweep of tickets out of Redis and the copy of the audit trail.

SQLite always runs. PostgreSQL runs when one answers at
``QMS_TEST_ARCHIVE_PG`` (default ``postgresql://postgres@127.0.0.1:5432/test``):
each test gets a schema of its own, dropped afterwards, and skips with the
reason when no server answers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import secrets
import threading
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path
from urllib.parse import quote

import pytest

from queue_core.archive import (
    Archive,
    ArchivedAudit,
    ArchivedTicket,
    archived,
    archived_audit,
    local_day,
    open_archive,
)
from queue_core.archive.redis_sweep import archive_audit, archive_hall
from queue_core.models import Actor, AuditEntry, Rating, TicketStatus, WindowStatus
from queue_core.redis_client import RedisClient, create_sync_redis
from queue_core.report import daily_report
from tests.conftest import HallFactory, HallKit

PG_URL = os.environ.get("QMS_TEST_ARCHIVE_PG", "postgresql://postgres@127.0.0.1:5432/test")
NINE_MS = 1_795_222_800_000  # 2026-11-21 09:00 Asia/Shanghai


def _postgres_schema() -> Iterator[str]:
    """A fresh schema's URL on the test PostgreSQL; the schema is dropped afterwards."""
    psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed")
    try:
        admin = psycopg.connect(PG_URL, autocommit=True, connect_timeout=2)
    except psycopg.OperationalError as e:
        pytest.skip(f"no PostgreSQL answers at {PG_URL}: {e}".strip())
    schema = f"qms_test_{secrets.token_hex(6)}"
    with admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        try:
            joiner = "&" if "?" in PG_URL else "?"
            yield f"{PG_URL}{joiner}options={quote(f'-csearch_path={schema}')}"
        finally:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgresql"])
def archive_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/archive.db"
    else:
        yield from _postgres_schema()


@pytest.fixture
def archive(archive_url: str) -> Iterator[Archive]:
    opened = open_archive(archive_url)
    try:
        yield opened
    finally:
        opened.close()


def row(
    number: str, hall: str = "h1", day: str = "2026-11-21", **changes: object
) -> ArchivedTicket:
    minute = int(number[1:])
    base = ArchivedTicket(
        hall=hall,
        day=day,
        id=f"{hall}-{day}-{number}",
        number=number,
        service="social-security",
        group="natural",
        priority="elderly",
        status=TicketStatus.CANCELLED,
        issued_ms=NINE_MS + minute * 60_000,
        called_ms=None,
        finished_ms=NINE_MS + (minute + 9) * 60_000,
        window=None,
    )
    fields = {f: getattr(base, f) for f in ArchivedTicket.__dataclass_fields__}
    fields.update(changes)
    return ArchivedTicket(**fields)


FULL = row(
    "A002",
    status=TicketStatus.COMPLETED,
    called_ms=NINE_MS + 5 * 60_000,
    window="w1",
    clerk="clerk:0123456789abcdef",
    rating=Rating.DISSATISFIED.value,
    rating_reason="等了太久，窗口说明不清楚",
    rated_ms=NINE_MS + 30 * 60_000,
    remote=True,
)


def test_round_trip(archive: Archive) -> None:
    bare = row("A001")
    others = [row("A001", hall="h2"), row("A003", day="2026-11-22")]
    archive.put([FULL, *others, bare])
    assert archive.day("h1", "2026-11-21") == [bare, FULL]  # by issue time
    assert archive.day("h1", "2026-11-20") == []


def test_writing_again_replaces_the_row(archive: Archive) -> None:
    archive.put([row("A001")])
    archive.put([row("A001")])  # a sweep that crashed before deleting, run again
    assert archive.day("h1", "2026-11-21") == [row("A001")]
    rated = row("A001", status=TicketStatus.COMPLETED, rating=Rating.SATISFIED.value)
    archive.put([rated])
    assert archive.day("h1", "2026-11-21") == [rated]


def test_schema_survives_reopening(archive_url: str) -> None:
    first = open_archive(archive_url)
    first.put([FULL])
    first.put_audit([audit_row(f"{NINE_MS}-0")])
    first.close()
    again = open_archive(archive_url)
    try:
        assert again.day("h1", "2026-11-21") == [FULL]
        assert again.audit_day("h1", "2026-11-21") == [audit_row(f"{NINE_MS}-0")]
    finally:
        again.close()


def audit_row(
    entry_id: str, hall: str = "h1", day: str = "2026-11-21", **changes: object
) -> ArchivedAudit:
    base = ArchivedAudit(
        hall=hall,
        day=day,
        id=entry_id,
        at_ms=int(entry_id.partition("-")[0]),
        actor="李四",
        role="clerk",
        action="call_next",
        window="2",
        number="A001",
        client="10.0.0.5",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_audit_round_trip(archive: Archive) -> None:
    nine = audit_row(f"{NINE_MS}-9", action="recall")
    ten = audit_row(f"{NINE_MS}-10", action="no_show")  # after …-9, though not as text
    close = audit_row(
        f"{NINE_MS + 60_000}-0",
        actor="王主任",
        role="manager",
        action="close_hall",
        window=None,
        number=None,
        client="2001:db8::9",
    )
    others = [audit_row(f"{NINE_MS}-9", hall="h2"), audit_row(f"{NINE_MS}-11", day="2026-11-22")]
    archive.put_audit([close, ten, *others, nine])
    assert archive.audit_day("h1", "2026-11-21") == [nine, ten, close]
    assert archive.audit_day("h2", "2026-11-21") == [others[0]]
    assert archive.audit_day("h1", "2026-11-20") == []


def test_copying_audit_entries_again_keeps_one_row_each(archive: Archive) -> None:
    rows = [audit_row(f"{NINE_MS}-{n}") for n in range(3)]
    archive.put_audit(rows)
    archive.put_audit(rows[1:])  # a copy that crashed before its cursor moved, run again
    archive.put_audit([])
    assert archive.audit_day("h1", "2026-11-21") == rows


def test_sqlite_url_makes_its_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    opened = open_archive()  # the default, relative to the working directory
    opened.close()
    assert (tmp_path / ".qms-data" / "archive.db").is_file()


def test_unknown_url_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported archive URL"):
        open_archive("mysql://localhost/qms")


# ---------------------------------------------------------------- the sweep


async def _day_one(hall: HallKit) -> dict[str, str]:
    """A morning of 2026-11-21 at window 2; returns ticket ids by what became of them."""
    store, clock = hall.store, hall.clock
    await store.set_window("2", WindowStatus.OPEN)
    ids = {}
    for name in ("completed", "no_show", "cancelled", "called", "waiting"):
        ids[name] = (await store.issue("social-security")).value.ticket.id
        clock.advance(minutes=1)
    await store.call_next("2")  # completed
    clock.advance(minutes=8)
    await store.complete("2")
    await store.rate(ids["completed"], Rating.SATISFIED, None)
    await store.call_next("2")  # no_show
    clock.advance(minutes=2)
    await store.no_show("2")
    await store.cancel(ids["cancelled"])
    await store.call_next("2")  # called, and still at the window tomorrow
    return ids


async def _next_morning(hall: HallKit) -> str:
    """The next day: one ticket finished already (at window 3, legal only)."""
    hall.clock.advance(minutes=24 * 60)
    await hall.store.set_window("3", WindowStatus.OPEN)
    today = (await hall.store.issue("business-licence")).value.ticket.id
    await hall.store.call_next("3")
    await hall.store.complete("3")
    return today


@pytest.mark.redis
async def test_sweep_moves_finished_tickets_of_past_days(
    hall_factory: HallFactory, redis: RedisClient, archive: Archive
) -> None:
    hall = await hall_factory()
    ids = await _day_one(hall)
    today = await _next_morning(hall)
    day_one = local_day(NINE_MS, hall.config.timezone)

    moved = await archive_hall(redis, hall.config, archive, date(2026, 11, 22), batch=2)

    assert moved == 3
    left = set(await redis.hkeys(hall.keys.tickets))
    assert left == {ids["called"], ids["waiting"], today}
    rows = {r.id: r for r in archive.day(hall.config.id, day_one)}
    assert set(rows) == {ids["completed"], ids["no_show"], ids["cancelled"]}
    done = rows[ids["completed"]]
    assert (done.status, done.window, done.rating, done.clerk) == (
        TicketStatus.COMPLETED,
        "2",
        "satisfied",
        None,
    )
    assert (done.issued_ms, done.called_ms, done.finished_ms) == (
        NINE_MS,
        NINE_MS + 5 * 60_000,
        NINE_MS + 13 * 60_000,
    )
    assert rows[ids["cancelled"]].window is None
    report = daily_report(archive.day(hall.config.id, day_one), hall.config.id, day_one)
    hall_line = report.lines[0]
    assert (hall_line.issued, hall_line.served, hall_line.no_show, hall_line.cancelled) == (
        3,
        1,
        1,
        1,
    )

    # Nothing left to move: a second sweep is a no-op.
    assert await archive_hall(redis, hall.config, archive, date(2026, 11, 22)) == 0


@pytest.mark.redis
async def test_sweep_touches_nothing_of_the_current_day(
    hall_factory: HallFactory, redis: RedisClient, archive: Archive
) -> None:
    hall = await hall_factory()
    await _day_one(hall)
    before = await redis.hgetall(hall.keys.tickets)
    assert await archive_hall(redis, hall.config, archive, date(2026, 11, 21)) == 0
    assert await redis.hgetall(hall.keys.tickets) == before


class _RatedMeanwhile:
    """An archive during whose write the visitor rates the ticket in Redis."""

    def __init__(self, inner: Archive, redis_url: str, tickets_key: str) -> None:
        self.inner = inner
        self.redis_url = redis_url
        self.tickets_key = tickets_key

    def put(self, tickets: Sequence[ArchivedTicket]) -> None:
        self.inner.put(tickets)
        client = create_sync_redis(self.redis_url)
        try:
            for t in tickets:
                data = json.loads(str(client.hget(self.tickets_key, t.id)))
                data.update(rating="very_satisfied", rated=t.finished_ms)
                client.hset(self.tickets_key, t.id, json.dumps(data))
        finally:
            client.close()

    def day(self, hall: str, day: str) -> list[ArchivedTicket]:
        return self.inner.day(hall, day)

    def put_audit(self, entries: Sequence[ArchivedAudit]) -> None:
        self.inner.put_audit(entries)

    def audit_day(self, hall: str, day: str) -> list[ArchivedAudit]:
        return self.inner.audit_day(hall, day)

    def close(self) -> None:
        self.inner.close()


@pytest.mark.redis
async def test_a_rating_during_the_sweep_is_not_lost(
    hall_factory: HallFactory, redis: RedisClient, redis_url: str, archive: Archive
) -> None:
    hall = await hall_factory()
    await hall.store.set_window("2", WindowStatus.OPEN)
    issued = (await hall.store.issue("social-security")).value.ticket
    await hall.store.call_next("2")
    await hall.store.complete("2")
    hall.clock.advance(minutes=24 * 60)
    racing = _RatedMeanwhile(archive, redis_url, hall.keys.tickets)

    await archive_hall(redis, hall.config, racing, date(2026, 11, 22))
    # Changed after it was read: archived as read, kept in Redis for the next sweep.
    assert await redis.hexists(hall.keys.tickets, issued.id)

    assert await archive_hall(redis, hall.config, archive, date(2026, 11, 22)) == 1
    assert not await redis.hexists(hall.keys.tickets, issued.id)
    [kept] = archive.day(hall.config.id, "2026-11-21")
    assert kept.rating == "very_satisfied"


# ------------------------------------------------------- the audit trail

CLERK = Actor("李四", "clerk", "10.0.0.5")
MANAGER = Actor("王主任", "manager", "10.0.0.9")


async def _audited_morning(hall: HallKit) -> list[AuditEntry]:
    """2026-11-21: a clerk's and a manager's changes, thirteen audit entries,
    eleven of them in one millisecond (ids up to …-10). Returns them all."""
    store = hall.store
    await store.issue("social-security")  # a kiosk's: no entry
    await store.set_window("2", WindowStatus.OPEN, actor=CLERK)
    await store.call_next("2", actor=CLERK)
    hall.clock.advance(minutes=5)
    await store.complete("2", actor=CLERK)
    for status in [WindowStatus.PAUSED, WindowStatus.OPEN] * 5:
        await store.set_window("2", status, actor=MANAGER)
    entries = await store.audit(None, 1000)
    assert len(entries) == 13
    assert entries[-1].id == f"{NINE_MS + 5 * 60_000}-10"
    return entries


def _rows(hall: HallKit, entries: Sequence[AuditEntry]) -> list[ArchivedAudit]:
    return [archived_audit(hall.config.id, hall.config.timezone, e) for e in entries]


class _Delegating:
    """An archive that passes every call on; subclasses change one."""

    def __init__(self, inner: Archive) -> None:
        self.inner = inner

    def put(self, tickets: Sequence[ArchivedTicket]) -> None:
        self.inner.put(tickets)

    def day(self, hall: str, day: str) -> list[ArchivedTicket]:
        return self.inner.day(hall, day)

    def put_audit(self, entries: Sequence[ArchivedAudit]) -> None:
        self.inner.put_audit(entries)

    def audit_day(self, hall: str, day: str) -> list[ArchivedAudit]:
        return self.inner.audit_day(hall, day)

    def close(self) -> None:
        self.inner.close()


class _DiesAfterCommit(_Delegating):
    """A replica that dies once its first batch is committed, before its cursor moves."""

    def put_audit(self, entries: Sequence[ArchivedAudit]) -> None:
        self.inner.put_audit(entries)
        raise ConnectionError("killed between the archive write and the cursor")


class _Stalled(_Delegating):
    """A replica whose audit write waits (in its worker thread) until the test lets it go."""

    def __init__(self, inner: Archive) -> None:
        super().__init__(inner)
        self.writing = threading.Event()
        self.go = threading.Event()

    def put_audit(self, entries: Sequence[ArchivedAudit]) -> None:
        self.writing.set()
        assert self.go.wait(10)
        self.inner.put_audit(entries)


@pytest.mark.redis
async def test_audit_copy_takes_every_entry_once_and_leaves_redis_as_it_was(
    hall_factory: HallFactory, redis: RedisClient, archive: Archive
) -> None:
    hall = await hall_factory()
    entries = await _audited_morning(hall)
    before = await redis.xrange(hall.keys.audit)

    assert await archive_audit(redis, hall.config, archive, batch=2) == 13

    assert archive.audit_day(hall.config.id, "2026-11-21") == _rows(hall, entries)
    assert await redis.get(hall.keys.audit_archived) == entries[-1].id
    assert await redis.xrange(hall.keys.audit) == before  # copied, not moved
    assert await archive_audit(redis, hall.config, archive) == 0  # nothing new

    # The next day: only the new entry is copied, under its own day.
    hall.clock.advance(minutes=24 * 60)
    await hall.store.set_window("2", WindowStatus.CLOSED, actor=CLERK)
    assert await archive_audit(redis, hall.config, archive) == 1
    [closed] = archive.audit_day(hall.config.id, "2026-11-22")
    assert (closed.actor, closed.role, closed.action, closed.window, closed.number) == (
        "李四",
        "clerk",
        "close_window",
        "2",
        None,
    )
    assert (closed.client, closed.at_ms) == ("10.0.0.5", NINE_MS + (5 + 24 * 60) * 60_000)
    assert archive.audit_day(hall.config.id, "2026-11-21") == _rows(hall, entries)


@pytest.mark.redis
async def test_a_copy_that_died_before_its_cursor_moved_is_redone(
    hall_factory: HallFactory, redis: RedisClient, archive: Archive
) -> None:
    hall = await hall_factory()
    entries = await _audited_morning(hall)
    with pytest.raises(ConnectionError):
        await archive_audit(redis, hall.config, _DiesAfterCommit(archive), batch=5)
    assert len(archive.audit_day(hall.config.id, "2026-11-21")) == 5
    assert await redis.get(hall.keys.audit_archived) is None

    assert await archive_audit(redis, hall.config, archive, batch=5) == 13
    assert archive.audit_day(hall.config.id, "2026-11-21") == _rows(hall, entries)


@pytest.mark.redis
async def test_two_replicas_copying_at_once(
    hall_factory: HallFactory, redis: RedisClient, archive_url: str
) -> None:
    hall = await hall_factory()
    entries = await _audited_morning(hall)
    first, second = open_archive(archive_url), open_archive(archive_url)
    try:
        copied = await asyncio.gather(
            archive_audit(redis, hall.config, first, batch=1),
            archive_audit(redis, hall.config, second, batch=1),
        )
        # Each copies what lies after the cursor it found, so the one that
        # starts first copies all 13 and the other what the first had not
        # yet marked copied (13 when both start before either moves it);
        # either way the archive ends with each entry once.
        assert max(copied) == 13 and 0 <= min(copied) <= 13
        assert first.audit_day(hall.config.id, "2026-11-21") == _rows(hall, entries)
        assert await redis.get(hall.keys.audit_archived) == entries[-1].id
        assert await archive_audit(redis, hall.config, second) == 0
    finally:
        first.close()
        second.close()


@pytest.mark.redis
async def test_a_late_replica_never_moves_the_cursor_back(
    hall_factory: HallFactory, redis: RedisClient, archive: Archive
) -> None:
    hall = await hall_factory()
    await _audited_morning(hall)
    slow = _Stalled(archive)
    late = asyncio.create_task(archive_audit(redis, hall.config, slow))
    try:
        assert await asyncio.to_thread(slow.writing.wait, 10)
        # While it holds thirteen entries, a fourteenth comes and another replica copies all.
        hall.clock.advance(minutes=1)
        await hall.store.set_window("2", WindowStatus.CLOSED, actor=CLERK)
        entries = await hall.store.audit(None, 1000)
        assert await archive_audit(redis, hall.config, archive) == 14
    finally:
        slow.go.set()
    assert await late == 13
    assert await redis.get(hall.keys.audit_archived) == entries[-1].id
    assert await archive_audit(redis, hall.config, archive) == 0
    assert archive.audit_day(hall.config.id, "2026-11-21") == _rows(hall, entries)


def test_a_live_ticket_has_no_archive_row() -> None:
    from zoneinfo import ZoneInfo

    from queue_core.models import Ticket

    waiting = Ticket(
        "x", "A001", "s", "g", "normal", TicketStatus.WAITING, NINE_MS, NINE_MS, None, None, None,
        None,
    )  # fmt: skip
    with pytest.raises(ValueError, match="not finished"):
        archived("h1", ZoneInfo("Asia/Shanghai"), waiting)
