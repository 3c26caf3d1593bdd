"""The arithmetic and bookkeeping of the Locust scenarios, without Locust.

`loadtests/locustfile.py` imports this; so do the fast tests and the
`python -m loadtests.county` wrapper, which must not import locust (it
monkey-patches the standard library with gevent as it is imported). Nothing
here does I/O except reading a hall config and a stats CSV.

The hall's clock: a "speed" k means k hall seconds pass per wall second.
Arrival rates are multiplied by k and service times divided by k; the
phones keep the visitor page's own rhythm (wall clock), see `phone_delay_s`.
"""

from __future__ import annotations

import csv
import math
import os
import random
import time
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

CONFIG = Path(__file__).with_name("county_hall.toml")

# --------------------------------------------------------------- the county

VISITORS_PER_DAY = 3_000
PEAK_SHARE = 0.25
"""Share of the day's visitors who come in the 9-10 o'clock peak hour."""
PEAK_ARRIVALS_PER_HOUR = VISITORS_PER_DAY * PEAK_SHARE  # 750
KIOSKS = 4
PHONE_SHARE = 0.6
"""Share of issued tickets whose visitor follows them on a phone."""
PHONES = 200
"""Phones following tickets at once, at most: with the county's 30 windows
serving about 210 visitors an hour against 750 arriving, the queue grows by
about 9 a minute through the peak, so 0.6 x waiting passes 200 after about
35 hall minutes."""

# Visitors per service, in percent: the county's mix (the police and tax
# zones get what their four windows each can serve, the rest goes to the
# comprehensive windows). A service of another hall gets the mean share.
COUNTY_SHARES: Mapping[str, float] = {
    "social-security": 22,
    "housing-fund": 14,
    "real-estate": 8,
    "business-license": 8,
    "business-change": 6,
    "household": 8,
    "id-card": 12,
    "exit-entry": 4,
    "tax-filing": 10,
    "invoice": 8,
}
# Priority classes a kiosk sets, in percent; the rest are "normal".
PRIORITY_SHARES: Mapping[str, float] = {"elderly": 8, "disabled": 2}

# A clerk's call, in percent: the visitor does not come (no-show, after a
# wait and a recall), comes only after a recall, or is at the wrong service
# (transfer after a short look); everyone else is served and completed.
NO_SHOW_PCT = 4
RECALL_PCT = 5
TRANSFER_PCT = 3
ClerkOutcome = Literal["serve", "recall", "no_show", "transfer"]

# Hall seconds a clerk spends on each part of the cycle (divided by the speed).
RECALL_AFTER_HALL_S = 30.0
NO_SHOW_AFTER_HALL_S = 90.0
IDLE_RETRY_HALL_S = 20.0
"""Nobody waiting: how long until the clerk presses call-next again."""
SERVICE_SHAPE = 4.0
"""Gamma shape of service times: mean = expected minutes, CV = 1/sqrt(4) = 0.5."""
MIN_WALL_SLEEP_S = 0.02

# The visitor page's poll rhythm (displays/static/visitor.js): 0.6 s when 3
# or fewer are ahead, else 2 s while the page is on screen, 15 s while it is
# hidden; a phone is looked at about a third of the time.
PHONE_NEAR_POSITIONS = 3
PHONE_NEAR_S = 0.6
PHONE_VISIBLE_S = 2.0
PHONE_HIDDEN_S = 15.0
PHONE_VISIBLE_SHARE = 1 / 3

# --------------------------------------------------------------- the stress

STRESS_P99_MS = 100.0
STRESS_STEP_S = 15.0
STRESS_MAX_LEVEL = 24
"""2^(24/2) = 4096 times the county's peak: where the stress gives up."""
STRESS_MIN_SAMPLES = 50
"""Fewer HTTP requests in a level than this: its p99 says nothing yet."""
KIOSK_MAX_RATE = 5.0
"""Issues per second one kiosk user is asked for at most; beyond it the
shape adds kiosks, so arrivals stay an open (Poisson) process instead of
queueing behind a kiosk's own requests."""


