"""What lies under the HTTP figures: issue and call-next driven straight
through qms's store, in this process (redis.asyncio + hiredis, no HTTP), and
what each operation costs Redis itself.

Two figures come out of one phase:

- **qms without HTTP**: operations per second one Python process gets when
  it does exactly what a request handler does after parsing the request
  (the store's script call, its reply parsed into a ticket, and for an issue
  the hall monitor's estimate noted), `concurrency` at a time. This is the
  ceiling an HTTP process can approach. A poll is a visitor's phone asking
  for its waiting ticket (`GET /tickets/{id}`: the ticket script and the
  estimate table). A refresh is the hall monitor reading the whole hall
  (the first 500 waiting per group, the last hour's calls) and rebuilding
  its estimates and figures, which `qms serve` does at most every 2 s per
  hall that is asked for ETAs, and every metrics interval per hall for the
  gauges; it is measured on fresh halls of a given size (`RefreshCase`).
- **the Redis limit**: Redis's own CPU time per operation (`/proc`, user +
  system, over the phase), turned into the operations per second one fully
  busy Redis core would do. It counts everything Redis does for the
  operation (reading the command, the script, the AOF write, the reply), so
  it is a conservative limit: a saturated Redis reads several commands per
  wake-up and does a little better. `INFO commandstats` gives the script
  time alone (`script_us`), the optimistic bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import uvloop

from dispatcher.monitor import HallMonitor
from loadtests.serve_process import cpu_seconds, percentile
from queue_core.auth import Credentials
from queue_core.config import load_hall_config
from queue_core.models import WindowStatus
from queue_core.operations import Hall, staff_reply, ticket_reply
from queue_core.presence import PresenceStore
from queue_core.redis_client import RedisClient, create_redis
from queue_core.scripts import Scripts
from queue_core.store import HallStore
from queue_core.wire import ticket_body

__all__ = ["RefreshCase", "StorePhase", "measure_store"]

StoreOp = Literal["issue", "poll", "call_next", "refresh"]


@dataclass(frozen=True, slots=True)
class StorePhase:
    op: StoreOp
    concurrency: int
    operations: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    redis_cpu_pct: float | None
    """Redis's CPU over the phase, % of one core."""
    redis_cpu_us: float | None
    """Redis CPU per operation, µs."""
    redis_limit_rps: float | None
    """1 core / `redis_cpu_us`: what Redis alone could do."""
    script_us: float | None
    """Time inside the scripts per operation (INFO commandstats)."""
    client_cpu_pct: float
    waiting: int | None = None
    """For a refresh: tickets waiting in the hall."""
    calls_last_hour: int | None = None
    """For a refresh: calls in the last hour (the dashboard's wait figures)."""
    redis_bytes: int | None = None
    """For a refresh: what the hall's keys take in Redis (MEMORY USAGE)."""


@dataclass(frozen=True, slots=True)
class RefreshCase:
    """A hall (its own config and id) to fill and then refresh."""

    config_path: Path
    waiting: int
    calls_last_hour: int


async def _script_usec(store: HallStore) -> tuple[int, int]:
    """(calls, usec) of EVALSHA so far, from INFO commandstats."""
    stats: dict[str, Any] = await store.redis.info("commandstats")
    entry = stats.get("cmdstat_evalsha") or {}
    return int(entry.get("calls", 0)), int(entry.get("usec", 0))


