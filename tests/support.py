"""Test helpers: a small hall config written as TOML, and a clock tests move by hand."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dispatcher.estimator import (
    EtaTable,
    OpenWindow,
    ServiceTimeModel,
    WaitingTicket,
    eta_table,
)
from queue_core.config import HallConfig, load_hall_config

RUN = secrets.token_hex(3)
"""Every hall of a test session starts with this, so runs never share keys."""
_counter = itertools.count(1)

# 2026-11-21 09:00 Asia/Shanghai.
START_S = 1_795_222_800.0

HALL_TOML = """
[hall]
id = "{hall}"
name = "测试政务服务中心"
timezone = "Asia/Shanghai"

[priority]
appointment = 30
elderly = 20
disabled = 20
{extra_priority}

[appointments]
early_minutes = 30
grace_minutes = 10
{calling}

[[group]]
id = "natural"
name = "自然人综合窗口"

[[group]]
id = "legal"
name = "法人综合窗口"

[[group]]
id = "police"
name = "公安专区"

[[service]]
id = "social-security"
name = "社保医保"
group = "natural"
prefix = "A"
expected_minutes = 8

[[service]]
id = "housing-fund"
name = "公积金"
group = "natural"
prefix = "A"
expected_minutes = 6

[[service]]
id = "business-licence"
name = "营业执照"
group = "legal"
prefix = "C"
expected_minutes = 12

[[service]]
id = "household"
name = "户籍办理"
group = "police"
prefix = "D"
expected_minutes = 10

[[window]]
id = "1"
name = "1号窗口"
groups = ["natural", "legal"]

[[window]]
id = "2"
name = "2号窗口"
groups = ["natural"]

[[window]]
id = "3"
name = "3号窗口"
groups = ["legal"]

[[window]]
id = "9"
name = "9号窗口"
groups = ["police"]

[[credential]]
role = "kiosk"
token = "kiosk-token"

[[credential]]
role = "clerk"
token = "clerk-1-token"
windows = ["1"]

[[credential]]
role = "clerk"
token = "clerk-2-token"
windows = ["2", "3"]

[[credential]]
role = "clerk"
token = "clerk-9-token"
windows = ["9"]

[[credential]]
role = "manager"
token = "manager-token"

[[credential]]
role = "admin"
token = "admin-token"

