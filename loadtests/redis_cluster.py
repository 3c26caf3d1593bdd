"""A real Redis Cluster on loopback, from the bundled redis-server.

``LocalCluster.start(dir, primaries=3)`` runs one redis-server per primary
(``cluster-enabled yes``, each in a directory of its own), joins them with
the bundled ``redis-cli --cluster create`` and waits until every node says
``cluster_state:ok``. The test session uses it when ``QMS_TEST_REDIS_CLUSTER``
is set (see ``tests/conftest.py``), and ``loadtests.failover --cluster``;
``python -m loadtests.redis_cluster`` runs one in
the foreground for trying qms by hand.
"""

from __future__ import annotations

import random
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import redis as redis_sync

from qms.embedded_redis import find_redis_server

__all__ = ["LocalCluster"]

_READY_TIMEOUT_S = 30.0


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_node_port() -> int:
    """A port free on loopback whose cluster bus port (port + 10000) is free too."""
    while True:
        port = random.randint(20000, 55535)
        if _bindable(port) and _bindable(port + 10000):
            return port


def _answers(port: int) -> bool:
    client = redis_sync.Redis(port=port, socket_timeout=1, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except redis_sync.ConnectionError:
        return False
    finally:
        client.close()


def _state_ok(port: int) -> bool:
    client = redis_sync.Redis(port=port, socket_timeout=1, decode_responses=True)
    try:
        info = client.execute_command("CLUSTER", "INFO")  # type: ignore[no-untyped-call]
        return "cluster_state:ok" in str(info)
    except redis_sync.RedisError:
        return False
    finally:
        client.close()


def _replicas_synced(ports: list[int]) -> bool:
    for port in ports:
        client = redis_sync.Redis(port=port, socket_timeout=1, decode_responses=True)
        try:
            info = client.info("replication")
            if info["role"] == "slave" and info.get("master_link_status") != "up":
                return False
        except redis_sync.RedisError:
            return False
        finally:
            client.close()
    return True


@dataclass
class LocalCluster:
    directory: Path
    ports: list[int]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    @classmethod
    def start(
        cls, directory: Path, primaries: int = 3, replicas: int = 0, node_timeout_ms: int = 2000
    ) -> Self:
        """``primaries`` primaries, each with ``replicas`` replicas; a node is
        failed (and its replica promoted) after ``node_timeout_ms`` unreachable."""
        server = find_redis_server()
        cluster = cls(directory, ports=[])
        try:
            for _ in range(primaries * (1 + replicas)):
                port = _free_node_port()
                node_dir = directory / f"node-{port}"
                node_dir.mkdir(parents=True)
                with (node_dir / "redis.log").open("wb") as log:
                    cluster.procs.append(
                        subprocess.Popen(
                        [
                            str(server),
                            "--port", str(port),
                            "--bind", "127.0.0.1",
                            "--dir", str(node_dir),
                            "--cluster-enabled", "yes",
                            "--cluster-config-file", "nodes.conf",
                            "--cluster-node-timeout", str(node_timeout_ms),
                            "--cluster-require-full-coverage", "no",
                            "--save", "",
                            "--appendonly", "no",
                            ],
                            stdout=log,
                            stderr=subprocess.STDOUT,
                        )
                    )  # fmt: skip
                cluster.ports.append(port)
            cluster._wait(lambda: all(_answers(p) for p in cluster.ports), "nodes to answer")
            subprocess.run(
                [
                    str(server.with_name("redis-cli")),
                    "--cluster", "create",
                    *(f"127.0.0.1:{p}" for p in cluster.ports),
                    "--cluster-replicas", str(replicas),
                    "--cluster-yes",
                ],
                check=True,
                capture_output=True,
                timeout=_READY_TIMEOUT_S,
            )  # fmt: skip
            cluster._wait(lambda: all(_state_ok(p) for p in cluster.ports), "cluster_state:ok")
            if replicas:
                cluster._wait(lambda: _replicas_synced(cluster.ports), "replicas in sync")
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def replica_ports(self, primary_port: int) -> list[int]:
        """The ports of the replicas of the primary on ``primary_port``."""
        client = redis_sync.Redis(port=primary_port, socket_timeout=1, decode_responses=True)
        try:
            info = client.info("replication")
        finally:
            client.close()
        return [int(info[f"slave{i}"]["port"]) for i in range(int(info["connected_slaves"]))]

    def replica_of(self, primary_port: int) -> subprocess.Popen[bytes]:
        """The process of (the first) replica of the primary on ``primary_port``."""
        return self.procs[self.ports.index(self.replica_ports(primary_port)[0])]

    def log_of(self, port: int) -> Path:
        return self.directory / f"node-{port}" / "redis.log"

    def _wait(self, condition: object, what: str) -> None:
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while not condition():  # type: ignore[operator]
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.procs):
                logs = "".join(
                    self.log_of(p).read_text(errors="replace")[-600:] for p in self.ports
                )
                raise RuntimeError(
                    f"the local Redis Cluster did not come up: waiting for {what}\n{logs}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs:
            proc.wait(10)


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        cluster = LocalCluster.start(Path(tmp), int(sys.argv[1]) if len(sys.argv) > 1 else 3)
        print(cluster.url, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            cluster.stop()