async def _run(
    count: int, concurrency: int, one: Callable[[int], Awaitable[object]]
) -> tuple[list[float], float]:
    latencies: list[float] = []
    next_i = 0

    async def worker() -> None:
        nonlocal next_i
        while next_i < count:
            i = next_i
            next_i += 1
            t0 = time.perf_counter()
            await one(i)
            latencies.append((time.perf_counter() - t0) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - started


ISSUED_KEPT = 2_000
REFRESHES = 300


async def _measure(
    hall: Hall,
    monitor: HallMonitor,
    op: StoreOp,
    count: int,
    concurrency: int,
    redis_pid: int | None,
    issued: list[str],
) -> StorePhase:
    """What the request handler does after parsing, short of the JSON text."""
    tag = f"{op}-{concurrency}-{time.monotonic_ns()}"
    store, config = hall.store, hall.config
    windows = [w.id for w in config.windows]
    services = [s.id for s in config.services]

    async def issue(i: int) -> None:
        result = await store.issue(services[i % len(services)], idempotency=f"{tag}-{i}")
        ticket_body(result.value, config, await hall.monitor.issued(result))
        if len(issued) < ISSUED_KEPT:
            issued.append(result.value.ticket.id)

    async def poll(i: int) -> None:
        await ticket_reply(hall, await store.ticket(issued[i % len(issued)]))

    async def call_next(i: int) -> None:
        result = await store.call_next(windows[i % len(windows)], idempotency=f"{tag}-{i}")
        if result.value is None:
            raise RuntimeError("call-next found nobody waiting: the bench issued too few")
        await staff_reply(hall, result.value)

    async def refresh(i: int) -> None:
        await monitor.refresh()

    one = {"issue": issue, "poll": poll, "call_next": call_next, "refresh": refresh}[op]
    calls0, usec0 = await _script_usec(store)
    redis0, cpu0 = cpu_seconds(redis_pid), time.process_time()
    latencies, elapsed = await _run(count, concurrency, one)
    redis1, cpu1 = cpu_seconds(redis_pid), time.process_time()
    calls1, usec1 = await _script_usec(store)
    latencies.sort()
    redis_cpu = None if redis0 is None or redis1 is None else redis1 - redis0
    # Less than one clock tick (10 ms) of Redis CPU is below what /proc can tell.
    per_op_us = None if not redis_cpu else redis_cpu / count * 1e6
    return StorePhase(
        op=op,
        concurrency=concurrency,
        operations=count,
        seconds=round(elapsed, 3),
        rps=round(count / elapsed, 1),
        p50_ms=round(percentile(latencies, 50), 2),
        p99_ms=round(percentile(latencies, 99), 2),
        redis_cpu_pct=None if redis_cpu is None else round(100 * redis_cpu / elapsed, 1),
        redis_cpu_us=None if per_op_us is None else round(per_op_us, 1),
        redis_limit_rps=None if not per_op_us else round(1e6 / per_op_us),
        script_us=round((usec1 - usec0) / count, 1) if calls1 > calls0 else None,
        client_cpu_pct=round(100 * (cpu1 - cpu0) / elapsed, 1),
    )


async def _measure_all(
    redis_url: str,
    config_path: Path,
    count: int,
    concurrencies: tuple[int, ...],
    redis_pid: int | None,
    refresh_cases: Sequence[RefreshCase],
) -> list[StorePhase]:
    config = load_hall_config(config_path)
    redis = create_redis(redis_url, max_connections=max(concurrencies) + 2)
    try:
        scripts = Scripts.register(redis)
        store = HallStore(redis, scripts, config)
        # As `qms serve` runs it: estimates from a read at most 2 s old.
        monitor = HallMonitor(
            store, PresenceStore(redis, scripts, config.id, ttl_s=45), max_age_s=2.0
        )
        hall = Hall(config, store, Credentials(config.credentials), monitor)
        for w in config.windows:
            await store.set_window(w.id, WindowStatus.OPEN)
        phases: list[StorePhase] = []
        try:
            for c in concurrencies:
                issued: list[str] = []
                for op in ("issue", "poll", "call_next"):
                    phases.append(await _measure(hall, monitor, op, count, c, redis_pid, issued))
        finally:
            await monitor.aclose()
        for case in refresh_cases:
            phases.append(await _refresh_phase(redis, scripts, case, redis_pid))
        return phases
    finally:
        with contextlib.suppress(Exception):
            await redis.aclose()


async def _refresh_phase(
    redis: RedisClient, scripts: Scripts, case: RefreshCase, redis_pid: int | None
) -> StorePhase:
    """Fill a fresh hall to `case`'s size, then time the monitor's reads of it."""
    config = load_hall_config(case.config_path)
    store = HallStore(redis, scripts, config)
    monitor = HallMonitor(store, PresenceStore(redis, scripts, config.id, ttl_s=45), max_age_s=0)
    hall = Hall(config, store, Credentials(config.credentials), monitor)
    windows = [w.id for w in config.windows]
    services = [s.id for s in config.services]
    for w in windows:
        await store.set_window(w, WindowStatus.OPEN)
    fill = case.waiting + case.calls_last_hour
    await _run(fill, 16, lambda i: store.issue(services[i % len(services)]))
    await _run(case.calls_last_hour, 16, lambda i: store.call_next(windows[i % len(windows)]))
    try:
        phase = await _measure(hall, monitor, "refresh", REFRESHES, 1, redis_pid, [])
    finally:
        await monitor.aclose()
    used = 0
    async for key in redis.scan_iter(match=f"qms:{{{config.id}}}:*", count=500):
        used += int(await redis.memory_usage(key, samples=0) or 0)
    return replace(
        phase, waiting=case.waiting, calls_last_hour=case.calls_last_hour, redis_bytes=used
    )


def measure_store(
    redis_url: str,
    config_path: Path,
    *,
    count: int,
    concurrencies: tuple[int, ...],
    redis_pid: int | None,
    refresh_cases: Sequence[RefreshCase] = (),
) -> list[StorePhase]:
    """Issue `count` tickets, poll `count` times, then call `count` of them, at
    each concurrency, on the hall of `config_path` (its windows opened first;
    its queues must be empty at the start and are empty again at the end).
    Then fill each refresh case's hall and time the monitor's reads of it."""
    # uvloop, as `qms serve` runs.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(
            _measure_all(redis_url, config_path, count, concurrencies, redis_pid, refresh_cases)
        )
