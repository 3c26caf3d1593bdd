"""WebSocket benchmark of one `qms serve` process: many hall screens on the gateway.

    python -m loadtests.ws_bench [--screens 1000,5000] [--calls N] [--interval S]
                                 [--compare-screens 1000] [--ws-impls LIST]
                                 [--probes N] [--stalled M] [--stalled-calls K]
                                 [--profile] [--quick] [--json PATH]

For each N in `--screens`, a fresh `qms serve --config <demo hall> --fsync
everysec` (embedded Redis in a temporary data directory, no simulator) on a
free loopback port, and N screens (`websockets` asyncio client, no
compression, spread over `--client-procs` separate processes) on
`/ws/halls/daye/display?format=json&page=display&screen=<id>`:

  1. connect all N (at most `--handshakes` handshakes in flight per client
     process: a ramp, not a storm) and time it to the last first frame;
  2. the server's RSS and PSS before and after, idle, divided by the
     sockets connected (N screens + the probes below);
  3. M call-nexts, one every `--interval` s: each screen records, per
     `called` frame, its arrival time minus the frame's `at` (the server's
     event time, ms resolution); every screen must see every event exactly
     once (no seq gap, no duplicate);
  4. the server's (and Redis's) CPU over the calls, per call;
  5. reconnect storm: SIGTERM the server (screens get 1001), start it again
     on the same port and data directory; every screen reconnects at once
     with `since=<last seq>` (retrying with 50 ms-1 s jittered backoff while
     the port is closed or the old server refuses). As soon as /healthz
     answers, one call-next is made; a screen is back when it has that
     event (a screen that missed nothing gets only a heartbeat at once, so
     the event is what shows its fan-out is live again).

With `--stalled M`, between steps 4 and 5 (issue 18, "a screen that stops
reading"): M more screens connect (`auth=message`, `page=strip`, the token
in their first message) on raw sockets with a 4 KiB receive buffer and never
read a byte, and `--stalled-calls` more call-nexts are made at the same
interval while the N screens and the probes measure as in step 3. A sampler
reads the server's `/metrics` and RSS every 50 ms meanwhile: when each
stalled screen left the gateway (`qms_screens_connected{page="strip"}`
falling) and how many events the hub had published since it joined
(`qms_event_fanout_lag_seconds_count`). Then the stalled sockets are read
to their end (the frames that reached them and the close code), and the
server's RSS is taken before, at its peak during, after the drops and after
the stalled sockets are closed, with the server-side sockets still open to
them (`ss`).

Then the same steps 1-4 with `--compare-screens` screens for each uvicorn
WebSocket implementation in `--ws-impls` (through `loadtests.ws_serve`).

The client processes share the machine with the server, so the latency
they measure (parse time minus `at`) includes waiting for a core. In every
round, `--probes` more screens (default 50, not counted in N; `0`: none)
in one more process (`loadtests.ws_probe`) take the kernel's receive
timestamp of each `called` frame: when it reached the screen's machine,
which is the server's call-to-screen latency. They connect during the
screens' ramp, so they sit anywhere in the server's fan-out order; they
count in the server's sockets (memory per screen is per connected socket)
and reconnect in the storm, whose figures are the N screens' only.

Writes the JSON, each server's log and (with `--profile`) a py-spy raw
profile of the calls phase next to `--json`. The CPU of everything else on
the machine during the calls is reported too ("others"): on a shared
machine, a busy neighbour inflates the tail. Timestamps across processes
are `time.time()` on one machine. Everything it starts is stopped in
`finally`; every wait is bounded; loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import http.client
import json
import multiprocessing
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import version
from importlib.resources import files
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.frames import Frame, Opcode

from loadtests import ws_probe
from loadtests.http_bench import BenchError, qms_command, redis_facts
from loadtests.serve_process import HOST, ServeProcess, cpu_seconds, free_port, percentile
from loadtests.ws_probe import (
    HALL,
    ArmStorm,
    AwaitCalls,
    AwaitStorm,
    Command,
    Connect,
    Mark,
    SeqCount,
    Stop,
    backoff,
    screen_url,
)

ADMIN_TOKEN = "demo-admin"
KIOSK_TOKEN = "demo-kiosk"
# Windows 1-4 of the demo hall serve both groups these two services are in,
# so every call-next on them finds a ticket whatever the order.
CALL_WINDOWS = ("1", "2", "3", "4")
SERVICES = ("social-security", "business-license")
STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
HTTP_TIMEOUT_S = 10.0
SETTLE_S = 3.0
"""Idle time before a memory reading, so joins' presence writes are done."""
DEFAULT_JSON = Path(__file__).with_name("results") / "ws_bench.json"

R = TypeVar("R")


# ============================================================ client process


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    port: int
    prefix: str
    screens: int
    handshakes: int
    """Initial connections in flight at once (not used when reconnecting)."""
    open_timeout_s: float


# The commands the benchmark sends a client process (screens or probes),
# each answered with one reply, are `ws_probe`'s.


@dataclass(slots=True)
class ConnectReply:
    ready: int
    first_frame_at: list[float]
    failures: dict[str, int]
    cpu_s: float


@dataclass(slots=True)
class CallsReply:
    complete: bool
    latencies_ms: list[float]
    slowest_ms: dict[int, float]
    """seq -> the latency of that `called` frame's last screen in this process."""
    called_per_screen: dict[int, int]
    """How many `called` frames -> how many screens saw that many."""
    events: int
    gaps: int
    duplicates: int
    snapshots: int
    behind: int
    connects: int
    cpu_s: float


@dataclass(slots=True)
class StormReply:
    complete: bool
    armed_seqs: list[int]
    close_codes: dict[int, int]
    closed_at: list[float]
    reopened_at: list[float]
    caught_up_at: list[float]
    first_frames: dict[str, int]
    failures: dict[str, int]
    gaps: int
    duplicates: int
    cpu_s: float


class Screen(SeqCount):
    """One simulated hall screen: what it has seen, when, and on which connection."""

    __slots__ = (
        "called",
        "close_codes",
        "closed_at",
        "connects",
        "failures",
        "first_frame_at",
        "first_kind",
        "fresh",
        "id",
        "reopened_at",
        "snapshots",
        "ws",
    )

    def __init__(self, screen_id: str) -> None:
        self.id = screen_id
        self.ws: ClientConnection | None = None
        self.first_frame_at = 0.0
        self.fresh = False
        """No frame yet on the current connection."""
        self.failures: Counter[str] = Counter()
        self.close_codes: Counter[int] = Counter()
        self.connects = 0
        super().__init__()
        self.closed_at = self.reopened_at = 0.0
        self.first_kind = ""
        self.reset_counts()

    def reset_counts(self) -> None:
        self.reset_seq_counts()
        self.called: dict[int, float] = {}
        self.snapshots = 0

    def arm(self) -> None:
        self.armed = True
        self.storm_from = -1 if self.last_seq is None else self.last_seq
        self.closed_at = self.reopened_at = self.caught_up_at = 0.0
        self.first_kind = ""
        self.failures.clear()
        self.close_codes.clear()
        self.reset_counts()

    def url(self, port: int) -> str:
        return screen_url(port, self.id, self.last_seq)

    def on_frame(self, doc: dict[str, Any], now: float, at_of: dict[int, float]) -> None:
        """Account for one frame (the client's hot path: keep it cheap)."""
        kind: str = doc["type"]
        seq: int = doc["seq"]
        if self.fresh:
            self.fresh = False
            if not self.first_frame_at:
                self.first_frame_at = now
            if self.armed and not self.first_kind:
                self.first_kind = kind if kind in ("snapshot", "heartbeat") else "events"
        if not self.count(kind, seq, now):
            return
        if kind == "snapshot":
            self.snapshots += 1
        elif kind == "called":
            self.called[seq] = now
            if seq not in at_of:
                at_of[seq] = datetime.fromisoformat(doc["at"]).timestamp()


