"""The `qms` command as a user runs it: real processes, real redis-servers.

Every failure a user can cause ends as one line on stderr and a non-zero
exit, never a traceback; `serve` and `demo` serve the API and leave no
redis-server behind.

The helpers above the tests are also used by tests/test_durability.py.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from qms.settings import Settings, SettingsError
from queue_core.keys import HallKeys
from queue_core.redis_client import create_sync_redis
from tests.support import TOKENS, write_hall

pytestmark = pytest.mark.slow  # every test here runs `python -m qms`

QMS = [sys.executable, "-m", "qms"]
STARTUP_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
DEMO_SECONDS = 6

# --------------------------------------------------------------- helpers


def free_port() -> int:
    """A loopback port nobody listens on (right now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def qms_env(redis_url: str | None = None) -> dict[str, str]:
    """This environment with `QMS_REDIS_URL` set to `redis_url`, or unset."""
    env = {k: v for k, v in os.environ.items() if k != "QMS_REDIS_URL"}
    if redis_url is not None:
        env["QMS_REDIS_URL"] = redis_url
    return env


def run_qms(
    *args: object, cwd: Path, env: dict[str, str] | None = None, timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    """Run `python -m qms ARGS` to completion."""
    return subprocess.run(
        [*QMS, *map(str, args)],
        cwd=cwd,
        env=env if env is not None else qms_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll `predicate` until it holds or `timeout` seconds pass; its last answer."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def http_client(base_url: str) -> httpx.Client:
    # trust_env=False: a proxy from the environment must not sit between the test and qms.
    return httpx.Client(base_url=base_url, trust_env=False, timeout=10.0)


def bearer(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


def data_dir_locked(data_dir: Path) -> bool:
    """True while a qms or its redis-server holds the data directory's flock."""
    lock = data_dir / "qms.lock"
    if not lock.exists():
        return False
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing also drops the lock if we got it
    return False


def redis_socket_answers(data_dir: Path) -> bool:
    """True if a redis-server answers PING on the data directory's socket."""
    path = data_dir / "redis.sock"
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(1.0)
            conn.connect(str(path))
            conn.sendall(b"*1\r\n$4\r\nPING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def assert_no_embedded_redis(data_dir: Path, timeout: float = STOP_TIMEOUT_S) -> None:
    """No redis-server of `data_dir` is alive (waiting `timeout` for one to finish)."""
    if not data_dir.exists():
        return
    assert wait_until(lambda: not data_dir_locked(data_dir), timeout), (
        f"{data_dir} is still locked: a redis-server outlived its qms"
    )
    assert not redis_socket_answers(data_dir)


def child_pids(pid: int) -> list[int]:
    """The live children of `pid`, from /proc (every thread's list)."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):
            children += [int(c) for c in (task / "children").read_text().split()]
    return children


def group_members(pgid: int) -> list[int]:
    """Live processes of process group `pgid`, from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
                members.append(int(stat.parent.name))
    return members


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group `process` leads (it and its redis-server), and reap it.

    Once `process` is reaped its pid could be reused, but not while any
    member of its group lives: so the group is only signalled while it
    still has a member.
    """
    if process.poll() is None or group_members(process.pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    process.wait(STOP_TIMEOUT_S)


def assert_one_clean_line(result: subprocess.CompletedProcess[str]) -> str:
    """A failed run: non-zero exit, no traceback, exactly one line on stderr; that line."""
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@dataclass
class Qms:
    """A running `qms serve` or `qms demo`."""

    process: subprocess.Popen[bytes]
    base_url: str
    stderr_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"qms did not exit within {timeout:g}s; stderr:\n{self.stderr()}")

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        with http_client(self.base_url) as client:
            return client.get(path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        with http_client(self.base_url) as client:
            return client.post(path, **kwargs)


@contextlib.contextmanager
def running_qms(
    args: Sequence[object],
    *,
    cwd: Path,
    port: int,
    env: dict[str, str] | None = None,
    timeout: float = STARTUP_TIMEOUT_S,
) -> Iterator[Qms]:
    """Start `python -m qms ARGS` (which must listen on `port`), wait for /healthz.

    The process gets a session (and process group) of its own: whatever the
    test did to it, the group is SIGKILLed on the way out, so neither qms
    nor its redis-server outlives the test. stdout and stderr go to files in
    `cwd` (no pipe to fill up), and stderr is shown when start-up fails.
    """
    stderr_path = cwd / f"qms-{port}.stderr"
    with open(cwd / f"qms-{port}.stdout", "wb") as out, open(stderr_path, "wb") as err:
        process = subprocess.Popen(
            [*QMS, *map(str, args)],
            cwd=cwd,
            env=env if env is not None else qms_env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    qms = Qms(process, f"http://127.0.0.1:{port}", stderr_path)
    try:
        _wait_healthy(qms, timeout)
        yield qms
    finally:
        kill_group(process)


def _wait_healthy(qms: Qms, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with http_client(qms.base_url) as client:
        while True:
            if qms.process.poll() is not None:
                pytest.fail(
                    f"qms exited with status {qms.process.returncode} during start-up; "
                    f"stderr:\n{qms.stderr()}"
                )
            with contextlib.suppress(httpx.TransportError):
                if client.get("/healthz", timeout=1.0).status_code == 200:
                    return
            if time.monotonic() >= deadline:
                pytest.fail(
                    f"qms did not answer /healthz within {timeout:g}s; stderr:\n{qms.stderr()}"
                )
            time.sleep(0.05)


def issue_ticket(qms: Qms, hall: str, service: str = "social-security") -> dict[str, Any]:
    response = qms.post(
        f"/api/v1/halls/{hall}/tickets", headers=bearer("kiosk"), json={"service": service}
    )
    assert response.status_code == 201, response.text
    ticket: dict[str, Any] = response.json()
    return ticket


# A config with several problems, each under its own key.
BROKEN_HALL = """
[hall]
id = "Bad Id"
name = "x"
timezone = "Mars/Olympus"

[[group]]
id = "natural"
name = "N"

[[service]]
id = "s1"
name = "S"
group = "nope"
prefix = "a"
expected_minutes = "8"

[[window]]
id = "1"
name = "W"
groups = ["natural"]
"""
BROKEN_KEYS = (
    "hall.id",
    "hall.timezone",
    "service[0].group",
    "service[0].prefix",
    "service[0].expected_minutes",
)


def write_broken_hall(directory: Path) -> Path:
    path = directory / "broken.toml"
    path.write_text(BROKEN_HALL, encoding="utf-8")
    return path


# ---------------------------------------------------------- help, check-config


@pytest.mark.parametrize("args", [["--help"], ["serve", "--help"]])
def test_help_exits_0(args: list[str], tmp_path: Path) -> None:
    result = run_qms(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: qms")


def test_check_config_accepts_a_valid_file(tmp_path: Path) -> None:
    hall = write_hall(tmp_path)
    result = run_qms("check-config", hall, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    [line] = result.stdout.splitlines()
    assert line.startswith(f"{hall}: ok")
    assert hall.stem in line


def test_check_config_lists_every_problem_with_file_and_key(tmp_path: Path) -> None:
    broken = write_broken_hall(tmp_path)
    result = run_qms("check-config", broken, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    # Each line is "FILE: KEY: MESSAGE".
    keys = []
    for line in lines:
        file, key, message = line.split(": ", 2)
        assert file == str(broken)
        assert message.strip()
        keys.append(key)
    assert set(BROKEN_KEYS) <= set(keys), result.stderr


def test_check_config_reports_a_hall_id_used_twice(tmp_path: Path) -> None:
    first = write_hall(tmp_path, hall="twin")
    (tmp_path / "other").mkdir()
    second = write_hall(tmp_path / "other", hall="twin")
    result = run_qms("check-config", first, second, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(f"{second}: hall.id: ")
    assert "'twin'" in line
    assert str(first) in line


def test_check_config_checks_every_file(tmp_path: Path) -> None:
    valid = write_hall(tmp_path)
    broken = write_broken_hall(tmp_path)
    missing = tmp_path / "missing.toml"
    result = run_qms("check-config", valid, broken, missing, cwd=tmp_path)
    assert result.returncode == 2
    assert f"{missing}: (file): file not found" in result.stderr.splitlines()
    assert sum(line.startswith(f"{broken}: ") for line in result.stderr.splitlines()) >= len(
        BROKEN_KEYS
    )


def test_check_config_of_a_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    result = run_qms("check-config", missing, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [f"{missing}: (file): file not found"]


# ------------------------------------------------------- serve: refusing to start


def test_serve_with_a_missing_config(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    result = run_qms(
        "serve",
        "--config",
        missing,
        "--port",
        free_port(),
        "--data-dir",
        tmp_path / "d",
        cwd=tmp_path,
    )
    line = assert_one_clean_line(result)
    assert line.startswith("qms: ")
    assert str(missing) in line
    assert "not found" in line
    assert not (tmp_path / "d").exists()


def test_serve_with_an_invalid_config_points_to_check_config(tmp_path: Path) -> None:
    broken = write_broken_hall(tmp_path)
    result = run_qms(
        "serve",
        "--config",
        broken,
        "--port",
        free_port(),
        "--data-dir",
        tmp_path / "d",
        cwd=tmp_path,
    )
    line = assert_one_clean_line(result)
    assert str(broken) in line
    assert "qms check-config" in line
    assert not (tmp_path / "d").exists()


def test_serve_with_an_unreachable_redis_names_it_without_its_password(tmp_path: Path) -> None:
    hall = write_hall(tmp_path)
    redis_port = free_port()  # nobody listens there
    url = f"redis://qms:s3cret-pw@127.0.0.1:{redis_port}/0"
    data_dir = tmp_path / "d"
    result = run_qms(
        "serve",
        "--config",
        hall,
        "--port",
        free_port(),
        "--data-dir",
        data_dir,
        cwd=tmp_path,
        env=qms_env(url),
    )
    line = assert_one_clean_line(result)
    assert f"127.0.0.1:{redis_port}" in line
    assert "s3cret-pw" not in result.stdout + result.stderr
    # QMS_REDIS_URL is set: no embedded redis-server, not even its data directory.
    assert not data_dir.exists()


def test_serve_on_a_port_in_use(tmp_path: Path) -> None:
    hall = write_hall(tmp_path)
    data_dir = tmp_path / "d"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_qms(
            "serve", "--config", hall, "--port", port, "--data-dir", data_dir, cwd=tmp_path
        )
    line = assert_one_clean_line(result)
    assert "in use" in line
    assert str(port) in line
    assert_no_embedded_redis(data_dir, timeout=0)


@pytest.mark.redis
def test_serve_on_a_data_dir_in_use(tmp_path: Path) -> None:
    hall = write_hall(tmp_path)
    data_dir = tmp_path / "d"
    port = free_port()
    args = ["serve", "--config", hall, "--port", port, "--data-dir", data_dir]
    with running_qms(args, cwd=tmp_path, port=port) as first:
        result = run_qms(
            "serve", "--config", hall, "--port", free_port(), "--data-dir", data_dir, cwd=tmp_path
        )
        line = assert_one_clean_line(result)
        assert str(data_dir) in line
        assert "in use" in line
        # The first one is untouched.
        assert first.get("/readyz").status_code == 200


# ------------------------------------------------------------------ serving


@pytest.mark.redis
def test_serve_with_qms_redis_url_serves_and_stops_on_sigterm(
    tmp_path: Path, redis_url: str
) -> None:
    hall = write_hall(tmp_path)
    port = free_port()
    data_dir = tmp_path / "d"
    args = ["serve", "--config", hall, "--port", port, "--data-dir", data_dir]
    try:
        with running_qms(args, cwd=tmp_path, port=port, env=qms_env(redis_url)) as qms:
            assert qms.get("/readyz").status_code == 200
            ticket = issue_ticket(qms, hall.stem)
            assert ticket["number"] == "A001"
            assert ticket["status"] == "waiting"
            got = qms.get(f"/api/v1/halls/{hall.stem}/tickets/{ticket['id']}")
            assert got.status_code == 200
            assert got.json()["number"] == "A001"

            qms.process.send_signal(signal.SIGTERM)
            assert qms.wait(STOP_TIMEOUT_S) == 0, qms.stderr()
            assert "Traceback" not in qms.stderr()
        # It used the Redis it was given and started none.
        assert not data_dir.exists()
    finally:
        with create_sync_redis(redis_url) as client:
            doomed = list(client.scan_iter(match=HallKeys(hall.stem).match_all(), count=1000))
            if doomed:
                client.delete(*doomed)


@pytest.mark.redis
def test_serve_as_the_container_image_runs_it(tmp_path: Path, redis_url: str) -> None:
    """The image's way: `--config` names a directory (a mounted ConfigMap,
    with its hidden `..data` entries) and QMS_REQUIRE_REDIS_URL=1 is set."""
    halls_dir = tmp_path / "halls"
    halls_dir.mkdir()
    first, second = write_hall(halls_dir), write_hall(halls_dir)
    (halls_dir / "..data").mkdir()
    (halls_dir / "README").write_text("not a hall", encoding="utf-8")
    port = free_port()
    data_dir = tmp_path / "d"
    args = ["serve", "--config", halls_dir, "--port", port, "--data-dir", data_dir]
    env = qms_env(redis_url) | {"QMS_REQUIRE_REDIS_URL": "1"}
    try:
        with running_qms(args, cwd=tmp_path, port=port, env=env) as qms:
            for hall in (first, second):
                assert issue_ticket(qms, hall.stem)["number"] == "A001"
            qms.process.send_signal(signal.SIGTERM)
            assert qms.wait(STOP_TIMEOUT_S) == 0, qms.stderr()
        assert not data_dir.exists()
    finally:
        with create_sync_redis(redis_url) as client:
            for hall in (first, second):
                doomed = list(client.scan_iter(match=HallKeys(hall.stem).match_all(), count=1000))
                if doomed:
                    client.delete(*doomed)


def test_serve_refuses_the_embedded_redis_where_qms_require_redis_url_is_set(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "d"
    env = qms_env() | {"QMS_REQUIRE_REDIS_URL": "1"}
    result = run_qms(
        "serve", "--config", write_hall(tmp_path), "--port", free_port(), "--data-dir", data_dir,
        cwd=tmp_path, env=env,
    )  # fmt: skip
    line = assert_one_clean_line(result)
    assert result.returncode == 1
    assert line.startswith("qms: QMS_REDIS_URL is not set and QMS_REQUIRE_REDIS_URL=1 forbids")
    assert not data_dir.exists()


def test_qms_require_redis_url_only_refuses_a_missing_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QMS_REDIS_URL", raising=False)
    monkeypatch.setenv("QMS_REQUIRE_REDIS_URL", "0")
    assert Settings.from_env(configs=()).redis_url is None  # 0: the embedded Redis is fine
    monkeypatch.setenv("QMS_REQUIRE_REDIS_URL", "1")
    with pytest.raises(SettingsError, match="QMS_REDIS_URL is not set"):
        Settings.from_env(configs=())
    monkeypatch.setenv("QMS_REDIS_URL", "redis://redis:6379/0")
    assert Settings.from_env(configs=()).redis_url == "redis://redis:6379/0"


def test_check_config_of_a_directory_checks_every_hall_file_in_it(tmp_path: Path) -> None:
    first, second = write_hall(tmp_path), write_hall(tmp_path)
    (tmp_path / "..data").mkdir()  # as in a mounted ConfigMap
    (tmp_path / "..data" / "x.toml").write_text("broken =", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not a hall", encoding="utf-8")
    result = run_qms("check-config", tmp_path, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(": ")[0] for line in lines] == sorted([str(first), str(second)])


def test_a_directory_without_hall_files_is_one_clean_line(tmp_path: Path) -> None:
    empty = tmp_path / "halls"
    empty.mkdir()
    for args in (["check-config", empty], ["serve", "--config", empty, "--port", free_port()]):
        result = run_qms(*args, cwd=tmp_path)
        line = assert_one_clean_line(result)
        assert result.returncode == 2
        assert line == f"qms: {empty}: no hall file (*.toml) in this directory"


@pytest.mark.redis
def test_demo_runs_a_simulated_hall_then_exits_cleanly(tmp_path: Path) -> None:
    port = free_port()
    data_dir = tmp_path / "d"
    args = [
        *f"demo --port {port} --speed 200 --duration {DEMO_SECONDS}".split(),
        *["--data-dir", data_dir],
    ]
    with running_qms(args, cwd=tmp_path, port=port, env=qms_env(None)) as qms:
        # The embedded redis-server, in the data directory given.
        assert data_dir_locked(data_dir)
        assert redis_socket_answers(data_dir)
        display = {"Authorization": "Bearer demo-display"}
        snapshot: dict[str, Any] = {}

        def hall_is_busy() -> bool:
            nonlocal snapshot
            response = qms.get("/api/v1/halls/daye/snapshot", headers=display)
            assert response.status_code == 200, response.text
            snapshot = response.json()
            return snapshot["seq"] > 0 and bool(snapshot["recent_calls"])

        assert wait_until(hall_is_busy, timeout=5.0, interval=0.2), snapshot
        # Ends by itself once the duration is over.
        returncode = qms.wait(DEMO_SECONDS + STOP_TIMEOUT_S)
        stderr = qms.stderr()
    assert f"http://127.0.0.1:{port}/api/v1/halls/daye" in stderr
    assert f"http://127.0.0.1:{port}/metrics" in stderr
    # The banner says the clock is simulated, how fast and from when.
    assert "clock:          simulated, 200x real time, from " in stderr
    assert "Traceback" not in stderr
    assert_no_embedded_redis(data_dir)
    assert returncode == 0, stderr


def test_the_demo_refuses_a_speed_that_is_not_one(tmp_path: Path) -> None:
    result = run_qms("demo", "--speed", "0", "--data-dir", tmp_path / "d", cwd=tmp_path)
    assert assert_one_clean_line(result) == (
        "qms: --speed 0 is not a speed: give a positive number"
    )
    assert result.returncode == 2
    assert not (tmp_path / "d").exists()


def test_the_listening_socket_names_tcp_so_asyncio_sets_nodelay() -> None:
    """asyncio turns on TCP_NODELAY for accepted connections only when the
    listening socket's protocol is IPPROTO_TCP; with 0, every response waited
    ~40 ms on the client's delayed ACK (found by loadtests/http_bench.py)."""
    from qms.cli import _bind

    sock = _bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("QMS_WS_QUEUE", "abc", "QMS_WS_QUEUE='abc' is not a number"),
        ("QMS_STREAM_MAXLEN", "5", "QMS_STREAM_MAXLEN='5' must be at least 100"),
        ("QMS_WS_HEARTBEAT", "nan", "QMS_WS_HEARTBEAT='nan' must be at least 0.1"),
        ("QMS_ESTIMATE_MAX_AGE", "0", "QMS_ESTIMATE_MAX_AGE='0' must be at least 0.1"),
    ],
)
def test_a_bad_setting_in_the_environment_is_one_clean_line(
    tmp_path: Path, name: str, value: str, says: str
) -> None:
    env = qms_env() | {name: value}
    result = run_qms("serve", "--config", write_hall(tmp_path), cwd=tmp_path, env=env)
    assert assert_one_clean_line(result) == f"qms: {says}"
    assert result.returncode == 1


def test_the_estimate_age_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QMS_ESTIMATE_MAX_AGE", "7.5")
    assert Settings.from_env(configs=()).estimate_max_age_s == 7.5
    monkeypatch.delenv("QMS_ESTIMATE_MAX_AGE")
    assert Settings.from_env(configs=()).estimate_max_age_s == 2.0


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_to_the_process_group_stops_qms_and_its_redis_quietly(
    tmp_path: Path, sig: signal.Signals
) -> None:
    """A Ctrl-C in a terminal (or `timeout`, or a supervisor) signals the
    whole group: qms and its embedded redis-server both end, with nothing
    reported as a failure. (Whether the keeper sees redis-server end before
    qms's shutdown cancels it is a race: tests/test_embedded_redis.py pins
    down what it does when it does.)"""
    hall = write_hall(tmp_path)
    port = free_port()
    data_dir = tmp_path / "d"
    args = ["serve", "--config", hall, "--port", port, "--data-dir", data_dir]
    with running_qms(args, cwd=tmp_path, port=port, env=qms_env(None)) as qms:
        assert issue_ticket(qms, hall.stem)["number"] == "A001"
        os.killpg(qms.pid, sig)
        qms.wait(STOP_TIMEOUT_S)
        stderr = qms.stderr()
    assert "Traceback" not in stderr
    assert "embedded redis-server" not in stderr, stderr
    assert_no_embedded_redis(data_dir)
