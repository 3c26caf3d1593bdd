"""A number printed on a ticket survives the crash of qms, whatever kills it.

`qms serve` runs its embedded redis-server with `appendfsync always`: every
ticket the API acknowledged is on disk before the answer leaves, so a
SIGKILL of qms and its redis-server together loses none of them, and the
next number after a restart is never one already handed out. A SIGKILL of
qms alone takes its redis-server along (parent-death signal).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from tests.support import process_gone as is_gone
from tests.support import write_hall
from tests.test_cli import (
    STOP_TIMEOUT_S,
    Qms,
    child_pids,
    data_dir_locked,
    free_port,
    issue_ticket,
    qms_env,
    running_qms,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.redis]

TICKETS = 50


@contextmanager
def serving(hall: Path, data_dir: Path, cwd: Path) -> Iterator[Qms]:
    """`qms serve` with its embedded redis-server (QMS_REDIS_URL unset, fsync always)."""
    port = free_port()
    args = ["serve", "--config", hall, "--data-dir", data_dir, "--port", port]
    with running_qms(args, cwd=cwd, port=port, env=qms_env(None)) as qms:
        yield qms


def issue_numbered(qms: Qms, hall: str, count: int) -> dict[str, str]:
    """Issue `count` tickets one after the other; ticket id -> number as acknowledged."""
    return {t["id"]: t["number"] for t in (issue_ticket(qms, hall) for _ in range(count))}


def wait_until_unlocked(data_dir: Path) -> None:
    """Until the dead qms's redis-server has exited too (it holds the lock)."""
    assert wait_until(lambda: not data_dir_locked(data_dir), STOP_TIMEOUT_S), (
        f"{data_dir} is still locked {STOP_TIMEOUT_S:g}s after qms was killed"
    )


def aof_settings(data_dir: Path) -> tuple[str, str]:
    """The live `appendonly` and `appendfsync` of the data directory's redis-server."""
    socket_path = str(data_dir / "redis.sock")
    with redis.Redis(unix_socket_path=socket_path, decode_responses=True) as client:
        settings = client.config_get("append*")
    return settings["appendonly"], settings["appendfsync"]


def command_name(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


def assert_survived(qms: Qms, hall: str, acknowledged: dict[str, str]) -> None:
    """Every acknowledged ticket is back, and the next number is a new one."""
    for ticket_id, number in acknowledged.items():
        response = qms.get(f"/api/v1/halls/{hall}/tickets/{ticket_id}")
        assert response.status_code == 200, (number, response.text)
        assert response.json()["number"] == number
        assert response.json()["status"] == "waiting"
    following = issue_ticket(qms, hall)["number"]
    assert following not in acknowledged.values()
    # Numbers restart at the hall's midnight; the test does not straddle it.
    assert following == f"A{len(acknowledged) + 1:03d}"


def test_sigkill_of_qms_and_its_redis_loses_no_acknowledged_ticket(tmp_path: Path) -> None:
    hall = write_hall(tmp_path)
    data_dir = tmp_path / "d"
    with serving(hall, data_dir, tmp_path) as qms:
        # The default: every write on disk before redis answers it.
        assert aof_settings(data_dir) == ("yes", "always")
        acknowledged = issue_numbered(qms, hall.stem, TICKETS)
        assert sorted(acknowledged.values()) == [f"A{n:03d}" for n in range(1, TICKETS + 1)]
        # qms and its redis-server share the process group: both die at once,
        # with no chance to flush anything.
        os.killpg(qms.pid, signal.SIGKILL)
        assert qms.wait(STOP_TIMEOUT_S) == -signal.SIGKILL
    wait_until_unlocked(data_dir)

    with serving(hall, data_dir, tmp_path) as qms:
        assert_survived(qms, hall.stem, acknowledged)


def test_sigkill_of_qms_alone_takes_its_redis_along(tmp_path: Path) -> None:
    hall = write_hall(tmp_path)
    data_dir = tmp_path / "d"
    with serving(hall, data_dir, tmp_path) as qms:
        [redis_pid] = [pid for pid in child_pids(qms.pid) if command_name(pid) == "redis-server"]
        acknowledged = issue_numbered(qms, hall.stem, 10)

        os.kill(qms.pid, signal.SIGKILL)
        assert qms.wait(STOP_TIMEOUT_S) == -signal.SIGKILL
        assert wait_until(lambda: is_gone(redis_pid), STOP_TIMEOUT_S), (
            f"redis-server {redis_pid} outlived its qms"
        )
        wait_until_unlocked(data_dir)

    with serving(hall, data_dir, tmp_path) as qms:
        assert_survived(qms, hall.stem, acknowledged)