def _failure(exc: BaseException) -> str:
    if isinstance(exc, InvalidStatus):
        return f"http_{exc.response.status_code}"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, TimeoutError):
        return "timeout"
    return type(exc).__name__


class ClientFleet:
    """The screens of one client process and the commands that drive them."""

    def __init__(self, cfg: WorkerConfig) -> None:
        self.cfg = cfg
        self.screens = [Screen(f"{cfg.prefix}-{i}") for i in range(cfg.screens)]
        self.at_of: dict[int, float] = {}
        """seq -> the `at` of that event as epoch seconds, parsed once per event."""
        self.stopping = False
        self.gate = asyncio.Semaphore(cfg.handshakes)
        self.tasks: list[asyncio.Task[None]] = []
        self.mark_cpu = 0.0

    async def run_screen(self, s: Screen) -> None:
        attempt = 0
        while not self.stopping:
            # The initial ramp goes through the gate; a reconnect does not
            # (the storm is the point).
            gate = self.gate if not s.first_frame_at else contextlib.nullcontext()
            try:
                async with gate:
                    ws = await connect(
                        s.url(self.cfg.port),
                        compression=None,
                        proxy=None,
                        open_timeout=self.cfg.open_timeout_s,
                        # Browsers send no pings; the server pings (and is answered).
                        ping_interval=None,
                        close_timeout=2,
                    )
            except (OSError, TimeoutError, WebSocketException) as exc:
                s.failures[_failure(exc)] += 1
                attempt += 1
                await asyncio.sleep(backoff(attempt))
                continue
            attempt = 0
            s.ws, s.fresh = ws, True
            s.connects += 1
            if s.armed and s.closed_at and not s.reopened_at:
                s.reopened_at = time.time()
            at_of = self.at_of
            try:
                async for message in ws:
                    now = time.time()
                    s.on_frame(json.loads(message), now, at_of)
            except ConnectionClosed:
                pass
            except (ValueError, KeyError, TypeError) as exc:
                # Not the contract's frame: counted, and the screen reconnects.
                s.failures[f"bad frame: {type(exc).__name__}"] += 1
                await ws.close()
            s.ws = None
            s.close_codes[ws.close_code or 1006] += 1
            if s.armed and not s.closed_at:
                s.closed_at = time.time()
            # Reconnect at once with since=<last seq>, as a screen page does.

    async def until(self, done: Callable[[], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not done():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.1)
        return True

    async def handle(self, cmd: Command) -> Any:
        screens = self.screens
        if isinstance(cmd, Connect):
            cpu0 = time.process_time()
            self.tasks = [asyncio.create_task(self.run_screen(s)) for s in screens]
            await self.until(lambda: all(s.first_frame_at for s in screens), cmd.timeout_s)
            failures: Counter[str] = Counter()
            for s in screens:
                failures.update(s.failures)
            return ConnectReply(
                ready=sum(1 for s in screens if s.first_frame_at),
                first_frame_at=[s.first_frame_at for s in screens if s.first_frame_at],
                failures=dict(failures),
                cpu_s=time.process_time() - cpu0,
            )
        if isinstance(cmd, Mark):
            for s in screens:
                s.reset_counts()
                s.connects = 0
            self.mark_cpu = time.process_time()
            return None
        if isinstance(cmd, AwaitCalls):
            complete = await self.until(
                lambda: all(len(s.called) >= cmd.called for s in screens), cmd.timeout_s
            )
            return self.calls_reply(complete)
        if isinstance(cmd, ArmStorm):
            for s in screens:
                s.arm()
            self.mark_cpu = time.process_time()
            return None
        if isinstance(cmd, AwaitStorm):
            complete = await self.until(lambda: all(s.caught_up_at for s in screens), cmd.timeout_s)
            return self.storm_reply(complete)
        if isinstance(cmd, Stop):
            self.stopping = True
            open_ws = [s.ws for s in screens if s.ws is not None]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*(ws.close() for ws in open_ws), return_exceptions=True), 10
                )
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            return None
        raise AssertionError(cmd)

    def calls_reply(self, complete: bool) -> CallsReply:
        at_of = self.at_of
        latencies: list[float] = []
        slowest: dict[int, float] = {}
        for s in self.screens:
            for seq, arrived in s.called.items():
                ms = (arrived - at_of[seq]) * 1000
                latencies.append(ms)
                if ms > slowest.get(seq, -1e9):
                    slowest[seq] = ms
        screens = self.screens
        return CallsReply(
            complete=complete,
            latencies_ms=latencies,
            slowest_ms=slowest,
            called_per_screen=dict(Counter(len(s.called) for s in screens)),
            events=sum(s.events for s in screens),
            gaps=sum(s.gaps for s in screens),
            duplicates=sum(s.duplicates for s in screens),
            snapshots=sum(s.snapshots for s in screens),
            behind=sum(s.behind for s in screens),
            connects=sum(s.connects for s in screens),
            cpu_s=time.process_time() - self.mark_cpu,
        )

    def storm_reply(self, complete: bool) -> StormReply:
        screens = self.screens
        codes: Counter[int] = Counter()
        failures: Counter[str] = Counter()
        for s in screens:
            codes.update(s.close_codes)
            failures.update(s.failures)
        return StormReply(
            complete=complete,
            armed_seqs=sorted({s.storm_from for s in screens}),
            close_codes=dict(codes),
            closed_at=[s.closed_at for s in screens if s.closed_at],
            reopened_at=[s.reopened_at for s in screens if s.reopened_at],
            caught_up_at=[s.caught_up_at for s in screens if s.caught_up_at],
            first_frames=dict(Counter(s.first_kind or "none" for s in screens)),
            failures=dict(failures),
            gaps=sum(s.gaps for s in screens),
            duplicates=sum(s.duplicates for s in screens),
            cpu_s=time.process_time() - self.mark_cpu,
        )

    async def serve(self, conn: Connection) -> None:
        """Answer commands until Stop (or until the benchmark goes away)."""
        while True:
            try:
                cmd: Command = await asyncio.to_thread(conn.recv)
            except EOFError:
                cmd = Stop()
            try:
                reply = await self.handle(cmd)
            except Exception as exc:
                reply = f"{type(exc).__name__}: {exc}"
            with contextlib.suppress(OSError):
                conn.send(reply)
            if isinstance(cmd, Stop):
                return


def _worker_main(conn: Connection, cfg: WorkerConfig) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    loop_factory: Any = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(ClientFleet(cfg).serve(conn))


class Fleet:
    """All screens of one round, in `procs` client processes driven over pipes."""

    def __init__(self, port: int, screens: int, procs: int, handshakes: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conns: list[Connection] = []
        self._procs: list[multiprocessing.process.BaseProcess] = []
        procs = max(1, min(procs, screens))
        for w in range(procs):
            count = screens // procs + (1 if w < screens % procs else 0)
            # 30 s, not websockets' 10: in the storm, handshakes wait in the new
            # server's accept queue while it starts; giving up would only retry.
            cfg = WorkerConfig(port, f"bench-{w}", count, handshakes, open_timeout_s=30.0)
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker_main, args=(child, cfg), daemon=True)
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)

    def ask(self, cmd: Command, reply_type: type[R], timeout_s: float) -> list[R]:
        for conn in self._conns:
            conn.send(cmd)
        replies: list[R] = []
        deadline = time.monotonic() + timeout_s + 30
        for conn in self._conns:
            if not conn.poll(max(0.0, deadline - time.monotonic())):
                raise BenchError(f"a client process did not answer {type(cmd).__name__}")
            try:
                reply = conn.recv()
            except (EOFError, OSError):
                raise BenchError("a client process died (its traceback is above)") from None
            if isinstance(reply, str):
                raise BenchError(f"a client process failed: {reply}")
            if not isinstance(reply, reply_type):
                raise BenchError(f"a client process answered {type(reply).__name__}")
            replies.append(reply)
        return replies

    def close(self) -> None:
        with contextlib.suppress(BenchError, OSError, EOFError):
            self.ask(Stop(), type(None), 15)
        for proc in self._procs:
            proc.join(5)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
        for conn in self._conns:
            conn.close()


