"""HTTP benchmark of one `qms serve` process: ticket issue, call-next, queue length.

    python -m loadtests.http_bench [--fsync everysec|always] [--concurrency 1,16,64]
                                   [--requests 20000] [--quick] [--json PATH]

Starts one `qms serve` on a free loopback port with a generated bench hall
(2 groups, 4 services, 40 windows, a kiosk and an admin credential) against
its embedded Redis in a fresh temporary data directory, or against
`--redis-url` / `QMS_REDIS_URL`. The load comes from a separate process
running a minimal asyncio HTTP/1.1 keep-alive client, so the client does not
take the server's CPU (on 2 cores: one for qms, the other shared by the
client and redis-server). Everything it starts is stopped in `finally`;
every loop is bounded in count and in time; traffic goes to 127.0.0.1 only.

Measured, each after a warm-up, at each concurrency (1, 16 and 64 clients):
  a. POST /tickets (kiosk, rotating services, a unique Idempotency-Key each),
     then GET /tickets/{id} over the first 2,000 of them while they wait;
  b. POST /windows/{w}/call-next (admin, spread over 40 open windows, with
     enough tickets waiting that each call calls someone);
then
  s. the same two operations through qms's store in the bench process, no
     HTTP, and Redis's CPU per operation: the limit (`loadtests.store_bench`);
  c. call-next at concurrency 1 with a small vs a large queue in one group.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import multiprocessing
import os
import platform
import secrets
import signal
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Literal

import redis

from loadtests.serve_process import HOST, ServeProcess, cpu_seconds, free_port, percentile
from loadtests.store_bench import RefreshCase, StorePhase, measure_store
from queue_core.redis_client import create_sync_redis

JobKind = Literal["issue", "call_next", "paired", "poll"]

KIOSK_TOKEN = "kiosk-token"
ADMIN_TOKEN = "admin-token"
# Service id -> group; the first service's group is the one phase c fills.
SERVICES = {
    "social-security": "natural",
    "housing-fund": "natural",
    "business-licence": "legal",
    "tax": "legal",
}
WINDOWS = tuple(str(i) for i in range(1, 41))
REQUEST_TIMEOUT_S = 10.0
STARTUP_TIMEOUT_S = 30.0
DEFAULT_JSON = Path(__file__).with_name("results") / "http_bench.json"


class BenchError(Exception):
    """The benchmark cannot go on; the message says why."""


# --------------------------------------------------------------- hall config


def hall_toml(hall: str) -> str:
    """The bench hall: 2 groups, 4 services, 40 windows serving both groups."""
    prefixes = iter("ABCD")
    parts = [
        f'[hall]\nid = "{hall}"\nname = "压测政务服务中心"\ntimezone = "Asia/Shanghai"\n',
        "[priority]\nelderly = 20\n",
        "[appointments]\nearly_minutes = 30\ngrace_minutes = 10\n",
        # One kiosk token and one address play every client: no per-caller limit.
        "[limits]\nissue_per_minute = 1000000\npublic_per_minute = 1000000\n",
        '[[group]]\nid = "natural"\nname = "自然人综合窗口"\n',
        '[[group]]\nid = "legal"\nname = "法人综合窗口"\n',
    ]
    for service, group in SERVICES.items():
        parts.append(
            f'[[service]]\nid = "{service}"\nname = "{service}"\ngroup = "{group}"\n'
            f'prefix = "{next(prefixes)}"\nexpected_minutes = 8\n'
        )
    for w in WINDOWS:
        parts.append(f'[[window]]\nid = "{w}"\nname = "{w}号窗口"\ngroups = ["natural", "legal"]\n')
    parts.append(f'[[credential]]\nrole = "kiosk"\ntoken = "{KIOSK_TOKEN}"\n')
    parts.append(f'[[credential]]\nrole = "admin"\ntoken = "{ADMIN_TOKEN}"\n')
    return "\n".join(parts)


# ---------------------------------------------------- the load client (child)


@dataclass(frozen=True, slots=True)
class Job:
    """Send `count` requests of one kind over `concurrency` keep-alive connections.

    issue:     POST /tickets, services rotating (or only `services`).
    call_next: POST /windows/{w}/call-next, windows rotating.
    paired:    per step one untimed issue, then one timed call-next, so the
               queue length stays where it was; one connection.
    poll:      GET /tickets/{id}, as a visitor's phone does, over `ticket_ids`.
    """

    kind: JobKind
    count: int
    concurrency: int
    port: int
    hall: str
    key_prefix: str
    time_limit_s: float
    services: tuple[str, ...] = tuple(SERVICES)
    windows: tuple[str, ...] = WINDOWS
    ticket_ids: tuple[str, ...] = ()


@dataclass(slots=True)
class JobResult:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    transport_errors: int = 0
    elapsed_s: float = 0.0
    client_cpu_s: float = 0.0
    called_numbers: list[str] = field(default_factory=list)
    issued_ids: list[str] = field(default_factory=list)
    """The first `ISSUED_KEPT` tickets an issue job made (for a poll job)."""
    timed_out: bool = False


def _request(port: int, path: str, token: str, key: str, body: bytes = b"") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
        f"Authorization: Bearer {token}\r\nIdempotency-Key: {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


class Http1Connection:
    """A keep-alive HTTP/1.1 connection that only needs to understand our server:
    one request at a time, bodies framed by Content-Length."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, port: int) -> Http1Connection:
        reader, writer = await asyncio.open_connection(HOST, port)
        return cls(reader, writer)

    async def send(self, request: bytes) -> tuple[int, bytes]:
        """(status, body) of one request; raises OSError/IncompleteReadError/TimeoutError."""
        status, _, body = await self.exchange(request, REQUEST_TIMEOUT_S)
        return status, body

    async def exchange(self, request: bytes, timeout_s: float) -> tuple[int, dict[str, str], bytes]:
        """(status, headers by lower-case name, body) of one request, within
        `timeout_s`; raises OSError/IncompleteReadError/TimeoutError."""
        async with asyncio.timeout(timeout_s):
            self._writer.write(request)
            head = await self._reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            headers = {}
            for line in head.decode("latin-1").split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name:
                    headers[name.strip().lower()] = value.strip()
            if "transfer-encoding" in headers:
                raise OSError("chunked responses are not supported by this client")
            length = int(headers.get("content-length", "0"))
            body = await self._reader.readexactly(length) if length else b""
        return status, headers, body

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()


