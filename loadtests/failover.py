"""Failover, measured: `python -m loadtests.failover`.

Sets up a primary, two replicas and three Sentinels (quorum 2,
`down-after-milliseconds` 1000) from the bundled redis-server, runs `qms
serve` on them through `redis+sentinel://`, drives a steady stream of
issues and call-nexts from several clients (each retrying a refused or
unanswered request with its Idempotency-Key, as kiosks and consoles do),
kills the primary with SIGKILL mid-stream, and reports:

- how long requests failed (first to last failed answer) and how long after
  the kill the first request succeeded again, the slowest answer, and
  whether any request went unanswered within the client's timeout;
- the requests acknowledged, and the acknowledged tickets lost, numbers
  issued twice and tickets called twice once the Sentinels promoted a
  replica;

once with `QMS_REDIS_MIN_REPLICAS=1` and once with 0, in two scenarios:
`kill` (the primary dies; its replicas were in sync) and `cut-off` (both
replicas are cut off from the primary `--cut-off-s` before it dies, as by
a network partition: they are stopped (SIGSTOP) and the primary drops their
links; the writes the lone primary acknowledged in that time exist nowhere
else). Then the latency
cost of the option: p50 and p99 of an issue over HTTP in steady state with
0 and with 1 replica to wait for.

Prints a table and writes JSON (`loadtests/results/failover.json`). The
stream driver (`Stream`, `audit`) is also what `tests/test_failover.py`
drives. Uses httpx (a test dependency): run it from the dev install.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import platform
import random
import re
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import redis
import redis.cluster

from loadtests.http_bench import ADMIN_TOKEN, KIOSK_TOKEN, hall_toml, qms_command
from loadtests.redis_cluster import LocalCluster
from loadtests.redis_procs import (
    Deployment,
    Node,
    free_port,
    redis_version,
    sentinel_deployment,
)
from loadtests.serve_process import HOST, ServeProcess, percentile
from queue_core.keys import HallKeys
from queue_core.redis_client import create_sync_redis

DEFAULT_JSON = Path(__file__).with_name("results") / "failover.json"
CLIENT_TIMEOUT_S = 5.0
"""A client gives up on an answer after this long: an unanswered request is a hang."""
SLOW_ANSWER_S = 1.0
"""The contract's bound for a 503 while Redis has no primary."""
STARTUP_TIMEOUT_S = 30.0


# --------------------------------------------------------------- qms serve


@contextlib.contextmanager
def serving(
    workdir: Path,
    config: Path,
    redis_url: str,
    *,
    min_replicas: int = 0,
    name: str = "qms",
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
) -> Iterator[ServeProcess]:
    """`qms serve --config CONFIG [ARGS]` on `redis_url` (the embedded Redis
    when empty) as its own process, ready (its /readyz answers 200);
    stopped with SIGTERM at the end."""
    port = free_port()
    cmd = [
        *qms_command(), "serve", "--config", str(config), "--host", HOST,
        "--port", str(port), "--data-dir", str(workdir / f"{name}-data"), *args,
    ]  # fmt: skip
    log = workdir / f"{name}.log"
    child_env = {"QMS_REDIS_MIN_REPLICAS": str(min_replicas), **(env or {})}
    server = ServeProcess(
        ServeProcess.spawn(cmd, log, redis_url=redis_url, env=child_env, append=True), port, log
    )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if server.proc.poll() is not None:
                raise RuntimeError(f"qms serve exited with {server.proc.returncode}: "
                                   f"{server.log_tail()}")  # fmt: skip
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"http://{HOST}:{port}/readyz", timeout=2) as r,
            ):
                if r.status == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"qms serve not ready: {server.log_tail()}")
            time.sleep(0.1)
        yield server
    finally:
        server.stop()


def write_hall(workdir: Path, hall: str) -> Path:
    """The benchmark hall of `loadtests.http_bench` (40 windows, kiosk and admin tokens)."""
    path = workdir / f"{hall}.toml"
    path.write_text(hall_toml(hall), encoding="utf-8")
    return path


# ------------------------------------------------------------------ stream