# ============================================================ the server


def demo_config() -> Path:
    return Path(str(files("qms") / "demo_hall.toml"))


def open_all_day(config: Path, workdir: Path) -> Path:
    """A copy of `config` without its `[hours]` and with no rate limit: a
    benchmark runs at any hour of the day (a closed hall would refuse its
    tickets), and issues its tickets in a burst a kiosk never would (the
    default 120 a minute per credential refused the 121st)."""
    lines = config.read_text(encoding="utf-8").splitlines(keepends=True)
    kept, skipping = [], False
    for line in lines:
        header = line.strip()
        if header.startswith("["):
            skipping = header in ("[hours]", "[limits]")
        if not skipping:
            kept.append(line)
    kept.append("\n[limits]\nissue_per_minute = 1000000\npublic_per_minute = 1000000\n")
    workdir.mkdir(parents=True, exist_ok=True)
    copy = workdir / config.name
    copy.write_text("".join(kept), encoding="utf-8")
    return copy


@dataclass
class QmsProcess(ServeProcess):
    """One `qms serve` (or `loadtests.ws_serve`) on a given port and data directory."""

    # Closing 5,000 screens with 1001 takes a while.
    stop_timeout_s: ClassVar[float] = STOP_TIMEOUT_S

    @classmethod
    def start(cls, workdir: Path, port: int, ws_impl: str | None) -> QmsProcess:
        serve = [
            "serve", "--config", str(open_all_day(demo_config(), workdir)),
            "--host", HOST, "--port", str(port),
            "--data-dir", str(workdir / "data"), "--fsync", "everysec",
        ]  # fmt: skip
        if ws_impl is None:
            cmd = [*qms_command(), *serve]
        else:
            cmd = [sys.executable, "-m", "loadtests.ws_serve", "--ws", ws_impl, *serve]
        # Every screen here is one hall's, on one token: lift the presence
        # caps so each is recorded, as each join's presence write is part of
        # what the benchmark measures.
        caps = {"QMS_SCREENS_PER_HALL": "1000000", "QMS_SCREENS_PER_CREDENTIAL": "1000000"}
        # Appended: the storm's second server logs after the first.
        proc = cls.spawn(cmd, workdir / "qms.log", append=True, env=caps)
        return cls(proc, port, workdir / "qms.log")

    def wait_healthy(self, path: str = "/healthz", timeout_s: float = STARTUP_TIMEOUT_S) -> float:
        """Poll `path` until it answers 200; the wall time it answered."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"qms exited with {self.proc.returncode}: {self.log_tail()}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                conn = http.client.HTTPConnection(HOST, self.port, timeout=2)
                try:
                    conn.request("GET", path)
                    if conn.getresponse().status == 200:
                        return time.time()
                finally:
                    conn.close()
            time.sleep(0.01)
        raise BenchError(f"qms not answering {path} after {timeout_s:.0f} s: {self.log_tail()}")


class Api:
    """A keep-alive HTTP/1.1 connection for the benchmark's own few requests."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._conn: http.client.HTTPConnection | None = None

    def call(self, method: str, path: str, token: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        for attempt in range(2):  # once more on a fresh connection if the old one died
            if self._conn is None:
                self._conn = http.client.HTTPConnection(HOST, self.port, timeout=HTTP_TIMEOUT_S)
            try:
                self._conn.request(method, f"/api/v1/halls/{HALL}{path}", data, headers)
                r = self._conn.getresponse()
                raw = r.read()
                return r.status, json.loads(raw) if raw else None
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def ok(self, method: str, path: str, token: str, body: Any = None) -> Any:
        status, doc = self.call(method, path, token, body)
        if not 200 <= status < 300:
            raise BenchError(f"{method} {path}: HTTP {status} {doc}")
        return doc

    def seq(self) -> int:
        return int(self.ok("GET", "/snapshot", ADMIN_TOKEN)["seq"])

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


# ============================================================ measuring


def memory_kib(pid: int | None) -> dict[str, int]:
    """VmRSS (status) and Pss (smaps_rollup) of a process, in KiB."""
    out: dict[str, int] = {}
    if pid is None:
        return out
    for path, key, name in ((f"/proc/{pid}/status", "VmRSS:", "rss"),
                            (f"/proc/{pid}/smaps_rollup", "Pss:", "pss")):  # fmt: skip
        with contextlib.suppress(OSError):
            for line in Path(path).read_text().splitlines():
                if line.startswith(key):
                    out[name] = int(line.split()[1])
                    break
    return out


def listen_overflows() -> int | None:
    """TcpExt ListenOverflows from /proc/net/netstat (whole machine), None if unreadable."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return None
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:], strict=False))
            return int(table["ListenOverflows"]) if "ListenOverflows" in table else None
    return None


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # guest time is already in user
    return total - idle, total


@dataclass
class CpuMeter:
    """CPU of the server, its Redis, this process and the whole machine over one
    phase, each as % of one core (the machine's can reach 100 x cores)."""

    server_pid: int
    redis_pid: int | None
    t0: float = field(default_factory=time.perf_counter)
    server0: float = 0.0
    redis0: float = 0.0
    main0: float = 0.0
    busy0: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        self.server0 = cpu_seconds(self.server_pid) or 0.0
        self.redis0 = cpu_seconds(self.redis_pid) or 0.0
        self.main0 = time.process_time()
        self.busy0 = machine_busy()

    def read(self) -> dict[str, float]:
        wall = time.perf_counter() - self.t0
        server = (cpu_seconds(self.server_pid) or 0.0) - self.server0
        redis_s = (cpu_seconds(self.redis_pid) or 0.0) - self.redis0
        busy, total = machine_busy()
        d_busy, d_total = busy - self.busy0[0], total - self.busy0[1]
        cores = os.cpu_count() or 1
        return {
            "wall_s": round(wall, 3),
            "server_cpu_s": round(server, 3),
            "server_cpu_pct": round(100 * server / wall, 1),
            "redis_cpu_pct": round(100 * redis_s / wall, 1),
            "bench_main_cpu_pct": round(100 * (time.process_time() - self.main0) / wall, 1),
            "machine_cpu_pct": round(100 * cores * d_busy / d_total, 1) if d_total else 0.0,
        }


def dist(values: list[float], digits: int = 1) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": round(percentile(ordered, 50), digits),
        "p99": round(percentile(ordered, 99), digits),
        "max": round(ordered[-1], digits) if ordered else 0.0,
    }


class Profiler:
    """py-spy on the server for one phase, if py-spy is installed (--profile)."""

    def __init__(self, pid: int, out: Path, seconds: float) -> None:
        exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        self.out = out
        self.proc: subprocess.Popen[bytes] | None = None
        if not Path(exe).exists():
            return
        self.proc = subprocess.Popen(
            [exe, "record", "--pid", str(pid), "--rate", "200", "--format", "raw",
             "--nonblocking", "--duration", str(max(1, round(seconds))), "--output", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def summary(self) -> dict[str, Any] | None:
        if self.proc is None:
            return None
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        return summarize_profile(self.out) if self.out.exists() else None


# Where a sample's time is charged: the first matching frame from the leaf up.
# py-spy charges a C call to the Python line that made it, so the socket
# send() syscall shows up under uvicorn's `transport.write` line.
_LAYERS = (
    ("json", ("(json/", "(displays/codec")),
    ("redis-py", ("(redis/",)),
    ("uvicorn ws protocol (incl. socket writes)", ("(uvicorn/protocols/websockets/",)),
    ("websockets framing", ("(websockets/",)),
    ("uvicorn http", ("(uvicorn/",)),
    ("starlette", ("(starlette/",)),
    ("asyncio (queues, tasks, wake-ups)", ("(asyncio/",)),
    ("qms displays", ("(displays/",)),
    ("qms other", ("(queue_core/", "(qms/", "(dispatcher/", "(ticketing/")),
)


def summarize_profile(path: Path, top: int = 15) -> dict[str, Any]:
    """Self time per function and time per layer from a py-spy raw profile."""
    leaf: Counter[str] = Counter()
    layers: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        n = int(count_s)
        total += n
        frames = stack.split(";")
        leaf[frames[-1]] += n
        for frame in reversed(frames):
            layer = next((name for name, keys in _LAYERS if any(k in frame for k in keys)), None)
            if layer is not None:
                layers[layer] += n
                break
        else:
            layers["other (event loop, builtins)"] += n
    return {
        "samples": total,
        "layers_pct": {k: round(100 * v / total, 1) for k, v in layers.most_common()},
        "top_self_pct": {k: round(100 * v / total, 1) for k, v in leaf.most_common(top)},
    }


# ============================================================ one round


@dataclass(frozen=True, slots=True)
class Options:
    screens: tuple[int, ...]
    calls: int | None
    interval_s: float | None
    client_procs: int
    handshakes: int
    compare_screens: int
    ws_impls: tuple[str, ...]
    profile: bool
    json_path: Path
    probes: int = 50
    """Probe screens (`loadtests.ws_probe`) on top of the screens; 0: none."""
    stalled: int = 0
    """Screens that stop reading, in a phase after the calls (0: no such phase)."""
    stalled_calls: int = 600
    """Call-nexts of that phase: enough events for a stalled screen to fill
    every buffer on its way (~850 frames with the server's defaults)."""


def calls_for(n: int, opts: Options) -> int:
    return opts.calls if opts.calls is not None else (200 if n <= 1000 else 100)


def interval_for(n: int, opts: Options) -> float:
    # A call-next is two events (the window's previous ticket completed, the
    # next one called), measured at ~50 µs of server CPU per screen per call
    # (uvicorn + websockets-sansio). Spacing calls further apart than that
    # keeps a call from queueing behind the previous call's fan-out, so the
    # latency is that of one call, not of a backlog.
    if opts.interval_s is not None:
        return opts.interval_s
    return max(0.15, n * 80e-6)


def run_round(
    n: int, opts: Options, workdir: Path, *, ws_impl: str | None, storm: bool, label: str
) -> dict[str, Any]:
    calls = calls_for(n, opts)
    interval = interval_for(n, opts)
    port = free_port()
    server = QmsProcess.start(workdir, port, ws_impl)
    servers = [server]
    fleet: Fleet | None = None
    probe: ws_probe.ProbeProcess | None = None
    api = Api(port)
    result: dict[str, Any] = {
        "label": label,
        "screens": n,
        "probes": opts.probes,
        "ws_impl": ws_impl or "qms default",
        "calls": calls,
        "interval_s": interval,
    }
    try:
        server.wait_healthy("/readyz")
        redis_pid = server.redis_pid()
        result["redis"] = redis_facts(f"unix://{workdir / 'data' / 'redis.sock'}")
        for w in CALL_WINDOWS:
            api.ok("POST", f"/windows/{w}/open", ADMIN_TOKEN)
        # Tickets before any screen joins: their `issued` events are not
        # part of what is measured. One spare for the storm's probe call.
        stalled_calls = opts.stalled_calls if opts.stalled and ws_impl is None else 0
        for i in range(calls + stalled_calls + 1):
            api.ok("POST", "/tickets", KIOSK_TOKEN, {"service": SERVICES[i % len(SERVICES)]})
        time.sleep(1.0)
        mem0, redis_mem0 = memory_kib(server.proc.pid), memory_kib(redis_pid)

        # 1. connect. The probes connect during the load screens' ramp; the
        # server fans out over a set, so their places in its order are
        # arbitrary either way.
        cpu = CpuMeter(server.proc.pid, redis_pid)
        t_connect = time.time()
        if opts.probes:
            probe = ws_probe.ProbeProcess(port, opts.probes)
            probe.send(Connect(timeout_s=120))
        fleet = Fleet(port, n, opts.client_procs, opts.handshakes)
        connected = fleet.ask(Connect(timeout_s=120), ConnectReply, 120)
        ready = sum(r.ready for r in connected)
        last_first = max((t for r in connected for t in r.first_frame_at), default=t_connect)
        result["connect"] = {
            "ready": ready,
            "seconds": round(last_first - t_connect, 2),
            "failures": _merge([r.failures for r in connected]),
            "client_cpu_s": [round(r.cpu_s, 2) for r in connected],
            **cpu.read(),
        }
        if ready != n:
            raise BenchError(f"only {ready} of {n} screens connected")
        probes_ready = 0
        if probe is not None:
            probe_connect = probe.receive(ws_probe.ConnectReply, 120)
            probes_ready = probe_connect.ready
            result["connect"]["probes_ready"] = probes_ready
            result["connect"]["probe_failures"] = _merge([probe_connect.failures])
            if probes_ready != opts.probes:
                raise BenchError(f"only {probes_ready} of {opts.probes} probe screens connected")
        # Every socket the server holds: the load screens and the probes.
        sockets = ready + probes_ready
        result["sockets"] = sockets

        # 2. memory
        time.sleep(SETTLE_S)
        mem1, redis_mem1 = memory_kib(server.proc.pid), memory_kib(redis_pid)
        result["memory"] = {
            "server_before_kib": mem0,
            "server_after_kib": mem1,
            # Per connected socket (screens + probes): each costs the server the same.
            "sockets": sockets,
            "rss_kib_per_screen": round((mem1["rss"] - mem0["rss"]) / sockets, 1),
            "pss_kib_per_screen": round((mem1.get("pss", 0) - mem0.get("pss", 0)) / sockets, 1),
            "redis_rss_kib": [redis_mem0.get("rss"), redis_mem1.get("rss")],
        }

        # 3-4. calls. With a stalled phase to compare with, its sampler's
        # polling of /metrics runs here too: the two differ in the stalled
        # screens alone.
        sampler = Sampler(port, server.proc.pid) if stalled_calls else None
        if sampler is not None:
            sampler.start()
        try:
            result["calls_phase"] = calls_phase(api, fleet, probe, server, redis_pid, n, sockets,
                                                calls, interval, opts, workdir, label)  # fmt: skip
        finally:
            if sampler is not None:
                sampler.stop()
        if probe is not None:
            result["probe"] = result["calls_phase"].pop("probe")

        # 4b. screens that stop reading, while the others keep measuring
        if stalled_calls:
            result["stalled"] = stalled_phase(
                api, fleet, probe, server, redis_pid, n, sockets, stalled_calls, interval,
                opts, workdir, label,
            )  # fmt: skip

        # 5. reconnect storm
        if storm:
            result["storm"] = reconnect_storm(api, fleet, probe, server, workdir, n, ws_impl,
                                              servers)  # fmt: skip
            if probe is not None:
                result["probe"]["storm"] = result["storm"].pop("probe")
            time.sleep(SETTLE_S)
            result["memory"]["server_after_storm_kib"] = memory_kib(servers[-1].proc.pid)
    finally:
        api.close()
        if fleet is not None:
            fleet.close()
        if probe is not None:
            probe.close()
        for s in servers:
            s.stop()
    return result


def calls_phase(
    api: Api,
    fleet: Fleet,
    probe: ws_probe.ProbeProcess | None,
    server: QmsProcess,
    redis_pid: int | None,
    n: int,
    sockets: int,
    calls: int,
    interval: float,
    opts: Options,
    workdir: Path,
    label: str,
) -> dict[str, Any]:
    seq0 = api.seq()
    fleet.ask(Mark(), type(None), 10)
    if probe is not None:
        probe.ask(Mark(), type(None), 10)
    profiler = (
        Profiler(server.proc.pid, workdir / f"py-spy-{label}.txt", calls * interval)
        if opts.profile
        else None
    )
    cpu = CpuMeter(server.proc.pid, redis_pid)
    statuses: Counter[int] = Counter()
    http_ms: list[float] = []
    sent_at: list[float] = []
    start = next_at = time.monotonic()
    for i in range(calls):
        time.sleep(max(0.0, next_at - time.monotonic()))
        next_at += interval
        sent_at.append(time.monotonic() - start)
        t0 = time.perf_counter()
        status, _ = api.call("POST", f"/windows/{CALL_WINDOWS[i % len(CALL_WINDOWS)]}/call-next",
                             ADMIN_TOKEN)  # fmt: skip
        http_ms.append((time.perf_counter() - t0) * 1000)
        statuses[status] += 1
    called = statuses.get(200, 0)
    # Bounded: the frames still on their way after the last call. The probes
    # wait at the same time as the load screens.
    if probe is not None:
        probe.send(AwaitCalls(called, timeout_s=60))
    replies = fleet.ask(AwaitCalls(called, timeout_s=60), CallsReply, 60)
    probe_reply = None if probe is None else probe.receive(ws_probe.CallsReply, 60)
    usage = cpu.read()
    seq1 = api.seq()
    events_expected = (seq1 - seq0) * n
    latencies = [x for r in replies for x in r.latencies_ms]
    # Per call, its last screen: how long one call's fan-out takes.
    slowest: dict[int, float] = {}
    for r in replies:
        for seq, ms in r.slowest_ms.items():
            slowest[seq] = max(ms, slowest.get(seq, -1e9))
    out: dict[str, Any] = {
        "statuses": dict(statuses),
        "complete": all(r.complete for r in replies),
        "latency_ms": dist(latencies),
        "last_screen_per_call_ms": dist(list(slowest.values())),
        # Per call, in order: [s since the first call, call-next HTTP ms, last
        # screen ms] (calls made in order get rising seqs), to see stalls in time.
        "series": [
            [round(t, 2), round(h, 1), round(slowest[seq], 1)]
            for t, h, seq in zip(sent_at, http_ms, sorted(slowest), strict=False)
        ],
        "samples": len(latencies),
        "samples_expected": called * n,
        "events_received": sum(r.events for r in replies),
        "events_expected": events_expected,
        "missed": sum(r.gaps for r in replies) + max(0, called * n - len(latencies)),
        "duplicates": sum(r.duplicates for r in replies),
        "snapshots": sum(r.snapshots for r in replies),
        "reconnects": sum(r.connects for r in replies),
        "called_per_screen": _merge([r.called_per_screen for r in replies]),
        "call_http_ms": dist(http_ms, 2),
        **usage,
        "server_cpu_ms_per_call": round(1000 * usage["server_cpu_s"] / max(1, called), 1),
        # The server writes every event to every socket, the probes' too.
        "server_cpu_us_per_frame": round(
            1e6 * usage["server_cpu_s"] / max(1, (seq1 - seq0) * sockets), 1
        ),
        "client_cpu_pct": [round(100 * r.cpu_s / usage["wall_s"], 1) for r in replies],
    }
    probe_cpu_pct = 0.0
    if probe is not None and probe_reply is not None:
        out["probe"] = probe_section(probe.probes, probe_reply, called, usage["wall_s"])
        probe_cpu_pct = out["probe"]["cpu_pct"]
    # Whatever else ran on the machine meanwhile (it shares the 2 cores).
    ours = (
        sum(out["client_cpu_pct"])
        + probe_cpu_pct
        + sum(usage[k] for k in ("server_cpu_pct", "redis_cpu_pct", "bench_main_cpu_pct"))
    )
    out["other_processes_cpu_pct"] = round(max(0.0, usage["machine_cpu_pct"] - ours), 1)
    if profiler is not None:
        out["profile"] = profiler.summary()
    return out


# ============================================================ screens that stop reading

STALLED_RCVBUF = 4096
"""The stalled screens' receive buffer (Linux doubles it), set before
connecting so the window they advertise stays small."""
SAMPLE_EVERY_S = 0.05


class StalledScreen:
    """A screen that connects, authenticates and then never reads: a raw
    socket, so nothing (no client library) reads or answers pings behind
    the measurement's back."""

    def __init__(self, port: int, screen_id: str) -> None:
        self.id = screen_id
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, STALLED_RCVBUF)
        self.sock.settimeout(HTTP_TIMEOUT_S)
        self.sock.connect((HOST, port))
        self.local_port: int = self.sock.getsockname()[1]
        key = base64.b64encode(os.urandom(16)).decode()
        path = f"/ws/halls/{HALL}/display?auth=message&format=json&page=strip&screen={screen_id}"
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        # The answer's head, a byte at a time: nothing after it is read now.
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            byte = self.sock.recv(1)
            if not byte:
                raise BenchError(f"stalled screen {screen_id}: closed during the handshake")
            head += byte
        if not head.startswith(b"HTTP/1.1 101"):
            raise BenchError(f"stalled screen {screen_id}: {head[:40]!r}")
        auth = json.dumps({"type": "auth", "token": ws_probe.DISPLAY_TOKEN}).encode()
        self.sock.sendall(Frame(Opcode.TEXT, auth).serialize(mask=True, extensions=[]))
        self.joined_at = time.time()

    def read_to_end(self, timeout_s: float) -> tuple[int, int | None]:
        """Everything the server got to this socket: (data frames, the close
        code, or None if the connection ended without one)."""
        data = b""
        self.sock.settimeout(timeout_s)
        with contextlib.suppress(OSError):
            while chunk := self.sock.recv(1 << 16):
                data += chunk
        frames, code, at = 0, None, 0
        while at + 2 <= len(data):
            opcode, length, at = data[at] & 0x0F, data[at + 1] & 0x7F, at + 2
            if length >= 126:
                size = 2 if length == 126 else 8
                length, at = int.from_bytes(data[at : at + size], "big"), at + size
            if at + length > len(data):
                break
            if opcode == Opcode.CLOSE:
                code = int.from_bytes(data[at : at + 2], "big") if length >= 2 else 1005
            elif opcode in (Opcode.TEXT, Opcode.BINARY):
                frames += 1
            at += length
        return frames, code

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def metrics_sample(port: int) -> dict[str, float]:
    """The server's stalled screens still connected (`page="strip"`), the
    ones dropped as too slow, and the events its hub has published."""
    conn = http.client.HTTPConnection(HOST, port, timeout=HTTP_TIMEOUT_S)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    wanted = {
        f'qms_screens_connected{{hall="{HALL}",page="strip"}}': "stalled_connected",
        f'qms_screens_closed_total{{hall="{HALL}",reason="too_slow"}}': "too_slow",
        "qms_event_fanout_lag_seconds_count": "events",
    }
    out = dict.fromkeys(wanted.values(), 0.0)
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name in wanted:
            out[wanted[name]] = float(value)
    return out


class Sampler(threading.Thread):
    """`/metrics` and the server's RSS every `SAMPLE_EVERY_S`, in a thread
    of its own (the calls are made from the main thread meanwhile)."""

    def __init__(self, port: int, pid: int) -> None:
        super().__init__(daemon=True)
        self.port, self.pid = port, pid
        self.samples: list[tuple[float, dict[str, float], int]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            with contextlib.suppress(OSError, http.client.HTTPException):
                sample = metrics_sample(self.port)
                rss = memory_kib(self.pid).get("rss", 0)
                self.samples.append((time.time(), sample, rss))
            self.halt.wait(SAMPLE_EVERY_S)

    def stop(self) -> None:
        self.halt.set()
        self.join(HTTP_TIMEOUT_S)

    def drops(self, joined_at: float, events0: float) -> list[tuple[float, float]]:
        """Each drop seen: (seconds after the stalled screens joined, events
        published since), one per screen that left."""
        out, before = [], None
        for t, sample, _ in self.samples:
            now = sample["stalled_connected"]
            if before is not None and now < before:
                out += [(t - joined_at, sample["events"] - events0)] * int(before - now)
            before = now
        return out


def server_sockets_to(port: int, client_ports: set[int]) -> tuple[int, int, dict[str, int]]:
    """The server's connections to `client_ports` the kernel still holds
    (an orphan the process closed included), the bytes waiting in their
    send queues, and their TCP states, from `ss`; (-1, -1, {}) without it."""
    try:
        out = subprocess.run(["ss", "-Htna", f"( sport = :{port} )"], capture_output=True,
                             text=True, timeout=10, check=True).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return -1, -1, {}
    count = queued = 0
    states: Counter[str] = Counter()
    for line in out.splitlines():
        cols = line.split()  # State Recv-Q Send-Q Local:Port Peer:Port (`*` when listening)
        peer = cols[4].rpartition(":")[2] if len(cols) >= 5 else ""
        if peer.isdigit() and int(peer) in client_ports:
            count += 1
            queued += int(cols[2])
            states[cols[0]] += 1
    return count, queued, dict(states)


def stalled_phase(
    api: Api,
    fleet: Fleet,
    probe: ws_probe.ProbeProcess | None,
    server: QmsProcess,
    redis_pid: int | None,
    n: int,
    sockets: int,
    calls: int,
    interval: float,
    opts: Options,
    workdir: Path,
    label: str,
) -> dict[str, Any]:
    pid = server.proc.pid
    port = server.port
    mem_before = memory_kib(pid)
    events0 = metrics_sample(port)["events"]
    stalled = [StalledScreen(port, f"stalled-{i}") for i in range(opts.stalled)]
    joined_at = max(s.joined_at for s in stalled)
    sampler = Sampler(port, pid)
    sampler.start()
    try:
        deadline = time.monotonic() + HTTP_TIMEOUT_S
        while metrics_sample(port)["stalled_connected"] < opts.stalled:
            if time.monotonic() > deadline:
                raise BenchError("the stalled screens did not all join")
            time.sleep(SAMPLE_EVERY_S)
        # The N screens and the probes measure as in the first calls phase.
        with_stalled = calls_phase(api, fleet, probe, server, redis_pid, n, sockets, calls,
                                   interval, opts, workdir, f"{label}-stalled")  # fmt: skip
        deadline = time.monotonic() + 30
        while metrics_sample(port)["stalled_connected"] > 0 and time.monotonic() < deadline:
            time.sleep(SAMPLE_EVERY_S)
        time.sleep(SETTLE_S)
    finally:
        sampler.stop()
    after = metrics_sample(port)
    mem_after_drop = memory_kib(pid)
    client_ports = {s.local_port for s in stalled}
    open_after_drop, queued_after_drop, states_after_drop = server_sockets_to(port, client_ports)
    ends = [s.read_to_end(timeout_s=5.0) for s in stalled]
    for s in stalled:
        s.close()
    time.sleep(SETTLE_S)
    drops = sampler.drops(joined_at, events0)
    during = [rss for _, _, rss in sampler.samples]
    out: dict[str, Any] = {
        "stalled": opts.stalled,
        "receive_buffer_bytes": STALLED_RCVBUF,
        "dropped": len(drops),
        "dropped_as_too_slow": int(after["too_slow"]),
        "still_connected": int(after["stalled_connected"]),
        "drop_after_s": dist([d[0] for d in drops], 2) if drops else None,
        "drop_after_events": dist([d[1] for d in drops], 0) if drops else None,
        "close_codes": dict(Counter(str(code) for _, code in ends)),
        "frames_reached_stalled": dist([float(f) for f, _ in ends], 0),
        "events_published": int(after["events"] - events0),
        "memory_rss_kib": {
            "before": mem_before.get("rss"),
            "peak_during": max(during, default=None),
            "after_drops": mem_after_drop.get("rss"),
            "after_stalled_closed": memory_kib(pid).get("rss"),
        },
        "server_sockets_open_after_drops": open_after_drop,
        "server_send_queue_bytes_after_drops": queued_after_drop,
        "server_socket_states_after_drops": states_after_drop,
        "server_sockets_open_after_close": server_sockets_to(port, client_ports)[0],
        "rss_series": [[round(t - joined_at, 2), rss] for t, _, rss in sampler.samples[::20]],
        "calls_phase": with_stalled,
    }
    if probe is not None:
        out["probe"] = with_stalled.pop("probe")
    return out


def probe_section(
    probes: int, reply: ws_probe.CallsReply, called: int, wall_s: float
) -> dict[str, Any]:
    """The probes' calls phase: latency by kernel arrival and by parse time."""
    return {
        "probes": probes,
        "measure": "kernel receive time (SO_TIMESTAMPNS) of the recvmsg carrying each "
        "`called` frame's last byte, minus the frame's `at`",
        "complete": reply.complete,
        **ws_probe.latency_summary(reply.samples),
        "samples_expected": called * probes,
        "called_per_probe": _merge([reply.called_per_probe]),
        "events_received": reply.events,
        "missed": reply.gaps + max(0, called * probes - len(reply.samples)),
        "gaps": reply.gaps,
        "duplicates": reply.duplicates,
        "behind": reply.behind,
        "reconnects": reply.reconnects,
        "bad_frames": reply.bad_frames,
        "cpu_s": round(reply.cpu_s, 3),
        "cpu_pct": round(100 * reply.cpu_s / wall_s, 1) if wall_s else 0.0,
    }


def reconnect_storm(
    api: Api,
    fleet: Fleet,
    probe: ws_probe.ProbeProcess | None,
    old: QmsProcess,
    workdir: Path,
    n: int,
    ws_impl: str | None,
    started: list[QmsProcess],
) -> dict[str, Any]:
    """Restart the server under N screens; the new process goes in `started`
    (the caller stops it, whatever happens here).

    The probes reconnect with `since` like the screens (so the new server
    holds the same sockets, and their seq checks span the restart), but the
    storm's figures are the N screens'; the probes' own are under `probe`."""
    fleet.ask(ArmStorm(), type(None), 10)
    if probe is not None:
        probe.ask(ArmStorm(), type(None), 10)
    api.close()
    overflows0 = listen_overflows()
    t_term = time.time()
    old.stop()
    t_exit = time.time()
    new = QmsProcess.start(workdir, old.port, ws_impl)
    started.append(new)
    t_health = new.wait_healthy("/healthz")
    # The probe event: screens that missed nothing get only a heartbeat on
    # resume, so one event is made as soon as the server answers. (Nothing
    # to do with the probe screens, which wait for it like the others.)
    status, _ = api.call("POST", f"/windows/{CALL_WINDOWS[0]}/call-next", ADMIN_TOKEN)
    t_probe = time.time()
    if status != 200:
        raise BenchError(f"the storm's probe call-next answered HTTP {status}")
    if probe is not None:
        probe.send(AwaitStorm(timeout_s=120))
    replies = fleet.ask(AwaitStorm(timeout_s=120), StormReply, 120)
    t_done = time.time()
    probe_storm = None if probe is None else probe.receive(ws_probe.StormReply, 120)
    new_cpu = cpu_seconds(new.proc.pid)
    overflows1 = listen_overflows()
    caught = [t for r in replies for t in r.caught_up_at]
    reopened = [t for r in replies for t in r.reopened_at]
    closed = [t for r in replies for t in r.closed_at]
    first = _merge([r.first_frames for r in replies])

    def since(t0: float, values: list[float]) -> dict[str, float]:
        return dist([t - t0 for t in values], 2)

    extra: dict[str, Any] = {}
    if probe is not None and probe_storm is not None:
        extra["probe"] = {
            "complete": probe_storm.complete,
            "caught_up": len(probe_storm.caught_up_at),
            "caught_up_after_healthz_s": since(t_health, probe_storm.caught_up_at),
            "close_codes": _merge([probe_storm.close_codes]),
            "failed_attempts": _merge([probe_storm.failures]),
            "missed": probe_storm.gaps,
            "duplicates": probe_storm.duplicates,
            "cpu_s": round(probe_storm.cpu_s, 2),
        }
    return {
        "complete": all(r.complete for r in replies) and len(caught) == n,
        "armed_seqs": sorted({s for r in replies for s in r.armed_seqs}),
        "close_codes": _merge([r.close_codes for r in replies]),
        "all_closed_after_sigterm_s": round(max(closed, default=t_term) - t_term, 2),
        "old_server_exit_s": round(t_exit - t_term, 2),
        "healthz_after_sigterm_s": round(t_health - t_term, 2),
        "healthz_after_spawn_s": round(t_health - t_exit, 2),
        "probe_call_answered_after_healthz_s": round(t_probe - t_health, 2),
        "reopened_after_healthz_s": since(t_health, reopened),
        "caught_up_after_healthz_s": since(t_health, caught),
        "all_caught_up_after_healthz_s": round(max(caught, default=t_done) - t_health, 2),
        "all_caught_up_after_sigterm_s": round(max(caught, default=t_done) - t_term, 2),
        "caught_up": len(caught),
        # A resume starts with the missed events, or a heartbeat if none.
        "resumed": first.get("events", 0) + first.get("heartbeat", 0),
        "snapshot": first.get("snapshot", 0),
        "first_frames": first,
        "failed_attempts": _merge([r.failures for r in replies]),
        "missed": sum(r.gaps for r in replies),
        "duplicates": sum(r.duplicates for r in replies),
        "client_cpu_s": [round(r.cpu_s, 2) for r in replies],
        # Startup included: imports, Redis, then every handshake and join.
        "new_server_cpu_s": None if new_cpu is None else round(new_cpu, 2),
        # Connections dropped because an accept queue was full (whole machine).
        "listen_overflows": None
        if overflows0 is None or overflows1 is None
        else overflows1 - overflows0,
        **extra,
    }


def _merge(dicts: list[dict[Any, int]]) -> dict[str, int]:
    total: Counter[Any] = Counter()
    for d in dicts:
        total.update(d)
    return {str(k): v for k, v in sorted(total.items(), key=lambda kv: str(kv[0]))}


# ============================================================ report


def raise_nofile(needed: int) -> int:
    """Each screen is a socket in a client process: lift the soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    if soft != resource.RLIM_INFINITY and soft < needed:
        raise BenchError(f"RLIMIT_NOFILE is {soft} (hard {hard}); {needed} sockets are needed")
    return int(soft)


def git_describe() -> str:
    """The commit measured, and whether the tree had changes on top of it."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head or 'unknown'}{' (uncommitted changes)' if dirty else ''}"


def run(opts: Options) -> dict[str, Any]:
    biggest = max([*opts.screens, opts.compare_screens if opts.ws_impls else 0])
    nofile = raise_nofile(biggest // max(1, opts.client_procs) + 256)
    report: dict[str, Any] = {
        "machine": {
            "nproc": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "websockets": version("websockets"),
            "loadavg_1m_at_start": round(os.getloadavg()[0], 2),
            "date": datetime.now().astimezone().isoformat(timespec="seconds"),
            "nofile": nofile,
            "git": git_describe(),
        },
        "settings": {
            "hall": f"demo hall {HALL} ({demo_config().name}), windows {','.join(CALL_WINDOWS)}",
            "fsync": "everysec",
            "client_procs": opts.client_procs,
            "handshakes_in_flight_per_proc": opts.handshakes,
            "probes": opts.probes,
        },
        "rounds": [],
        "ws_compare": [],
    }
    plan: list[tuple[int, str | None, str]] = [(n, None, "rounds") for n in opts.screens]
    plan += [(opts.compare_screens, impl, "ws_compare") for impl in opts.ws_impls]
    with tempfile.TemporaryDirectory(prefix="qms-ws-bench-") as tmp:
        for n, impl, section in plan:
            label = f"{impl or 'default'}-{n}"
            workdir = Path(tmp) / label
            workdir.mkdir()
            ws = impl or "as qms configures it"
            print(f"ws_bench: {n} screens, uvicorn ws {ws} ...", file=sys.stderr, flush=True)
            try:
                report[section].append(
                    run_round(n, opts, workdir, ws_impl=impl, storm=impl is None, label=label)
                )
            finally:
                _keep_files(workdir, opts, label)
    return report


def _keep_files(workdir: Path, opts: Options, label: str) -> None:
    """The server's log (both processes of a storm) and any profile, next to the JSON."""
    opts.json_path.parent.mkdir(parents=True, exist_ok=True)
    for name, kept in ((f"py-spy-{label}.txt", f"ws_bench-py-spy-{label}.txt"),
                       ("qms.log", f"ws_bench-qms-{label}.log")):  # fmt: skip
        if (workdir / name).exists():
            shutil.copy(workdir / name, opts.json_path.with_name(kept))


def _ms3(d: dict[str, float] | None, width: int) -> str:
    """p50, p99, max of a latency dict in columns of `width`; dashes without one."""
    if d is None:
        return f"{'-':>{width}}" * 3
    return "".join(f"{d[k]:>{width}.1f}" for k in ("p50", "p99", "max"))


def table(report: dict[str, Any]) -> str:
    m, s = report["machine"], report["settings"]
    probes = s.get("probes", 0)
    # Column groups: the latency each screen's client process measured
    # (parse time, on a machine it shares with the server) and the probes'
    # (kernel receive time: when the frame reached the screen's machine).
    head = f"{'screens':>7} {'ws impl':<24}{'connect s':>10}{'KiB/scr':>8}{'PSS':>6}{'calls':>6}"
    head += f"{'every':>7}"
    pad = " " * len(head)
    net = f"(kernel timestamp, {probes} probes)" if probes else "(no probes)"
    lines = [
        f"qms WebSocket bench: {m['nproc']} cores, Python {m['python']}, websockets "
        f"{m['websockets']}, load average {m['loadavg_1m_at_start']} at start, {m['date']}, "
        f"git {m['git']}",
        f"{s['hall']}; fsync {s['fsync']}; {s['client_procs']} client processes"
        + (f" + {probes} probe screens in one more" if probes else ""),
        "",
        f"{pad}{'client process':^24}{'screen arrival':^30}".rstrip(),
        f"{pad}{'(all screens)':^24}{net:^30}".rstrip(),
        f"{head}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}{'net p50':>10}{'net p99':>10}"
        f"{'net max':>10}{'missed':>7}{'srv cpu':>8}{'ms/call':>8}{'client cpu':>12}"
        f"{'probe cpu':>10}{'others':>8}",
    ]
    for r in report["rounds"] + report["ws_compare"]:
        c, mem, con = r["calls_phase"], r["memory"], r["connect"]
        pr = r.get("probe")
        clients = "/".join(f"{x:.0f}" for x in c["client_cpu_pct"]) + "%"
        probe_cpu = f"{pr['cpu_pct']:.0f}%" if pr else "-"
        lines.append(
            f"{r['screens']:>7} {r['ws_impl']:<24}{con['seconds']:>10.2f}"
            f"{mem['rss_kib_per_screen']:>8.1f}{mem['pss_kib_per_screen']:>6.1f}"
            f"{r['calls']:>6}{r['interval_s']:>6.2f}s{_ms3(c['latency_ms'], 8)}"
            f"{_ms3(pr['kernel_ms'] if pr else None, 10)}{c['missed']:>7}"
            f"{c['server_cpu_pct']:>7.0f}%{c['server_cpu_ms_per_call']:>8.1f}{clients:>12}"
            f"{probe_cpu:>10}{c['other_processes_cpu_pct']:>7.0f}%"
        )
    lines += [
        "",
        "KiB/scr, PSS: server memory growth per connected socket (screens + probes); "
        "srv cpu, ms/call: the server's CPU, fanning out to every socket; "
        "net: kernel receive time at the probe screens minus the event's `at`",
        "",
    ]
    for r in report["rounds"] + report["ws_compare"]:
        c = r["calls_phase"]
        lines.append(
            f"{r['screens']} screens ({r['ws_impl']}): called frames "
            f"{c['samples']}/{c['samples_expected']}, "
            f"events {c['events_received']}/{c['events_expected']}, "
            f"duplicates {c['duplicates']}, reconnects {c['reconnects']}, "
            f"call-next HTTP p50 {c['call_http_ms']['p50']} ms p99 {c['call_http_ms']['p99']} ms, "
            f"redis cpu {c['redis_cpu_pct']}%"
        )
        pr = r.get("probe")
        if pr:
            k, u, lag = pr["kernel_ms"], pr["parsed_ms"], pr["parse_after_kernel_ms"]
            lines.append(
                f"  probes: {pr['probes']}, called frames {pr['samples']}/{pr['samples_expected']},"
                f" missed {pr['missed']}, duplicates {pr['duplicates']}, reconnects "
                f"{pr['reconnects']}; kernel arrival p50/p99/max {k['p50']}/{k['p99']}/{k['max']}"
                f" ms (min {k['min']}); parsed by the probe process p50/p99/max "
                f"{u['p50']}/{u['p99']}/{u['max']} ms; parse after kernel min/p50/p99/max "
                f"{lag['min']}/{lag['p50']}/{lag['p99']}/{lag['max']} ms "
                f"({pr['kernel_after_parse']} negative, {pr['no_kernel_timestamp']} unstamped); "
                f"spread of the probes' arrivals per call p50/max "
                f"{pr['spread_per_call_ms']['p50']}/{pr['spread_per_call_ms']['max']} ms"
            )
        st = r.get("storm")
        if st:
            lines.append(
                f"  storm: close codes {st['close_codes']}, old server exited "
                f"{st['old_server_exit_s']} s after SIGTERM, /healthz {st['healthz_after_spawn_s']}"
                f" s after respawn; all {st['caught_up']}/{r['screens']} back "
                f"{st['all_caught_up_after_healthz_s']} s after /healthz "
                f"(p50 {st['caught_up_after_healthz_s']['p50']} s; "
                f"{st['all_caught_up_after_sigterm_s']} s after SIGTERM); "
                f"resumed {st['resumed']}, snapshot {st['snapshot']}, missed {st['missed']}, "
                f"failed attempts {st['failed_attempts']}, listen queue overflows "
                f"{st['listen_overflows']}, new server cpu {st['new_server_cpu_s']} s"
            )
            ps = (pr or {}).get("storm")
            if ps:
                lines.append(
                    f"  storm, probes (not in the figures above): {ps['caught_up']}/{pr['probes']}"
                    f" back (p50 {ps['caught_up_after_healthz_s']['p50']} s after /healthz), "
                    f"close codes {ps['close_codes']}, missed {ps['missed']}, duplicates "
                    f"{ps['duplicates']}, failed attempts {ps['failed_attempts']}"
                )
        sd = r.get("stalled")
        if sd:
            mem, base, wc = sd["memory_rss_kib"], r.get("probe"), sd["calls_phase"]
            lines.append(
                f"  stalled: {sd['stalled']} screens that never read (receive buffer "
                f"{sd['receive_buffer_bytes']} B): dropped {sd['dropped']} "
                f"({sd['dropped_as_too_slow']} as too slow), close codes {sd['close_codes']}; "
                f"dropped after s {sd['drop_after_s']}, after events {sd['drop_after_events']}; "
                f"frames that reached them {sd['frames_reached_stalled']}; server RSS KiB before "
                f"{mem['before']}, peak {mem['peak_during']}, after drops {mem['after_drops']}, "
                f"after closing them {mem['after_stalled_closed']}; server sockets to them still "
                f"open after the drops {sd['server_sockets_open_after_drops']} "
                f"({sd['server_send_queue_bytes_after_drops']} B queued, "
                f"{sd['server_socket_states_after_drops']}), after closing "
                f"{sd['server_sockets_open_after_close']}"
            )
            sp = sd.get("probe")
            lines.append(
                f"  reading screens without / with the stalled ones: client p50/p99 "
                f"{c['latency_ms']['p50']}/{c['latency_ms']['p99']} / "
                f"{wc['latency_ms']['p50']}/{wc['latency_ms']['p99']} ms"
                + (
                    f"; probes (kernel arrival) p50/p99 {base['kernel_ms']['p50']}/"
                    f"{base['kernel_ms']['p99']} / {sp['kernel_ms']['p50']}/"
                    f"{sp['kernel_ms']['p99']} ms"
                    if base and sp
                    else ""
                )
                + f"; missed {c['missed']} / {wc['missed']} (+ probes "
                f"{(base or {}).get('missed', 0)} / {(sp or {}).get('missed', 0)}), "
                f"duplicates {wc['duplicates']}, reconnects {wc['reconnects']}, "
                f"server cpu {c['server_cpu_pct']}% / {wc['server_cpu_pct']}%"
            )
        prof = c.get("profile")
        if prof:
            lines.append(f"  profile ({prof['samples']} samples): {prof['layers_pct']}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> Options:
    p = argparse.ArgumentParser(prog="python -m loadtests.ws_bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--screens", default="1000,5000", help="comma-separated screen counts")
    p.add_argument(
        "--calls",
        type=int,
        default=None,
        help="call-nexts per round (default 200 up to 1,000 screens, else 100)",
    )
    p.add_argument(
        "--interval",
        type=float,
        default=None,
        help="seconds between calls (default max(0.15, screens x 80 µs))",
    )
    p.add_argument("--client-procs", type=int, default=2)
    p.add_argument(
        "--handshakes",
        type=int,
        default=100,
        help="initial handshakes in flight per client process",
    )
    p.add_argument("--compare-screens", type=int, default=1000)
    p.add_argument(
        "--ws-impls",
        default="websockets-sansio,wsproto",
        help="uvicorn ws implementations to compare ('' to skip)",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="py-spy the server during each calls phase (py-spy must be installed)",
    )
    p.add_argument(
        "--probes",
        type=int,
        default=50,
        help="probe screens (kernel receive timestamps, loadtests.ws_probe) on top of "
        "--screens; 0 disables",
    )
    p.add_argument(
        "--stalled",
        type=int,
        default=0,
        help="screens that stop reading (4 KiB receive buffer), in a phase of their own "
        "after the calls; 0 disables",
    )
    p.add_argument(
        "--stalled-calls",
        type=int,
        default=600,
        help="call-nexts while the stalled screens are connected",
    )
    p.add_argument("--json", type=Path, default=DEFAULT_JSON)
    p.add_argument("--quick", action="store_true", help="small counts: a smoke run")
    a = p.parse_args(argv)  # fmt: skip
    try:
        screens = tuple(int(x) for x in a.screens.split(",") if x.strip())
    except ValueError:
        p.error("--screens takes comma-separated integers")
    if a.quick:
        screens, a.compare_screens = (50, 200), 100
        a.calls = a.calls or 20
        a.interval = a.interval or 0.05
    if not screens or min(screens) < 1 or a.compare_screens < 1 or a.client_procs < 1:
        p.error("screen and process counts must be at least 1")
    if a.calls is not None and a.calls < 1:
        p.error("--calls must be at least 1")
    if a.probes < 0:
        p.error("--probes must be 0 or more")
    if a.stalled < 0 or a.stalled_calls < 1:
        p.error("--stalled must be 0 or more and --stalled-calls at least 1")
    impls = tuple(x.strip() for x in a.ws_impls.split(",") if x.strip())
    return Options(
        screens=screens, calls=a.calls, interval_s=a.interval, client_procs=a.client_procs,
        handshakes=max(1, a.handshakes), compare_screens=a.compare_screens, ws_impls=impls,
        profile=a.profile, json_path=a.json, probes=a.probes, stalled=a.stalled,
        stalled_calls=a.stalled_calls,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    try:
        report = run(opts)
    except (BenchError, urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        print(f"ws_bench: {exc}", file=sys.stderr)
        return 1
    print(table(report))
    opts.json_path.parent.mkdir(parents=True, exist_ok=True)
    opts.json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {opts.json_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