[[credential]]
role = "display"
token = "display-token"
"""

DEFAULT_CALLING = """
[calling]
recall_limit = 3
late_return_minutes = 10
"""

TEST_LIMITS = """
[limits]
issue_per_minute = 1000000
public_per_minute = 1000000
"""
"""The test hall's limits, unless `extra` sets its own: tests issue hundreds
of tickets in one minute of their frozen clock (tests/test_rate_limits.py
tests the limits)."""

TOKENS = {
    "kiosk": "kiosk-token",
    "clerk": "clerk-1-token",
    "clerk2": "clerk-2-token",
    "manager": "manager-token",
    "admin": "admin-token",
    "display": "display-token",
}


def new_hall_id() -> str:
    return f"t{RUN}-{next(_counter)}"


def write_hall(
    directory: Path,
    hall: str | None = None,
    extra_priority: str = "",
    extra_windows: int = 0,
    remote: str = "",
    extra: str = "",
) -> Path:
    """Write the test hall; `extra_windows` adds windows w1..wN serving natural
    and legal; `remote` is the body of a `[remote]` section; `extra` is TOML
    appended as it is (an `[hours]` or `[calling]` section)."""
    hall = hall or new_hall_id()
    path = directory / f"{hall}.toml"
    # The test hall lets a no-show rejoin within 10 minutes, unless `extra` says otherwise.
    calling = "" if "[calling]" in extra else DEFAULT_CALLING
    text = HALL_TOML.format(hall=hall, extra_priority=extra_priority, calling=calling)
    if "[limits]" not in extra:
        text += TEST_LIMITS
    if remote:
        text += f"\n[remote]\n{remote}\n"
    for i in range(1, extra_windows + 1):
        text += f'\n[[window]]\nid = "w{i}"\nname = "综合{i}号窗口"\n'
        text += 'groups = ["natural", "legal"]\n'
    if extra:
        text += "\n" + extra + "\n"
    path.write_text(text, encoding="utf-8")
    return path


def make_config(
    directory: Path,
    extra_priority: str = "",
    extra_windows: int = 0,
    remote: str = "",
    extra: str = "",
) -> HallConfig:
    return load_hall_config(
        write_hall(
            directory,
            extra_priority=extra_priority,
            extra_windows=extra_windows,
            remote=remote,
            extra=extra,
        )
    )


def capped_config(directory: Path, cap: object, remote: str = "") -> HallConfig:
    """The test hall with `daily_cap = cap` on 公积金 (housing-fund)."""
    path = write_hall(directory, remote=remote)
    text = path.read_text(encoding="utf-8")
    marker = 'id = "housing-fund"\n'
    assert marker in text
    path.write_text(text.replace(marker, f"{marker}daily_cap = {cap}\n"), encoding="utf-8")
    return load_hall_config(path)


@dataclass
class Clock:
    """Seconds since the epoch, moved by the test."""

    now: float = START_S

    def __call__(self) -> float:
        return self.now

    def advance(self, minutes: float = 0.0, seconds: float = 0.0) -> None:
        self.now += minutes * 60 + seconds


def process_gone(pid: int) -> bool:
    """True once every thread of `pid` has exited; a zombie counts as exited.

    The process is not the test's child, so the test cannot reap it, and
    whoever inherited it may leave it a zombie for a while. Every thread is
    checked, not the leader alone: a multi-threaded process (redis-server's
    background I/O threads) shows its leader as a zombie while the other
    threads still run and still hold its open files, such as the data
    directory's lock.
    """
    try:
        tasks = [p.name for p in Path(f"/proc/{pid}/task").iterdir()]
    except FileNotFoundError:
        return True
    for tid in tasks:
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except FileNotFoundError:
            continue
        state = stat.rsplit(")", 1)[1].split()[0]  # the name in (...) may hold spaces
        if state not in ("Z", "X"):
            return False
    return True


def prior_estimates(
    config: HallConfig,
    queues: Mapping[str, Sequence[str]],
    windows: Sequence[tuple[str, str | None, float]],
) -> EtaTable:
    """What the learned estimator gives before any visit has been seen (the
    config's expected times): `queues` lists each group's waiting services in
    dispatch order, `windows` the open ones as (id, service being served or
    None, seconds since it was called)."""
    waiting = {
        g: [WaitingTicket(f"{g}{i}", g, s, float(i), float(i)) for i, s in enumerate(services)]
        for g, services in queues.items()
    }
    open_windows = [
        OpenWindow(w, config.window_by_id[w].groups, serving, elapsed, config.window_by_id[w].order)
        for w, serving, elapsed in windows
    ]
    by_group: dict[str, list[str]] = {}
    for s in config.services:
        by_group.setdefault(s.group, []).append(s.id)
    return eta_table(ServiceTimeModel.from_config(config), waiting, open_windows, by_group)


def eta_fields(table: EtaTable, group: str, position: int) -> dict[str, Any]:
    """A ticket body's estimate fields for that place in line."""
    est = table.at(group, position)
    if est is None:
        return {"eta_seconds": None, "eta_range_seconds": None}
    return {
        "eta_seconds": round(est.central),
        "eta_range_seconds": [round(est.p10), round(est.p90)],
    }


def make_config_with_targets(directory: Path, targets: Mapping[str, float]) -> HallConfig:
    """The test hall with `target_minutes` set for the services in `targets`
    (service id -> minutes); the others keep no target."""
    path = write_hall(directory)
    text = path.read_text(encoding="utf-8")
    for service, minutes in targets.items():
        head = f'id = "{service}"\n'
        start = text.index(head)
        end = text.index("expected_minutes", start)
        end = text.index("\n", end) + 1
        text = text[:end] + f"target_minutes = {minutes}\n" + text[end:]
    path.write_text(text, encoding="utf-8")
    return load_hall_config(path)


# Read from Redis by every replica's periodic task, so every replica
# reports the same value: a query must take max (or min) over replicas,
# since sum would multiply by the replica count.
REDIS_GAUGES = frozenset(
    {
        "qms_waiting_tickets",
        "qms_oldest_waiting_seconds",
        "qms_tickets_over_target",
        "qms_wait_target_seconds",
        "qms_windows",
        "qms_window_served",
        "qms_window_busy_seconds",
        "qms_window_idle_seconds",
        "qms_wait_estimate_mae_seconds",
        "qms_wait_estimate_in_range_ratio",
        "qms_wait_estimate_samples",
        "qms_screens_online",
        "qms_screens_offline",
        "qms_redis_up",
        "qms_notifications_pending",
        "qms_notification_oldest_seconds",
    }
)


NOTIFY_SECRET = b"test-webhook-secret-0123456789abcdef"
"""The webhook key of test halls with a gateway (`[notify]`)."""


def notify_toml(url: str, ahead: str = "[3, 1]") -> str:
    """A `[notify]` section sending to `url`."""
    return f'[notify]\nurl = "{url}"\nahead = {ahead}\nkiosk_ask_minutes = 15\n'
