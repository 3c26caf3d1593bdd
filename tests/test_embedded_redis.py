"""The embedded redis-server: start, durability settings, locking, no orphans."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from prometheus_client import REGISTRY

from qms.embedded_redis import EmbeddedRedis, EmbeddedRedisError, find_redis_server
from tests.support import process_gone as is_gone

ROOT = Path(__file__).resolve().parent.parent

# Tests that start a redis-server (or a Python process that does) are marked
# both ``redis`` and ``slow``; the few that fail before spawning are unmarked.


@contextmanager
def connect(url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=5)
    try:
        yield client
    finally:
        client.close()


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def test_find_redis_server_returns_an_executable() -> None:
    binary = find_redis_server()
    assert binary.name == "redis-server"
    assert binary.is_file()
    assert os.access(binary, os.X_OK)


@pytest.mark.redis
@pytest.mark.slow
def test_starts_and_answers_on_a_unix_socket(tmp_path: Path) -> None:
    with EmbeddedRedis.start(tmp_path / "data") as server:
        assert server.url == f"unix://{tmp_path / 'data' / 'redis.sock'}"
        assert not is_gone(server.pid)
        with connect(server.url) as client:
            assert client.ping()
            assert client.config_get("unixsocketperm") == {"unixsocketperm": "700"}
            assert client.config_get("port") == {"port": "0"}
            assert client.config_get("dir") == {"dir": str(tmp_path / "data")}
    assert is_gone(server.pid)


@pytest.mark.redis
@pytest.mark.slow
def test_durability_defaults_to_appendfsync_always(tmp_path: Path) -> None:
    with EmbeddedRedis.start(tmp_path) as server, connect(server.url) as client:
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("appendfsync") == {"appendfsync": "always"}
        assert client.config_get("save") == {"save": ""}


@pytest.mark.redis
@pytest.mark.slow
def test_everysec_when_asked(tmp_path: Path) -> None:
    with EmbeddedRedis.start(tmp_path, fsync="everysec") as server, connect(server.url) as client:
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("appendfsync") == {"appendfsync": "everysec"}


@pytest.mark.redis
@pytest.mark.slow
def test_data_survives_stop_and_start(tmp_path: Path) -> None:
    with EmbeddedRedis.start(tmp_path) as server, connect(server.url) as client:
        client.set("greeting", "你好")
        client.rpush("queue", "A001", "A002")
    server.stop()  # a second stop is harmless
    with EmbeddedRedis.start(tmp_path) as server, connect(server.url) as client:
        assert client.get("greeting") == "你好"
        assert client.lrange("queue", 0, -1) == ["A001", "A002"]


@pytest.mark.redis
@pytest.mark.slow
def test_second_start_on_the_same_dir_is_refused(tmp_path: Path) -> None:
    with EmbeddedRedis.start(tmp_path) as first:
        with pytest.raises(EmbeddedRedisError, match="is in use by another qms"):
            EmbeddedRedis.start(tmp_path)
        # The refused start touched nothing: the first still serves.
        with connect(first.url) as client:
            assert client.ping()
    # Released on stop.
    with EmbeddedRedis.start(tmp_path) as again, connect(again.url) as client:
        assert client.ping()


@pytest.mark.redis
@pytest.mark.slow
def test_stale_socket_file_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "redis.sock").write_text("left by a crash")
    with EmbeddedRedis.start(tmp_path) as server, connect(server.url) as client:
        assert client.ping()


@pytest.mark.redis
@pytest.mark.slow
def test_long_data_dir_falls_back_to_loopback_tcp(tmp_path: Path) -> None:
    data_dir = tmp_path / ("d" * 120)
    with EmbeddedRedis.start(data_dir) as server, connect(server.url) as client:
        assert server.url.startswith("redis://127.0.0.1:")
        assert client.ping()
        assert client.config_get("bind") == {"bind": "127.0.0.1"}


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="parent-death signal is Linux-only")
def test_sigkill_of_the_parent_kills_redis(tmp_path: Path) -> None:
    child_code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from qms.embedded_redis import EmbeddedRedis\n"
        "server = EmbeddedRedis.start(Path(sys.argv[1]))\n"
        "print(server.pid, server.url, flush=True)\n"
        "time.sleep(600)\n"
    )
    # cwd=ROOT: with -c, the working directory is on sys.path.
    parent = subprocess.Popen(
        [sys.executable, "-c", child_code, str(tmp_path)],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    redis_pid = None
    try:
        line = parent.stdout.readline()  # EOF, not a hang, if the child fails
        assert line, "the child exited before starting redis"
        pid_text, url = line.split()
        redis_pid = int(pid_text)
        assert not is_gone(redis_pid)
        key = f"qms-test:{uuid.uuid4()}"
        with connect(url) as client:
            client.set(key, "written before the kill")

        parent.send_signal(signal.SIGKILL)
        assert parent.wait(timeout=10) == -signal.SIGKILL
        assert wait_until(lambda: is_gone(redis_pid)), "redis outlived its parent"

        # appendfsync always: the acknowledged write is in the AOF.
        with EmbeddedRedis.start(tmp_path) as server, connect(server.url) as client:
            assert client.get(key) == "written before the kill"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        parent.stdout.close()
        if redis_pid is not None and not is_gone(redis_pid):
            os.kill(redis_pid, signal.SIGKILL)


def test_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-redis-server"
    with pytest.raises(EmbeddedRedisError, match=r"redis-server binary .* is missing"):
        EmbeddedRedis.start(tmp_path / "data", redis_server=missing)


def test_data_dir_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "data"
    not_a_dir.write_text("")
    with pytest.raises(EmbeddedRedisError, match=r"data directory .* is not a directory"):
        EmbeddedRedis.start(not_a_dir)


@pytest.mark.redis
@pytest.mark.slow
def test_redis_failing_at_start_reports_its_log(tmp_path: Path) -> None:
    (tmp_path / "appendonly.aof").write_bytes(b"*this is not an AOF\r\n")
    with pytest.raises(EmbeddedRedisError) as caught:
        EmbeddedRedis.start(tmp_path)
    message = str(caught.value)
    assert "exited with status" in message
    assert "Bad file format reading the append only file" in message
    assert str(tmp_path / "redis.log") in message
    # The failed start released the directory.
    (tmp_path / "appendonly.aof").unlink()
    with EmbeddedRedis.start(tmp_path) as server, connect(server.url) as client:
        assert client.ping()


@pytest.mark.redis
@pytest.mark.slow
async def test_the_keeper_starts_a_killed_redis_again_and_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A redis-server that ends while qms runs is started again on the same
    data (its AOF), and qms says in one line where and why; the gauges
    follow it."""
    from qms.embedded_keeper import keep_embedded_redis

    def sample(name: str) -> float:
        return REGISTRY.get_sample_value(name) or 0.0

    exits = sample("qms_embedded_redis_exits_total")
    with EmbeddedRedis.start(tmp_path / "data") as server:
        with connect(server.url) as c:
            c.set("kept", "1")
        keeper = asyncio.create_task(
            keep_embedded_redis(server, interval_s=0.1, poll_s=0.02, first_delay_s=0.05)
        )
        try:
            first = server.pid
            os.kill(first, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while sample("qms_embedded_redis_exits_total") == exits:
                assert time.monotonic() < deadline, "the keeper never saw the end"
                await asyncio.sleep(0.02)
            while sample("qms_embedded_redis_up") != 1:
                assert time.monotonic() < deadline, "never up again"
                await asyncio.sleep(0.02)
            assert server.pid != first
            with connect(server.url) as c:
                assert c.get("kept") == "1"
            assert sample("qms_data_dir_free_bytes") > 0
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
    said = [r.getMessage() for r in caplog.records if "embedded redis-server" in r.getMessage()]
    assert said and "was killed by signal 9" in said[0] and str(tmp_path / "data") in said[0]
    assert any("runs again" in line for line in said)


@pytest.mark.redis
@pytest.mark.slow
async def test_the_keeper_lets_redis_end_quietly_when_qms_is_stopping(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A Ctrl-C reaches qms and its redis-server together (one process
    group): redis-server's end is then no failure to report, count or
    start it again after."""
    from qms.embedded_keeper import keep_embedded_redis

    exits = REGISTRY.get_sample_value("qms_embedded_redis_exits_total") or 0.0
    with EmbeddedRedis.start(tmp_path / "data") as server:
        keeper = asyncio.create_task(
            keep_embedded_redis(
                server, interval_s=0.1, poll_s=0.02, first_delay_s=0.05, stopping=lambda: True
            )
        )
        os.kill(server.pid, signal.SIGTERM)
        await asyncio.wait_for(keeper, 10)  # it returns by itself
        assert server.returncode == 0  # and started no other
    assert (REGISTRY.get_sample_value("qms_embedded_redis_exits_total") or 0.0) == exits
    assert not [r for r in caplog.records if "embedded redis-server" in r.getMessage()]
