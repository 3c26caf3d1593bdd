"""The hall's event log (a capped Redis stream), read for screens.

Entry ids are `<seq>-0`, so "every event after seq N" is a plain XRANGE or
XREAD from `N-0`. Blocking reads go through a client of their own (see
`redis_client.create_blocking_reader`): a read that waits on the server for
seconds must neither hold a pooled connection nor trip the pool's socket
timeout.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from queue_core.keys import HallKeys
from queue_core.models import NORMAL, Event, EventType, WindowStatus
from queue_core.reasons import CallReason
from queue_core.redis_client import RedisClient, guarded

__all__ = ["EventLog", "parse_event"]


def parse_event(entry_id: str, fields: Mapping[str, str]) -> Event:
    """One stream entry as an `Event` (pure: no Redis here)."""
    seq = int(entry_id.split("-", 1)[0])
    status = fields.get("status")
    return Event(
        seq=seq,
        type=EventType(fields["type"]),
        at_ms=int(fields["at"]),
        number=fields.get("number") or None,
        window=fields.get("window") or None,
        service=fields.get("service") or None,
        waiting={g: int(n) for g, n in json.loads(fields.get("waiting") or "{}").items()},
        status=WindowStatus(status) if status else None,
        reason=(
            CallReason(
                fields["reason"], int(fields.get("ahead") or 0), fields.get("class") or NORMAL
            )
            if fields.get("reason")
            else None
        ),
    )


def _reason(fields: Mapping[str, str]) -> CallReason | None:
    if not fields.get("reason"):
        return None
    ahead = int(fields.get("ahead") or 0)
    return CallReason(fields["reason"], ahead, fields.get("class") or NORMAL)


def _events(entries: Sequence[Any] | None) -> list[Event]:
    return [parse_event(str(eid), fields) for eid, fields in entries or []]


class EventLog:
    """Reads one hall's event stream.

    `redis` serves the short reads; `reader` the blocking ones (give each
    hall's log a reader of its own: a blocked read holds its connection).
    Connection trouble surfaces as `Unavailable`.
    """

    def __init__(self, redis: RedisClient, reader: RedisClient, hall: str) -> None:
        self.keys = HallKeys(hall)
        self._redis = redis
        self._reader = reader

    async def latest(self, count: int) -> tuple[int, list[Event]]:
        """The hall's current event number and its last `count` events, oldest first."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(self.keys.seq)
            pipe.xrevrange(self.keys.events, count=count)
            seq, entries = await guarded(pipe.execute())
        return int(seq or 0), list(reversed(_events(entries)))

    async def current_seq(self) -> int:
        return int(await guarded(self._redis.get(self.keys.seq)) or 0)

    async def after(self, seq: int, count: int) -> list[Event]:
        """Up to `count` events with a number above `seq`, oldest first."""
        entries = await guarded(self._redis.xrange(self.keys.events, min=f"({seq}-0", count=count))
        return _events(entries)

    async def wait_after(self, seq: int, block_ms: int, count: int = 1000) -> list[Event]:
        """Events after `seq`, waiting up to `block_ms` for the first one
        (an empty list when none came)."""
        reply: Any = await guarded(
            self._reader.xread({self.keys.events: f"{seq}-0"}, count=count, block=block_ms)
        )
        if not reply:
            return []
        # RESP3 (ours) answers {stream: [entries]}; RESP2 [[stream, entries]].
        entries = next(iter(reply.values()))[0] if isinstance(reply, dict) else reply[0][1]
        return _events(entries)