ISSUED_KEPT = 2_000


def _get(port: int, path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode()


def _ticket_field(body: bytes, name: str) -> str:
    # A ticket body's first string field of that name (the server's compact
    # json.dumps: "name":"value").
    key = f'"{name}":"'.encode()
    start = body.find(key) + len(key)
    return body[start : body.find(b'"', start)].decode()


async def run_job(job: Job) -> JobResult:
    api = f"/api/v1/halls/{job.hall}"
    result = JobResult()
    statuses: Counter[int] = Counter()
    indices = iter(range(job.count))  # shared by all connections: each index sent once
    ticket_ids = job.ticket_ids
    deadline = time.monotonic() + job.time_limit_s

    def issue(i: int) -> bytes:
        body = json.dumps({"service": job.services[i % len(job.services)]}).encode()
        return _request(job.port, f"{api}/tickets", KIOSK_TOKEN, f"{job.key_prefix}-i{i}", body)

    def call_next(i: int) -> bytes:
        path = f"{api}/windows/{job.windows[i % len(job.windows)]}/call-next"
        return _request(job.port, path, ADMIN_TOKEN, f"{job.key_prefix}-c{i}")

    async def one_connection() -> None:
        try:
            conn = await Http1Connection.open(job.port)
        except OSError:
            result.transport_errors += 1
            return
        try:
            for i in indices:
                if time.monotonic() > deadline:
                    result.timed_out = True
                    return
                try:
                    if job.kind == "paired":
                        await conn.send(issue(i))
                    if job.kind == "poll":
                        request = _get(job.port, f"{api}/tickets/{ticket_ids[i % len(ticket_ids)]}")
                    else:
                        request = issue(i) if job.kind == "issue" else call_next(i)
                    t0 = time.perf_counter()
                    status, body = await conn.send(request)
                    result.latencies_ms.append((time.perf_counter() - t0) * 1000)
                except (OSError, asyncio.IncompleteReadError, TimeoutError):
                    result.transport_errors += 1
                    await conn.close()
                    try:
                        conn = await Http1Connection.open(job.port)
                    except OSError:
                        return  # the server is gone: this connection stops
                    continue
                statuses[status] += 1
                if job.kind in ("call_next", "paired") and status == 200:
                    # Staff answers carry no ticket id: a ticket number names
                    # one ticket of the hall's day.
                    result.called_numbers.append(_ticket_field(body, "number"))
                elif job.kind == "issue" and status == 201 and len(result.issued_ids) < ISSUED_KEPT:
                    result.issued_ids.append(_ticket_field(body, "id"))
        finally:
            await conn.close()

    cpu0, t0 = time.process_time(), time.perf_counter()
    concurrency = 1 if job.kind == "paired" else job.concurrency
    await asyncio.gather(*(one_connection() for _ in range(concurrency)))
    result.elapsed_s = time.perf_counter() - t0
    result.client_cpu_s = time.process_time() - cpu0
    result.statuses = dict(statuses)
    return result


def _worker_main(conn: Connection) -> None:
    """The load process: run each job it is sent until it gets None."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    loop_factory: Any = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop
    for _ in range(10_000):
        job = conn.recv()
        if job is None:
            return
        try:
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                conn.send(runner.run(run_job(job)))
        except Exception as exc:
            conn.send(f"{type(exc).__name__}: {exc}")


class LoadClient:
    """The separate load-generating process, driven job by job over a pipe."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_worker_main, args=(child,), daemon=True)
        self._proc.start()
        child.close()

    def run(self, job: Job) -> JobResult:
        self._conn.send(job)
        if not self._conn.poll(job.time_limit_s + 30):
            raise BenchError(f"the load client did not finish a {job.kind} job in time")
        reply = self._conn.recv()
        if not isinstance(reply, JobResult):
            raise BenchError(f"the load client failed: {reply}")
        return reply

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.send(None)
        self._proc.join(5)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(5)
        self._conn.close()


# ------------------------------------------------------------ the server


def qms_command() -> list[str]:
    if importlib.util.find_spec("qms.__main__") is not None:
        return [sys.executable, "-m", "qms"]
    return [sys.executable, "-c", "from qms.cli import main; raise SystemExit(main())"]


@dataclass
class Server(ServeProcess):
    redis_url: str | None

    @classmethod
    def start(cls, workdir: Path, hall: str, fsync: str, redis_url: str | None) -> Server:
        config = workdir / "bench_hall.toml"
        config.write_text(hall_toml(hall), encoding="utf-8")
        port = free_port()
        log = workdir / "qms.log"
        cmd = [
            *qms_command(), "serve", "--config", str(config), "--host", HOST,
            "--port", str(port), "--data-dir", str(workdir / "data"), "--fsync", fsync,
        ]  # fmt: skip
        proc = cls.spawn(cmd, log, redis_url=redis_url)
        url = redis_url or f"unix://{workdir / 'data' / 'redis.sock'}"
        server = cls(proc, port, log, url)
        try:
            server._wait_ready()
        except BaseException:
            server.stop()
            raise
        return server

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"qms serve exited with {self.proc.returncode}: {self.log_tail()}")
            ready = f"http://{HOST}:{self.port}/readyz"
            with contextlib.suppress(OSError), urllib.request.urlopen(ready, timeout=2) as r:
                if r.status == 200:
                    return
            time.sleep(0.2)
        raise BenchError(f"qms serve not ready after {STARTUP_TIMEOUT_S:.0f} s: {self.log_tail()}")

    def api(self, method: str, path: str, token: str) -> Any:
        """One small request from this process (setup and checks, not load)."""
        req = urllib.request.Request(
            f"http://{HOST}:{self.port}{path}",
            method=method,
            headers={"Authorization": f"Bearer {token}"},
            data=b"" if method == "POST" else None,
        )
        with urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT_S) as r:
            return json.loads(r.read() or b"null")


