"""A disk that fills under the embedded Redis: a clear error and a metric.

`qms serve` runs on its embedded redis-server; the test then limits the
size of any file that redis-server may write (RLIMIT_FSIZE, set from
outside with prlimit(2); qms starts redis with SIGXFSZ ignored, so a write
past the limit fails with EFBIG as on a full disk, no root or mount
needed) and issues tickets until its AOF cannot grow:

- with `appendfsync always` (qms's default) redis-server exits on the
  failed write. qms says so in one line naming the data directory and the
  cause, answers 503, /readyz 503, counts the exit and starts redis again
  until it can write: once the limit is lifted the hall comes back by
  itself, the refused ticket's retry is issued once, and every
  acknowledged ticket is there;
- with `--fsync everysec` redis-server stays up and refuses changes
  (MISCONF, and PING too): 503 `redis_disk`, /readyz 503 `redis_disk`,
  `qms_redis_refusals_total{code="redis_disk"}`; reads still answer, and
  once redis can write again everything goes on.
"""

from __future__ import annotations

import contextlib
import resource
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from loadtests.failover import serving, write_hall
from loadtests.http_bench import KIOSK_TOKEN
from loadtests.redis_procs import wait_for
from loadtests.serve_process import HOST, ServeProcess

pytestmark = [pytest.mark.slow, pytest.mark.redis]

HALL = "disk"
KIOSK = {"Authorization": f"Bearer {KIOSK_TOKEN}"}
SERVICE = "social-security"
ROOM = 64 * 1024
"""Bytes the AOF may still grow by once limited: a few dozen tickets."""
WAIT_S = 30.0

if not hasattr(resource, "prlimit"):  # Linux only
    pytest.skip("needs prlimit(2) to limit another process's file size", allow_module_level=True)


def limit_file_size(pid: int, limit: int | None) -> None:
    """Limit (None: lift the limit on) the size of the files `pid` writes."""
    _, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    if hard != resource.RLIM_INFINITY and limit is not None and limit > hard:
        pytest.skip(f"the hard file size limit ({hard} bytes) is below what the test needs")
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (hard if limit is None else limit, hard))


class Qms:
    def __init__(self, server: ServeProcess) -> None:
        self.server = server
        self.http = httpx.Client(
            base_url=f"http://{HOST}:{server.port}", timeout=10.0, trust_env=False
        )

    def close(self) -> None:
        self.http.close()

    def issue(self, key: str) -> httpx.Response:
        return self.http.post(
            f"/api/v1/halls/{HALL}/tickets",
            headers={**KIOSK, "Idempotency-Key": key},
            json={"service": SERVICE},
        )

    def ticket(self, tid: str) -> httpx.Response:
        return self.http.get(f"/api/v1/halls/{HALL}/tickets/{tid}")

    def metric(self, line_start: str) -> float | None:
        for line in self.http.get("/metrics").text.splitlines():
            if line.startswith(line_start + " "):
                return float(line.rsplit(" ", 1)[1])
        return None

    def fill(self) -> tuple[list[dict[str, Any]], str, httpx.Response]:
        """Issue until refused: the tickets acknowledged, and the refused
        request's key and answer."""
        acknowledged: list[dict[str, Any]] = []
        for _ in range(2000):
            key = uuid.uuid4().hex
            r = self.issue(key)
            if r.status_code != 201:
                return acknowledged, key, r
            acknowledged.append(r.json())
        raise AssertionError("the AOF never filled")


def assert_503(r: httpx.Response, code: str) -> None:
    assert r.status_code == 503, r.text
    body = r.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    assert "Traceback" not in r.text


def sizes(*paths: Path) -> int:
    return max(p.stat().st_size for p in paths if p.exists())


