"""Many clients at once: numbers stay unique, each ticket is called once, nothing is lost."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest

from queue_core.models import TicketStatus, WindowStatus
from queue_core.redis_client import create_redis
from queue_core.scripts import Scripts
from queue_core.store import HallStore
from tests.conftest import HallFactory, stream_events

pytestmark = pytest.mark.redis

ISSUERS = 8
WINDOWS = 8
PER_ISSUER = 500
SERVICES = ["social-security", "housing-fund", "business-licence"]
PRIORITIES = ["normal", "normal", "normal", "elderly", "disabled"]


async def test_8_issuers_and_8_windows_at_once(hall_factory: HallFactory, redis_url: str) -> None:
    kit = await hall_factory(extra_windows=WINDOWS, stream_maxlen=1_000_000)
    # A client (and so a connection) of its own for every issuer and every
    # window, so their commands really are in flight at the same time.
    clients = [create_redis(redis_url, max_connections=1) for _ in range(ISSUERS + WINDOWS)]
    stores = [
        HallStore(c, Scripts.register(c), kit.config, stream_maxlen=1_000_000) for c in clients
    ]
    windows = [f"w{i}" for i in range(1, WINDOWS + 1)]
    for w in windows:
        await kit.store.set_window(w, WindowStatus.OPEN)

    issued: list[tuple[str, str]] = []
    called: list[str] = []
    issuing_done = asyncio.Event()

    async def issuer(store: HallStore, seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(PER_ISSUER):
            result = await store.issue(rng.choice(SERVICES), rng.choice(PRIORITIES))
            issued.append((result.value.ticket.id, result.value.ticket.number))

    async def window(store: HallStore, window_id: str) -> None:
        # Bounded: if tickets were called twice the loop must still end, and fail below.
        for _ in range(2 * ISSUERS * PER_ISSUER):
            result = await store.call_next(window_id)
            if result.value is not None:
                assert result.value.ticket.window == window_id
                called.append(result.value.ticket.id)
                if len(called) > ISSUERS * PER_ISSUER:
                    return
            elif issuing_done.is_set():
                return
            else:
                await asyncio.sleep(0)  # let issuers run; the loop ends on the event

    async def issue_all() -> None:
        await asyncio.gather(*(issuer(s, i) for i, s in enumerate(stores[:ISSUERS])))
        issuing_done.set()

    try:
        await asyncio.gather(
            issue_all(), *(window(s, w) for s, w in zip(stores[ISSUERS:], windows, strict=True))
        )
        # The last ticket at each window is completed by closing it.
        for w in windows:
            await kit.store.set_window(w, WindowStatus.CLOSED)
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))

    total = ISSUERS * PER_ISSUER
    numbers = [n for _, n in issued]
    assert len(issued) == total
    assert len(set(numbers)) == total, "a number was issued twice"
    # Prefix A is shared by two services: one counter, so A001..A<n> without gaps.
    a_numbers = sorted(int(n[1:]) for n in numbers if n.startswith("A"))
    assert a_numbers == list(range(1, len(a_numbers) + 1))
    assert sorted(called) == sorted(tid for tid, _ in issued), "a ticket was lost or called twice"

    events = await stream_events(kit.redis, kit.keys)
    types = Counter(fields["type"] for _, fields in events)
    assert types["issued"] == total
    assert types["called"] == total
    assert types["completed"] == total
    assert types["window"] == 2 * WINDOWS
    seqs = [int(eid.split("-")[0]) for eid, _ in events]
    assert seqs == list(range(1, len(events) + 1)), "event numbers must rise by exactly one"

    snap = await kit.store.snapshot()
    assert snap.seq == len(events)
    assert all(n == 0 for n in snap.waiting_by_group.values())
    assert all(n == 0 for n in snap.waiting_by_service.values())
    sample = await kit.store.ticket(issued[0][0])
    assert sample.ticket.status is TicketStatus.COMPLETED


async def test_concurrent_retries_with_one_idempotency_key_call_one_person(
    hall_factory: HallFactory, redis_url: str
) -> None:
    kit = await hall_factory()
    for _ in range(5):
        await kit.store.issue("social-security")
    await kit.store.set_window("2", WindowStatus.OPEN)
    clients = [create_redis(redis_url, max_connections=1) for _ in range(16)]
    try:
        stores = [
            HallStore(c, Scripts.register(c), kit.config, clock=lambda: kit.store.now_ms() / 1000)
            for c in clients
        ]
        results = await asyncio.gather(*(s.call_next("2", "same-click") for s in stores))
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    ids = {r.value.ticket.id for r in results if r.value is not None}
    assert len(ids) == 1
    assert sum(not r.replayed for r in results) == 1
    assert (await kit.store.snapshot()).waiting_by_group["natural"] == 4
