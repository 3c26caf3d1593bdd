"""Keeps the embedded redis-server running while `qms serve` runs.

An embedded redis-server can end while qms runs: with `appendfsync always`
(qms's default) redis *exits* when it cannot write its AOF (a full disk:
"Can't recover from AOF write error when the AOF fsync policy is
'always'. Exiting..."), and anything may kill it. Nothing else would start
it again, so qms does: it says once, in one line naming the data directory
and redis's own last words, that its store is down, answers every request
503 meanwhile (the client finds the socket closed), and starts redis-server
again after 1 s, then 2, 4, up to 10 s between tries while it keeps ending.
Once the disk has room again, the hall comes back by itself, on a kiosk PC
with no process supervisor too. Nothing acknowledged is lost: with `always`
a change is answered only once it is on disk, and a change whose write
failed was never answered.

It also keeps `qms_data_dir_free_bytes` (the filesystem of the data
directory) fresh, so that a disk filling up shows before it is full.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from qms.embedded_redis import EmbeddedRedis
from queue_core import metrics

log = logging.getLogger("qms")

POLL_S = 0.25
"""How often the keeper looks at redis-server (a `waitpid` without waiting)."""
FIRST_DELAY_S = 1.0
MAX_DELAY_S = 10.0
STABLE_S = 60.0
"""A redis-server that ran this long before it ended is restarted after
`FIRST_DELAY_S` again: the earlier ends were another incident."""


def free_bytes(path: Path) -> int | None:
    """Bytes an unprivileged process may still write on `path`'s filesystem."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def _how_it_ended(status: int) -> str:
    return f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"


async def keep_embedded_redis(
    server: EmbeddedRedis,
    *,
    interval_s: float = 5.0,
    poll_s: float = POLL_S,
    first_delay_s: float = FIRST_DELAY_S,
    max_delay_s: float = MAX_DELAY_S,
    stopping: Callable[[], bool] = lambda: False,
) -> None:
    """Until cancelled: start `server` again whenever it ends, and record
    its state and the data directory's free bytes every `interval_s`.
    `server` has been started and answers. Once `stopping()` is true (qms
    got the signal that ended redis-server too), an end is no failure: the
    keeper says nothing and returns."""
    up = True
    metrics.EMBEDDED_REDIS_UP.set(1)
    delay = first_delay_s
    up_since = time.monotonic()
    next_disk = 0.0
    while True:
        now = time.monotonic()
        if now >= next_disk:
            free = free_bytes(server.data_dir)
            if free is not None:
                metrics.DATA_DIR_FREE.set(free)
            next_disk = now + interval_s
        status = server.returncode
        if status is None:
            # Started again: up once it answers (it may take a while to load its AOF).
            if not up and await asyncio.to_thread(server.answers_ping):
                up, up_since = True, time.monotonic()
                metrics.EMBEDDED_REDIS_UP.set(1)
                log.warning("qms: the embedded redis-server of data directory %s runs again",
                            server.data_dir)  # fmt: skip
            await asyncio.sleep(poll_s)
            continue
        metrics.EMBEDDED_REDIS_UP.set(0)
        if stopping():
            return
        up = False
        metrics.EMBEDDED_REDIS_EXITS.inc()
        if now - up_since >= STABLE_S:
            delay = first_delay_s
        # One line, no traceback: what ended, where, why in redis's words.
        log.error(
            "qms: the embedded redis-server of data directory %s %s: %s; "
            "requests are answered 503 until it runs again; starting it again in %g s",
            server.data_dir, _how_it_ended(status), server.exit_cause(), delay,
        )  # fmt: skip
        while True:
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay_s)
            try:
                server.respawn()
                break
            except OSError as exc:
                log.error("qms: cannot start the embedded redis-server in %s: %s; "
                          "trying again in %g s", server.data_dir, exc, delay)  # fmt: skip