def test_a_full_disk_ends_the_embedded_redis_and_qms_starts_it_again(tmp_path: Path) -> None:
    hall = write_hall(tmp_path, HALL)
    data = tmp_path / "qms-data"
    with serving(tmp_path, hall, "") as server, contextlib.closing(Qms(server)) as qms:
        redis_pid = server.redis_pid()
        assert redis_pid is not None
        limit = sizes(data / "appendonly.aof", data / "redis.log", server.log) + ROOM
        # qms too: a redis-server it starts again inherits its limit, and
        # finds the disk as full as the first did.
        for pid in (redis_pid, server.proc.pid):
            limit_file_size(pid, limit)
        acknowledged, key, refused = qms.fill()
        assert acknowledged, "the first ticket was already refused"
        assert_503(refused, "redis_unavailable")

        def said() -> list[str]:
            text = server.log.read_text(errors="replace")
            return [line for line in text.splitlines() if "embedded redis-server" in line]

        wait_for(said, WAIT_S, "qms's line about its redis-server")
        line = said()[0]
        assert f"data directory {data}" in line and "exited with status 1" in line, line
        assert "AOF" in line, line  # the cause, in redis's words
        assert "Traceback" not in server.log.read_text(errors="replace")
        assert (qms.metric("qms_embedded_redis_exits_total") or 0) >= 1
        free = qms.metric("qms_data_dir_free_bytes")
        assert free is not None and free > 0

        # Down, or started again and ended by its first write: /readyz is 503
        # while it is down (a second at least after each end).
        deadline = time.monotonic() + WAIT_S
        while (ready := qms.http.get("/readyz")).status_code == 200:
            assert_503(qms.issue(key), "redis_unavailable")
            assert time.monotonic() < deadline, "/readyz never said the store was down"
        assert_503(ready, "redis_unavailable")

        limit_file_size(server.proc.pid, None)  # room again, for the next redis-server
        deadline = time.monotonic() + WAIT_S
        while (r := qms.issue(key)).status_code == 503:
            assert time.monotonic() < deadline, f"never recovered: {r.text}"
            time.sleep(0.1)  # the keeper waits up to 10 s between starts
        assert r.status_code == 201, r.text
        numbers = [t["number"] for t in acknowledged]
        assert r.json()["number"] == f"A{len(numbers) + 1:03d}", (r.json(), numbers)
        assert qms.issue(key).json()["id"] == r.json()["id"]
        for t in acknowledged:  # nothing acknowledged is lost
            got = qms.ticket(t["id"])
            assert got.status_code == 200 and got.json()["number"] == t["number"]
        assert qms.http.get("/readyz").status_code == 200
        wait_for(lambda: qms.metric("qms_embedded_redis_up") == 1, WAIT_S, "up again")
        assert "runs again" in server.log.read_text(errors="replace")


def test_a_full_disk_under_everysec_refuses_changes_with_redis_disk(tmp_path: Path) -> None:
    hall = write_hall(tmp_path, HALL)
    data = tmp_path / "everysec-data"
    with (
        serving(tmp_path, hall, "", name="everysec", args=["--fsync", "everysec"]) as server,
        contextlib.closing(Qms(server)) as qms,
    ):
        redis_pid = server.redis_pid()
        assert redis_pid is not None
        limit_file_size(redis_pid, sizes(data / "appendonly.aof", data / "redis.log") + ROOM)
        acknowledged, key, refused = qms.fill()
        assert acknowledged
        assert_503(refused, "redis_disk")
        assert_503(qms.http.get("/readyz"), "redis_disk")
        assert (qms.metric('qms_redis_refusals_total{code="redis_disk"}') or 0) >= 1
        assert qms.metric("qms_embedded_redis_up") == 1  # up, and refusing
        assert qms.ticket(acknowledged[0]["id"]).status_code == 200  # reads still answer
        assert server.redis_pid() == redis_pid

        limit_file_size(redis_pid, None)  # redis retries its write every second
        deadline = time.monotonic() + WAIT_S
        while (r := qms.issue(key)).status_code == 503:
            assert_503(r, "redis_disk")
            assert time.monotonic() < deadline, f"never recovered: {r.text}"
            time.sleep(0.1)
        assert r.status_code == 201, r.text
        assert r.json()["number"] == f"A{len(acknowledged) + 1:03d}"
        assert qms.http.get("/readyz").status_code == 200
        for t in acknowledged:
            assert qms.ticket(t["id"]).json()["number"] == t["number"]