def redis_facts(url: str | None) -> dict[str, str]:
    if url is None:
        return {}
    client = create_sync_redis(url)
    try:
        facts = {"redis_version": str(client.info("server")["redis_version"])}
        with contextlib.suppress(redis.RedisError):
            facts["appendfsync"] = str(client.config_get("appendfsync").get("appendfsync"))
        return facts
    except redis.RedisError as exc:
        return {"redis_version": f"unknown ({exc})"}
    finally:
        client.close()


def delete_hall_keys(url: str, hall: str) -> None:
    """Remove the bench hall's keys from an external Redis (bounded)."""
    client = create_sync_redis(url, socket_timeout=10)
    try:
        batch: list[Any] = []
        for n, key in enumerate(client.scan_iter(match=f"qms:{{{hall}}}:*", count=500)):
            if n >= 100_000:
                break
            batch.append(key)
            if len(batch) >= 500:
                client.delete(*batch)
                batch.clear()
        if batch:
            client.delete(*batch)
    finally:
        client.close()


# ------------------------------------------------------------ measuring


@dataclass
class Phase:
    name: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    """Non-2xx answers plus transport errors (timeouts, resets)."""
    statuses: dict[int, int]
    server_cpu_pct: float | None
    redis_cpu_pct: float | None
    client_cpu_pct: float
    timed_out: bool
    duplicate_calls: int = 0
    """Tickets a call-next answered more than once: must be 0."""


