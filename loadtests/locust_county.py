"""`python -m loadtests.county`: the Locust scenarios against a fresh qms, in one command.

    python -m loadtests.county [--shape county|stress] [--minutes M] [--speedup K]
                               [--out DIR] [--step-seconds S]

Starts `qms serve --config loadtests/county_hall.toml --fsync everysec` on a
free loopback port with its embedded Redis in a temporary data directory,
waits until it is ready, runs

    locust -f loadtests/locustfile.py --headless --host http://127.0.0.1:PORT
           --run-time ... --csv DIR/<shape> --html DIR/<shape>.html
           --exit-code-on-error 1 --qms-shape <shape> --qms-speedup K

as a child process, stops qms (SIGTERM, as an operator would), prints
requests, failures, p50 and p99 per request type (call→screen included) and
the CPU each process used, and exits with locust's exit code. The default is
a compressed peak: 3 minutes at speed 10 (half an hour of the hall's 9-10
o'clock peak); the stress shape runs until an error or an HTTP p99 over
100 ms, for at most 6 minutes. Reports go to `loadtests/results/` (git-ignored).

This module does not import locust: locust monkey-patches the standard
library with gevent on import, which has no place in this process.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib.util
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from loadtests import locust_hall as lh
from loadtests.serve_process import HOST, ServeProcess, cpu_seconds, free_port

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
RESULTS = Path(__file__).with_name("results")
DEFAULT_MINUTES = {"county": 3.0, "stress": 6.0}
DEFAULT_SPEEDUP = 10.0
STARTUP_TIMEOUT_S = 30.0
LOCUST_GRACE_S = 60.0
"""Beyond --run-time: screens' final check, reports, shutdown."""
CPU_SAMPLE_S = 1.0


class CountyError(Exception):
    """The run cannot go on; the message says why."""


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def start_qms(workdir: Path, log: Path) -> ServeProcess:
    """qms on a free port with the county hall and a fresh embedded Redis."""
    port = free_port()
    cmd = [
        sys.executable, "-m", "qms", "serve", "--config", str(lh.CONFIG),
        "--host", HOST, "--port", str(port), "--data-dir", str(workdir / "data"),
        "--fsync", "everysec",
    ]  # fmt: skip
    # The embedded Redis even when QMS_REDIS_URL is set: the county hall's
    # keys must not land in somebody's Redis.
    server = ServeProcess(ServeProcess.spawn(cmd, log), port, log)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise CountyError(
                f"qms serve exited with {server.proc.returncode}: {server.log_tail()}"
            )
        # /readyz, not just /healthz: Redis must answer too before the load starts.
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"http://{HOST}:{port}/readyz", timeout=2) as r,
        ):
            if r.status == 200:
                return server
        time.sleep(0.2)
    server.stop()
    raise CountyError(f"qms serve not ready after {STARTUP_TIMEOUT_S:.0f} s: {server.log_tail()}")


def locust_command(
    shape: str, port: int, seconds: int, speedup: float, prefix: Path, step_s: float | None
) -> list[str]:
    cmd = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "--host", f"http://{HOST}:{port}", "--run-time", f"{seconds}s",
        "--csv", str(prefix), "--html", f"{prefix}.html", "--exit-code-on-error", "1",
        "--only-summary", "--qms-shape", shape, "--qms-speedup", f"{speedup:g}",
    ]  # fmt: skip
    if step_s is not None:
        cmd += ["--qms-step-seconds", f"{step_s:g}"]
    return cmd


