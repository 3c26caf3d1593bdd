"""The archive of finished tickets: where reports read from.

Redis holds a hall's live state and must stay small, so finished tickets of
past days leave it (see `queue_core.archive.redis_sweep`) for a relational
store that suits reports: SQLite by default, PostgreSQL when the archive URL
points at one. Both sit behind `Archive`, one table `tickets`, primary key
(hall, id), and an upsert: writing a ticket again replaces its row, so a
sweep that crashed between archiving and deleting from Redis is simply run
again. The hall's audit trail is copied beside them, table `audit`, primary
key (hall, id) and an upsert too; its entries are not deleted from Redis
(the scripts trim them after three days).

The archive API is synchronous (sqlite3 and psycopg's blocking connection):
the sweep is a batch job that calls it through `asyncio.to_thread`, and the
report CLI has no event loop at all. Each backend serialises its callers
with a lock, so one instance may be shared by threads.

Times are epoch milliseconds, like `Ticket`; `day` is the hall's local
calendar day of issue (of an audit entry: of its `at`), YYYY-MM-DD, so a
day's report is one indexed lookup.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from queue_core.models import AuditEntry, Ticket, TicketStatus

__all__ = [
    "DEFAULT_ARCHIVE_URL",
    "FINAL_STATUSES",
    "Archive",
    "ArchivedAudit",
    "ArchivedTicket",
    "archived",
    "archived_audit",
    "audit_id_key",
    "local_day",
    "open_archive",
    "sqlite_path",
]

DEFAULT_ARCHIVE_URL = "sqlite:///.qms-data/archive.db"
"""Relative to the working directory, beside the embedded Redis's data."""

FINAL_STATUSES = frozenset(
    {TicketStatus.COMPLETED, TicketStatus.NO_SHOW, TicketStatus.CANCELLED, TicketStatus.EXPIRED}
)
"""Statuses a ticket never leaves (a rating may still be added to a completed one)."""


@dataclass(frozen=True, slots=True)
class ArchivedTicket:
    """One finished ticket as the archive holds it (times in epoch ms).

    `service`, `group` and `window` are the ticket's last ones: a transferred
    ticket is archived under the service that finally handled it. `clerk` is
    who the scripts recorded on the ticket when it was called and finished:
    the credential's audit label (its `name`, or role and keyed short id;
    rows archived before labels hold `Credential.digest_id`, which
    reports relabel);
    None for a ticket never called.
    """

    hall: str
    day: str
    id: str
    number: str
    service: str
    group: str
    priority: str
    status: TicketStatus
    issued_ms: int
    called_ms: int | None
    finished_ms: int | None
    window: str | None
    clerk: str | None = None
    rating: str | None = None
    rating_reason: str | None = None
    rated_ms: int | None = None
    remote: bool = False
    call_reason: str | None = None
    """Why it was last called (`queue_core.reasons.CODES`); None if never,
    or archived before reasons were kept."""
    ahead_of: int | None = None
    """How many earlier tickets that call went ahead of."""


@dataclass(frozen=True, slots=True)
class ArchivedAudit:
    """One audit entry as the archive holds it: `AuditEntry` with its hall
    and the hall's local day of `at_ms`. `id` is the stream entry's id,
    `<ms>-<n>`: order rows by `audit_id_key`, not as text."""

    hall: str
    day: str
    id: str
    at_ms: int
    actor: str
    role: str
    action: str
    window: str | None
    number: str | None
    client: str


def audit_id_key(entry_id: str) -> tuple[int, int]:
    """A stream id `<ms>-<n>` as numbers, so that `…-10` sorts after `…-9`."""
    ms, _, n = entry_id.partition("-")
    return int(ms), int(n or 0)


def archived_audit(hall: str, tz: ZoneInfo, entry: AuditEntry) -> ArchivedAudit:
    """The archive row of an audit entry."""
    return ArchivedAudit(
        hall=hall,
        day=local_day(entry.at_ms, tz),
        id=entry.id,
        at_ms=entry.at_ms,
        actor=entry.actor,
        role=entry.role,
        action=entry.action,
        window=entry.window,
        number=entry.number,
        client=entry.client,
    )


def local_day(epoch_ms: int, tz: ZoneInfo) -> str:
    """The hall's calendar day, YYYY-MM-DD, of an instant."""
    return datetime.fromtimestamp(epoch_ms / 1000, tz).date().isoformat()


def archived(hall: str, tz: ZoneInfo, ticket: Ticket) -> ArchivedTicket:
    """The archive row of a finished ticket; `ValueError` for one still live."""
    if ticket.status not in FINAL_STATUSES:
        raise ValueError(f"ticket {ticket.number} is {ticket.status}, not finished")
    return ArchivedTicket(
        hall=hall,
        day=local_day(ticket.issued_ms, tz),
        id=ticket.id,
        number=ticket.number,
        service=ticket.service,
        group=ticket.group,
        priority=ticket.priority,
        status=ticket.status,
        issued_ms=ticket.issued_ms,
        called_ms=ticket.called_ms,
        finished_ms=ticket.finished_ms,
        window=ticket.window,
        clerk=ticket.clerk,
        rating=ticket.rating,
        rating_reason=ticket.rating_reason,
        rated_ms=ticket.rated_ms,
        remote=ticket.remote,
        call_reason=ticket.why.code if ticket.why else None,
        ahead_of=ticket.why.ahead_of if ticket.why else None,
    )


class Archive(Protocol):
    """A store of finished tickets and audit entries. Blocking calls; safe to
    share across threads."""

    def put(self, tickets: Sequence[ArchivedTicket]) -> None:
        """Insert or replace (by hall and id) every ticket, in one transaction."""

    def day(self, hall: str, day: str) -> list[ArchivedTicket]:
        """Every archived ticket of a hall issued on a local day, by issue time."""

    def put_audit(self, entries: Sequence[ArchivedAudit]) -> None:
        """Insert or replace (by hall and id) every audit entry, in one transaction."""

    def audit_day(self, hall: str, day: str) -> list[ArchivedAudit]:
        """Every archived audit entry of a hall made on a local day, by id."""

    def close(self) -> None: ...


def open_archive(url: str = DEFAULT_ARCHIVE_URL) -> Archive:
    """Open (and on first use create) the archive a URL names.

    `sqlite:///relative/path.db`, `sqlite:////absolute/path.db` (SQLAlchemy's
    convention: what follows the third slash is the path) or `sqlite:///:memory:`;
    `postgresql://user@host:port/db` (or `postgres://`), any libpq URL, e.g.
    with `?options=-csearch_path%3Dreports` to use a schema. The directory
    of a SQLite file is created if missing.
    """
    from queue_core.archive import _db

    path = sqlite_path(url)
    if path is not None:
        return _db.SqliteArchive(path)
    if url.startswith(("postgresql://", "postgres://")):
        return _db.PostgresArchive(url)
    raise ValueError(f"unsupported archive URL {url!r}: use sqlite:///… or postgresql://…")


def sqlite_path(url: str) -> str | None:
    """The file (or `:memory:`) a `sqlite:///` URL names; None for any other URL."""
    return url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else None
