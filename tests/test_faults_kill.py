"""qms killed mid-request: no half-applied state, and the retried key gives
the first answer.

Each test runs `qms serve` as a process of its own and kills it (SIGKILL)
while one request sits inside its Redis call, in both ways that can end:

(a) the script reached Redis and ran, but qms died before it answered: the
    change stands and the client never heard of it. A new qms, asked again
    with the same Idempotency-Key, answers what the first would have (the
    same ticket, nobody else called) and changes nothing more;
(b) the script never reached Redis: nothing changed, and the retry applies
    it exactly once.

Every piece of a change (its idempotency record, event, ticket, queue,
audit entry, outbox) is written by the one Lua script of the operation
(queue_core/lua/_lib.lua: `replay` first, `remember` last, in the same
script), so there is no moment between two of them for a kill to land in.
The one Redis write an answer makes after its script, keeping a new
ticket's wait estimate (`note_estimate`), is made again by the retry: a kill
between the two leaves the ticket without its estimate only until then.

To land the kill exactly there, qms talks to an external redis-server
through a small proxy of the test's (`Interceptor`) that stops qms (SIGSTOP)
the moment the operation's EVALSHA passes, holding it; the test then lets
it through to Redis (a) or not (b) and kills qms. On the embedded
redis-server (which dies with qms), the same is done with `CLIENT PAUSE
WRITE` and a restart of `qms serve` on the same data directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from loadtests.failover import serving, write_hall
from loadtests.http_bench import ADMIN_TOKEN, KIOSK_TOKEN
from loadtests.redis_procs import single_redis, wait_for
from loadtests.serve_process import HOST, ServeProcess
from queue_core.keys import HallKeys
from queue_core.scripts import source

pytestmark = [pytest.mark.slow, pytest.mark.redis]

HALL = "kill"
KEYS = HallKeys(HALL)
KIOSK = {"Authorization": f"Bearer {KIOSK_TOKEN}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SERVICE = "social-security"
# No periodic reads of the hall while a request is held (they would be
# scripts too, and CLIENT PAUSE WRITE holds every script in Redis 6.2).
QUIET = {"QMS_METRICS_INTERVAL": "3600"}
WAIT_S = 10.0
Redis = Any
"""A decoding sync `redis.Redis` (its stubs type every reply as a union of all kinds)."""


def sha_of(script: str) -> bytes:
    return hashlib.sha1(source(script).encode()).hexdigest().encode()


# ------------------------------------------------------------- the proxy


class Interceptor:
    """A TCP proxy between qms and Redis. Once `arm`ed with a script's SHA,
    the first command carrying it is held: `on_catch` runs at once (it
    stops qms), and the command goes on to Redis only on `release()`;
    `drop()` forgets it. Everything else passes both ways untouched."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._listener = socket.create_server((HOST, 0))
        self.port: int = self._listener.getsockname()[1]
        self._sha: bytes | None = None
        self._on_catch: Callable[[], None] = lambda: None
        self.caught = threading.Event()
        self._decided = threading.Event()
        self._forward = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def arm(self, sha: bytes, on_catch: Callable[[], None]) -> None:
        with self._lock:
            self._sha, self._on_catch = sha, on_catch
            self.caught.clear()
            self._decided.clear()

    def release(self) -> None:
        self._forward = True
        self._decided.set()

    def drop(self) -> None:
        self._forward = False
        self._decided.set()

    def close(self) -> None:
        self._decided.set()
        for s in [self._listener, *self._sockets]:
            with contextlib.suppress(OSError):
                s.close()

    def _accept(self) -> None:
        while True:
            try:
                down, _ = self._listener.accept()
            except OSError:
                return
            up = socket.create_connection((HOST, self.upstream_port))
            self._sockets += [down, up]
            threading.Thread(target=self._pump, args=(down, up, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, down, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, to_redis: bool) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                if to_redis and self._catches(data):
                    self._on_catch()
                    self.caught.set()
                    self._decided.wait()
                    if not self._forward:
                        break  # the command never reaches Redis
                dst.sendall(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def _catches(self, data: bytes) -> bool:
        with self._lock:
            if self._sha is None or self._sha not in data:
                return False
            self._sha = None  # once
            return True


# ------------------------------------------------------------- helpers


def state_of(c: Redis) -> dict[str, Any]:
    """Every key of the hall and its value, but the rate limits' counters
    (each request counts itself before it runs), the wait estimates (kept by
    a second call: see the module doc) and the archive sweep's bookmark (a
    starting qms sweeps)."""
    found = {}
    for k in c.keys(KEYS.match_all()):
        if ":limit:" in k or k in (KEYS.estimates, KEYS.audit_archived):
            continue
        found[k] = value_of(c, k)
    return found


def has_changed(c: Redis, before: dict[str, Any]) -> bool:
    return state_of(c) != before


def value_of(c: Redis, key: str) -> object:
    """A key's value by its type (not DUMP: a hash reloaded from the AOF
    may keep its fields in another order)."""
    kind = c.type(key)
    if kind == "hash":
        return c.hgetall(key)
    if kind == "zset":
        return c.zrange(key, 0, -1, withscores=True)
    if kind == "list":
        return c.lrange(key, 0, -1)
    if kind == "set":
        return c.smembers(key)
    if kind == "stream":
        return c.xrange(key)
    return c.get(key)


def events_of(c: Redis, kind: str) -> list[str]:
    return [f["number"] for _, f in c.xrange(KEYS.events) if f["type"] == kind]


def audited(c: Redis, action: str) -> list[str]:
    return [f.get("number", "") for _, f in c.xrange(KEYS.audit) if f.get("action") == action]


def post(base: str, path: str, headers: dict[str, str], key: str | None = None,
         body: dict[str, str] | None = None) -> httpx.Response:  # fmt: skip
    extra = {"Idempotency-Key": key} if key else {}
    with httpx.Client(base_url=base, timeout=WAIT_S, trust_env=False) as client:
        return client.post(path, headers={**headers, **extra}, json=body)


def base_of(server: ServeProcess) -> str:
    return f"http://{HOST}:{server.port}/api/v1/halls/{HALL}"


def send_unanswered(
    pool: ThreadPoolExecutor, base: str, path: str, headers: dict[str, str], key: str,
    body: dict[str, str] | None,
) -> Future[str]:  # fmt: skip
    """The request qms is killed in: what its client saw instead of an answer."""

    def go() -> str:
        try:
            r = post(base, path, headers, key, body)
        except httpx.TransportError as exc:
            return type(exc).__name__
        return f"answered {r.status_code}: {r.text}"

    return pool.submit(go)


def kill(server: ServeProcess) -> None:
    """SIGKILL, stopped or not: no shutdown, no goodbye to anyone."""
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait(WAIT_S)


OPS: dict[str, tuple[str, str, dict[str, str], dict[str, str] | None]] = {
    # name: (script, path, headers, body)
    "issue": ("issue", "/tickets", KIOSK, {"service": SERVICE}),
    "call-next": ("call_next", "/windows/1/call-next", ADMIN, None),
    "transfer": ("transfer", "/windows/1/transfer", ADMIN, {"service": "housing-fund"}),
    "complete": ("finish", "/windows/1/complete", ADMIN, None),
}


def prepare(base: str, op: str) -> None:
    """Two tickets waiting; for a transfer or a complete, the first at window 1."""
    assert post(base, "/windows/1/open", ADMIN).status_code == 200
    for _ in range(2):
        assert post(base, "/tickets", KIOSK, body={"service": SERVICE}).status_code == 201
    if op in ("transfer", "complete"):
        assert post(base, "/windows/1/call-next", ADMIN).status_code == 200


def check_one_effect(c: Redis, op: str, answer: dict[str, Any], before: int) -> None:
    """The state holds the operation exactly once; `before` counts the
    tickets issued before it."""
    tickets = {k: v for k, v in c.hgetall(KEYS.tickets).items()}
    if op == "issue":
        assert len(tickets) == before + 1
        assert events_of(c, "issued").count(answer["number"]) == 1  # (a kiosk is not audited)
    elif op == "call-next":
        assert answer["number"] == "A001"  # not A002: nobody else called
        assert events_of(c, "called") == ["A001"]
        assert audited(c, "call_next") == ["A001"]
        waiting = c.zrange(KEYS.queue("natural"), 0, -1)
        assert len(waiting) == 1
    elif op == "transfer":
        assert answer["number"] == "A001" and answer["status"] == "waiting"
        assert events_of(c, "transferred") == ["A001"]
        assert audited(c, "transfer") == ["A001"]
        assert '"transfers":1' in "".join(tickets.values()).replace(" ", "")
        assert len(c.zrange(KEYS.queue("natural"), 0, -1)) == 2  # A002, and A001 again
    else:  # complete
        assert answer["number"] == "A001" and answer["status"] == "completed"
        assert events_of(c, "completed") == ["A001"]
        assert audited(c, "complete") == ["A001"]


# ------------------------------------------------ an external redis-server


@pytest.mark.parametrize("op", ["issue", "call-next", "transfer"])
def test_killed_mid_request_the_retry_gives_the_first_answer(tmp_path: Path, op: str) -> None:
    script, path, headers, body = OPS[op]
    hall = write_hall(tmp_path, HALL)
    pool = ThreadPoolExecutor(2)
    with single_redis(tmp_path / "redis") as node, node.client() as c:
        proxy = Interceptor(node.port)
        try:
            for outcome in ("never_ran", "ran"):
                c.flushall()
                with serving(tmp_path, hall, proxy.url, env=QUIET, name=f"{op}-{outcome}") as first:
                    base = base_of(first)
                    prepare(base, op)  # the scripts are loaded: an EVALSHA runs at once
                    issued = c.hlen(KEYS.tickets)
                    before = state_of(c)
                    proxy.arm(sha_of(script), lambda: os.kill(first.proc.pid, signal.SIGSTOP))
                    key = uuid.uuid4().hex
                    seen = send_unanswered(pool, base, path, headers, key, body)
                    assert proxy.caught.wait(WAIT_S), "the operation's script never passed"
                    if outcome == "ran":
                        proxy.release()
                        wait_for(partial(has_changed, c, before), WAIT_S, "the script's change")
                        kill(first)
                    else:
                        kill(first)
                        proxy.drop()
                    assert "answered" not in seen.result(WAIT_S), seen.result()
                    if outcome == "never_ran":
                        assert state_of(c) == before  # nothing half-done
                    elif op == "issue":
                        assert c.hlen(KEYS.estimates) == issued  # cut off before its estimate
                    changed = state_of(c)

                with serving(
                    tmp_path, hall, proxy.url, env=QUIET, name=f"{op}-{outcome}-2"
                ) as second:
                    r = post(base_of(second), path, headers, key, body)
                    assert r.status_code in (200, 201), r.text
                    if outcome == "ran":
                        assert state_of(c) == changed  # the retry changed nothing more
                    check_one_effect(c, op, r.json(), issued)
                    r2 = post(base_of(second), path, headers, key, body)
                    assert r2.json() == r.json()
                    if op == "issue":
                        # Its estimate is kept by the retry when the kill cut it off.
                        assert c.hexists(KEYS.estimates, r.json()["id"])
        finally:
            proxy.close()
            pool.shutdown(wait=False)


# ------------------------------------------------ the embedded redis-server


def embedded_client(data_dir: Path) -> Redis:
    return redis.Redis(unix_socket_path=str(data_dir / "redis.sock"), decode_responses=True,
                       socket_timeout=5)  # fmt: skip


def blocked_scripts(c: Redis) -> set[str]:
    return {cl["id"] for cl in c.client_list() if "b" in cl["flags"] and cl["cmd"] == "evalsha"}


def newly_blocked(c: Redis, idle: set[str]) -> bool:
    return bool(blocked_scripts(c) - idle)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie until qms's reaper... qms is dead: init reaps it.
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        return stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"
    return True


@contextlib.contextmanager
def embedded(tmp_path: Path, hall: Path) -> Iterator[tuple[ServeProcess, Redis]]:
    """`qms serve` on its embedded redis-server, in `tmp_path/qms-data`."""
    with (
        serving(tmp_path, hall, "", env=QUIET) as server,
        embedded_client(tmp_path / "qms-data") as c,
    ):
        yield server, c


def test_killed_mid_call_on_the_embedded_redis_then_restarted_on_its_data(
    tmp_path: Path,
) -> None:
    """The embedded redis-server dies with qms (SIGTERM from the kernel when
    qms dies): what it ran is in its AOF (appendfsync always), what it held
    paused never runs. A `qms serve` started again on the same data
    directory answers the retry as the first would have."""
    hall = write_hall(tmp_path, HALL)
    pool = ThreadPoolExecutor(2)
    path = "/windows/1/call-next"
    try:
        for outcome in ("never_ran", "ran"):
            with embedded(tmp_path, hall) as (first, c):
                base = base_of(first)
                if outcome == "never_ran":
                    prepare(base, "call-next")
                else:
                    assert post(base, "/windows/1/complete", ADMIN).status_code == 200
                redis_pid = first.redis_pid()
                assert redis_pid is not None
                before = state_of(c)
                idle = blocked_scripts(c)
                c.execute_command("CLIENT", "PAUSE", "20000", "WRITE")
                key = uuid.uuid4().hex
                seen = send_unanswered(pool, base, path, ADMIN, key, None)
                wait_for(partial(newly_blocked, c, idle), WAIT_S, "call-next held in Redis")
                os.kill(first.proc.pid, signal.SIGSTOP)
                held = blocked_scripts(c) - idle
                assert held, "qms gave up on Redis before it was stopped"
                if outcome == "ran":
                    c.execute_command("CLIENT", "UNPAUSE")
                    wait_for(partial(has_changed, c, before), WAIT_S, "the call's change")
                kill(first)
                wait_for(partial(gone, redis_pid), WAIT_S, "the embedded redis-server's exit")
                assert "answered" not in seen.result(WAIT_S)
            with embedded(tmp_path, hall) as (second, c):
                after = state_of(c)
                if outcome == "never_ran":
                    assert after == before
                else:
                    assert after != before
                r = post(base_of(second), path, ADMIN, key)
                assert r.status_code == 200, r.text
                if outcome == "ran":
                    assert state_of(c) == after
                expected = "A001" if outcome == "never_ran" else "A002"
                assert r.json()["number"] == expected
                assert events_of(c, "called") == ["A001", "A002"][: 1 + (outcome == "ran")]
    finally:
        pool.shutdown(wait=False)