@dataclass
class CpuSampler:
    """CPU seconds of each process every CPU_SAMPLE_S, in a thread: what a
    stress level cost qms, its Redis and locust (on a small machine they
    share the cores, so a level can break on the client's side)."""

    pids: dict[str, int | None]
    samples: list[tuple[float, dict[str, float | None]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> None:
        self.samples.append((time.time(), {k: cpu_seconds(p) for k, p in self.pids.items()}))

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.wait(CPU_SAMPLE_S):
                self.sample()

        self.sample()
        self._thread = threading.Thread(target=loop, name="cpu-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def percent(self, name: str, start: float, end: float) -> float | None:
        """Share of one core `name` used between epoch seconds `start` and `end`
        (the samples taken within them), None when unknown."""
        inside = [(t, cpu[name]) for t, cpu in self.samples if start <= t <= end]
        known = [(t, c) for t, c in inside if c is not None]
        if len(known) < 2 or known[-1][0] <= known[0][0]:
            return None
        (t0, c0), (t1, c1) = known[0], known[-1]
        return 100 * (c1 - c0) / (t1 - t0)


def run_locust(cmd: list[str], seconds: int, sampler: CpuSampler) -> int:
    """Run locust to completion; its exit code. Ctrl-C reaches locust too (same
    process group) and it still writes its reports, so wait for that."""
    proc = subprocess.Popen(cmd)
    sampler.pids["locust"] = proc.pid
    sampler.start()
    try:
        try:
            return proc.wait(seconds + LOCUST_GRACE_S)
        except subprocess.TimeoutExpired:
            print("qms: locust overran its run time; stopping it", file=sys.stderr)
            proc.send_signal(signal.SIGTERM)
            return proc.wait(LOCUST_GRACE_S)
        except KeyboardInterrupt:
            return proc.wait(LOCUST_GRACE_S)
    finally:
        sampler.stop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@dataclass(frozen=True, slots=True)
class Cpu:
    qms_s: float | None
    redis_s: float | None
    locust_s: float
    wall_s: float

    def line(self) -> str:
        def pct(seconds: float | None) -> str:
            return "?" if seconds is None else f"{100 * seconds / self.wall_s:.0f}%"

        return (
            f"CPU over {self.wall_s:.0f} s (100% = one core): qms {pct(self.qms_s)}, "
            f"redis-server {pct(self.redis_s)}, locust {pct(self.locust_s)}"
        )


def _delta(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else after - before


def summary(rows: list[lh.StatRow]) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f}"

    lines = [
        f"{'type':<5} {'name':<14} {'requests':>9} {'failures':>9} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'req/s':>8}"
    ]
    for r in rows:
        name = r.name if r.type else "(all)"
        lines.append(
            f"{r.type:<5} {name:<14} {r.requests:>9} {r.failures:>9} {ms(r.p50_ms):>7} "
            f"{ms(r.p99_ms):>7} {r.rps:>8.2f}"
        )
    return "\n".join(lines)


def stress_summary(path: Path, sampler: CpuSampler) -> str:
    if not path.exists():
        return "stress: no level finished (no stress CSV written)"
    with path.open(newline="", encoding="utf-8") as f:
        levels = list(csv.DictReader(f))

    def cpu(name: str, lv: dict[str, str]) -> str:
        if not lv["started_at"] or not lv["ended_at"]:
            return "?"
        pct = sampler.percent(name, float(lv["started_at"]), float(lv["ended_at"]))
        return "?" if pct is None else f"{pct:.0f}%"

    lines = [
        "level  x load  issues/s  HTTP req/s  p50 ms  p99 ms  fails   CPU: qms  redis  locust  held"
    ]
    for lv in levels:
        lines.append(
            f"{lv['level']:>5} {lv['multiplier']:>7} {lv['issues_per_s']:>9} "
            f"{lv['http_rps']:>11} {lv['http_p50_ms']:>7} {lv['http_p99_ms']:>7} "
            f"{lv['failures']:>6} {cpu('qms', lv):>10} {cpu('redis', lv):>6} "
            f"{cpu('locust', lv):>7}  {lv['held']}"
            + (f" ({lv['why_not']})" if lv["why_not"] else "")
        )
    held = [lv for lv in levels if lv["held"] == "yes"]
    if held:
        last = held[-1]
        lines.append(
            f"last level that held: {last['level']} (x{last['multiplier']}, "
            f"{last['issues_per_s']} issues/s, HTTP p99 {last['http_p99_ms']} ms)"
        )
    else:
        lines.append("no level held")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.county",
        description="Run the Locust scenarios of the county hall against a fresh qms.",
    )
    parser.add_argument("--shape", choices=("county", "stress"), default="county")
    parser.add_argument(
        "--minutes", type=float, help="run time (county: 3; stress: at most 6, it stops itself)"
    )
    parser.add_argument(
        "--speedup",
        type=float,
        default=DEFAULT_SPEEDUP,
        help="hall seconds per wall second (default 10: the peak hour in 6 minutes)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where reports go")
    parser.add_argument(
        "--step-seconds", type=float, help=f"stress: seconds per level ({lh.STRESS_STEP_S:g})"
    )
    args = parser.parse_args(argv)
    if args.minutes is None:
        args.minutes = DEFAULT_MINUTES[args.shape]
    if args.minutes <= 0 or args.speedup <= 0:
        parser.error("--minutes and --speedup must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if importlib.util.find_spec("locust") is None:
        print("qms: locust is not installed: pip install -e '.[load]'", file=sys.stderr)
        return 1
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    prefix = out / args.shape
    seconds = max(1, round(args.minutes * 60))
    try:
        with tempfile.TemporaryDirectory(prefix="qms-county-") as tmp:
            server = start_qms(Path(tmp), out / f"{args.shape}_qms.log")
            try:
                cmd = locust_command(
                    args.shape, server.port, seconds, args.speedup, prefix, args.step_seconds
                )
                print("+", " ".join(cmd), flush=True)
                redis_pid = server.redis_pid()
                sampler = CpuSampler({"qms": server.proc.pid, "redis": redis_pid})
                qms0, redis0 = cpu_seconds(server.proc.pid), cpu_seconds(redis_pid)
                locust0, started = children_cpu_seconds(), time.monotonic()
                code = run_locust(cmd, seconds, sampler)
                cpu = Cpu(
                    qms_s=_delta(qms0, cpu_seconds(server.proc.pid)),
                    redis_s=_delta(redis0, cpu_seconds(redis_pid)),
                    locust_s=children_cpu_seconds() - locust0,
                    wall_s=time.monotonic() - started,
                )
            finally:
                server.stop()
    except CountyError as e:
        print(f"qms: {e}", file=sys.stderr)
        return 1
    stats = Path(f"{prefix}_stats.csv")
    print()
    print(
        f"{args.shape}: {seconds} s at speed {args.speedup:g} "
        f"(peak arrivals {lh.arrivals_per_s(args.speedup):.2f}/s)"
    )
    if stats.exists():
        print(summary(lh.read_stats_csv(stats)))
    else:
        print(f"no stats: {stats} was not written")
    if args.shape == "stress":
        print(stress_summary(Path(f"{prefix}_levels.csv"), sampler))
    print(cpu.line())
    print(f"reports: {prefix}.html, {stats}; qms log: {server.log}")
    print(f"locust exit code: {code}")
    return code
