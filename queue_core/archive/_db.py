"""The two archive backends: SQLite (stdlib) and PostgreSQL (psycopg 3).

Both speak the same SQL apart from the placeholder and the type of `day`;
`INSERT … ON CONFLICT (hall, id) DO UPDATE` is the upsert both understand
(SQLite from 3.24). Column names avoid SQL keywords (`group` and, in
PostgreSQL, `window` are reserved), so no statement needs quoting.

Two tables, `tickets` and `audit`, each keyed (hall, id) and indexed
(hall, day). Audit ids are stream ids, `<ms>-<n>`, which do not sort as
text (`…-10` before `…-9`): a day's audit rows are sorted after the read.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from queue_core.archive import ArchivedAudit, ArchivedTicket, audit_id_key
from queue_core.models import TicketStatus

# (column, attribute of ArchivedTicket), in row order.
_COLUMNS: tuple[tuple[str, str], ...] = (
    ("hall", "hall"),
    ("day", "day"),
    ("id", "id"),
    ("number", "number"),
    ("service", "service"),
    ("service_group", "group"),
    ("priority", "priority"),
    ("status", "status"),
    ("issued_ms", "issued_ms"),
    ("called_ms", "called_ms"),
    ("finished_ms", "finished_ms"),
    ("window_id", "window"),
    ("clerk", "clerk"),
    ("rating", "rating"),
    ("rating_reason", "rating_reason"),
    ("rated_ms", "rated_ms"),
    ("remote", "remote"),
    ("call_reason", "call_reason"),
    ("ahead_of", "ahead_of"),
)
# Columns added since the first archives were made: (table, column, type),
# added to an existing table at open (`_missing_columns`).
_ADDED: tuple[tuple[str, str, str], ...] = (
    ("tickets", "call_reason", "TEXT"),
    ("tickets", "ahead_of", "INTEGER"),
)
_AUDIT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("hall", "hall"),
    ("day", "day"),
    ("id", "id"),
    ("at_ms", "at_ms"),
    ("actor", "actor"),
    ("role", "role"),
    ("action", "action"),
    ("window_id", "window"),
    ("number", "number"),
    ("client", "client"),
)
_KEY = ("hall", "id")
_NAMES = ", ".join(c for c, _ in _COLUMNS)
_AUDIT_NAMES = ", ".join(c for c, _ in _AUDIT_COLUMNS)
_STATUSES = ", ".join(f"'{s.value}'" for s in TicketStatus)


def _schema(day_type: str) -> tuple[str, ...]:
    return (
        f"""CREATE TABLE IF NOT EXISTS tickets (
            hall TEXT NOT NULL,
            day {day_type} NOT NULL,
            id TEXT NOT NULL,
            number TEXT NOT NULL,
            service TEXT NOT NULL,
            service_group TEXT NOT NULL,
            priority TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ({_STATUSES})),
            issued_ms BIGINT NOT NULL,
            called_ms BIGINT,
            finished_ms BIGINT,
            window_id TEXT,
            clerk TEXT,
            rating TEXT,
            rating_reason TEXT,
            rated_ms BIGINT,
            remote BOOLEAN NOT NULL,
            call_reason TEXT,
            ahead_of INTEGER,
            PRIMARY KEY (hall, id)
        )""",
        "CREATE INDEX IF NOT EXISTS tickets_hall_day ON tickets (hall, day)",
        f"""CREATE TABLE IF NOT EXISTS audit (
            hall TEXT NOT NULL,
            day {day_type} NOT NULL,
            id TEXT NOT NULL,
            at_ms BIGINT NOT NULL,
            actor TEXT NOT NULL,
            role TEXT NOT NULL,
            action TEXT NOT NULL,
            window_id TEXT,
            number TEXT,
            client TEXT NOT NULL,
            PRIMARY KEY (hall, id)
        )""",
        "CREATE INDEX IF NOT EXISTS audit_hall_day ON audit (hall, day)",
    )


def _upsert_into(table: str, columns: tuple[tuple[str, str], ...], placeholder: str) -> str:
    names = ", ".join(c for c, _ in columns)
    values = ", ".join(placeholder for _ in columns)
    updates = ", ".join(f"{c} = excluded.{c}" for c, _ in columns if c not in _KEY)
    return (
        f"INSERT INTO {table} ({names}) VALUES ({values}) "
        f"ON CONFLICT (hall, id) DO UPDATE SET {updates}"
    )


def _upsert(placeholder: str) -> str:
    return _upsert_into("tickets", _COLUMNS, placeholder)


def _audit_upsert(placeholder: str) -> str:
    return _upsert_into("audit", _AUDIT_COLUMNS, placeholder)


def _audit_select(placeholder: str) -> str:
    return f"SELECT {_AUDIT_NAMES} FROM audit WHERE hall = {placeholder} AND day = {placeholder}"


def _audit_params(a: ArchivedAudit) -> tuple[Any, ...]:
    return tuple(getattr(a, attr) for _, attr in _AUDIT_COLUMNS)


def _pg_audit_params(a: ArchivedAudit) -> tuple[Any, ...]:
    params = _audit_params(a)
    return (params[0], date.fromisoformat(a.day), *params[2:])


def _audit_rows(rows: Sequence[Sequence[Any]]) -> list[ArchivedAudit]:
    out = []
    for values in rows:
        d = {attr: v for (_, attr), v in zip(_AUDIT_COLUMNS, values, strict=True)}
        if isinstance(d["day"], date):  # PostgreSQL's DATE
            d["day"] = d["day"].isoformat()
        out.append(ArchivedAudit(**d))
    return sorted(out, key=lambda a: audit_id_key(a.id))


def _select(placeholder: str) -> str:
    return (
        f"SELECT {_NAMES} FROM tickets WHERE hall = {placeholder} AND day = {placeholder} "
        "ORDER BY issued_ms, id"
    )


def _params(t: ArchivedTicket) -> tuple[Any, ...]:
    return tuple(
        getattr(t, attr).value if attr == "status" else getattr(t, attr) for _, attr in _COLUMNS
    )


def _pg_params(t: ArchivedTicket) -> tuple[Any, ...]:
    params = _params(t)
    return (params[0], date.fromisoformat(t.day), *params[2:])


def _row(values: Sequence[Any]) -> ArchivedTicket:
    d = {attr: v for (_, attr), v in zip(_COLUMNS, values, strict=True)}
    if isinstance(d["day"], date):  # PostgreSQL's DATE
        d["day"] = d["day"].isoformat()
    d["status"] = TicketStatus(d["status"])
    d["remote"] = bool(d["remote"])  # SQLite keeps booleans as 0/1
    return ArchivedTicket(**d)


class SqliteArchive:
    """The archive in one SQLite file (WAL, so a report can read while a sweep writes)."""

    def __init__(self, path: str) -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # check_same_thread=False: the sweep calls in from asyncio.to_thread's
        # pool threads; the lock serialises them.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("BEGIN")
            for statement in _schema("TEXT"):
                self._db.execute(statement)
            for table, column, kind in _ADDED:
                known = {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}
                if column not in known:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            self._db.execute("COMMIT")

    def put(self, tickets: Sequence[ArchivedTicket]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(_upsert("?"), [_params(t) for t in tickets])
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def day(self, hall: str, day: str) -> list[ArchivedTicket]:
        with self._lock:
            rows = self._db.execute(_select("?"), (hall, day)).fetchall()
        return [_row(r) for r in rows]

    def put_audit(self, entries: Sequence[ArchivedAudit]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(_audit_upsert("?"), [_audit_params(a) for a in entries])
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def audit_day(self, hall: str, day: str) -> list[ArchivedAudit]:
        with self._lock:
            rows = self._db.execute(_audit_select("?"), (hall, day)).fetchall()
        return _audit_rows(rows)

    def close(self) -> None:
        with self._lock:
            self._db.close()


class PostgresArchive:
    """The archive in PostgreSQL, over one psycopg connection."""

    def __init__(self, url: str) -> None:
        import psycopg  # only needed, and only installed, where PostgreSQL is used

        # autocommit: every statement runs inside an explicit transaction() block,
        # so no implicit transaction is ever left open between calls.
        self._db = psycopg.connect(url, autocommit=True)
        self._lock = threading.Lock()
        with self._lock, self._db.transaction():
            for statement in _schema("DATE"):
                self._db.execute(statement)
            for table, column, kind in _ADDED:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {kind}")

    def put(self, tickets: Sequence[ArchivedTicket]) -> None:
        with self._lock, self._db.transaction(), self._db.cursor() as cur:
            # executemany runs in pipeline mode: one round trip per batch, not per row.
            cur.executemany(_upsert("%s"), [_pg_params(t) for t in tickets])

    def day(self, hall: str, day: str) -> list[ArchivedTicket]:
        with self._lock, self._db.transaction():
            rows = self._db.execute(_select("%s"), (hall, date.fromisoformat(day))).fetchall()
        return [_row(r) for r in rows]

    def put_audit(self, entries: Sequence[ArchivedAudit]) -> None:
        with self._lock, self._db.transaction(), self._db.cursor() as cur:
            cur.executemany(_audit_upsert("%s"), [_pg_audit_params(a) for a in entries])

    def audit_day(self, hall: str, day: str) -> list[ArchivedAudit]:
        with self._lock, self._db.transaction():
            query = _audit_select("%s")
            rows = self._db.execute(query, (hall, date.fromisoformat(day))).fetchall()
        return _audit_rows(rows)

    def close(self) -> None:
        with self._lock:
            self._db.close()
