"""A hall's outbox of notifications in Redis: what the sender takes, and
how each delivery is settled.

Deliveries are appended by the scripts that change the hall (`_lib.lua`,
`outbox`), so none is lost or invented by a crash between a change and its
send. Senders on every replica share one consumer group: a new delivery
goes to one of them. Retries and leases are kept on qms's clock (a sorted
set of due times), not on Redis's idle times, so a test can move time and
a sender that died mid-send leaves a lease that runs out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from queue_core.keys import HallKeys
from queue_core.redis_client import RedisClient
from queue_core.scripts import Scripts
from queue_core.store import timed

OUTBOX_GROUP = "senders"
"""The consumer group every replica's sender reads the outbox through."""

DEAD_KEEP = 10_000
"""Dead letters kept per hall (approximately): enough to see what failed."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One notification to post, as the outbox holds it."""

    id: str
    """The outbox entry id: stable across retries, so the receiver can
    deduplicate by it."""
    ticket: str
    kind: str
    """"ahead" or "called"."""
    ahead: int
    number: str
    service: str
    window: str | None
    to: str
    via: str
    """"phone" or "channel"."""
    at_ms: int
    """When the change that caused it happened (qms's clock)."""
    tries: int
    """Failed attempts so far."""
    ticket_status: str
    """The ticket's status when taken ('' once it is gone from Redis)."""


@dataclass(frozen=True, slots=True)
class Backlog:
    """What is undelivered: how many, and since when (None: nothing)."""

    count: int
    oldest_at_ms: int | None


class Outbox:
    """One hall's outbox, for one sender (`consumer`, unique per process)."""

    def __init__(self, redis: RedisClient, scripts: Scripts, hall: str, consumer: str) -> None:
        self.redis = redis
        self.keys = HallKeys(hall)
        self._scripts = scripts
        self.consumer = consumer

    async def take(self, now_ms: int, lease_ms: int, limit: int) -> list[Delivery]:
        """Deliveries due now (retries first, then new ones), each leased to
        this sender until `now_ms + lease_ms`."""
        k = self.keys
        raw = await self._call(
            self._scripts["outbox_take"](
                keys=[k.outbox, k.outbox_due, k.outbox_tries, k.tickets],
                args=[OUTBOX_GROUP, self.consumer, now_ms, lease_ms, limit],
            ),
            "outbox_take",
        )
        return [_delivery(d) for d in json.loads(raw)]

    async def done(self, delivery_id: str) -> bool:
        """Delivered, or no longer worth sending: gone from the outbox, with
        whom it was for. False when another sender had settled it already."""
        return await self._settle(delivery_id, "done")

    async def retry(self, delivery_id: str, at_ms: int) -> bool:
        """A failed attempt: posted again from `at_ms`."""
        return await self._settle(delivery_id, "retry", at_ms)

    async def dead(self, delivery_id: str, why: str) -> bool:
        """Given up (`why`: "expired" after the hour, or "rejected" by the
        gateway): kept among the dead letters, without whom it was for."""
        return await self._settle(delivery_id, "dead", why=why)

    async def backlog(self) -> Backlog:
        """How many deliveries are undelivered, and the oldest one's time
        (delivered ones are deleted, so the stream's first entry is it)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xlen(self.keys.outbox)
            pipe.xrange(self.keys.outbox, count=1)
            count, first = await self._call(pipe.execute(), "outbox_backlog")
        oldest = None
        if first:
            fields = {_text(k): _text(v) for k, v in first[0][1].items()}
            oldest = int(fields["at"])
        return Backlog(int(count), oldest)

    async def dead_letters(self, limit: int = 100) -> list[dict[str, str]]:
        """The latest dead letters, newest first."""
        raw = await self._call(self.redis.xrevrange(self.keys.outbox_dead, count=limit))
        return [{"entry": _text(i)} | {_text(k): _text(v) for k, v in f.items()} for i, f in raw]

    async def _settle(self, delivery_id: str, how: str, at_ms: int = 0, why: str = "") -> bool:
        k = self.keys
        settled = await self._call(
            self._scripts["outbox_settle"](
                keys=[k.outbox, k.outbox_due, k.outbox_tries, k.outbox_dead],
                args=[OUTBOX_GROUP, delivery_id, how, at_ms, why, DEAD_KEEP],
            ),
            "outbox_settle",
        )
        return bool(settled)

    async def _call(self, awaitable: Any, name: str = "other") -> Any:
        return await timed(awaitable, name)


def _delivery(d: dict[str, Any]) -> Delivery:
    f = d["f"]
    return Delivery(
        id=d["id"],
        ticket=f["ticket"],
        kind=f["kind"],
        ahead=int(f["ahead"]),
        number=f["number"],
        service=f["service"],
        window=f.get("window") or None,
        to=f["to"],
        via=f["via"],
        at_ms=int(f["at"]),
        tries=int(d.get("tries") or 0),
        ticket_status=str(d.get("status") or ""),
    )


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
