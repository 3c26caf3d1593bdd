"""The two archive backends: SQLite (stdlib) and PostgreSQL (psycopg 3).

Both speak the same SQL apart from the placeholder and the type of `day`;
`INSERT … ON CONFLICT (hall, id) DO UPDATE` is the upsert both understand
(SQLite from 3.24). Column names avoid SQL keywords (`group` and, in
PostgreSQL, `window` are reserved), so no statement needs quoting.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from queue_core.archive import ArchivedTicket
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
)
_KEY = ("hall", "id")
_NAMES = ", ".join(c for c, _ in _COLUMNS)
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
            PRIMARY KEY (hall, id)
        )""",
        "CREATE INDEX IF NOT EXISTS tickets_hall_day ON tickets (hall, day)",
    )


def _upsert(placeholder: str) -> str:
    values = ", ".join(placeholder for _ in _COLUMNS)
    updates = ", ".join(f"{c} = excluded.{c}" for c, _ in _COLUMNS if c not in _KEY)
    return (
        f"INSERT INTO tickets ({_NAMES}) VALUES ({values}) "
        f"ON CONFLICT (hall, id) DO UPDATE SET {updates}"
    )


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

    def put(self, tickets: Sequence[ArchivedTicket]) -> None:
        with self._lock, self._db.transaction(), self._db.cursor() as cur:
            # executemany runs in pipeline mode: one round trip per batch, not per row.
            cur.executemany(_upsert("%s"), [_pg_params(t) for t in tickets])

    def day(self, hall: str, day: str) -> list[ArchivedTicket]:
        with self._lock, self._db.transaction():
            rows = self._db.execute(_select("%s"), (hall, date.fromisoformat(day))).fetchall()
        return [_row(r) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()
