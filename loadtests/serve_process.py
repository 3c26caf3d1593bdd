"""A `qms serve` child process of a benchmark: started in a session of its
own, logging to a file, stopped as an operator would (SIGTERM), and killed
with its whole group if that hangs; and what every benchmark asks of a
process (its CPU time) and of the machine (a free port), and the
percentile every benchmark reports."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of a live process (Linux /proc), None if unknown."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list; 0.0 for an empty one."""
    if not sorted_values:
        return 0.0
    rank = max(1, round(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class ServeProcess:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    stop_timeout_s: ClassVar[float] = 10.0
    """How long SIGTERM may take before the group is killed."""

    @staticmethod
    def spawn(
        cmd: list[str],
        log: Path,
        *,
        redis_url: str | None = None,
        append: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Run `cmd` with stdout and stderr to `log`, using `redis_url` as
        QMS_REDIS_URL, or the embedded Redis when None (whatever this
        environment says), and `env` on top of this environment."""
        child_env = {k: v for k, v in os.environ.items() if k != "QMS_REDIS_URL"}
        child_env.update(env or {})
        if redis_url:
            child_env["QMS_REDIS_URL"] = redis_url
        with log.open("ab" if append else "wb") as out:
            return subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, env=child_env, start_new_session=True
            )

    def log_tail(self) -> str:
        lines = self.log.read_text(errors="replace").strip().splitlines()
        return " | ".join(lines[-3:])

    def stop(self) -> None:
        """SIGTERM (qms closes its screens with 1001, then stops its Redis),
        SIGKILL to the group if that hangs."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(self.stop_timeout_s)

    def redis_pid(self) -> int | None:
        """The embedded redis-server's pid (qms's only child), if any."""
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        with contextlib.suppress(OSError, ValueError):
            pids = children.read_text().split()
            return int(pids[0]) if pids else None
        return None
