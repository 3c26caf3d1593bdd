"""What each dispatch rule and window order costs per call-next, in Redis.

    python -m loadtests.dispatch_cost [--tickets 3000] [--json PATH]

Starts its own redis-server (the bundled one, `appendfsync everysec`), then
for each rule and order fills a fresh hall (3 groups, 30 windows serving two
groups each, a mix of 80% normal, 15% elderly and 5% disabled tickets),
opens its windows and calls every ticket, one call at a time. It reports
Redis's own CPU per call-next (`INFO commandstats`, the EVALSHA time per
call) and the client's p50 and p99, and divides the Redis time by that of a
raw read measured in the same run (an EVALSHA of `ZRANGE queue 0 0`), so
runs on different machines compare.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from loadtests.serve_process import percentile
from qms.embedded_redis import EmbeddedRedis
from queue_core.config import load_hall_config
from queue_core.keys import HallKeys
from queue_core.models import WindowStatus
from queue_core.redis_client import RedisClient, create_redis
from queue_core.scripts import Scripts
from queue_core.store import HallStore

CASES = (("credit", "place"), ("fifo", "place"), ("ratio", "place"), ("credit", "groups"),
         ("ratio", "groups"))  # fmt: skip
GROUPS = ("natural", "legal", "police")
CLASSES = ("normal",) * 16 + ("elderly",) * 3 + ("disabled",)
RAW = "return redis.call('ZRANGE', KEYS[1], 0, 0)"


@dataclass
class Cost:
    rule: str
    order: str
    calls: int
    redis_us_per_call: float
    of_raw: float
    p50_ms: float
    p99_ms: float


def hall_toml(hall: str, rule: str, order: str) -> str:
    text = f'[hall]\nid = "{hall}"\nname = "调度成本"\ntimezone = "Asia/Shanghai"\n\n'
    text += "[priority]\nelderly = 20\ndisabled = 20\n\n"
    text += f'[dispatch]\nrule = "{rule}"\n'
    for n, g in enumerate(GROUPS):
        text += f'\n[[group]]\nid = "{g}"\nname = "{g}"\n'
        text += f'\n[[service]]\nid = "s-{g}"\nname = "{g}"\ngroup = "{g}"\n'
        text += f'prefix = "{"ACD"[n]}"\nexpected_minutes = 10\n'
    for w in range(1, 31):
        first, second = GROUPS[w % 3], GROUPS[(w + 1) % 3]
        text += f'\n[[window]]\nid = "{w}"\nname = "{w}号窗口"\n'
        text += f'groups = ["{first}", "{second}"]\norder = "{order}"\n'
    return text


async def _evalsha_usec(redis: RedisClient) -> tuple[int, float]:
    stats: dict[str, Any] = await redis.info("commandstats")
    entry = stats.get("cmdstat_evalsha") or {}
    return int(entry.get("calls", 0)), float(entry.get("usec", 0))


async def measure(redis: RedisClient, workdir: Path, rule: str, order: str, tickets: int) -> Cost:
    hall = f"cost-{rule}-{order}"
    path = workdir / f"{hall}.toml"
    path.write_text(hall_toml(hall, rule, order), encoding="utf-8")
    config = load_hall_config(path)
    clock_s = [1_795_222_800.0]
    store = HallStore(redis, Scripts.register(redis), config, clock=lambda: clock_s[0])
    for i in range(tickets):
        clock_s[0] += 1
        await store.issue(f"s-{GROUPS[i % 3]}", CLASSES[i % len(CLASSES)])
    for w in config.windows:
        await store.set_window(w.id, WindowStatus.OPEN)
    raw = redis.register_script(RAW)
    await raw(keys=[store.keys.queue("natural")])
    # The quietest of five batches: one busy moment of the machine would
    # otherwise move the yardstick more than the rules differ.
    batches = []
    for _ in range(5):
        calls0, usec0 = await _evalsha_usec(redis)
        for _ in range(max(tickets // 5, 1)):
            await raw(keys=[store.keys.queue("natural")])
        calls1, usec1 = await _evalsha_usec(redis)
        batches.append((usec1 - usec0) / max(calls1 - calls0, 1))
    raw_us = min(batches)

    latencies: list[float] = []
    windows = [w.id for w in config.windows]
    for i in range(tickets):
        clock_s[0] += 1
        started = time.perf_counter()
        await store.call_next(windows[i % len(windows)])
        latencies.append((time.perf_counter() - started) * 1000)
    calls2, usec2 = await _evalsha_usec(redis)
    # Every call-next is one EVALSHA; the raw reads were counted before it.
    per_call = (usec2 - usec1) / max(calls2 - calls1, 1)
    doomed = [k async for k in redis.scan_iter(match=HallKeys(hall).match_all(), count=1000)]
    if doomed:
        await redis.delete(*doomed)
    latencies.sort()
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    return Cost(rule, order, tickets, round(per_call, 1), round(per_call / raw_us, 2),
                round(p50, 3), round(p99, 3))  # fmt: skip


async def run(tickets: int) -> list[Cost]:
    with tempfile.TemporaryDirectory(prefix="qms-dispatch-cost-") as tmp:
        server = EmbeddedRedis.start(Path(tmp) / "redis", fsync="everysec")
        redis = create_redis(server.url)
        try:
            return [await measure(redis, Path(tmp), r, o, tickets) for r, o in CASES]
        finally:
            await redis.aclose()
            server.stop()


def table(costs: list[Cost]) -> str:
    lines = ["| rule | order | Redis µs / call-next | ÷ raw read | p50 (ms) | p99 (ms) |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for c in costs:
        lines.append(f"| {c.rule} | {c.order} | {c.redis_us_per_call} | {c.of_raw} "
                     f"| {c.p50_ms} | {c.p99_ms} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtests.dispatch_cost", description=__doc__)
    p.add_argument("--tickets", type=int, default=3000, help="tickets issued and called per case")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    if args.tickets < 1:
        p.error("--tickets must be at least 1")
    costs = asyncio.run(run(args.tickets))
    print(table(costs))
    spread = statistics.fmean(c.of_raw for c in costs)
    print(f"\nmean ÷ raw over the cases: {spread:.2f}", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps([asdict(c) for c in costs], indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
