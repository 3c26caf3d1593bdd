"""Prometheus metrics. Counters move when this process performs a change
(Prometheus sums them over replicas); gauges that need Redis are set by a
periodic task from a snapshot, never inside a scrape."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

from queue_core.models import EventType, OutcomeEvent, Snapshot, WindowStatus

# `_created` series double the output and no dashboard of ours reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

_LABELS = ["hall", "service", "priority"]

TICKETS = {
    EventType.ISSUED: Counter("qms_tickets_issued_total", "Tickets issued.", _LABELS),
    EventType.CALLED: Counter("qms_tickets_called_total", "Tickets called to a window.", _LABELS),
    EventType.COMPLETED: Counter("qms_tickets_completed_total", "Tickets completed.", _LABELS),
    EventType.NO_SHOW: Counter(
        "qms_tickets_no_show_total", "Called tickets nobody came for.", _LABELS
    ),
    EventType.CANCELLED: Counter("qms_tickets_cancelled_total", "Tickets cancelled.", _LABELS),
    EventType.TRANSFERRED: Counter(
        "qms_tickets_transferred_total", "Tickets transferred to another service.", _LABELS
    ),
}

WAIT_BUCKETS = (60, 120, 300, 600, 900, 1200, 1800, 2700, 3600, 5400, 7200, 10800)

WAIT = Histogram(
    "qms_wait_seconds",
    "Time from issue to call.",
    ["hall", "group", "priority"],
    buckets=WAIT_BUCKETS,
)

WAITING = Gauge("qms_waiting_tickets", "Tickets waiting, by group.", ["hall", "group"])
WINDOWS = Gauge("qms_windows", "Windows by state.", ["hall", "status"])
RATINGS = Counter(
    "qms_ratings_total",
    "Visitors' ratings (好差评) of completed tickets.",
    ["hall", "service", "window", "score"],
)
REMOTE_REFUSED = Counter(
    "qms_remote_tickets_refused_total",
    "Remote tickets refused by a guard: rate_limited, remote_quota_exhausted, phone_has_ticket.",
    ["hall", "reason"],
)
SCREENS = Gauge(
    "qms_screens_connected", "Screens connected to this replica's gateway.", ["hall", "page"]
)
SCREENS_CLOSED = Counter(
    "qms_screens_closed_total",
    "Screen sockets ended, by why: client, too_slow, shutdown, redis_unavailable.",
    ["hall", "reason"],
)
EVENT_LAG = Histogram(
    "qms_event_fanout_lag_seconds",
    "From an event's time in Redis to its fan-out to this replica's screens.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
REDIS_UP = Gauge("qms_redis_up", "1 when the last periodic read of Redis worked.", ["hall"])


def observe(hall: str, outcomes: Sequence[OutcomeEvent]) -> None:
    """Count what one store operation did (replays are never passed here)."""
    for o in outcomes:
        counter = TICKETS.get(o.type)
        if counter is not None:
            counter.labels(hall, o.service, o.priority).inc()
        if o.type is EventType.CALLED and o.wait_ms is not None:
            WAIT.labels(hall, o.group, o.priority).observe(o.wait_ms / 1000)


def record_snapshot(hall: str, snap: Snapshot) -> None:
    for group, n in snap.waiting_by_group.items():
        WAITING.labels(hall, group).set(n)
    for status in WindowStatus:
        WINDOWS.labels(hall, status.value).set(sum(1 for w in snap.windows if w.status is status))
    REDIS_UP.labels(hall).set(1)


def record_redis_down(hall: str) -> None:
    REDIS_UP.labels(hall).set(0)