@dataclass(frozen=True, slots=True)
class Target:
    """Where the stream goes: a qms, a hall, its tokens, a service, windows to call at."""

    base_url: str
    hall: str
    windows: tuple[str, ...]
    service: str = "social-security"
    kiosk_token: str = KIOSK_TOKEN
    clerk_token: str = ADMIN_TOKEN

    @property
    def api(self) -> str:
        return f"{self.base_url}/api/v1/halls/{self.hall}"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One request and its answer, in seconds since the stream began."""

    op: str
    """issue, call or poll"""
    key: str
    start: float
    end: float
    status: int | None
    """None: no answer within the client's timeout, or no connection to qms."""
    code: str = ""
    """The error's code, or what the client saw instead of an answer."""

    @property
    def seconds(self) -> float:
        return self.end - self.start

    @property
    def ok(self) -> bool:
        return self.status is not None and self.status < 300


class Answer(Protocol):
    """What the stream reads of an answer (an `httpx.Response` has it)."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    def json(self) -> Any: ...


class HttpClient(Protocol):
    """What the stream asks of a client (an `httpx.AsyncClient` does it):
    a timeout is `httpx.TimeoutException`, no connection another
    `httpx.TransportError`."""

    async def post(self, url: str, *, headers: dict[str, str], json: Any) -> Answer: ...

    async def get(self, url: str, *, headers: dict[str, str]) -> Answer: ...


ClientFactory = Callable[[float], contextlib.AbstractAsyncContextManager[HttpClient]]
"""Opens one client with a timeout in seconds."""


def _client(timeout_s: float) -> httpx.AsyncClient:
    # trust_env=False: no proxy from the environment between the clients and qms.
    # verify=False: qms is spoken to over plain HTTP, and the CA bundle a
    # verifying client loads costs ~13 ms of CPU per client (13 s for the
    # 1,000 clients of loadtests.overload).
    return httpx.AsyncClient(timeout=timeout_s, trust_env=False, verify=False)


class Stream:
    """`issuers` kiosks issuing and one clerk per window calling next, each
    pausing `pause_s` between requests, and `visitors` following tickets
    the kiosks were given (GET /tickets/{id}), as a visitor's phone does. A
    request answered 503, or not answered, is retried with the same
    Idempotency-Key after `retry_s`, or after the answer's `Retry-After`
    and up to `jitter_s` more (so refused clients do not all come back at
    the same instant), until it is answered or the stream stops. With
    `finish`, a request unanswered when the stream stops is retried until
    it is answered (what it changed is then acknowledged, so the audit
    sees every ticket the stream made and every call)."""

    def __init__(
        self,
        target: Target,
        *,
        issuers: int = 5,
        visitors: int = 0,
        pause_s: float = 0.05,
        retry_s: float = 0.05,
        jitter_s: float = 0.5,
        timeout_s: float = CLIENT_TIMEOUT_S,
        finish: bool = False,
        client: ClientFactory = _client,
    ) -> None:
        self.target = target
        self.issuers = issuers
        self.visitors = visitors
        self.pause_s = pause_s
        self.retry_s = retry_s
        self.jitter_s = jitter_s
        self.timeout_s = timeout_s
        self.finish = finish
        self._connect = client
        self.attempts: list[Attempt] = []
        self.issued: dict[str, dict[str, Any]] = {}
        """Idempotency key -> the ticket its 201 acknowledged."""
        self.called: dict[str, tuple[str, dict[str, Any] | None]] = {}
        """Idempotency key -> (window, the ticket its 200 called, None for a 204)."""
        self._ids: list[str] = []
        """The acknowledged tickets' ids, for the visitors to pick from."""
        self._ticketed = asyncio.Event()
        """Set at the first acknowledged ticket (and at the stop)."""
        self._t0 = time.monotonic()
        self._stop = asyncio.Event()
        self._progress = asyncio.Event()

    def now(self) -> float:
        return time.monotonic() - self._t0

    @property
    def t0(self) -> float:
        """The `time.monotonic()` its times count from (set as `run()` begins)."""
        return self._t0

    def stop(self) -> None:
        self._stop.set()
        self._ticketed.set()

    @contextlib.asynccontextmanager
    async def running(self, finish_timeout_s: float) -> AsyncIterator[Stream]:
        """The stream running in a task; on the way out it is stopped and
        awaited (each client finishing its request) for `finish_timeout_s`."""
        runner = asyncio.create_task(self.run())
        try:
            yield self
        finally:
            self.stop()
            async with asyncio.timeout(finish_timeout_s):
                await runner

    async def run(self) -> None:
        """Until `stop()`; every client finishes the request it is waiting on."""
        self._t0 = time.monotonic()
        async with contextlib.AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(self._connect(self.timeout_s))
                for _ in range(self.issuers + len(self.target.windows) + self.visitors)
            ]
            tasks = [self._issuer(clients[i]) for i in range(self.issuers)]
            tasks += [
                self._caller(clients[self.issuers + i], w)
                for i, w in enumerate(self.target.windows)
            ]
            first_visitor = self.issuers + len(self.target.windows)
            tasks += [self._visitor(c) for c in clients[first_visitor:]]
            await asyncio.gather(*tasks)

    async def wait_for(self, condition: Any, timeout_s: float, what: str) -> None:
        """Until `condition()` holds (checked after every answer)."""
        deadline = time.monotonic() + timeout_s
        while not condition():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{what}: not within {timeout_s:g} s")
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), min(left, 0.5))

    def successes_after(self, t: float) -> int:
        return sum(1 for a in self.attempts if a.ok and a.start >= t)

    async def _issuer(self, client: HttpClient) -> None:
        t = self.target
        headers = {"Authorization": f"Bearer {t.kiosk_token}"}
        while not self._stop.is_set():
            key = uuid.uuid4().hex
            answer = await self._until_answered(
                client, "issue", key, f"{t.api}/tickets", headers, {"service": t.service}
            )
            if answer is not None and answer.status_code == 201:
                self.issued[key] = answer.json()
                self._ids.append(self.issued[key]["id"])
                self._ticketed.set()
            await self._pause()

    async def _caller(self, client: HttpClient, window: str) -> None:
        t = self.target
        headers = {"Authorization": f"Bearer {t.clerk_token}"}
        url = f"{t.api}/windows/{window}/call-next"
        while not self._stop.is_set():
            key = uuid.uuid4().hex
            answer = await self._until_answered(client, "call", key, url, headers, None)
            if answer is not None and answer.status_code in (200, 204):
                body = answer.json() if answer.status_code == 200 else None
                self.called[key] = (window, body)
            await self._pause()

    async def _visitor(self, client: HttpClient) -> None:
        # Nothing to follow before the first ticket: wait for it (a loop
        # of zero pauses would spin, and take the kiosks' CPU).
        await self._ticketed.wait()
        while not self._stop.is_set():
            ticket = random.choice(self._ids)
            url = f"{self.target.api}/tickets/{ticket}"
            await self._until_answered(client, "poll", "", url, {}, None)
            await self._pause()

    async def _pause(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), self.pause_s)

    async def _until_answered(
        self,
        client: HttpClient,
        op: str,
        key: str,
        url: str,
        headers: dict[str, str],
        body: dict[str, str] | None,
    ) -> Answer | None:
        while True:
            start = self.now()
            status: int | None = None
            code = ""
            response = None
            try:
                if op == "poll":
                    response = await client.get(url, headers=headers)
                else:
                    response = await client.post(
                        url, headers={**headers, "Idempotency-Key": key}, json=body
                    )
                status = response.status_code
                if status >= 400:
                    code = _error_code(response)
            except httpx.TimeoutException:
                code = "client_timeout"
            except httpx.TransportError as exc:
                code = type(exc).__name__
            self.attempts.append(Attempt(op, key, start, self.now(), status, code))
            self._progress.set()
            if status is not None and status != 503:
                return response
            if self._stop.is_set() and (op == "poll" or not self.finish):
                return None
            await asyncio.sleep(self._retry_delay(response))

    def _retry_delay(self, response: Answer | None) -> float:
        after = response.headers.get("retry-after", "") if response is not None else ""
        if not after.isdigit():
            return self.retry_s
        return int(after) + random.uniform(0, self.jitter_s)


