"""The sender: posts each hall's outbox to its gateway, signed, and settles
every delivery as sent, to retry, or given up.

Every replica runs one. A change made by this replica wakes it at once
(the store's outbox hook); a sweep every `sweep_s` takes what other
replicas appended and what is due for a retry, so deliveries of a replica
that died are sent by the others. A delivery taken is leased (see
`queue_core.outbox`) for longer than a post can take, so two senders never
post one delivery at the same time; a sender that dies mid-post leaves a
lease that runs out, and the delivery goes again: at least once, with the
same `id` for the receiver to deduplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx

from notify.payload import delivery_body, encode
from notify.retry import RetryPolicy, Verdict, verdict
from notify.signature import HEADER, sign
from queue_core import metrics
from queue_core.config import HallConfig
from queue_core.errors import QmsError
from queue_core.outbox import Delivery, Outbox

log = logging.getLogger("qms.notify")

TIMEOUT_S = 5.0
"""The longest one post may take (connect, send, answer)."""
LEASE_S = 3 * TIMEOUT_S
"""How long a taken delivery is this sender's: well past the longest post."""


@dataclass(frozen=True, slots=True)
class HallOutbox:
    """A hall with a gateway: its config (`[notify]`), outbox and key."""

    config: HallConfig
    outbox: Outbox
    secret: bytes


def still_wanted(d: Delivery) -> bool:
    """Whether telling the visitor still makes sense: "ahead" while the
    ticket waits, "called" while it is at the window. An expired, cancelled
    or finished ticket gets nothing more."""
    return d.ticket_status == ("waiting" if d.kind == "ahead" else "called")


class Sender:
    def __init__(
        self,
        halls: Mapping[str, HallOutbox],
        http: httpx.AsyncClient,
        *,
        clock: Callable[[], float] = time.time,
        policy: RetryPolicy | None = None,
        sweep_s: float = 2.0,
        batch: int = 32,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.halls = dict(halls)
        self.http = http
        self.clock = clock
        self.policy = policy or RetryPolicy()
        self.sweep_s = sweep_s
        self.batch = batch
        self.rand = rand
        self._woken: set[str] = set()
        self._wake = asyncio.Event()

    def wake(self, hall: str) -> None:
        """A change of this replica appended deliveries for `hall`."""
        if hall in self.halls:
            self._woken.add(hall)
            self._wake.set()

    async def run(self) -> None:
        """Send until cancelled: woken halls at once, every hall each sweep."""
        next_sweep = 0.0
        while True:
            timeout = max(0.0, next_sweep - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            halls, self._woken = self._woken, set()
            sweep = time.monotonic() >= next_sweep
            if sweep:
                halls = set(self.halls)
                next_sweep = time.monotonic() + self.sweep_s
            for hall in halls:
                await self._drain_logged(hall, gauges=sweep)

    async def drain(self, hall: str) -> int:
        """Post every delivery of `hall` due now; how many were taken."""
        h = self.halls[hall]
        taken = 0
        while True:
            now_ms = self._now_ms()
            batch = await h.outbox.take(now_ms, round(LEASE_S * 1000), self.batch)
            results = await asyncio.gather(
                *(self._deliver(h, d) for d in batch), return_exceptions=True
            )
            for r in results:  # every post settled or failed first; then say why
                if isinstance(r, BaseException):
                    raise r
            taken += len(batch)
            if len(batch) < self.batch:
                return taken

    async def record_backlog(self, hall: str) -> None:
        backlog = await self.halls[hall].outbox.backlog()
        metrics.NOTIFY_PENDING.labels(hall).set(backlog.count)
        oldest = backlog.oldest_at_ms
        age = 0.0 if oldest is None else max(0.0, self.clock() - oldest / 1000)
        metrics.NOTIFY_OLDEST.labels(hall).set(age)

    async def _drain_logged(self, hall: str, *, gauges: bool) -> None:
        # Redis away or a bug: log it and carry on; the next sweep tries again.
        try:
            await self.drain(hall)
            if gauges:
                await self.record_backlog(hall)
        except QmsError as exc:
            log.warning("notify: hall %s: %s", hall, exc.message)
        except Exception:
            log.exception("notify: hall %s: sending failed", hall)

    async def _deliver(self, h: HallOutbox, d: Delivery) -> None:
        hall = h.config.id
        if not still_wanted(d):
            await h.outbox.done(d.id)
            metrics.NOTIFICATIONS.labels(hall, d.kind, "dropped").inc()
            return
        body = encode(delivery_body(h.config, d))
        status: int | None = None
        problem = ""
        try:
            answer = await self.http.post(
                h.config.notify.url,
                content=body,
                headers={
                    "Content-Type": "application/json",
                    HEADER: sign(h.secret, body),
                    "X-QMS-Delivery": f"{hall}-{d.id}",
                },
            )
            status = answer.status_code
        except httpx.HTTPError as exc:
            problem = type(exc).__name__
        now_ms = self._now_ms()
        result = verdict(status)
        label = result.value
        if result is Verdict.SENT:
            await h.outbox.done(d.id)
            metrics.NOTIFY_DELAY.labels(hall, d.kind).observe(max(0, now_ms - d.at_ms) / 1000)
        elif result is Verdict.REJECTED:
            log.warning(
                "notify: hall %s delivery %s refused by the gateway: %s", hall, d.id, status
            )
            await h.outbox.dead(d.id, f"rejected {status}")
        else:
            at = self.policy.next_attempt_ms(d.at_ms, now_ms, d.tries + 1, self.rand)
            if at is None:
                log.warning("notify: hall %s delivery %s given up after an hour", hall, d.id)
                await h.outbox.dead(d.id, "expired")
                label = "expired"
            else:
                log.info(
                    "notify: hall %s delivery %s failed (%s); retry in %.1f s",
                    hall, d.id, status or problem, (at - now_ms) / 1000,
                )  # fmt: skip
                await h.outbox.retry(d.id, at)
        metrics.NOTIFICATIONS.labels(hall, d.kind, label).inc()

    def _now_ms(self) -> int:
        return round(self.clock() * 1000)