class Bench:
    def __init__(self, server: Server, client: LoadClient, hall: str, time_limit_s: float) -> None:
        self.server = server
        self.client = client
        self.hall = hall
        self.time_limit_s = time_limit_s
        self.issued_ids: tuple[str, ...] = ()
        """Tickets of the latest issue job (a few thousand), for polls."""
        self._jobs = 0

    def job(self, kind: JobKind, count: int, concurrency: int, **extra: Any) -> Job:
        self._jobs += 1
        return Job(
            kind=kind, count=count, concurrency=concurrency, port=self.server.port,
            hall=self.hall, key_prefix=f"{secrets.token_hex(4)}-{self._jobs}",
            time_limit_s=self.time_limit_s, **extra,
        )  # fmt: skip

    def measure(self, name: str, job: Job) -> Phase:
        redis_pid = self.server.redis_pid()
        qms0, redis0 = cpu_seconds(self.server.proc.pid), cpu_seconds(redis_pid)
        r = self.client.run(job)
        if r.issued_ids:
            self.issued_ids = tuple(r.issued_ids)
        qms1, redis1 = cpu_seconds(self.server.proc.pid), cpu_seconds(redis_pid)

        def pct(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else 100 * (b - a) / r.elapsed_s

        lat = sorted(r.latencies_ms)
        non_2xx = sum(n for s, n in r.statuses.items() if not 200 <= s < 300)
        return Phase(
            name=name,
            requests=len(lat),
            seconds=round(r.elapsed_s, 3),
            rps=round(len(lat) / r.elapsed_s, 1) if r.elapsed_s else 0.0,
            p50_ms=round(percentile(lat, 50), 2),
            p99_ms=round(percentile(lat, 99), 2),
            errors=non_2xx + r.transport_errors,
            statuses=dict(sorted(r.statuses.items())),
            server_cpu_pct=_round(pct(qms0, qms1)),
            redis_cpu_pct=_round(pct(redis0, redis1)),
            client_cpu_pct=round(100 * r.client_cpu_s / r.elapsed_s, 1),
            timed_out=r.timed_out,
            duplicate_calls=len(r.called_numbers) - len(set(r.called_numbers)),
        )

    def waiting(self) -> dict[str, int]:
        snap = self.server.api("GET", f"/api/v1/halls/{self.hall}/snapshot", ADMIN_TOKEN)
        return {g["id"]: int(g["waiting"]) for g in snap["groups"]}

    def open_windows(self) -> None:
        for w in WINDOWS:
            self.server.api("POST", f"/api/v1/halls/{self.hall}/windows/{w}/open", ADMIN_TOKEN)

    def fill(self, name: str, count: int, concurrency: int, service: str | None = None) -> Phase:
        """Issue `count` tickets as fast as possible (setup, reported but not the point)."""
        services = (service,) if service else tuple(SERVICES)
        return self.measure(name, self.job("issue", count, concurrency, services=services))

    def drain(self, concurrency: int) -> None:
        """Call-next until nobody waits (at most 3 rounds)."""
        for _ in range(3):
            left = sum(self.waiting().values())
            if left == 0:
                return
            self.client.run(self.job("call_next", left + len(WINDOWS), concurrency))
        raise BenchError(f"could not drain the queues: {self.waiting()}")

    def hold_queue_at(self, target: int, concurrency: int) -> Phase | None:
        """Fill the first service's group up to `target` waiting (the others must be empty)."""
        service = next(iter(SERVICES))
        missing = target - self.waiting()[SERVICES[service]]
        if missing < 0:
            raise BenchError(f"queue already longer than {target}")
        if missing == 0:
            return None
        return self.fill(f"fill to {target} waiting", missing, concurrency, service)


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


# --------------------------------------------------------------- report


@dataclass(frozen=True, slots=True)
class Options:
    fsync: str
    redis_url: str | None
    concurrencies: tuple[int, ...]
    fill_concurrency: int
    requests: int
    warmup: int
    small_queue: int
    large_queue: int
    sequential_calls: int
    time_limit_s: float
    json_path: Path


def run(opts: Options) -> dict[str, Any]:
    hall = f"bench-{secrets.token_hex(3)}"
    refresh_halls = [f"{hall}-r{i}" for i in range(len(REFRESH_SIZES))]
    single_service = next(iter(SERVICES))
    phases: dict[str, Phase] = {}
    fills: list[Phase] = []
    store: list[StorePhase] = []
    facts: dict[str, str] = {}
    load_at_start = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory(prefix="qms-bench-") as tmp:
        server = Server.start(Path(tmp), hall, opts.fsync, opts.redis_url)
        client: LoadClient | None = None
        try:
            facts = redis_facts(server.redis_url)
            client = LoadClient()
            b = Bench(server, client, hall, opts.time_limit_s)
            b.open_windows()

            for c in opts.concurrencies:
                # a. issue
                b.measure("warm-up", b.job("issue", opts.warmup, c))
                phases[f"issue@{c}"] = b.measure(f"issue, c={c}", b.job("issue", opts.requests, c))
                # Phones polling those tickets while they wait (position and ETA live).
                phases[f"poll@{c}"] = b.measure(
                    f"ticket poll, c={c}",
                    b.job("poll", opts.requests, c, ticket_ids=b.issued_ids),
                )

                # b. call-next: make sure every call (warm-up included) finds someone.
                needed = opts.warmup + opts.requests
                short = needed - sum(b.waiting().values())
                if short > 0:
                    fills.append(b.fill("fill for call-next", short, opts.fill_concurrency))
                b.measure("warm-up", b.job("call_next", opts.warmup, c))
                phases[f"call_next@{c}"] = b.measure(
                    f"call-next, c={c}", b.job("call_next", opts.requests, c)
                )
                b.drain(max(c, 16))

            # s. the store without HTTP, and the Redis limit; the monitor's
            # read of a county hall and of a big city hall at their peak
            cases = []
            for (waiting, calls), case_hall in zip(REFRESH_SIZES, refresh_halls, strict=True):
                path = Path(tmp) / f"{case_hall}.toml"
                path.write_text(hall_toml(case_hall), encoding="utf-8")
                cases.append(RefreshCase(path, waiting, calls))
            store = measure_store(
                server.redis_url or "",
                Path(tmp) / "bench_hall.toml",
                count=opts.requests,
                concurrencies=opts.concurrencies,
                redis_pid=server.redis_pid(),
                refresh_cases=cases,
            )

            # c. call-next at concurrency 1, small vs large queue, held constant.
            seq_warmup = max(1, min(100, opts.sequential_calls // 10))
            for label, target in (("small", opts.small_queue), ("large", opts.large_queue)):
                filled = b.hold_queue_at(target, opts.fill_concurrency)
                if filled is not None:
                    fills.append(filled)
                paired = {"services": (single_service,), "windows": WINDOWS[:1]}
                b.measure("warm-up", b.job("paired", seq_warmup, 1, **paired))
                phases[f"call_next_{label}_queue"] = b.measure(
                    f"call-next, {target} waiting, c=1",
                    b.job("paired", opts.sequential_calls, 1, **paired),
                )
                still = b.waiting()[SERVICES[single_service]]
                if still != target:
                    raise BenchError(f"queue drifted from {target} to {still} waiting")
        finally:
            if client is not None:
                client.close()
            server.stop()
            if opts.redis_url:
                with contextlib.suppress(redis.RedisError):
                    for h in (hall, *refresh_halls):
                        delete_hall_keys(opts.redis_url, h)

    small, large = phases["call_next_small_queue"], phases["call_next_large_queue"]
    return {
        "machine": {
            "nproc": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "redis_version": facts.get("redis_version", "unknown"),
            "loadavg_1m_at_start": load_at_start,
        },
        "settings": {
            "fsync": opts.fsync if not opts.redis_url else "external",
            "redis_appendfsync": facts.get("appendfsync", "unknown"),
            "redis": "external" if opts.redis_url else "embedded",
            "concurrencies": list(opts.concurrencies),
            "fill_concurrency": opts.fill_concurrency,
            "requests": opts.requests,
            "warmup": opts.warmup,
            "windows": len(WINDOWS),
            "idempotency_keys": "unique key on every request",
        },
        "results": {name: asdict(p) for name, p in phases.items()},
        "store": [asdict(p) for p in store],
        "queue_length": {
            "small": opts.small_queue,
            "large": opts.large_queue,
            "p50_ratio": round(large.p50_ms / small.p50_ms, 2) if small.p50_ms else None,
            "p99_ratio": round(large.p99_ms / small.p99_ms, 2) if small.p99_ms else None,
            "method": QUEUE_METHOD,
        },
        "fills": [asdict(f) for f in fills],
    }


REFRESH_SIZES = ((250, 750), (1_000, 5_000))
"""(waiting, calls in the last hour) of the halls whose monitor read is
timed: a county hall at its 9-10 peak (750 visitors an hour), and a city
hall of 20,000 visitors a day at its peak (5,000 an hour)."""

QUEUE_METHOD = (
    "each timed call-next is preceded by one untimed issue into the same group, so the "
    "queue stays at its target length for every call (one connection, window 1); "
    "req/s on those rows counts the call-nexts only"
)


def table(report: dict[str, Any]) -> str:
    m, s = report["machine"], report["settings"]
    lines = [
        f"qms HTTP bench: fsync={s['fsync']} (redis appendfsync={s['redis_appendfsync']}), "
        f"redis {m['redis_version']} ({s['redis']}), {m['nproc']} cores, "
        f"Python {m['python']}, load average {m['loadavg_1m_at_start']} at start",
        f"concurrency {', '.join(map(str, s['concurrencies']))}, {s['windows']} windows open, "
        f"{s['idempotency_keys']}; cpu = % of one core over the phase",
        "",
        f"{'phase':<32}{'requests':>9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
        f"  {'statuses':<18}{'qms cpu':>8}{'redis':>7}{'client':>8}",
    ]

    def row(p: dict[str, Any]) -> str:
        statuses = " ".join(f"{k}:{v}" for k, v in p["statuses"].items())
        flag = " TIMED OUT" if p["timed_out"] else ""
        flag += f" DUPLICATE CALLS: {p['duplicate_calls']}" if p["duplicate_calls"] else ""
        return (
            f"{p['name']:<32}{p['requests']:>9}{p['rps']:>9.0f}{p['p50_ms']:>9.2f}"
            f"{p['p99_ms']:>9.2f}{p['errors']:>8}  {statuses:<18}{_pct(p['server_cpu_pct']):>8}"
            f"{_pct(p['redis_cpu_pct']):>7}{_pct(p['client_cpu_pct']):>8}{flag}"
        )

    lines += [row(p) for p in report["results"].values()]
    lines += [
        "",
        "the same through qms's store in one process, no HTTP; Redis CPU per operation "
        "and the limit it implies",
        f"{'operation':<20}{'c':>4}{'ops':>8}{'ops/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'redis':>7}{'redis µs/op':>12}{'script µs':>10}{'redis limit/s':>14}",
    ]
    for st in report.get("store", []):
        lines.append(
            f"{st['op']:<20}{st['concurrency']:>4}{st['operations']:>8}{st['rps']:>9.0f}"
            f"{st['p50_ms']:>9.2f}{st['p99_ms']:>9.2f}{_pct(st['redis_cpu_pct']):>7}"
            f"{_num(st['redis_cpu_us']):>12}{_num(st['script_us']):>10}"
            f"{_num(st['redis_limit_rps']):>14}"
        )
    q = report["queue_length"]
    lines += [
        "",
        f"call-next latency, {q['large']} vs {q['small']} waiting: "
        f"p50 x{q['p50_ratio']}, p99 x{q['p99_ratio']}",
        *textwrap.wrap(q["method"], 96, initial_indent="  ", subsequent_indent="  "),
        "setup fills (issue at high concurrency, not the headline figures):",
    ]
    lines += ["  " + row(f) for f in report["fills"]]
    return "\n".join(lines)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f}%"


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


# ------------------------------------------------------------------ main


def parse_args(argv: list[str] | None = None) -> Options:
    p = argparse.ArgumentParser(prog="python -m loadtests.http_bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--fsync", choices=["everysec", "always"], default="everysec")
    p.add_argument(
        "--redis-url",
        default=os.environ.get("QMS_REDIS_URL") or None,
        help="use this Redis instead of the embedded one (default: $QMS_REDIS_URL)",
    )
    p.add_argument(
        "--concurrency",
        default="1,16,64",
        help="comma-separated numbers of concurrent clients (default 1,16,64)",
    )
    p.add_argument("--fill-concurrency", type=int, default=64)
    p.add_argument("--requests", type=int, default=20_000)
    p.add_argument("--warmup", type=int, default=1_000)
    p.add_argument("--small-queue", type=int, default=100)
    p.add_argument("--large-queue", type=int, default=100_000)
    p.add_argument("--sequential-calls", type=int, default=2_000)
    p.add_argument("--time-limit", type=float, default=600.0, help="seconds per load job")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON)
    p.add_argument("--quick", action="store_true", help="small counts: a smoke run in seconds")
    a = p.parse_args(argv)
    if a.quick:
        a.requests, a.warmup, a.large_queue, a.sequential_calls = 500, 50, 2_000, 50
        a.time_limit = min(a.time_limit, 30.0)
    try:
        concurrencies = tuple(int(c) for c in a.concurrency.split(","))
    except ValueError:
        p.error("--concurrency takes comma-separated whole numbers, e.g. 1,16,64")
    if not concurrencies or min(concurrencies) < 1:
        p.error("--concurrency must be at least 1")
    for name in ("fill_concurrency", "requests", "warmup", "small_queue",
                 "large_queue", "sequential_calls"):  # fmt: skip
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    return Options(
        fsync=a.fsync, redis_url=a.redis_url, concurrencies=concurrencies,
        fill_concurrency=a.fill_concurrency, requests=a.requests, warmup=a.warmup,
        small_queue=a.small_queue, large_queue=max(a.large_queue, a.small_queue),
        sequential_calls=a.sequential_calls, time_limit_s=a.time_limit, json_path=a.json,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    try:
        report = run(opts)
    except (BenchError, urllib.error.URLError, OSError) as exc:
        print(f"http_bench: {exc}", file=sys.stderr)
        return 1
    print(table(report))
    opts.json_path.parent.mkdir(parents=True, exist_ok=True)
    opts.json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {opts.json_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
