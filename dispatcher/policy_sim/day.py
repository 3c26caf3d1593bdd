"""The day `qms simulate` plays: who comes when, for which service, in which
priority class, and how long each visit takes at the window. Pure and
seeded: the same hall, date, count and seed give the same day.

A generated day spreads its visitors over the hours the kiosk issues, with
two peaks (about 10:00 and 14:30) over an even base; services are drawn as
the demo's simulator draws them (each group's share of what the hall's own
windows give it, `dispatcher.simulator.arrival_mix`); about 15% are elderly,
3% disabled and 10% come with an appointment, checking in around their slot
(some late, past the grace: they queue as normal); 3% do not answer their
call. A visit lasts a lognormal time whose mean is the service's
`expected_minutes`.

An archived day replays the tickets the hall issued that day: their issue
times, services and classes, and how long each completed visit lasted.

A hall without `[hours]` is open all day: its visitors are taken to come
during `WORKING_DAY`, and its windows serve on until everyone is served or
the day ends at midnight.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from dispatcher.simulator import arrival_mix
from queue_core.archive import ArchivedTicket
from queue_core.calendar import MINUTE_MS, Span, at_minute
from queue_core.config import HallConfig
from queue_core.models import APPOINTMENT, NORMAL, TicketStatus

WORKING_DAY = Span(8 * 60 + 30, 17 * 60 + 30)
"""When visitors come to a hall open all day (no `[hours]`)."""
PEAKS = ((10 * 60, 45.0, 0.45), (14 * 60 + 30, 50.0, 0.35))
"""The day's peaks: (minute of the day, spread in minutes, share of visitors)."""
BASE_SHARE = 0.20
"""Visitors spread evenly over the issuing hours, beside the peaks."""
ELDERLY_SHARE = 0.15
DISABLED_SHARE = 0.03
APPOINTMENT_SHARE = 0.10
NO_SHOW_SHARE = 0.03
SLOT_MINUTES = 30
"""Appointment slots start on the half hour."""
EARLY_MINUTES = (0.0, 25.0, 8.0)
"""How early an appointment visitor checks in before the slot: triangular (low, high, mode)."""
LATE_IN_GRACE_SHARE = 0.15
"""Appointment visitors who check in after their slot start, within the grace."""
LATE_SHARE = 0.08
"""Appointment visitors who come 1 to 20 minutes past the grace: a normal ticket."""
SERVICE_SIGMA = 0.5
"""The spread (sigma of the log) of a visit's length."""
NO_SHOW_MINUTES = 2.0
"""How long a window spends on a call nobody answers (a recall, then no-show)."""
DEFAULT_LOAD = 0.85
"""Without `--visitors`: as many visitors as keep the windows this busy."""


class EmptyDay(ValueError):
    """A day with nobody to play (an archived day without tickets, a closed day)."""


@dataclass(frozen=True, slots=True)
class Arrival:
    """One visitor."""

    at_ms: int
    """When the ticket is taken (or the appointment checked in), epoch ms."""
    service: str
    priority: str
    """The class asked at the kiosk; "appointment": checks in for `slot_ms`."""
    minutes: float
    """How long the visit lasts once called."""
    no_show: bool = False
    slot_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Day:
    """A day to play, its times in epoch ms."""

    date: date
    arrivals: tuple[Arrival, ...]
    """By time."""
    issuing: tuple[tuple[int, int], ...]
    """When visitors come (the kiosk issues)."""
    serving: tuple[tuple[int, int], ...]
    """When the windows call."""
    all_day: bool
    """A hall open all day: its last serving span runs on only as long as
    there is work (utilisation counts to the last visit's end)."""
    left_out: int = 0
    """Archived tickets not played: cancelled, or of a service the hall no longer has."""


