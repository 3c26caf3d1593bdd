"""The benchmark suite: every figure of docs/performance.md in one run.

    python -m loadtests.bench [--quick] [--fsync always|everysec] [--json PATH]

On one machine, one after the other:

1. `loadtests.http_bench`: one `qms serve` process and its embedded Redis;
   issue, ticket poll and call-next over HTTP at 1, 16 and 64 concurrent
   clients; the same operations through qms's store with no HTTP, and
   Redis's CPU per operation, which gives **the Redis limit** (what one Redis
   core does running these scripts); call-next latency with 100 and with
   100,000 tickets waiting.
2. `loadtests.ws_bench`: 1,000 and 5,000 screens on one process: memory per
   idle screen and call-to-screen latency, both as the screen's machine
   receives the frame (kernel timestamps on probe screens) and as the bench's
   own screen processes get round to reading it.

It prints one table, each figure with its ratio to the Redis limit and the
target it answers, and writes everything (the table and both detailed
reports) as JSON. A run takes about 5 minutes on 2 cores (`--quick`:
under a minute, with counts too small to quote).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import urllib.error
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from loadtests import http_bench, ws_bench

DEFAULT_JSON = Path(__file__).with_name("results") / "bench.json"

# The targets of issue 6 (docs/performance.md).
HTTP_RPS_TARGET = 2_000.0
HTTP_P99_TARGET_MS = 20.0
SCREEN_P99_TARGET_MS = 100.0
QUEUE_RATIO_TARGET = 1.5
SCREEN_KIB_TARGET = 64.0
TARGET_CONCURRENCY = 16
TARGET_SCREENS = 5_000


@dataclass(frozen=True, slots=True)
class Row:
    """One figure of the summary."""

    figure: str
    value: float | None
    unit: str
    p50_ms: float | None = None
    p99_ms: float | None = None
    of_limit: float | None = None
    """`value` ÷ the Redis limit of the same operation."""
    target: str = ""
    met: bool | None = None


def _ratio(value: float | None, limit: float | None) -> float | None:
    return None if value is None or not limit else round(value / limit, 3)


def redis_limits(http: dict[str, Any]) -> dict[str, float | None]:
    """Operations per second one Redis core would do, per operation: from its
    CPU per operation at the highest concurrency measured (the closest to a
    saturated Redis, which reads several commands per wake-up)."""
    limits: dict[str, float | None] = {}
    for phase in sorted(http.get("store", []), key=lambda p: p["concurrency"]):
        limits[phase["op"]] = phase["redis_limit_rps"]
    return limits


def summarize(http: dict[str, Any], screens: dict[str, Any] | None) -> list[Row]:
    """The summary table from the two detailed reports (pure)."""
    rows: list[Row] = []
    limits = redis_limits(http)
    for op, label in (("issue", "issue"), ("poll", "ticket poll"), ("call_next", "call-next")):
        limit = limits.get(op)
        rows.append(Row(f"Redis limit, {label}", limit, "ops/s", of_limit=1.0 if limit else None))
        for st in http.get("store", []):
            if st["op"] == op and st["concurrency"] == TARGET_CONCURRENCY:
                rows.append(
                    Row(
                        f"{label}, qms store without HTTP, c={st['concurrency']}",
                        st["rps"],
                        "ops/s",
                        st["p50_ms"],
                        st["p99_ms"],
                        _ratio(st["rps"], limit),
                    )
                )
        for c in http["settings"]["concurrencies"]:
            p = http["results"].get(f"{op}@{c}")
            if p is None:
                continue
            target, met = "", None
            if op != "poll" and c == TARGET_CONCURRENCY:
                target = f">= {HTTP_RPS_TARGET:,.0f}/s, p99 <= {HTTP_P99_TARGET_MS:.0f} ms"
                met = (
                    p["rps"] >= HTTP_RPS_TARGET
                    and p["p99_ms"] <= HTTP_P99_TARGET_MS
                    and p["errors"] == 0
                )
            rows.append(
                Row(
                    f"{label} over HTTP, c={c}",
                    p["rps"],
                    "req/s",
                    p["p50_ms"],
                    p["p99_ms"],
                    _ratio(p["rps"], limit),
                    target,
                    met,
                )
            )
    for st in http.get("store", []):
        if st["op"] == "refresh":
            size = f"{st['waiting']:,} waiting, {st['calls_last_hour']:,} calls in the hour"
            # The refresh runs alone in the bench process: its CPU is the refresh's.
            cpu_ms = st["client_cpu_pct"] / 100 * 1000 / st["rps"] if st["rps"] else None
            rows.append(
                Row(
                    f"hall monitor refresh, {size}: qms CPU",
                    None if cpu_ms is None else round(cpu_ms, 2),
                    "ms",
                    st["p50_ms"],
                    st["p99_ms"],
                )
            )
            rows.append(Row(f"hall monitor refresh, {size}: Redis CPU", st["redis_cpu_us"], "µs"))
            if st.get("redis_bytes"):
                rows.append(
                    Row(
                        f"Redis memory of that hall ({st['waiting'] + st['calls_last_hour']:,}"
                        " tickets, their events)",
                        round(st["redis_bytes"] / 2**20, 1),
                        "MiB",
                    )
                )
    q = http["queue_length"]
    small = http["results"]["call_next_small_queue"]
    large = http["results"]["call_next_large_queue"]
    rows.append(Row(f"call-next, {q['small']:,} waiting, c=1", small["rps"], "req/s",
                    small["p50_ms"], small["p99_ms"]))  # fmt: skip
    ratio = q["p50_ratio"]
    rows.append(
        Row(
            f"call-next, {q['large']:,} waiting, c=1 (p50 ratio to {q['small']:,})",
            ratio,
            "x",
            large["p50_ms"],
            large["p99_ms"],
            target=f"<= {QUEUE_RATIO_TARGET}x",
            met=None if ratio is None else ratio <= QUEUE_RATIO_TARGET,
        )
    )
    for rnd in (screens or {}).get("rounds", []):
        n = int(rnd["screens"])
        calls = rnd["calls_phase"]
        probe = calls.get("probe") or rnd.get("probe") or {}
        net = probe.get("kernel_ms") or probe.get("latency_ms") or {}
        if net:
            rows.append(
                Row(
                    f"call-to-screen, {n:,} screens, screen's machine receives (probes)",
                    net.get("p99"),
                    "ms p99",
                    net.get("p50"),
                    net.get("p99"),
                    target=f"p99 <= {SCREEN_P99_TARGET_MS:.0f} ms" if n == TARGET_SCREENS else "",
                    met=(net.get("p99", 1e9) <= SCREEN_P99_TARGET_MS)
                    if n == TARGET_SCREENS
                    else None,
                )
            )
        lat = calls["latency_ms"]
        rows.append(
            Row(
                f"call-to-screen, {n:,} screens, bench screen processes read it",
                lat["p99"],
                "ms p99",
                lat["p50"],
                lat["p99"],
            )
        )
        rows.append(
            Row(
                f"server CPU per call-next, {n:,} screens",
                calls.get("server_cpu_ms_per_call"),
                "ms",
            )
        )
        kib = rnd["memory"]["rss_kib_per_screen"]
        rows.append(
            Row(
                f"memory per idle screen, {n:,} screens (RSS)",
                kib,
                "KiB",
                target=f"<= {SCREEN_KIB_TARGET:.0f} KiB",
                met=None if kib is None else kib <= SCREEN_KIB_TARGET,
            )
        )
    return rows


def _fmt(x: float | None, digits: int = 1) -> str:
    if x is None:
        return "-"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def table(rows: list[Row], header: str) -> str:
    lines = [
        header,
        "",
        f"{'figure':<72}{'value':>10} {'unit':<7}{'p50 ms':>8}{'p99 ms':>8}{'of limit':>9}  target",
    ]
    for r in rows:
        verdict = "" if r.met is None else ("  met" if r.met else "  NOT MET")
        of_limit = "-" if r.of_limit is None else f"{r.of_limit:.0%}"
        lines.append(
            f"{r.figure:<72}{_fmt(r.value):>10} {r.unit:<7}{_fmt(r.p50_ms, 2):>8}"
            f"{_fmt(r.p99_ms, 2):>8}{of_limit:>9}  {r.target}{verdict}"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m loadtests.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--fsync", choices=["always", "everysec"], default="always",
                   help="the embedded Redis's appendfsync for the HTTP part (default: "
                        "always, as qms serve runs)")  # fmt: skip
    p.add_argument("--screens", default="1000,5000", help="comma-separated screen counts")
    p.add_argument("--requests", type=int, default=20_000, help="requests per HTTP phase")
    p.add_argument("--skip-screens", action="store_true", help="the HTTP part only")
    p.add_argument("--quick", action="store_true", help="small counts: a smoke run")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.time()
    http_argv = ["--fsync", args.fsync, "--requests", str(args.requests)]
    ws_argv = ["--screens", args.screens, "--ws-impls", ""]
    if args.quick:
        http_argv.append("--quick")
        ws_argv += ["--quick"]
    try:
        print("bench: HTTP, store and Redis limit ...", file=sys.stderr, flush=True)
        http = http_bench.run(http_bench.parse_args(http_argv))
        screens = None
        if not args.skip_screens:
            print("bench: screens ...", file=sys.stderr, flush=True)
            screens = ws_bench.run(ws_bench.parse_args(ws_argv))
    except (http_bench.BenchError, urllib.error.URLError, OSError, RuntimeError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    rows = summarize(http, screens)
    m = http["machine"]
    header = (
        f"qms bench, {time.strftime('%Y-%m-%d %H:%M', time.gmtime(started))} UTC: "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, "
        f"redis {m['redis_version']}, fsync {args.fsync}, "
        f"{round(time.time() - started)} s"
        + (" (--quick: counts too small to quote)" if args.quick else "")
    )
    print(table(rows, header))
    if args.quick:
        print("\n(--quick: a smoke run; quote only a full run)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "header": header,
        "summary": [asdict(r) for r in rows],
        "http": http,
        "screens": screens,
    }
    args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nwrote {args.json}")
    return 0 if all(r.met is not False for r in rows) else 3


if __name__ == "__main__":
    raise SystemExit(main())