def arrivals_per_s(speed: float) -> float:
    """Tickets issued per wall second in the peak hour at hall speed `speed`:
    750 / 3600 = 0.208 at real time, 2.08 at k = 10."""
    return PEAK_ARRIVALS_PER_HOUR / 3600 * speed


def kiosks_for(rate_per_s: float, minimum: int = KIOSKS) -> int:
    """Kiosk users needed so that none is asked for more than KIOSK_MAX_RATE."""
    return max(minimum, math.ceil(rate_per_s / KIOSK_MAX_RATE))


def balanced_service_factor(plan: HallPlan) -> float:
    """What to multiply service times by so the windows serve the peak's
    arrivals as they come (never slower than expected): 214 / 750 = 0.29
    for the county."""
    return min(1.0, plan.served_per_hour() / PEAK_ARRIVALS_PER_HOUR)


def stress_multiplier(level: int) -> float:
    """Load of stress level `level` (0, 1, 2 …) over the county peak: x sqrt(2) a step."""
    return float(2 ** (level / 2))


def wall_s(hall_s: float, speed: float) -> float:
    """Wall seconds for `hall_s` seconds of hall time (never quite zero: a
    greenlet that never sleeps starves the others)."""
    return max(MIN_WALL_SLEEP_S, hall_s / speed)


def service_wall_s(expected_minutes: float, speed: float, rng: random.Random) -> float:
    """A service time around the service's expected minutes, in wall seconds."""
    minutes = rng.gammavariate(SERVICE_SHAPE, expected_minutes / SERVICE_SHAPE)
    return wall_s(minutes * 60, speed)


def clerk_outcome(rng: random.Random) -> ClerkOutcome:
    draw = rng.random() * 100
    if draw < NO_SHOW_PCT:
        return "no_show"
    if draw < NO_SHOW_PCT + RECALL_PCT:
        return "recall"
    if draw < NO_SHOW_PCT + RECALL_PCT + TRANSFER_PCT:
        return "transfer"
    return "serve"


def phone_delay_s(position: int | None, rng: random.Random, rate_factor: float = 1.0) -> float:
    """Seconds until a phone asks about its waiting ticket again; a stress
    level multiplies every device's request rate by `rate_factor`."""
    if rng.random() >= PHONE_VISIBLE_SHARE:
        delay = PHONE_HIDDEN_S
    elif position is not None and position < PHONE_NEAR_POSITIONS:
        delay = PHONE_NEAR_S
    else:
        delay = PHONE_VISIBLE_S
    return delay / rate_factor


def pick_priority(rng: random.Random) -> str | None:
    draw = rng.random() * 100
    for name, pct in PRIORITY_SHARES.items():
        if draw < pct:
            return name
        draw -= pct
    return None


# ------------------------------------------------------------------ the hall


@dataclass(frozen=True, slots=True)
class Service:
    id: str
    group: str
    expected_minutes: float
    share: float