def _error_code(response: Answer) -> str:
    with contextlib.suppress(ValueError, KeyError, TypeError):
        return str(response.json()["error"]["code"])
    return "not_the_error_shape"


async def open_windows(target: Target) -> None:
    async with _client(CLIENT_TIMEOUT_S) as client:
        for w in target.windows:
            r = await client.post(
                f"{target.api}/windows/{w}/open",
                headers={"Authorization": f"Bearer {target.clerk_token}"},
            )
            r.raise_for_status()


# ------------------------------------------------------------------- audit


@dataclass
class Findings:
    """What the stream's acknowledgements and the hall's state say together."""

    attempts: int = 0
    acknowledged: int = 0
    """Issues answered 201 and call-nexts answered 200 or 204 (each key once)."""
    tickets_acknowledged: int = 0
    tickets_lost: list[str] = field(default_factory=list)
    """Acknowledged tickets the hall no longer has (their numbers)."""
    numbers_issued_twice: list[str] = field(default_factory=list)
    calls_acknowledged: int = 0
    tickets_called_twice: list[str] = field(default_factory=list)
    calls_lost: list[str] = field(default_factory=list)
    """Tickets whose acknowledged call the hall forgot (waiting again)."""
    tickets_skipped: list[str] = field(default_factory=list)
    """Acknowledged tickets still waiting although a ticket issued after
    them was called. The stream's tickets are all normal, of one service
    (one group, one prefix): the dispatch rule calls them in issue order,
    which is their numbers' order."""
    unanswered: int = 0
    """Requests with no answer within the client's timeout (hangs)."""
    not_error_shape: int = 0
    unexpected: dict[str, int] = field(default_factory=dict)
    """Answers other than 2xx and 503, by status and code."""
    failures: dict[str, int] = field(default_factory=dict)
    """Failed attempts by code."""
    slowest_answer_s: float = 0.0
    slowest_failure_s: float = 0.0
    failures_over_1s: int = 0

    @property
    def clean(self) -> bool:
        return not (
            self.tickets_lost
            or self.numbers_issued_twice
            or self.tickets_called_twice
            or self.calls_lost
            or self.tickets_skipped
            or self.unanswered
            or self.not_error_shape
            or self.unexpected
        )


