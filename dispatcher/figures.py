"""The hall's figures for managers: pure functions of one `HallState` read.

What the dashboard shows and the Redis-derived gauges report, computed the
same way in every replica from the same Redis read, so replicas agree. Times
in the result are seconds; "today" is the hall's local day.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from dispatcher.dispatch import policy_of
from dispatcher.estimator import (
    EtaTable,
    OpenWindow,
    ServiceTimeModel,
    WaitEstimate,
    WaitingTicket,
    eta_table,
    model_from_visits,
)
from queue_core import metrics
from queue_core.calendar import HallHours, hall_hours
from queue_core.config import HallConfig
from queue_core.models import (
    CallRecord,
    HallState,
    QueuedTicket,
    ScreenPresence,
    WindowState,
    WindowStatus,
)

HOUR_MS = 3_600_000
BREACHES_SHOWN = 50
OFFLINE_AFTER_MS = 24 * HOUR_MS
"""A screen unseen for longer than this is taken as retired, not offline."""


@dataclass(frozen=True, slots=True)
class GroupFigures:
    id: str
    waiting: int
    oldest_wait_s: float | None
    open_windows: int


@dataclass(frozen=True, slots=True)
class ServiceFigures:
    id: str
    group: str
    waiting: int
    eta: WaitEstimate | None
    """For a ticket taken now."""
    target_s: float | None
    over_target: int


@dataclass(frozen=True, slots=True)
class WaitSummary:
    called: int
    mean_s: float | None
    p90_s: float | None


@dataclass(frozen=True, slots=True)
class HourFigures:
    hour: str
    issued: int
    called: int
    served: int
    mean_wait_s: float | None


@dataclass(frozen=True, slots=True)
class WindowFigures:
    state: WindowState
    served: int
    busy_s: float
    idle_s: float
    open_s: float

    @property
    def utilisation(self) -> float | None:
        """Share of its open time the window spent serving (None before it opened today)."""
        if self.open_s <= 0:
            return None
        return min(self.busy_s / self.open_s, 1.0)


@dataclass(frozen=True, slots=True)
class Breach:
    ticket: QueuedTicket
    waited_s: float
    target_s: float


@dataclass(frozen=True, slots=True)
class Accuracy:
    samples: int
    mae_s: float | None
    in_range: float | None


@dataclass(frozen=True, slots=True)
class OfflineScreen:
    screen: str
    last_seen_ms: int


@dataclass(frozen=True, slots=True)
class HallFigures:
    """Everything the dashboard and the gauges show, as of `at_ms`."""

    at_ms: int
    seq: int
    groups: tuple[GroupFigures, ...]
    services: tuple[ServiceFigures, ...]
    last_hour: WaitSummary
    hours: tuple[HourFigures, ...]
    windows: tuple[WindowFigures, ...]
    breaches: tuple[Breach, ...]
    breach_count: int
    screens_online: tuple[ScreenPresence, ...]
    screens_offline: tuple[OfflineScreen, ...]
    accuracy_last_hour: Accuracy
    accuracy_today: Accuracy
    ratings: dict[str, int]
    hall: HallHours | None = None
    """Whether the hall takes tickets (its calendar and a manager's close)."""
    parked: int = 0
    expired_today: int = 0


def day_start_ms(now_ms: int, config: HallConfig) -> int:
    """The hall's local midnight before `now_ms`."""
    moment = datetime.fromtimestamp(now_ms / 1000, config.timezone)
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return int(midnight.timestamp() * 1000)


def service_model(config: HallConfig, state: HallState) -> ServiceTimeModel:
    """The learned service times, from the visits the store kept."""
    visits = {s: [ms / 1000 for ms in times] for s, times in state.service_times.items()}
    return model_from_visits(config, visits)


def estimates(
    config: HallConfig, state: HallState, model: ServiceTimeModel, now_ms: int
) -> EtaTable:
    """Wait estimates by place in line, replaying the dispatch over the open
    windows (with the visits now at them) and the queues' heads."""
    windows = []
    for w in state.windows:
        if w.status is not WindowStatus.OPEN:
            continue
        serving = w.ticket
        elapsed = 0.0
        if serving is not None and serving.called_ms is not None:
            elapsed = max(now_ms - serving.called_ms, 0) / 1000
        window = config.window_by_id[w.id]
        service = serving.service if serving else None
        windows.append(OpenWindow(w.id, window.groups, service, elapsed, window.order))
    # Keyed by queue member, which leads with the issue time and the event
    # number: the replay then breaks ties exactly as Redis orders the queue.
    queues = {
        g: [
            WaitingTicket(
                t.member, g, t.service, t.effective_ms / 1000, t.issued_ms / 1000, t.priority
            )
            for t in q
        ]
        for g, q in state.queues.items()
    }
    by_group: dict[str, list[str]] = {}
    for s in config.services:
        by_group.setdefault(s.group, []).append(s.id)
    policy = policy_of(config)
    return eta_table(model, queues, windows, by_group, policy, state.turns)


def hall_figures(
    config: HallConfig,
    state: HallState,
    table: EtaTable,
    online: Sequence[ScreenPresence],
    last_seen: Mapping[str, int],
    now_ms: int,
) -> HallFigures:
    """The dashboard's figures from one read. `state.calls` must hold the
    calls of the last hour (the store reads them since `now_ms` − 1 h).
    The hall monitor passes no screens here (its read also answers public
    requests, which must not read presence) and adds them with
    `with_screens` for the dashboard and the gauges."""
    stats = state.stats
    midnight = day_start_ms(now_ms, config)
    open_ids = state.open_windows

    groups = []
    for g in config.groups:
        heads = state.queues.get(g.id, ())
        oldest = min((t.issued_ms for t in heads), default=None)
        serving = sum(1 for w in config.windows if g.id in w.groups and w.id in open_ids)
        groups.append(
            GroupFigures(
                g.id,
                state.waiting_by_group.get(g.id, 0),
                None if oldest is None else max(now_ms - oldest, 0) / 1000,
                serving,
            )
        )

    breaches: list[Breach] = []
    targets = {s.id: 60 * s.target_minutes for s in config.services if s.target_minutes}
    for q in state.queues.values():
        for t in q:
            target = targets.get(t.service)
            waited = (now_ms - t.issued_ms) / 1000
            if target is not None and waited > target:
                breaches.append(Breach(t, waited, target))
    breaches.sort(key=lambda b: -b.waited_s)
    over: dict[str, int] = {}
    for b in breaches:
        over[b.ticket.service] = over.get(b.ticket.service, 0) + 1

    services = tuple(
        ServiceFigures(
            s.id,
            s.group,
            state.waiting_by_service.get(s.id, 0),
            table.at(s.group, state.waiting_by_group.get(s.group, 0)),
            targets.get(s.id),
            over.get(s.id, 0),
        )
        for s in config.services
    )

    windows = tuple(
        _window_figures(w, stats, state.window_since_ms.get(w.id), midnight, now_ms)
        for w in state.windows
    )

    recent = [c for c in state.calls if c.at_ms >= now_ms - HOUR_MS]
    n, abs_ms, inside = stats.get("est:n", 0), stats.get("est:abs", 0), stats.get("est:in", 0)
    return HallFigures(
        at_ms=now_ms,
        seq=state.seq,
        groups=tuple(groups),
        services=services,
        last_hour=wait_summary(recent),
        hours=hour_figures(stats),
        windows=windows,
        breaches=tuple(breaches[:BREACHES_SHOWN]),
        breach_count=len(breaches),
        screens_online=tuple(online),
        screens_offline=_offline(online, last_seen, now_ms),
        accuracy_last_hour=accuracy(recent),
        accuracy_today=Accuracy(n, abs_ms / n / 1000 if n else None, inside / n if n else None),
        ratings={f.removeprefix("rating:"): v for f, v in stats.items() if f.startswith("rating:")},
        hall=hall_hours(config.hours, config.timezone, now_ms, state.closed_until_ms),
        parked=state.parked,
        expired_today=stats.get("expired", 0),
    )


def with_screens(
    figures: HallFigures,
    online: Sequence[ScreenPresence],
    last_seen: Mapping[str, int],
    now_ms: int,
) -> HallFigures:
    """`figures` with the hall's screens: those online, and those seen in
    the last day whose presence has lapsed."""
    return replace(
        figures,
        screens_online=tuple(online),
        screens_offline=_offline(online, last_seen, now_ms),
    )


def _offline(
    online: Sequence[ScreenPresence], last_seen: Mapping[str, int], now_ms: int
) -> tuple[OfflineScreen, ...]:
    seen_online = {p.screen for p in online}
    return tuple(
        OfflineScreen(s, at)
        for s, at in sorted(last_seen.items())
        if s not in seen_online and now_ms - at <= OFFLINE_AFTER_MS
    )


def wait_summary(calls: Sequence[CallRecord]) -> WaitSummary:
    waits = sorted(c.wait_ms / 1000 for c in calls)
    if not waits:
        return WaitSummary(0, None, None)
    # Nearest rank, as the daily report computes it: always a wait someone had.
    return WaitSummary(len(waits), sum(waits) / len(waits), waits[math.ceil(0.9 * len(waits)) - 1])


def accuracy(calls: Sequence[CallRecord]) -> Accuracy:
    """Mean absolute error and share inside the 80% range, over the calls
    whose ticket was given an estimate at issue."""
    errors, inside = [], 0
    for c in calls:
        if c.estimate_ms is None or c.low_ms is None or c.high_ms is None:
            continue
        errors.append(abs(c.wait_ms - c.estimate_ms) / 1000)
        inside += c.low_ms <= c.wait_ms <= c.high_ms
    if not errors:
        return Accuracy(0, None, None)
    return Accuracy(len(errors), sum(errors) / len(errors), inside / len(errors))


_HOUR_FIELD = re.compile(r"(?:issued|called|served):(\d\d)")
"""A per-hour field of `stats:<day>` (not `served:w:<window>`)."""


def hour_figures(stats: Mapping[str, int]) -> tuple[HourFigures, ...]:
    hours = sorted({m[1] for f in stats if (m := _HOUR_FIELD.fullmatch(f))})
    out = []
    for h in hours:
        called = stats.get(f"called:{h}", 0)
        wait = stats.get(f"wait:{h}", 0)
        out.append(
            HourFigures(
                h,
                stats.get(f"issued:{h}", 0),
                called,
                stats.get(f"served:{h}", 0),
                wait / called / 1000 if called else None,
            )
        )
    return tuple(out)


def _window_figures(
    w: WindowState, stats: Mapping[str, int], since: int | None, midnight: int, now_ms: int
) -> WindowFigures:
    busy = stats.get(f"busy:w:{w.id}", 0)
    opened = stats.get(f"open:w:{w.id}", 0)
    # The spans still running count up to now, from today's midnight at the earliest.
    if w.status is WindowStatus.OPEN and since is not None:
        opened += now_ms - max(since, midnight)
    if w.ticket is not None and w.ticket.called_ms is not None:
        busy += now_ms - max(w.ticket.called_ms, midnight)
    return WindowFigures(
        w,
        stats.get(f"served:w:{w.id}", 0),
        busy / 1000,
        max(opened - busy, 0) / 1000,
        opened / 1000,
    )


def record_figures(hall: str, f: HallFigures) -> None:
    """Set the Redis-derived gauges from the monitor's latest read."""
    for g in f.groups:
        metrics.WAITING.labels(hall, g.id).set(g.waiting)
        metrics.OLDEST_WAIT.labels(hall, g.id).set(g.oldest_wait_s or 0)
    for s in f.services:
        metrics.OVER_TARGET.labels(hall, s.id).set(s.over_target)
        if s.target_s is not None:
            metrics.WAIT_TARGET.labels(hall, s.id).set(s.target_s)
    for status in WindowStatus:
        metrics.WINDOWS.labels(hall, status.value).set(
            sum(1 for w in f.windows if w.state.status is status)
        )
    for w in f.windows:
        metrics.WINDOW_SERVED.labels(hall, w.state.id).set(w.served)
        metrics.WINDOW_BUSY.labels(hall, w.state.id).set(w.busy_s)
        metrics.WINDOW_IDLE.labels(hall, w.state.id).set(w.idle_s)
    for span, acc in (("1h", f.accuracy_last_hour), ("today", f.accuracy_today)):
        metrics.ESTIMATE_SAMPLES.labels(hall, span).set(acc.samples)
        mae = acc.mae_s if acc.mae_s is not None else math.nan
        metrics.ESTIMATE_MAE.labels(hall, span).set(mae)
        metrics.ESTIMATE_IN_RANGE.labels(hall, span).set(
            acc.in_range if acc.in_range is not None else math.nan
        )
    metrics.PARKED.labels(hall).set(f.parked)
    if f.hall is not None:
        metrics.HALL_OPEN.labels(hall).set(1 if f.hall.open else 0)
    metrics.SCREENS_ONLINE.labels(hall).set(len(f.screens_online))
    metrics.SCREENS_OFFLINE.labels(hall).set(len(f.screens_offline))
    metrics.REDIS_UP.labels(hall).set(1)
