"""A ticket's score and the hall's day, as pure functions (no I/O).

A ticket's effective time is `issued_at - credit(class)`: the score its
group's queue is ordered by. Who a window calls from those queues is the
dispatch rule, `dispatcher/dispatch.py`. Times are epoch milliseconds.
"""

from __future__ import annotations

import math
from datetime import datetime
from zoneinfo import ZoneInfo

from queue_core.config import AppointmentRules

MINUTE_MS = 60_000

STRICT_OFFSET_MS = 10**13
"""What an infinite credit subtracts: about 317 years, far more than any
finite credit, yet small enough that a double still holds every millisecond
exactly. Strict-priority tickets thus precede everyone else and keep their
arrival order among themselves."""


def effective_ms(issued_ms: int, credit_minutes: float) -> float:
    """The score a waiting ticket is ordered by (smaller is called first)."""
    if credit_minutes < 0 or math.isnan(credit_minutes):
        raise ValueError(f"a credit cannot be {credit_minutes}")
    if math.isinf(credit_minutes):
        return float(issued_ms - STRICT_OFFSET_MS)
    return float(issued_ms - round(credit_minutes * MINUTE_MS))


def appointment_on_time(checkin_ms: int, start_ms: int, rules: AppointmentRules) -> bool:
    """Whether a check-in falls in [start - early, start + grace]."""
    earliest = start_ms - round(rules.early_minutes * MINUTE_MS)
    latest = start_ms + round(rules.grace_minutes * MINUTE_MS)
    return earliest <= checkin_ms <= latest


def checkin_effective_ms(
    checkin_ms: int, start_ms: int, on_time: bool, appointment_credit_minutes: float
) -> float:
    """An on-time appointment counts from the earlier of arrival and slot start;
    a late or very early one is an ordinary arrival."""
    if not on_time:
        return effective_ms(checkin_ms, 0.0)
    return effective_ms(min(checkin_ms, start_ms), appointment_credit_minutes)


def local_day(now_ms: int, tz: ZoneInfo) -> str:
    """The hall's calendar day (YYYYMMDD): numbering restarts at local midnight."""
    return datetime.fromtimestamp(now_ms / 1000, tz).strftime("%Y%m%d")


def local_day_and_hour(now_ms: int, tz: ZoneInfo) -> tuple[str, str]:
    """The hall's calendar day (YYYYMMDD) and its hour of the day (HH)."""
    moment = datetime.fromtimestamp(now_ms / 1000, tz)
    return moment.strftime("%Y%m%d"), moment.strftime("%H")
