"""The sweep: moves a hall's finished tickets of past days from Redis to the
archive (`archive_hall`), and copies its audit trail there (`archive_audit`).

Also the reads a report of the current day needs (`finished_tickets`,
`audit_entries`): what of one day is still in Redis, read only.

Besides `queue_core.store`, this is the only module that talks to Redis; it
is kept apart because it is a batch job over the whole tickets hash, not a
state change of the live hall. Order is what makes it safe: a batch is
written to the archive (committed) first and only then deleted from Redis,
so a crash in between leaves tickets in both places, and the next sweep
upserts them again. The delete is `forget.lua`, which removes a ticket only
if its JSON is unchanged since it was read, so a rating that lands between
read and delete is never lost.

Audit entries are copied, never deleted: the scripts trim the stream after
three days (`store.AUDIT_KEEP_MS`). A cursor in Redis (`HallKeys.audit_archived`)
holds the id of the latest entry copied; each copy reads past it with
XRANGE, upserts the batch, then moves the cursor forward, never back
(`audit_cursor.lua`), so replicas copying at once, or a crash before the
cursor moved, only copy some entries twice, which the upsert absorbs.
"""

from __future__ import annotations

import asyncio
import json
from datetime import date, datetime, time
from importlib.resources import files
from typing import cast

from queue_core.archive import (
    FINAL_STATUSES,
    Archive,
    ArchivedAudit,
    ArchivedTicket,
    archived,
    archived_audit,
    audit_id_key,
    local_day,
)
from queue_core.config import HallConfig
from queue_core.keys import HallKeys
from queue_core.redis_client import RedisClient, guarded, register_script
from queue_core.store import parse_audit, ticket_from_json

_FORGET = (files("queue_core") / "archive" / "forget.lua").read_text(encoding="utf-8")
_AUDIT_CURSOR = (files("queue_core") / "archive" / "audit_cursor.lua").read_text(encoding="utf-8")
_FINAL = frozenset(s.value for s in FINAL_STATUSES)

DEFAULT_BATCH = 500


async def archive_hall(
    redis: RedisClient,
    config: HallConfig,
    archive: Archive,
    before_day: date,
    *,
    batch: int = DEFAULT_BATCH,
) -> int:
    """Archive every finished ticket of the hall issued on a local day before
    `before_day`, then delete it from Redis; return how many were archived.

    Waiting and called tickets are never touched, whatever their day. Reads
    the hash with HSCAN (no blocking of Redis on a big hall), writes `batch`
    tickets per archive transaction in a worker thread, then deletes them.
    A ticket rated after it was read is archived but stays in Redis until
    the next sweep; run the sweep again at any time, it is idempotent.
    """
    keys = HallKeys(config.id)
    forget = register_script(redis, _FORGET)
    cutoff = before_day.isoformat()
    pending: list[tuple[ArchivedTicket, str]] = []  # (row, the JSON it was read from)
    seen: set[str] = set()  # HSCAN may return a field twice while the hash changes
    total = 0

    async def flush() -> None:
        nonlocal total
        rows = [row for row, _ in pending]
        await asyncio.to_thread(archive.put, rows)
        args: list[str] = []
        for row, raw in pending:
            args += [row.id, raw]
        await guarded(forget(keys=[keys.tickets], args=args))
        total += len(pending)
        pending.clear()

    # Deleting fields while HSCAN walks the hash is safe: SCAN still returns
    # every field present for the whole walk, at least once.
    async for tid, raw in redis.hscan_iter(keys.tickets, count=batch):
        if tid in seen:
            continue
        seen.add(tid)
        data = json.loads(raw)
        if data.get("status") not in _FINAL:
            continue
        if local_day(int(data["issued"]), config.timezone) >= cutoff:
            continue
        pending.append((archived(config.id, config.timezone, ticket_from_json(data)), str(raw)))
        if len(pending) >= batch:
            await flush()
    if pending:
        await flush()
    return total


async def finished_tickets(
    redis: RedisClient, config: HallConfig, day: date, *, count: int = DEFAULT_BATCH
) -> list[ArchivedTicket]:
    """The hall's finished tickets issued on local `day` that are still in
    Redis, as archive rows (by issue time); Redis is only read.

    HSCAN, like the sweep, so a big hash never blocks Redis; a lost
    connection is `Unavailable`. Read this *before* the archive: a ticket
    the sweep deletes meanwhile was committed to the archive before it left
    Redis, so the later archive read has it, and nothing falls in between.
    """
    keys = HallKeys(config.id)
    wanted = day.isoformat()
    found: dict[str, ArchivedTicket] = {}  # by id: HSCAN may return a field twice
    cursor = 0
    while True:
        cursor, chunk = await guarded(redis.hscan(keys.tickets, cursor, count=count))
        for raw in cast(dict[str, str], chunk).values():
            data = json.loads(raw)
            if data.get("status") not in _FINAL:
                continue
            if local_day(int(data["issued"]), config.timezone) != wanted:
                continue
            row = archived(config.id, config.timezone, ticket_from_json(data))
            found[row.id] = row
        if cursor == 0:
            return sorted(found.values(), key=lambda t: (t.issued_ms, t.id))


async def archive_audit(
    redis: RedisClient, config: HallConfig, archive: Archive, *, batch: int = DEFAULT_BATCH
) -> int:
    """Copy the hall's audit entries newer than its cursor (`audit_archived`)
    to the archive, `batch` per transaction, moving the cursor after each;
    return how many were copied. Redis keeps them until its trim.

    Idempotent and safe to run on every replica at once: two copies of the
    same entries upsert the same rows, and the cursor only moves forward.
    """
    keys = HallKeys(config.id)
    advance = register_script(redis, _AUDIT_CURSOR)
    cursor = await guarded(redis.get(keys.audit_archived))
    low = "-" if cursor is None else f"({_text(cursor)}"
    total = 0
    while True:
        raw = await guarded(redis.xrange(keys.audit, low, "+", count=batch))
        entries = parse_audit(raw)
        if not entries:
            return total
        rows = [archived_audit(config.id, config.timezone, e) for e in entries]
        await asyncio.to_thread(archive.put_audit, rows)
        last = entries[-1].id
        await guarded(advance(keys=[keys.audit_archived], args=[last]))
        total += len(rows)
        if len(entries) < batch:
            return total
        low = f"({last}"


async def audit_entries(
    redis: RedisClient, config: HallConfig, day: date, *, count: int = DEFAULT_BATCH
) -> list[ArchivedAudit]:
    """The hall's audit entries made on local `day` that are still in Redis,
    as archive rows (by id); Redis is only read.

    An entry's id is never earlier than its `at` (the scripts keep ids
    rising when a clock lags), so the read starts at the day's first
    millisecond; it runs to the stream's end (at most three days), since a
    replica's clock running ahead may give later ids to the day's entries.
    """
    keys = HallKeys(config.id)
    wanted = day.isoformat()
    start = datetime.combine(day, time(), config.timezone)
    low = f"{int(start.timestamp() * 1000)}-0"
    found: list[ArchivedAudit] = []
    while True:
        raw = await guarded(redis.xrange(keys.audit, low, "+", count=count))
        entries = parse_audit(raw)
        found += (
            archived_audit(config.id, config.timezone, e)
            for e in entries
            if local_day(e.at_ms, config.timezone) == wanted
        )
        if len(entries) < count:
            return sorted(found, key=lambda a: audit_id_key(a.id))
        low = f"({entries[-1].id}"


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