async def audit(stream: Stream) -> Findings:
    """Read back every acknowledged ticket and compare."""
    f = Findings(attempts=len(stream.attempts))
    f.tickets_acknowledged = len(stream.issued)
    f.calls_acknowledged = len(stream.called)
    f.acknowledged = f.tickets_acknowledged + f.calls_acknowledged
    failures: Counter[str] = Counter()
    unexpected: Counter[str] = Counter()
    for a in stream.attempts:
        f.slowest_answer_s = max(f.slowest_answer_s, a.seconds)
        if a.status is None:
            f.unanswered += a.code == "client_timeout"
            failures[a.code] += 1
        elif a.status == 503:
            failures[a.code] += 1
            f.slowest_failure_s = max(f.slowest_failure_s, a.seconds)
            f.failures_over_1s += a.seconds > SLOW_ANSWER_S
        elif a.status >= 300:
            unexpected[f"{a.status} {a.code}"] += 1
        if a.code == "not_the_error_shape":
            f.not_error_shape += 1
    f.failures = dict(failures)
    f.unexpected = dict(unexpected)

    by_number: defaultdict[str, set[str]] = defaultdict(set)
    for ticket in stream.issued.values():
        by_number[ticket["number"]].add(ticket["id"])
    f.numbers_issued_twice = sorted(n for n, ids in by_number.items() if len(ids) > 1)
    # A call's answer names its ticket by number (staff never get a ticket's
    # id); the hall's numbers are one per ticket of its day, and the kiosk's
    # answers give each number's id.
    calls: Counter[str] = Counter(
        called["number"] for _, called in stream.called.values() if called is not None
    )
    f.tickets_called_twice = sorted(n for n, times in calls.items() if times > 1)

    ids = {t["id"]: t["number"] for t in stream.issued.values()}
    now = await _read_tickets(stream.target, list(ids))
    f.tickets_lost = sorted(n for i, n in ids.items() if now.get(i) is None)
    for number in calls:
        # A number whose issue was never acknowledged (the issuer stopped
        # while retrying it) cannot be read back: only acknowledged ones are.
        for i in by_number.get(number, ()):
            found = now.get(i)
            if found is None or found["status"] == "waiting" or found["called_at"] is None:
                f.calls_lost.append(number)
    f.calls_lost.sort()
    f.tickets_skipped = skipped_numbers(calls, [t for t in now.values() if t is not None])
    return f


