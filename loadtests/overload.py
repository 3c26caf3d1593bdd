"""Overload, measured: `python -m loadtests.overload`.

Runs one `qms serve` (its default `QMS_MAX_IN_FLIGHT`, 128) on a
redis-server of its own (AOF, `appendfsync everysec`), fresh for each
level of concurrent clients (`--clients 50,200,1000`), and drives it for
`--seconds` with a mix: a fifth of the clients are kiosks issuing tickets,
a fifth (at most one per window, 40) clerks calling next at the windows,
the rest visitors following tickets the kiosks were given (GET
/tickets/{id}). Every client sends its next request as soon as it has the
answer (a closed loop, no think time: the load is the clients' number),
gives up on an answer after `--timeout-s`, and retries a 503, a timeout or
a connection error with the same Idempotency-Key after the answer's
`Retry-After` and a little jitter (`loadtests.failover.Stream`). The hall
(`loadtests.http_bench.hall_toml`) has `[limits]` of a million a minute:
one kiosk token and one address play every client, and rate limits must
not hide the overload.

When the time is up every client finishes the request it has begun (a
refused one retried until answered), so every ticket made and every call is
acknowledged; then the audit: numbers issued twice, tickets called twice,
waiting tickets skipped (all tickets are normal, of one service: a ticket
still waiting below a called number was skipped), acknowledged tickets
lost, and tickets the hall holds that no client was given.

`--pause-s S` pauses Redis (`CLIENT PAUSE`) for S seconds a third of the
way into each level, longer than qms's command timeout, and reports the
answers to requests sent during the pause (latency, share refused by
code), the requests in flight in qms (its `/metrics`), its memory and
open files, and how long after the pause requests were accepted again.

The clients run in several processes (`--clients-per-process`, 250) and
their CPU is measured: on a small machine they compete with qms and Redis
for the same CPUs, and the figures say so. Prints a table and writes JSON
(`loadtests/results/overload.json`). Uses httpx (a test dependency): run
it from the dev install.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import math
import multiprocessing
import multiprocessing.connection
import multiprocessing.synchronize
import os
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

from loadtests.failover import (
    CLIENT_TIMEOUT_S,
    Attempt,
    ClientFactory,
    Findings,
    Stream,
    Target,
    audit,
    machine_description,
    open_windows,
    serving,
    write_hall,
)
from loadtests.http_bench import ADMIN_TOKEN, WINDOWS, Http1Connection
from loadtests.redis_procs import Node, redis_version, single_redis
from loadtests.serve_process import HOST, ServeProcess, cpu_seconds, percentile

DEFAULT_JSON = Path(__file__).with_name("results") / "overload.json"
CLIENTS_PER_PROCESS = 250
FINISH_TIMEOUT_S = 120.0
"""How long the clients may take to get their last requests answered."""
SAMPLE_EVERY_S = 0.1


# ------------------------------------------------------------- the clients


@dataclass(frozen=True, slots=True)
class LeanAnswer:
    status_code: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class LeanClient:
    """One keep-alive HTTP/1.1 connection to qms for a `Stream` client, on
    `loadtests.http_bench.Http1Connection`: a fraction of httpx's CPU per
    request (httpx costs ~1 ms, which on a small machine makes the clients,
    not qms, what the figures measure). A timeout is `httpx.ReadTimeout`,
    a failed or cut connection `httpx.ConnectError`, as with httpx; after
    either the connection is dropped (a late answer must not be read as the
    next one's) and the next request opens a new one."""

    def __init__(self, timeout_s: float, port: int) -> None:
        self.timeout_s = timeout_s
        self._port = port
        self._conn: Http1Connection | None = None

    @classmethod
    def to(cls, target: Target) -> ClientFactory:
        """Opens `LeanClient`s to `target`'s qms."""
        port = urllib.parse.urlsplit(target.base_url).port or 80
        return lambda timeout_s: cls(timeout_s, port)

    async def __aenter__(self) -> LeanClient:
        # Connected before the first request: the figures are of requests
        # on a kept-alive connection, as a kiosk on all day sends them,
        # not of a thousand connections opened in the same instant. One
        # that fails is opened again by the first request.
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(self.timeout_s):
                self._conn = await Http1Connection.open(self._port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._drop()

    async def post(self, url: str, *, headers: dict[str, str], json: Any) -> LeanAnswer:
        body = b"" if json is None else _json_bytes(json)
        return await self._send("POST", url, headers, body)

    async def get(self, url: str, *, headers: dict[str, str]) -> LeanAnswer:
        return await self._send("GET", url, headers, None)

    async def _send(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> LeanAnswer:
        parts = urllib.parse.urlsplit(url)
        lines = [f"{method} {parts.path} HTTP/1.1", f"Host: {parts.netloc}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body is not None:
            lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")
        # A kept-alive connection the server closed while idle fails before
        # any answer: the request was never read, and one new connection
        # may send it again (as httpx does).
        for fresh in (self._conn is None, True):
            if self._conn is None:
                try:
                    async with asyncio.timeout(self.timeout_s):
                        self._conn = await Http1Connection.open(self._port)
                except TimeoutError:
                    raise httpx.ConnectTimeout("no connection in time") from None
                except OSError as exc:
                    raise httpx.ConnectError(str(exc)) from None
            try:
                status, answer_headers, data = await self._conn.exchange(request, self.timeout_s)
                return LeanAnswer(status, answer_headers, data)
            except TimeoutError:
                await self._drop()
                raise httpx.ReadTimeout("no answer in time") from None
            except (OSError, asyncio.IncompleteReadError) as exc:
                await self._drop()
                if fresh:
                    raise httpx.ConnectError(f"{type(exc).__name__}: {exc}") from None
        raise AssertionError("unreachable")

    async def _drop(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await conn.close()


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class Mix:
    kiosks: int
    windows: tuple[str, ...]
    """One clerk calling next at each."""
    visitors: int

    @classmethod
    def of(cls, clients: int) -> Mix:
        kiosks = max(1, clients // 5)
        clerks = max(1, min(len(WINDOWS), clients // 5))
        return cls(kiosks, WINDOWS[:clerks], max(0, clients - kiosks - clerks))

    def split(self, parts: int) -> list[Mix]:
        """As even a share for each of `parts` client processes as there is."""

        def share(n: int, i: int) -> int:
            return n // parts + (i < n % parts)

        out, first = [], 0
        for i in range(parts):
            clerks = share(len(self.windows), i)
            out.append(
                Mix(
                    share(self.kiosks, i),
                    self.windows[first : first + clerks],
                    share(self.visitors, i),
                )
            )
            first += clerks
        return out


@dataclass
class Part:
    """What one client process brings back; times are `time.monotonic()`."""

    attempts: list[Attempt]
    issued: dict[str, dict[str, Any]]
    called: dict[str, tuple[str, dict[str, Any] | None]]
    cpu_s: float
    wall_s: float


def _client_process(
    target: Target,
    mix: Mix,
    seconds: float,
    timeout_s: float,
    go: multiprocessing.synchronize.Event,
    out: multiprocessing.connection.Connection,
) -> None:
    out.send("ready")  # imported and set up: the load starts on `go` in every process
    go.wait()
    cpu, wall = time.process_time(), time.monotonic()
    stream = Stream(
        replace(target, windows=mix.windows),
        issuers=mix.kiosks,
        visitors=mix.visitors,
        pause_s=0.0,
        timeout_s=timeout_s,
        finish=True,
        client=LeanClient.to(target),
    )
    asyncio.run(_drive(stream, seconds))
    t0 = stream.t0
    attempts = [replace(a, start=a.start + t0, end=a.end + t0) for a in stream.attempts]
    out.send(
        Part(
            attempts,
            stream.issued,
            stream.called,
            time.process_time() - cpu,
            time.monotonic() - wall,
        )
    )
    out.close()


async def _drive(stream: Stream, seconds: float) -> None:
    async with stream.running(FINISH_TIMEOUT_S):
        await asyncio.sleep(seconds)


def drive(
    target: Target,
    mix: Mix,
    seconds: float,
    timeout_s: float,
    processes: int,
    at_go: Callable[[float], None] | None = None,
) -> tuple[float, list[Part]]:
    """`mix` in `processes` client processes for `seconds`; the moment they
    were let go and what each brings back. `at_go(go_time)` runs in this
    process once they are."""
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    pipes, procs = [], []
    for share in mix.split(processes):
        here, there = ctx.Pipe(duplex=False)
        p = ctx.Process(target=_client_process, args=(target, share, seconds, timeout_s, go, there))
        p.start()
        there.close()
        pipes.append(here)
        procs.append(p)
    try:
        for pipe in pipes:
            if pipe.recv() != "ready":
                raise RuntimeError("a client process did not start")
        started = time.monotonic()
        go.set()
        if at_go is not None:
            at_go(started)
        parts = [pipe.recv() for pipe in pipes]
    finally:
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
    return started, parts


# ------------------------------------------------------------ the server side


@dataclass
class Sample:
    at: float
    """`time.monotonic()`, then seconds since the clients were let go."""
    in_flight: int | None
    rss_kb: int | None
    open_files: int | None


class Sampler:
    """Reads qms's requests in flight (`/metrics`, never refused), its
    resident memory and open files every `SAMPLE_EVERY_S` in a thread."""

    def __init__(self, server: ServeProcess) -> None:
        self.server = server
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        pid = self.server.proc.pid
        while not self._stop.wait(SAMPLE_EVERY_S):
            self.samples.append(
                Sample(time.monotonic(), self._in_flight(), _rss_kb(pid), _open_files(pid))
            )

    def _in_flight(self) -> int | None:
        url = f"http://{HOST}:{self.server.port}/metrics"
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("qms_requests_in_flight "):
                    return int(float(line.split()[1]))
        return None


def _rss_kb(pid: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def _open_files(pid: int) -> int | None:
    with contextlib.suppress(OSError):
        return len(os.listdir(f"/proc/{pid}/fd"))
    return None


def redis_call_figures(server: ServeProcess) -> dict[str, float | None]:
    """qms's own view of its Redis calls (`qms_redis_command_seconds`, every
    command name together): mean and the histogram's p99 bucket, in ms.
    A call's time includes waiting for a pooled connection and for qms's
    event loop, so a slow figure here with a quiet Redis means qms waited."""
    url = f"http://{HOST}:{server.port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    buckets: dict[float, float] = defaultdict(float)
    total = count = 0.0
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name.startswith("qms_redis_command_seconds_bucket{"):
            le = name.split('le="', 1)[1].split('"', 1)[0]
            buckets[math.inf if le == "+Inf" else float(le)] += float(value)
        elif name.startswith("qms_redis_command_seconds_sum"):
            total += float(value)
        elif name.startswith("qms_redis_command_seconds_count"):
            count += float(value)
    p99 = next((le for le in sorted(buckets) if buckets[le] >= 0.99 * count), None)
    return {
        "calls": count,
        "mean_ms": round(1000 * total / count, 2) if count else None,
        "p99_bucket_ms": None if p99 is None else round(1000 * p99, 1),
    }


def cpu_times() -> tuple[int, int]:
    """The machine's (busy, total) CPU ticks so far, all CPUs (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return sum(fields) - idle, sum(fields)


def redis_clients(node: Node) -> int:
    info = node.ask("INFO", "clients")
    assert isinstance(info, dict)
    return int(info["connected_clients"])


# ------------------------------------------------------------------ figures


def answers(attempts: Sequence[Attempt]) -> dict[str, Any]:
    """Requests made, accepted (2xx) and their latency, refusals by status
    and code, and requests with no answer, of `attempts`."""
    n = len(attempts)
    ok = sorted(a.seconds * 1000 for a in attempts if a.ok)
    refused: Counter[str] = Counter()
    no_answer: Counter[str] = Counter()
    slowest_refusal: dict[str, float] = {}
    for a in attempts:
        if a.status is None:
            no_answer[a.code] += 1
        elif not a.ok:
            what = f"{a.status} {a.code}"
            refused[what] += 1
            slowest_refusal[what] = max(slowest_refusal.get(what, 0.0), a.seconds * 1000)
    return {
        "requests": n,
        "accepted": len(ok),
        "accepted_p50_ms": round(percentile(ok, 50), 1),
        "accepted_p99_ms": round(percentile(ok, 99), 1),
        "accepted_max_ms": round(ok[-1], 1) if ok else 0.0,
        "refused": dict(refused),
        "refused_share": {k: round(v / n, 4) for k, v in refused.items()} if n else {},
        "slowest_refusal_ms": {k: round(v, 1) for k, v in slowest_refusal.items()},
        "refusal_p50_p99_ms": {
            what: [round(percentile(ms, 50), 1), round(percentile(ms, 99), 1)]
            for what in refused
            if (
                ms := sorted(
                    a.seconds * 1000
                    for a in attempts
                    if not a.ok and f"{a.status} {a.code}" == what
                )
            )
        },
        "unanswered": no_answer.get("client_timeout", 0),
        "no_connection": {k: v for k, v in no_answer.items() if k != "client_timeout"},
        "by_op": {
            op: {
                "requests": len(mine := [a for a in attempts if a.op == op]),
                "accepted": len(lat := sorted(a.seconds * 1000 for a in mine if a.ok)),
                "accepted_p99_ms": round(percentile(lat, 99), 1),
            }
            for op in ("issue", "call", "poll")
        },
    }


async def unacknowledged(stream: Stream) -> dict[str, Any]:
    """Tickets the hall made that no client was given. Every request was
    answered in the end, so every ticket is either acknowledged or called
    by a call whose answer named it; the hall's waiting count says the
    rest (a retry that made a second ticket, say, shows up here)."""
    acked = {t["number"] for t in stream.issued.values()}
    called = {body["number"] for _, body in stream.called.values() if body is not None}
    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT_S, trust_env=False) as client:
        r = await client.get(
            f"{stream.target.api}/snapshot",
            headers={"Authorization": f"Bearer {stream.target.clerk_token}"},
        )
        r.raise_for_status()
    waiting = sum(g["waiting"] for g in r.json()["groups"])
    expected = len(acked - called)
    return {
        "called_not_acknowledged": sorted(called - acked),
        "waiting": waiting,
        "waiting_acknowledged": expected,
        "waiting_not_acknowledged": waiting - expected,
    }


def findings_row(f: Findings, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "tickets_acknowledged": f.tickets_acknowledged,
        "calls_acknowledged": f.calls_acknowledged,
        "numbers_issued_twice": len(f.numbers_issued_twice),
        "tickets_called_twice": len(f.tickets_called_twice),
        "tickets_skipped": len(f.tickets_skipped),
        "tickets_lost": len(f.tickets_lost),
        "calls_lost": len(f.calls_lost),
        "not_error_shape": f.not_error_shape,
        "tickets_not_acknowledged": len(extra["called_not_acknowledged"])
        + extra["waiting_not_acknowledged"],
        **extra,
        "clean": f.clean
        and not extra["called_not_acknowledged"]
        and extra["waiting_not_acknowledged"] == 0,
    }


# ------------------------------------------------------------------- levels


@dataclass(frozen=True, slots=True)
class Options:
    workdir: Path
    clients: tuple[int, ...] = (50, 200, 1000)
    seconds: float = 20.0
    timeout_s: float = CLIENT_TIMEOUT_S
    clients_per_process: int = CLIENTS_PER_PROCESS
    pause_s: float = 0.0
    env: dict[str, str] = field(default_factory=dict)


def run_level(opts: Options, clients: int) -> dict[str, Any]:
    workdir = opts.workdir / f"c{clients}-{uuid.uuid4().hex[:6]}"
    workdir.mkdir(parents=True)
    hall = f"ov{uuid.uuid4().hex[:8]}"
    config = write_hall(workdir, hall)
    mix = Mix.of(clients)
    processes = max(1, math.ceil(clients / opts.clients_per_process))
    with (
        single_redis(workdir / "redis", fsync="everysec") as node,
        serving(workdir, config, f"redis://{HOST}:{node.port}/0", env=opts.env) as qms,
    ):
        target = Target(f"http://{HOST}:{qms.port}", hall, mix.windows, clerk_token=ADMIN_TOKEN)
        asyncio.run(open_windows(target))
        pause: dict[str, float] = {}

        def at_go(started: float) -> None:
            if opts.pause_s > 0:
                threading.Thread(target=_pause_later, args=(node, started, opts, pause)).start()

        qms_cpu0, redis_cpu0 = cpu_seconds(qms.proc.pid), cpu_seconds(node.proc.pid)
        load_before = os.getloadavg()[0]
        machine0 = cpu_times()
        with Sampler(qms) as sampler:
            started, parts = drive(
                target, mix, opts.seconds, opts.timeout_s, processes, at_go=at_go
            )
            finished = time.monotonic()
        machine1 = cpu_times()
        qms_cpu = (cpu_seconds(qms.proc.pid) or 0.0) - (qms_cpu0 or 0.0)
        redis_cpu = (cpu_seconds(node.proc.pid) or 0.0) - (redis_cpu0 or 0.0)
        record = Stream(target)
        for part in parts:
            record.attempts += [
                replace(a, start=a.start - started, end=a.end - started) for a in part.attempts
            ]
            record.issued.update(part.issued)
            record.called.update(part.called)
        f = asyncio.run(audit(record))
        extra = asyncio.run(unacknowledged(record))
        connected = redis_clients(node)
        redis_calls = redis_call_figures(qms)
    wall = finished - started
    during = [a for a in record.attempts if a.start < opts.seconds]
    samples = [replace(s, at=s.at - started) for s in sampler.samples if s.at >= started]
    result: dict[str, Any] = {
        "clients": clients,
        "kiosks": mix.kiosks,
        "clerks": len(mix.windows),
        "visitors": mix.visitors,
        "client_processes": processes,
        "seconds": opts.seconds,
        "wall_s": round(wall, 2),
        "load": answers(during),
        "after_time_up": answers([a for a in record.attempts if a.start >= opts.seconds]),
        "slowest": [
            {
                "start_s": round(a.start, 3),
                "ms": round(a.seconds * 1000),
                "op": a.op,
                "status": a.status,
                "code": a.code,
            }
            for a in sorted(record.attempts, key=lambda a: a.seconds)[-10:]
        ],
        "audit": findings_row(f, extra),
        "load_average_1m_before": round(load_before, 2),
        "machine_cpu_busy_percent": round(
            100 * (machine1[0] - machine0[0]) / max(1, machine1[1] - machine0[1]), 1
        ),
        "cpu_percent_of_one": {
            "qms": round(100 * qms_cpu / wall, 1),
            "redis": round(100 * redis_cpu / wall, 1),
            "clients": [round(100 * p.cpu_s / p.wall_s, 1) for p in parts],
        },
        "qms": _server_figures(samples),
        "redis_connected_clients_after": connected,
        "qms_redis_calls": redis_calls,
    }
    if opts.pause_s > 0:
        result["pause"] = _pause_figures(record.attempts, samples, pause)
    return result


def _pause_later(node: Node, started: float, opts: Options, out: dict[str, float]) -> None:
    """`CLIENT PAUSE` a third of the way in (the clients are busy by then)."""
    time.sleep(max(0.0, started + opts.seconds / 3 - time.monotonic()))
    out["start"] = time.monotonic() - started
    node.ask("CLIENT", "PAUSE", str(int(opts.pause_s * 1000)), "ALL")
    out["end"] = out["start"] + opts.pause_s


def _server_figures(samples: Sequence[Sample]) -> dict[str, Any]:
    def top(values: Iterator[int | None]) -> int | None:
        return max((v for v in values if v is not None), default=None)

    return {
        "samples": len(samples),
        "max_in_flight": top(s.in_flight for s in samples),
        "max_rss_mb": round((top(s.rss_kb for s in samples) or 0) / 1024, 1),
        "max_open_files": top(s.open_files for s in samples),
        "rss_mb_first_last": [
            round((samples[0].rss_kb or 0) / 1024, 1) if samples else None,
            round((samples[-1].rss_kb or 0) / 1024, 1) if samples else None,
        ],
        "open_files_first_last": [
            samples[0].open_files if samples else None,
            samples[-1].open_files if samples else None,
        ],
    }


def _pause_figures(
    attempts: Sequence[Attempt], samples: Sequence[Sample], pause: dict[str, float]
) -> dict[str, Any]:
    start, end = pause["start"], pause["end"]
    sent = [a for a in attempts if start <= a.start < end]
    store_refusals = [a for a in attempts if a.code == "redis_unavailable"]
    after = [a.end for a in attempts if a.ok and a.start >= end]
    in_pause = [s for s in samples if start <= s.at < end]
    return {
        "pause_start_s": round(start, 3),
        "pause_s": round(end - start, 3),
        "sent_during_pause": answers(sent),
        "slowest_answer_during_pause_ms": round(max((a.seconds for a in sent), default=0) * 1000),
        "last_redis_unavailable_after_pause_s": round(
            max((a.end for a in store_refusals), default=end) - end, 3
        ),
        "first_accepted_after_pause_s": round(min(after) - end, 3) if after else None,
        "qms_during_pause": _server_figures(in_pause),
    }


# -------------------------------------------------------------------- main


def run(opts: Options) -> dict[str, Any]:
    levels = []
    for clients in opts.clients:
        print(f"{clients} clients …", file=sys.stderr, flush=True)
        levels.append(run_level(opts, clients))
    return {
        "command": "python -m loadtests.overload " + " ".join(sys.argv[1:]),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine_description(),
        "load_average": os.getloadavg(),
        "redis_version": redis_version(),
        "max_in_flight": int(opts.env.get("QMS_MAX_IN_FLIGHT", "128")),
        "client_timeout_s": opts.timeout_s,
        "levels": levels,
    }


def table(report: dict[str, Any]) -> str:
    head = (
        "| clients | requests | accepted | p50 (ms) | p99 (ms) | max (ms) | refused "
        "| unanswered | numbers twice | called twice | skipped | lost | not acknowledged "
        "| CPU % qms / redis / clients | machine busy % |"
    )
    lines = [head, "|" + " --- |" * 15]
    for lv in report["levels"]:
        load, a, cpu = lv["load"], lv["audit"], lv["cpu_percent_of_one"]
        refused = ", ".join(
            f"{k}: {v} ({100 * load['refused_share'][k]:.1f} %)" for k, v in load["refused"].items()
        )
        lines.append(
            f"| {lv['clients']} | {load['requests']} | {load['accepted']} "
            f"| {load['accepted_p50_ms']} | {load['accepted_p99_ms']} "
            f"| {load['accepted_max_ms']} | {refused or 0} | {load['unanswered']} "
            f"| {a['numbers_issued_twice']} | {a['tickets_called_twice']} "
            f"| {a['tickets_skipped']} | {a['tickets_lost']} | {a['tickets_not_acknowledged']} "
            f"| {cpu['qms']} / {cpu['redis']} / {'+'.join(map(str, cpu['clients']))} "
            f"| {lv['machine_cpu_busy_percent']} |"
        )
    pauses = [lv for lv in report["levels"] if "pause" in lv]
    if pauses:
        lines += [
            "",
            "| clients | pause (s) | sent in pause | accepted | refused | slowest answer (ms) "
            "| max in flight | last redis_unavailable after (s) | first accepted after (s) |",
            "|" + " --- |" * 9,
        ]
        for lv in pauses:
            p, s = lv["pause"], lv["pause"]["sent_during_pause"]
            lines.append(
                f"| {lv['clients']} | {p['pause_s']} | {s['requests']} | {s['accepted']} "
                f"| {s['refused']} | {p['slowest_answer_during_pause_ms']} "
                f"| {p['qms_during_pause']['max_in_flight']} "
                f"| {p['last_redis_unavailable_after_pause_s']} "
                f"| {p['first_accepted_after_pause_s']} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtests.overload", description=__doc__)
    p.add_argument("--clients", default="50,200,1000", help="levels of concurrent clients")
    p.add_argument("--seconds", type=float, default=20.0, help="of load per level")
    p.add_argument("--timeout-s", type=float, default=CLIENT_TIMEOUT_S, help="client timeout")
    p.add_argument("--clients-per-process", type=int, default=CLIENTS_PER_PROCESS)
    p.add_argument("--pause-s", type=float, default=0.0, help="CLIENT PAUSE Redis this long")
    p.add_argument("--max-in-flight", type=int, help="QMS_MAX_IN_FLIGHT (default: qms's, 128)")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = p.parse_args(argv)
    clients = tuple(int(c) for c in args.clients.split(","))
    if min(clients) < 3:
        p.error("--clients: at least 3 a level (a kiosk, a clerk, a visitor)")
    env = {} if args.max_in_flight is None else {"QMS_MAX_IN_FLIGHT": str(args.max_in_flight)}
    with tempfile.TemporaryDirectory(prefix="qms-overload-") as tmp:
        opts = Options(
            Path(tmp),
            clients,
            args.seconds,
            args.timeout_s,
            args.clients_per_process,
            args.pause_s,
            env,
        )
        report = run(opts)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    print(table(report))
    print(f"\n{report['machine']}; load {report['load_average']}; redis {report['redis_version']}")
    print(f"JSON: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