@dataclass(frozen=True, slots=True)
class HallPlan:
    """What the load test needs of a hall config: ids, service times, tokens."""

    hall: str
    services: tuple[Service, ...]
    windows: tuple[str, ...]
    kiosk_token: str
    display_token: str
    clerk_tokens: Mapping[str, str]

    @classmethod
    def load(cls, path: Path, env: Mapping[str, str] | None = None) -> HallPlan:
        """Read `path` (a hall config). Tokens are the config's plain
        `token`s; QMS_LOAD_KIOSK_TOKEN, QMS_LOAD_DISPLAY_TOKEN and
        QMS_LOAD_CLERK_TOKEN (one token for every window, e.g. an admin's)
        override them, for a hall whose credentials are `token_sha256`."""
        env = os.environ if env is None else env
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        creds: list[dict[str, Any]] = raw.get("credential", [])

        def plain(*roles: str) -> str | None:
            for role in roles:
                for cred in creds:
                    if cred.get("role") == role and isinstance(cred.get("token"), str):
                        return str(cred["token"])
            return None

        admin = plain("admin")
        windows = tuple(str(w["id"]) for w in raw.get("window", []))
        clerk_override = env.get("QMS_LOAD_CLERK_TOKEN")
        clerks: dict[str, str] = {}
        for w in windows:
            own = next(
                (
                    str(c["token"])
                    for c in creds
                    if c.get("role") == "clerk"
                    and isinstance(c.get("token"), str)
                    and w in c.get("windows", [])
                ),
                None,
            )
            token = clerk_override or own or admin
            if token is None:
                raise ValueError(f"{path}: no plain token for window {w}: set QMS_LOAD_CLERK_TOKEN")
            clerks[w] = token
        kiosk = env.get("QMS_LOAD_KIOSK_TOKEN") or plain("kiosk", "admin")
        display = env.get("QMS_LOAD_DISPLAY_TOKEN") or plain("display", "manager", "admin")
        if kiosk is None:
            raise ValueError(f"{path}: no plain kiosk token: set QMS_LOAD_KIOSK_TOKEN")
        if display is None:
            raise ValueError(f"{path}: no plain display token: set QMS_LOAD_DISPLAY_TOKEN")
        default_share = sum(COUNTY_SHARES.values()) / len(COUNTY_SHARES)
        services = tuple(
            Service(
                str(s["id"]),
                str(s["group"]),
                float(s["expected_minutes"]),
                COUNTY_SHARES.get(str(s["id"]), default_share),
            )
            for s in raw.get("service", [])
        )
        if not services or not windows:
            raise ValueError(f"{path}: a hall needs services and windows")
        return cls(str(raw["hall"]["id"]), services, windows, kiosk, display, clerks)

    @property
    def service_by_id(self) -> Mapping[str, Service]:
        return {s.id: s for s in self.services}

    def mean_service_minutes(self) -> float:
        total = sum(s.share for s in self.services)
        return sum(s.share * s.expected_minutes for s in self.services) / total

    def served_per_hour(self) -> float:
        """Visitors all windows together serve in an hour, at the expected minutes."""
        return len(self.windows) * 60 / self.mean_service_minutes()

    def pick_service(self, rng: random.Random) -> Service:
        return rng.choices(self.services, weights=[s.share for s in self.services])[0]

    def transfer_target(self, current: str, rng: random.Random) -> Service:
        """Another service the visitor should have asked for."""
        others = [s for s in self.services if s.id != current]
        return rng.choice(others) if others else self.services[0]


# ----------------------------------------------------------- screen frames


def parse_at(at: str) -> float:
    """Epoch seconds of a frame's `at` (ISO 8601 with milliseconds and offset)."""
    parsed = datetime.fromisoformat(at)
    if parsed.tzinfo is None:
        raise ValueError(f"at without an offset: {at!r}")
    return parsed.timestamp()


@dataclass(slots=True)
class SeqTracker:
    """The screen's side of the contract: `seq` rises by exactly one per event.

    Each method answers None when all is well, or what went wrong."""

    last: int | None = None
    events: int = 0

    def start(self, seq: int) -> None:
        """A snapshot (or the `since` a reconnect asked from) sets the baseline."""
        self.last = seq

    def event(self, seq: int) -> str | None:
        if self.last is None:
            self.last = seq
            self.events += 1
            return None
        if seq == self.last + 1:
            self.last = seq
            self.events += 1
            return None
        if seq <= self.last:
            return f"duplicate seq {seq} (last was {self.last})"
        missed = seq - self.last - 1
        problem = f"seq gap: {missed} event(s) missed between {self.last} and {seq}"
        self.last = seq
        self.events += 1
        return problem

    def heartbeat(self, seq: int) -> str | None:
        """A heartbeat names the hall's latest event: above ours, we missed some."""
        if self.last is None or seq <= self.last:
            return None
        problem = f"heartbeat at seq {seq} but last event seen was {self.last}"
        self.last = seq
        return problem


# ------------------------------------------------------------ stress levels


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..1), None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