def day_hours(
    config: HallConfig, on: date
) -> tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...], bool]:
    """(issuing spans, serving spans, open all day) of the hall on a day, in
    epoch ms; `EmptyDay` when the hall does not open that day."""
    tz = config.timezone
    if config.hours is None:
        start, stop = at_minute(on, WORKING_DAY.start, tz), at_minute(on, WORKING_DAY.end, tz)
        midnight = at_minute(on + timedelta(days=1), 0, tz)
        return ((start, stop),), ((start, midnight),), True
    spans = config.hours.spans_on(on)
    if not spans:
        raise EmptyDay(f"hall {config.id} does not open on {on.isoformat()}")
    stop_ms = round(config.hours.issue_until_minutes * MINUTE_MS)
    serving = tuple((at_minute(on, s.start, tz), at_minute(on, s.end, tz)) for s in spans)
    issuing = tuple((a, b - stop_ms) for a, b in serving if b - stop_ms > a)
    if not issuing:
        raise EmptyDay(f"hall {config.id} issues no tickets on {on.isoformat()}")
    return issuing, serving, False


def service_mix(config: HallConfig) -> tuple[list[str], list[float]]:
    """The services visitors come for and their shares (summing to 1), as
    the hall's own windows are staffed for them."""
    services, rates = arrival_mix(config, list(config.windows))
    total = sum(rates)
    return services, [r / total for r in rates]


def default_visitors(config: HallConfig, on: date) -> int:
    """As many visitors as keep the hall's windows `DEFAULT_LOAD` busy over
    its issuing hours, at the services' expected minutes."""
    issuing, _, _ = day_hours(config, on)
    services, shares = service_mix(config)
    by_id = config.service_by_id
    mean = sum(by_id[s].expected_minutes * w for s, w in zip(services, shares, strict=True))
    open_minutes = sum(b - a for a, b in issuing) / MINUTE_MS
    return max(1, round(DEFAULT_LOAD * len(config.windows) * open_minutes / mean))


def generate_day(config: HallConfig, on: date, visitors: int, seed: int) -> Day:
    """A day of `visitors` generated from the hall's services and `seed`."""
    if visitors < 1:
        raise ValueError(f"a day needs at least one visitor, not {visitors}")
    issuing, serving, all_day = day_hours(config, on)
    rng = random.Random(seed)
    services, shares = service_mix(config)
    kiosk = config.kiosk_classes()
    minutes, minute_weights = _issuing_minutes(config, on, issuing)
    slots = _slots(issuing)
    arrivals = []
    for _ in range(visitors):
        roll = rng.random()
        service = rng.choices(services, shares)[0]
        length = visit_minutes(rng, config.service_by_id[service].expected_minutes)
        no_show = rng.random() < NO_SHOW_SHARE
        if roll < APPOINTMENT_SHARE and APPOINTMENT in config.priority and slots:
            slot = rng.choice(slots)
            at = _check_in(rng, config, slot, issuing)
            arrivals.append(Arrival(at, service, APPOINTMENT, length, no_show, slot))
            continue
        priority = NORMAL
        if roll < APPOINTMENT_SHARE:
            pass
        elif roll < APPOINTMENT_SHARE + ELDERLY_SHARE:
            priority = "elderly" if "elderly" in kiosk else NORMAL
        elif roll < APPOINTMENT_SHARE + ELDERLY_SHARE + DISABLED_SHARE:
            priority = "disabled" if "disabled" in kiosk else NORMAL
        at = rng.choices(minutes, cum_weights=minute_weights)[0] + rng.randrange(MINUTE_MS)
        arrivals.append(Arrival(at, service, priority, length, no_show))
    arrivals.sort(key=lambda a: a.at_ms)
    return Day(on, tuple(arrivals), issuing, serving, all_day)


