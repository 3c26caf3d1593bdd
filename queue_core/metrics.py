"""Prometheus metrics. Counters move when this process performs a change
(Prometheus sums them over replicas); gauges that need Redis are set by a
periodic task from a snapshot, never inside a scrape."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

from queue_core.models import EventType, OutcomeEvent

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
    EventType.EXPIRED: Counter(
        "qms_tickets_expired_total",
        "Waiting or parked tickets left when the hall's day ended (or a manager closed it).",
        _LABELS,
    ),
    EventType.PARKED: Counter(
        "qms_tickets_parked_total", "Called tickets parked (the visitor stepped aside).", _LABELS
    ),
    EventType.REJOINED: Counter(
        "qms_tickets_rejoined_total", "No-show tickets that came back in time.", _LABELS
    ),
}

DAY_BOUNDARIES = Counter(
    "qms_day_boundaries_total",
    "Calendar boundaries (span starts and ends, midnights) this replica passed for a hall; "
    "each is passed by one replica only.",
    ["hall"],
)

WAIT_BUCKETS = (60, 120, 300, 600, 900, 1200, 1800, 2700, 3600, 5400, 7200, 10800)

WAIT = Histogram(
    "qms_wait_seconds",
    "Time from issue to call.",
    ["hall", "group", "priority"],
    buckets=WAIT_BUCKETS,
)

SERVICE_BUCKETS = (30, 60, 120, 180, 300, 420, 600, 900, 1200, 1800, 2700, 3600)

SERVICE_TIME = Histogram(
    "qms_service_seconds",
    "Time from call to completion at the window.",
    ["hall", "group", "priority"],
    buckets=SERVICE_BUCKETS,
)

# Gauges below are read from Redis by the periodic hall monitor: every
# replica reports the same value, so dashboards take max() over replicas,
# never sum().
WAITING = Gauge("qms_waiting_tickets", "Tickets waiting, by group.", ["hall", "group"])
OLDEST_WAIT = Gauge(
    "qms_oldest_waiting_seconds",
    "Age of the oldest waiting ticket, by group (0 when none waits).",
    ["hall", "group"],
)
OVER_TARGET = Gauge(
    "qms_tickets_over_target",
    "Waiting tickets that have waited longer than their service's target.",
    ["hall", "service"],
)
WAIT_TARGET = Gauge(
    "qms_wait_target_seconds",
    "The service's target wait from the hall config (services with a target only).",
    ["hall", "service"],
)
WINDOWS = Gauge("qms_windows", "Windows by state.", ["hall", "status"])
WINDOW_SERVED = Gauge(
    "qms_window_served",
    "Tickets the window completed today (hall's local day).",
    ["hall", "window"],
)
WINDOW_BUSY = Gauge(
    "qms_window_busy_seconds",
    "Seconds the window spent serving a called ticket today.",
    ["hall", "window"],
)
WINDOW_IDLE = Gauge(
    "qms_window_idle_seconds",
    "Seconds the window was open with nobody at it today.",
    ["hall", "window"],
)
ESTIMATE_MAE = Gauge(
    "qms_wait_estimate_mae_seconds",
    "Mean absolute error of the wait estimate given at issue, over called tickets "
    "(span: 1h, today).",
    ["hall", "span"],
)
ESTIMATE_IN_RANGE = Gauge(
    "qms_wait_estimate_in_range_ratio",
    "Share of called tickets whose actual wait fell inside the 80% range given at issue.",
    ["hall", "span"],
)
ESTIMATE_SAMPLES = Gauge(
    "qms_wait_estimate_samples",
    "Called tickets the two accuracy gauges are computed over.",
    ["hall", "span"],
)
SCREENS_ONLINE = Gauge(
    "qms_screens_online", "Screens with a live presence key, over every replica.", ["hall"]
)
SCREENS_OFFLINE = Gauge(
    "qms_screens_offline",
    "Screens seen in the last 24 hours whose presence has lapsed.",
    ["hall"],
)
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
SERVICE_FULL = Counter(
    "qms_service_full_total",
    "Tickets refused because the service reached its daily_cap for the day (kiosk and phone).",
    ["hall", "service"],
)
REQUESTS_REFUSED = Counter(
    "qms_requests_refused_total",
    "HTTP requests this process refused before any work: overloaded (more than "
    "QMS_MAX_IN_FLIGHT in flight).",
    ["reason"],
)
REQUESTS_IN_FLIGHT = Gauge(
    "qms_requests_in_flight",
    "HTTP requests this process is serving now (health checks and scrapes not counted).",
)
SCREENS = Gauge(
    "qms_screens_connected", "Screens connected to this replica's gateway.", ["hall", "page"]
)
SCREENS_CLOSED = Counter(
    "qms_screens_closed_total",
    "Screen sockets ended, by why: client, too_slow, shutdown, redis_unavailable.",
    ["hall", "reason"],
)
SCREENS_UNRECORDED = Counter(
    "qms_screens_unrecorded_total",
    "Named screens that joined beyond a presence cap (per hall or per credential).",
    ["hall"],
)
EVENT_LAG = Histogram(
    "qms_event_fanout_lag_seconds",
    "From an event's time in Redis to its fan-out to this replica's screens.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
NOT_REPLICATED = Counter(
    "qms_not_replicated_total",
    "State changes answered 503 not_replicated: fewer than QMS_REDIS_MIN_REPLICAS replicas "
    "confirmed them in time.",
    ["hall"],
)
NOTIFY_QUEUED = Counter(
    "qms_notifications_queued_total",
    "Deliveries appended to a hall's outbox by this replica's changes.",
    ["hall", "kind"],
)
NOTIFICATIONS = Counter(
    "qms_notifications_total",
    "Delivery attempts to the hall's gateway by result: sent, retry (failed, tried again), "
    "rejected (the gateway refused it: not retried), expired (given up after the hour), "
    "dropped (its ticket was no longer waiting or called).",
    ["hall", "kind", "result"],
)
NOTIFY_DELAY = Histogram(
    "qms_notification_delay_seconds",
    "From the change that caused a delivery to the gateway's 2xx.",
    ["hall", "kind"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
NOTIFY_PENDING = Gauge(
    "qms_notifications_pending", "Deliveries in the outbox, not yet delivered.", ["hall"]
)
NOTIFY_OLDEST = Gauge(
    "qms_notification_oldest_seconds",
    "Age of the oldest undelivered delivery (0: none); read by each replica's sender.",
    ["hall"],
)
PARKED = Gauge("qms_parked_tickets", "Tickets parked now.", ["hall"])
HALL_OPEN = Gauge(
    "qms_hall_open", "1 while the hall takes tickets (its hours, no manager's close).", ["hall"]
)
REDIS_UP = Gauge("qms_redis_up", "1 when the last periodic read of Redis worked.", ["hall"])
REDIS_REFUSALS = Counter(
    "qms_redis_refusals_total",
    "Redis commands Redis refused because it takes no changes now, by code: redis_full "
    "(out of memory under noeviction), redis_read_only (a replica), redis_disk (MISCONF: it "
    "cannot write its persistence files).",
    ["code"],
)
EMBEDDED_REDIS_UP = Gauge(
    "qms_embedded_redis_up",
    "1 while the embedded redis-server this qms started runs and answers, 0 while it is down "
    "(qms starts it again); absent with QMS_REDIS_URL.",
)
EMBEDDED_REDIS_EXITS = Counter(
    "qms_embedded_redis_exits_total",
    "Times the embedded redis-server ended while qms ran (a failed write to a full disk, a kill).",
)
DATA_DIR_FREE = Gauge(
    "qms_data_dir_free_bytes",
    "Bytes free to qms on the filesystem of its data directory (the embedded Redis's AOF), "
    "read by the periodic task; absent with QMS_REDIS_URL.",
)
REDIS_LATENCY = Histogram(
    "qms_redis_command_seconds",
    "Round trip of one Redis command or script, by name.",
    ["command"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
BUILD_INFO = Gauge(
    "qms_build_info", "Always 1; the labels name the build.", ["version", "python", "redis_py"]
)


def observe(hall: str, outcomes: Sequence[OutcomeEvent]) -> None:
    """Count what one store operation did (replays are never passed here)."""
    for o in outcomes:
        counter = TICKETS.get(o.type)
        if counter is not None:
            counter.labels(hall, o.service, o.priority).inc()
        if o.type is EventType.CALLED and o.wait_ms is not None:
            WAIT.labels(hall, o.group, o.priority).observe(o.wait_ms / 1000)
        if o.type is EventType.COMPLETED and o.service_ms is not None:
            SERVICE_TIME.labels(hall, o.group, o.priority).observe(o.service_ms / 1000)


def record_build(version: str, python: str, redis_py: str) -> None:
    BUILD_INFO.labels(version, python, redis_py).set(1)


def record_redis_down(hall: str) -> None:
    REDIS_UP.labels(hall).set(0)