@dataclass(slots=True)
class StressLevel:
    """What one stress level saw: HTTP response times and every failure."""

    level: int
    multiplier: float
    started_s: float
    """On the shape's clock; `started_at` and `ended_at` are epoch seconds, to
    match the level with CPU samples taken outside locust."""
    http_ms: list[float] = field(default_factory=list)
    failures: int = 0
    first_failure: str = ""
    ended_s: float | None = None
    client_cpu_pct: float | None = None
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None

    def finish(self, now_s: float) -> None:
        self.ended_s = now_s
        self.ended_at = time.time()

    def record(self, request_type: str, response_time_ms: float, error: str | None) -> None:
        if error is not None:
            self.failures += 1
            self.first_failure = self.first_failure or f"{request_type}: {error}"
        elif request_type in ("GET", "POST"):
            self.http_ms.append(response_time_ms)

    def p99(self) -> float | None:
        return percentile(self.http_ms, 0.99)

    def broken(self, p99_limit_ms: float, complete: bool) -> str | None:
        """Why this level did not hold, or None. Failures count at once; the
        p99 only once the level has run its course with enough requests."""
        if self.failures:
            return f"{self.failures} failure(s), first: {self.first_failure}"
        p99 = self.p99()
        enough = complete and len(self.http_ms) >= STRESS_MIN_SAMPLES
        if enough and p99 is not None and p99 > p99_limit_ms:
            return f"HTTP p99 {p99:.0f} ms > {p99_limit_ms:.0f} ms"
        return None


STRESS_CSV_FIELDS = (
    "level",
    "multiplier",
    "issues_per_s",
    "http_requests",
    "http_rps",
    "http_p50_ms",
    "http_p99_ms",
    "failures",
    "client_cpu_pct",
    "held",
    "why_not",
    "started_at",
    "ended_at",
)


def stress_row(level: StressLevel, base_speed: float, held: bool, why_not: str) -> dict[str, str]:
    duration = (level.ended_s or level.started_s) - level.started_s
    p50 = percentile(level.http_ms, 0.5)
    p99 = level.p99()
    cpu = level.client_cpu_pct
    return {
        "level": str(level.level),
        "multiplier": f"{level.multiplier:.2f}",
        "issues_per_s": f"{arrivals_per_s(base_speed * level.multiplier):.2f}",
        "http_requests": str(len(level.http_ms)),
        "http_rps": f"{len(level.http_ms) / duration:.1f}" if duration > 0 else "",
        "http_p50_ms": f"{p50:.1f}" if p50 is not None else "",
        "http_p99_ms": f"{p99:.1f}" if p99 is not None else "",
        "failures": str(level.failures),
        "client_cpu_pct": f"{cpu:.0f}" if cpu is not None else "",
        "held": "yes" if held else "no",
        "why_not": why_not,
        "started_at": f"{level.started_at:.3f}",
        "ended_at": f"{level.ended_at:.3f}" if level.ended_at is not None else "",
    }


# --------------------------------------------------------------- stats CSV


@dataclass(frozen=True, slots=True)
class StatRow:
    """One request type of Locust's `<prefix>_stats.csv`."""

    type: str
    name: str
    requests: int
    failures: int
    p50_ms: float | None
    p99_ms: float | None
    rps: float
    avg_size: float


def _number(raw: str | None) -> float | None:
    try:
        return float(raw) if raw not in (None, "", "N/A") else None
    except ValueError:
        return None


def read_stats_csv(path: Path) -> list[StatRow]:
    """Rows of a Locust stats CSV (the "Aggregated" row included, type "")."""
    with path.open(newline="", encoding="utf-8") as f:
        return [
            StatRow(
                type=row["Type"],
                name=row["Name"],
                requests=int(row["Request Count"]),
                failures=int(row["Failure Count"]),
                p50_ms=_number(row.get("50%")),
                p99_ms=_number(row.get("99%")),
                rps=_number(row.get("Requests/s")) or 0.0,
                avg_size=_number(row.get("Average Content Size")) or 0.0,
            )
            for row in csv.DictReader(f)
        ]