def skipped_numbers(called: Collection[str], tickets: Sequence[Mapping[str, Any]]) -> list[str]:
    """The numbers of `tickets` still waiting below the highest number
    called in their prefix (`called` and every ticket read back that was
    called). A ticket whose own call was acknowledged and which waits
    again is a lost call (`Findings.calls_lost`), not a skip."""
    highest: dict[str, int] = {}
    numbers = [*called, *(t["number"] for t in tickets if t["called_at"] is not None)]
    for prefix, seq in map(_number_parts, numbers):
        highest[prefix] = max(highest.get(prefix, 0), seq)
    skipped = []
    for t in tickets:
        prefix, seq = _number_parts(t["number"])
        if t["status"] == "waiting" and seq < highest.get(prefix, 0) and t["number"] not in called:
            skipped.append(t["number"])
    return sorted(skipped, key=_number_parts)


def _number_parts(number: str) -> tuple[str, int]:
    """("A", 12) for "A012": numbers are a prefix and a sequence (API.md)."""
    m = re.fullmatch(r"(\D+)(\d+)", number)
    if m is None:
        raise ValueError(f"not a ticket number: {number!r}")
    return m[1], int(m[2])


async def _read_tickets(target: Target, ids: Sequence[str]) -> dict[str, dict[str, Any] | None]:
    """Each ticket as qms has it now; None for a 404. Retries a 503 (the
    audit runs once qms is back, but a replica may still be catching up)."""
    found: dict[str, dict[str, Any] | None] = {}
    gate = asyncio.Semaphore(8)
    async with _client(CLIENT_TIMEOUT_S) as client:

        async def one(ticket_id: str) -> None:
            async with gate:
                for _ in range(100):
                    r = await client.get(f"{target.api}/tickets/{ticket_id}")
                    if r.status_code == 200:
                        found[ticket_id] = r.json()
                        return
                    if r.status_code == 404:
                        found[ticket_id] = None
                        return
                    await asyncio.sleep(0.1)
                r.raise_for_status()

        await asyncio.gather(*(one(i) for i in ids))
    return found


# ---------------------------------------------------------------- timeline


@dataclass
class Timeline:
    """The stream around a disruption at `t` (seconds since the stream began)."""

    first_failure_s: float | None
    """The first failed request's start, after `t` (negative: before it)."""
    last_failure_s: float | None
    """The last failed request's answer, after `t`."""
    failing_s: float
    """From the first failed request's start to the last's answer."""
    first_success_s: float | None
    """The first successful answer to a request sent after `t`."""
    failed_requests: int


def timeline(stream: Stream, t: float, since: float | None = None) -> Timeline:
    """Failures from `since` (default `t`) on, timed from `t`."""
    since = t if since is None else since
    failed = [a for a in stream.attempts if not a.ok and a.end >= since]
    ok_after = [a.end for a in stream.attempts if a.ok and a.start >= t]
    first = min((a.start for a in failed), default=None)
    last = max((a.end for a in failed), default=None)
    return Timeline(
        first_failure_s=None if first is None else first - t,
        last_failure_s=None if last is None else last - t,
        failing_s=0.0 if first is None or last is None else last - first,
        first_success_s=min(ok_after) - t if ok_after else None,
        failed_requests=len(failed),
    )


# --------------------------------------------------------------- scenarios