def archived_day(config: HallConfig, on: date, tickets: Sequence[ArchivedTicket], seed: int) -> Day:
    """The day the archive holds: each ticket's issue time, service and
    class; a completed visit lasts as long as it did, any other visit a
    length drawn as for a generated day (`seed`). An appointment checks in
    on its slot; a class the hall no longer has queues as normal. Cancelled
    tickets and services the hall no longer has are left out. `EmptyDay`
    when nothing is left to play."""
    rng = random.Random(seed)
    kiosk = config.kiosk_classes()
    arrivals = []
    left_out = 0
    for t in sorted(tickets, key=lambda t: (t.issued_ms, t.id)):
        service = config.service_by_id.get(t.service)
        if service is None or t.status is TicketStatus.CANCELLED:
            left_out += 1
            continue
        if t.status is TicketStatus.COMPLETED and t.called_ms and t.finished_ms:
            length = max(0.0, (t.finished_ms - t.called_ms) / MINUTE_MS)
        else:
            length = visit_minutes(rng, service.expected_minutes)
        no_show = t.status is TicketStatus.NO_SHOW
        if t.priority == APPOINTMENT:
            arrivals.append(
                Arrival(t.issued_ms, t.service, APPOINTMENT, length, no_show, t.issued_ms)
            )
        else:
            priority = t.priority if t.priority in kiosk else NORMAL
            arrivals.append(Arrival(t.issued_ms, t.service, priority, length, no_show))
    if not arrivals:
        raise EmptyDay(f"the archive holds no tickets of hall {config.id} on {on.isoformat()}")
    issuing, serving, all_day = _archived_hours(config, on, arrivals)
    return Day(on, tuple(arrivals), issuing, serving, all_day, left_out)


def visit_minutes(rng: random.Random, expected: float) -> float:
    """A visit's length: lognormal with mean `expected`."""
    mu = math.log(expected) - SERVICE_SIGMA**2 / 2
    return rng.lognormvariate(mu, SERVICE_SIGMA)


def _archived_hours(
    config: HallConfig, on: date, arrivals: Sequence[Arrival]
) -> tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...], bool]:
    if config.hours is not None:
        return day_hours(config, on)
    # Open all day: from the working day's start or the first ticket,
    # whichever is earlier, serving on until midnight.
    tz = config.timezone
    start = min(at_minute(on, WORKING_DAY.start, tz), arrivals[0].at_ms)
    stop = max(at_minute(on, WORKING_DAY.end, tz), arrivals[-1].at_ms + 1)
    midnight = at_minute(on + timedelta(days=1), 0, tz)
    return ((start, stop),), ((start, max(midnight, stop)),), True


def _issuing_minutes(
    config: HallConfig, on: date, issuing: Sequence[tuple[int, int]]
) -> tuple[list[int], list[float]]:
    """Each issuing minute's start (epoch ms) and the cumulative weight of
    arrivals up to it: two peaks over an even base."""
    midnight = at_minute(on, 0, config.timezone)
    starts: list[int] = []
    for a, b in issuing:
        starts.extend(range(a, b - MINUTE_MS + 1, MINUTE_MS) or [a])
    base = BASE_SHARE / len(starts)
    cumulative, total = [], 0.0
    for ms in starts:
        minute = (ms - midnight) / MINUTE_MS
        total += base + sum(share * _bell(minute, at, spread) for at, spread, share in PEAKS)
        cumulative.append(total)
    return starts, cumulative


def _bell(x: float, mean: float, spread: float) -> float:
    """The normal density."""
    return math.exp(-(((x - mean) / spread) ** 2) / 2) / (spread * math.sqrt(2 * math.pi))


def _slots(issuing: Sequence[tuple[int, int]]) -> list[int]:
    """Appointment slot starts: every half hour (epoch ms) within the issuing hours."""
    step = SLOT_MINUTES * MINUTE_MS
    return [
        s
        for a, b in issuing
        for s in range(-(-a // step) * step, b, step)  # the first half hour at or after a
    ]


def _check_in(
    rng: random.Random, config: HallConfig, slot: int, issuing: Sequence[tuple[int, int]]
) -> int:
    """When an appointment visitor checks in: mostly a little early, some
    within the grace, some too late; always while the kiosk issues."""
    grace = config.appointments.grace_minutes
    roll = rng.random()
    if roll < LATE_SHARE:
        offset = grace + rng.uniform(1.0, 20.0)
    elif roll < LATE_SHARE + LATE_IN_GRACE_SHARE:
        offset = rng.uniform(0.0, grace)
    else:
        low, high, mode = EARLY_MINUTES
        high = min(high, config.appointments.early_minutes)
        offset = -rng.triangular(low, high, min(mode, high))
    at = slot + round(offset * MINUTE_MS)
    for a, b in issuing:
        if a <= at < b:
            return at
    return slot  # the kiosk does not issue then: the visitor comes on the dot