@dataclass(frozen=True, slots=True)
class Options:
    workdir: Path
    clients: int = 8
    steady_s: float = 3.0
    after_s: float = 3.0
    cut_off_s: float = 0.6
    recover_timeout_s: float = 60.0
    latency_requests: int = 2000
    latency_clients: tuple[int, ...] = (1, 4)
    cluster: bool = False
    cluster_node_timeout_ms: int = 2000


def failover_topology(workdir: Path) -> contextlib.AbstractContextManager[Deployment]:
    """A primary, 2 replicas, 3 Sentinels with quorum 2 and a 1 s `down-after`."""
    return sentinel_deployment(
        workdir, replicas=2, sentinels=3, quorum=2, down_after_ms=1000, failover_timeout_ms=3000
    )


@dataclass
class ClusterShard:
    """The shard of a Redis Cluster that holds the benchmark hall: what the
    scenarios kill, cut off and ask, as of a Sentinel `Deployment`."""

    cluster: LocalCluster
    primary: Node
    replicas: list[Node]

    @classmethod
    def of_hall(cls, cluster: LocalCluster, hall: str) -> ClusterShard:
        with create_sync_redis(cluster.url) as client:
            assert isinstance(client, redis.cluster.RedisCluster)
            node = client.get_node_from_key(HallKeys(hall).seq)  # type: ignore[no-untyped-call]
        port = int(node.port)
        replicas = [cls._node(cluster, r) for r in cluster.replica_ports(port)]
        return cls(cluster, cls._node(cluster, port), replicas)

    @staticmethod
    def _node(cluster: LocalCluster, port: int) -> Node:
        return Node(port, [], cluster.procs[cluster.ports.index(port)], cluster.log_of(port))

    @property
    def url(self) -> str:
        return self.cluster.url

    def primary_port(self) -> int | None:
        """Which of the shard's nodes is its primary now (None: neither)."""
        for node in (self.primary, *self.replicas):
            if node.alive:
                with contextlib.suppress(redis.RedisError):
                    role = node.ask("ROLE")
                    if isinstance(role, list) and role and role[0] == "master":
                        return node.port
        return None


@contextlib.contextmanager
def cluster_topology(workdir: Path, node_timeout_ms: int) -> Iterator[LocalCluster]:
    """3 primaries, two replicas each (as the Sentinel topology: with
    `QMS_REDIS_MIN_REPLICAS=1` a promoted replica still has one to confirm
    to); a primary unreachable for `node_timeout_ms` is failed over to a
    replica by the other primaries' vote."""
    cluster = LocalCluster.start(workdir, primaries=3, replicas=2, node_timeout_ms=node_timeout_ms)
    try:
        yield cluster
    finally:
        cluster.stop()


def run_scenario(
    opts: Options, *, min_replicas: int, cut_off: bool, cluster: bool = False
) -> dict[str, Any]:
    """One failover under a steady stream (of a Sentinel's primary, or of the
    hall's shard of a Cluster): its timeline and findings."""
    scenario = ("cluster " if cluster else "") + ("cut-off" if cut_off else "kill")
    run_id = f"{scenario.replace(' ', '-')}-min{min_replicas}-{uuid.uuid4().hex[:6]}"
    workdir = opts.workdir / run_id
    workdir.mkdir(parents=True)
    hall = f"fo{uuid.uuid4().hex[:8]}"
    config = write_hall(workdir, hall)
    topology: contextlib.AbstractContextManager[Deployment | LocalCluster] = (
        cluster_topology(workdir / "redis", opts.cluster_node_timeout_ms)
        if cluster
        else failover_topology(workdir / "redis")
    )
    with (
        topology as redis_nodes,
        serving(workdir, config, redis_nodes.url, min_replicas=min_replicas) as qms,
    ):
        victim = (
            ClusterShard.of_hall(redis_nodes, hall)
            if isinstance(redis_nodes, LocalCluster)
            else redis_nodes
        )
        issuers = max(1, opts.clients * 5 // 8)
        windows = tuple(str(i) for i in range(1, opts.clients - issuers + 1))
        target = Target(f"http://{HOST}:{qms.port}", hall, windows)
        result = asyncio.run(_disrupt(opts, victim, target, issuers, cut_off))
    result.update(scenario=scenario, min_replicas=min_replicas)
    if cluster:
        result["node_timeout_ms"] = opts.cluster_node_timeout_ms
    return result


async def _disrupt(
    opts: Options, d: Deployment | ClusterShard, target: Target, issuers: int, cut_off: bool
) -> dict[str, Any]:
    await open_windows(target)
    stream = Stream(target, issuers=issuers)
    runner = asyncio.create_task(stream.run())
    try:
        await asyncio.sleep(opts.steady_s)
        old = d.primary
        started = stream.now()
        if cut_off:
            # Stopped, the replicas would still find in their sockets what
            # the primary sent them while they slept: the primary drops their
            # links too, so what it acknowledges from now on is its own alone.
            for r in d.replicas:
                r.pause()
            old.ask("CLIENT", "KILL", "TYPE", "replica")
            await asyncio.sleep(opts.cut_off_s)
        old.kill()
        for r in d.replicas if cut_off else ():
            r.resume()
        killed = stream.now()
        await stream.wait_for(
            lambda: stream.successes_after(killed) > 0, opts.recover_timeout_s, "qms recovering"
        )
        recovered = stream.now()
        await asyncio.sleep(opts.after_s)
    finally:
        stream.stop()
        await runner
    promoted = d.primary_port()
    findings = await audit(stream)
    line = timeline(stream, killed, since=started)
    return {
        "timeline": asdict(line),
        "cut_off_s": round(killed - started, 3) if cut_off else 0.0,
        "recovered_after_kill_s": round(recovered - killed, 3),
        "promoted": promoted,
        "findings": {
            **asdict(findings),
            "tickets_lost": len(findings.tickets_lost),
            "numbers_issued_twice": len(findings.numbers_issued_twice),
            "tickets_called_twice": len(findings.tickets_called_twice),
            "calls_lost": len(findings.calls_lost),
            "tickets_skipped": len(findings.tickets_skipped),
        },
    }


def measure_latency(opts: Options, min_replicas: int) -> list[dict[str, Any]]:
    """p50/p99 of an issue over HTTP, steady state, the replicas in sync,
    with each of `opts.latency_clients` clients at a time."""
    workdir = opts.workdir / f"latency-min{min_replicas}-{uuid.uuid4().hex[:6]}"
    workdir.mkdir(parents=True)
    hall = f"fo{uuid.uuid4().hex[:8]}"
    config = write_hall(workdir, hall)
    with (
        failover_topology(workdir / "redis") as d,
        serving(workdir, config, d.url, min_replicas=min_replicas) as qms,
    ):
        target = Target(f"http://{HOST}:{qms.port}", hall, ())
        rows = []
        for clients in opts.latency_clients:
            seconds = asyncio.run(_issue_latencies(target, opts.latency_requests, clients))
            ms = sorted(s * 1000 for s in seconds)
            rows.append(
                {
                    "min_replicas": min_replicas,
                    "requests": len(ms),
                    "clients": clients,
                    "p50_ms": round(percentile(ms, 50), 2),
                    "p99_ms": round(percentile(ms, 99), 2),
                    "mean_ms": round(statistics.fmean(ms), 2),
                }
            )
    return rows


async def _issue_latencies(target: Target, requests: int, clients: int) -> list[float]:
    warmup = max(50, requests // 10)
    seconds: list[float] = []
    counter = iter(range(warmup + requests))
    headers = {"Authorization": f"Bearer {target.kiosk_token}"}

    async def client_loop() -> None:
        async with _client(CLIENT_TIMEOUT_S) as client:
            for n in counter:
                started = time.perf_counter()
                r = await client.post(
                    f"{target.api}/tickets", headers=headers, json={"service": target.service}
                )
                if r.status_code != 201:
                    raise RuntimeError(f"issue answered {r.status_code}: {r.text}")
                if n >= warmup:
                    seconds.append(time.perf_counter() - started)

    await asyncio.gather(*(client_loop() for _ in range(clients)))
    return seconds


# -------------------------------------------------------------------- main


def run(opts: Options, repeat: int) -> dict[str, Any]:
    runs = []
    for i in range(repeat):
        for cut_off in (False, True):
            for min_replicas in (1, 0):
                print(
                    f"run {i + 1}/{repeat}: {'cut-off' if cut_off else 'kill'}, "
                    f"QMS_REDIS_MIN_REPLICAS={min_replicas} …",
                    file=sys.stderr,
                    flush=True,
                )
                runs.append(run_scenario(opts, min_replicas=min_replicas, cut_off=cut_off))
                if opts.cluster:
                    runs.append(
                        run_scenario(opts, min_replicas=min_replicas, cut_off=cut_off, cluster=True)
                    )
    latency = [row for m in (0, 1) for row in measure_latency(opts, m)]
    return {
        "command": "python -m loadtests.failover " + " ".join(sys.argv[1:]),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine_description(),
        "redis_version": redis_version(),
        "clients": opts.clients,
        "runs": runs,
        "latency": latency,
    }


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}"


def _s(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}"


def table(report: dict[str, Any]) -> str:
    head = (
        "| scenario | min replicas | failing (s) | first failure (s) | last failure (s) "
        "| first success (s) | failed requests | slowest answer (s) | unanswered "
        "| acknowledged | tickets lost | numbers twice | called twice |"
    )
    lines = [head, "|" + " --- |" * 13]
    for r in report["runs"]:
        t, f = r["timeline"], r["findings"]
        lines.append(
            f"| {r['scenario']} | {r['min_replicas']} | {t['failing_s']:.2f} "
            f"| {_s(t['first_failure_s'])} | {_s(t['last_failure_s'])} "
            f"| {_s(t['first_success_s'])} | {t['failed_requests']} "
            f"| {f['slowest_answer_s']:.2f} | {f['unanswered']} | {f['acknowledged']} "
            f"| {f['tickets_lost']} | {f['numbers_issued_twice']} "
            f"| {f['tickets_called_twice']} |"
        )
    lines += ["", "| min replicas | issue p50 (ms) | issue p99 (ms) | requests | clients |"]
    lines.append("|" + " --- |" * 5)
    for lat in sorted(report["latency"], key=lambda r: (r["clients"], r["min_replicas"])):
        lines.append(
            f"| {lat['min_replicas']} | {lat['p50_ms']:.2f} | {lat['p99_ms']:.2f} "
            f"| {lat['requests']} | {lat['clients']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtests.failover", description=__doc__)
    p.add_argument("--repeat", type=int, default=1, help="runs of each scenario")
    p.add_argument("--clients", type=int, default=8, help="kiosks and clerks in the stream")
    p.add_argument("--steady", type=float, default=3.0, help="seconds of stream before the kill")
    p.add_argument("--after", type=float, default=3.0, help="seconds of stream after recovery")
    p.add_argument("--cut-off-s", type=float, default=0.6, help="replicas silent before the kill")
    p.add_argument("--latency-requests", type=int, default=2000)
    p.add_argument(
        "--cluster",
        action="store_true",
        help="also fail over the hall's shard of a 3-primary Redis Cluster (a replica each)",
    )
    p.add_argument("--cluster-node-timeout-ms", type=int, default=2000)
    p.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = p.parse_args(argv)
    if args.clients < 2:
        p.error("--clients must be at least 2 (a kiosk and a clerk)")
    with tempfile.TemporaryDirectory(prefix="qms-failover-") as tmp:
        opts = Options(
            Path(tmp),
            clients=args.clients,
            steady_s=args.steady,
            after_s=args.after,
            cut_off_s=args.cut_off_s,
            latency_requests=args.latency_requests,
            cluster=args.cluster,
            cluster_node_timeout_ms=args.cluster_node_timeout_ms,
        )
        report = run(opts, args.repeat)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    print(table(report))
    print(f"\n{report['machine']}; redis-server {report['redis_version']}; {report['date']}")
    print(f"JSON: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
