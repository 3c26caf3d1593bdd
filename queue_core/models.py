"""Enums and value objects that cross the wire.

Statuses are `StrEnum`s so they serialise as their plain value in JSON,
msgpack and Redis alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from queue_core.reasons import CallReason


class TicketStatus(StrEnum):
    WAITING = "waiting"
    CALLED = "called"
    COMPLETED = "completed"
    NO_SHOW = "no_show"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    PARKED = "parked"


class WindowStatus(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    PAUSED = "paused"


class Role(StrEnum):
    KIOSK = "kiosk"
    CLERK = "clerk"
    MANAGER = "manager"
    ADMIN = "admin"
    DISPLAY = "display"


class EventType(StrEnum):
    ISSUED = "issued"
    CALLED = "called"
    RECALLED = "recalled"
    COMPLETED = "completed"
    NO_SHOW = "no_show"
    TRANSFERRED = "transferred"
    CANCELLED = "cancelled"
    WINDOW = "window"
    EXPIRED = "expired"
    PARKED = "parked"
    REJOINED = "rejoined"
    HALL = "hall"
    SNOOZED = "snoozed"


NORMAL = "normal"
"""The priority class every hall has, with no credit."""

APPOINTMENT = "appointment"
"""The class a punctual appointment check-in gets; kiosks cannot ask for it."""

ELDERLY = "elderly"
"""The class an identity number of the hall's elderly age gives, where the hall has it."""


@dataclass(frozen=True, slots=True)
class Ticket:
    """One visit, as the store holds it (times in epoch milliseconds)."""

    id: str
    number: str
    service: str
    group: str
    priority: str
    status: TicketStatus
    issued_ms: int
    effective_ms: float
    called_ms: int | None
    window: str | None
    finished_ms: int | None
    appointment: str | None
    rating: str | None = None
    rating_reason: str | None = None
    rated_ms: int | None = None
    remote: bool = False
    """Taken on a phone rather than at a kiosk."""
    clerk: str | None = None
    """Who last acted on it at a window: the credential's audit label (its
    name, or role and keyed short id), for reports per clerk."""
    recalls: int = 0
    """Announcements after the first call (at most the hall's recall limit)."""
    parked_ms: int | None = None
    parked_window: str | None = None
    """Where it was parked, while it is."""
    rejoined_ms: int | None = None
    """When a no-show came back (once)."""
    why: CallReason | None = None
    """Why it was last called (`queue_core.reasons`)."""
    notify: bool = False
    """Its visitor asked to be told through the hall's gateway (where to is
    kept apart, and only while the ticket is active)."""
    snoozed_until_ms: int | None = None
    """Set once the visitor put off their turn: until when."""


@dataclass(frozen=True, slots=True)
class Notify:
    """Where a visitor asked to be told: a mainland mobile number (`via`
    "phone") or a channel id the hall's gateway knows ("channel")."""

    to: str
    via: str


@dataclass(frozen=True, slots=True)
class TicketView:
    """A ticket with its live place in line (`position` is None once called)."""

    ticket: Ticket
    position: int | None
    open_windows: frozenset[str]


@dataclass(frozen=True, slots=True)
class WindowState:
    id: str
    status: WindowStatus
    ticket: Ticket | None


class Rating(StrEnum):
    """A visitor's 好差评, best first (the national 5-level scale)."""

    VERY_SATISFIED = "very_satisfied"
    SATISFIED = "satisfied"
    NEUTRAL = "neutral"
    DISSATISFIED = "dissatisfied"
    VERY_DISSATISFIED = "very_dissatisfied"


@dataclass(frozen=True, slots=True)
class WindowView:
    """One window as its clerk sees it: state, current ticket, and the first
    tickets waiting in its groups in dispatch order (of `waiting_total`)."""

    state: WindowState
    waiting: tuple[Ticket, ...]
    waiting_total: int


@dataclass(frozen=True, slots=True)
class Appointment:
    code: str
    service: str
    start_ms: int
    ticket: str | None


@dataclass(frozen=True, slots=True)
class RecentCall:
    number: str
    window: str
    at_ms: int


def open_window_ids(windows: tuple[WindowState, ...]) -> frozenset[str]:
    return frozenset(w.id for w in windows if w.status is WindowStatus.OPEN)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The hall at one event number: what a screen needs to draw itself."""

    seq: int
    windows: tuple[WindowState, ...]
    waiting_by_group: dict[str, int]
    waiting_by_service: dict[str, int]
    recent_calls: tuple[RecentCall, ...]
    closed_until_ms: int | None = None
    """A manager's close in force until then (the calendar says the rest)."""
    parked: int = 0
    issued_by_service: dict[str, int] = field(default_factory=dict)
    """Tickets of each service issued on the hall's local day (daily caps)."""

    @property
    def open_windows(self) -> frozenset[str]:
        return open_window_ids(self.windows)


@dataclass(frozen=True, slots=True)
class QueuedTicket:
    """A waiting ticket near the head of its group's queue."""

    id: str
    number: str
    service: str
    group: str
    issued_ms: int
    effective_ms: float
    member: str
    """Its queue member: Redis breaks ties in effective time by it."""
    priority: str = NORMAL


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One first call of a ticket: its wait and, when one was noted at issue,
    the estimate it was given (central, and the 80% range), all in ms."""

    at_ms: int
    wait_ms: int
    group: str
    service: str
    estimate_ms: int | None = None
    low_ms: int | None = None
    high_ms: int | None = None


@dataclass(frozen=True, slots=True)
class HallState:
    """What the hall monitor reads in one atomic step: the windows, the head
    of each queue in dispatch order, today's counters (`stats`, fields as
    `_lib.lua` names them), each service's last visit durations and the
    calls since a given time, newest first."""

    seq: int
    windows: tuple[WindowState, ...]
    window_since_ms: dict[str, int]
    """When each window entered its current state."""
    waiting_by_group: dict[str, int]
    waiting_by_service: dict[str, int]
    queues: dict[str, tuple[QueuedTicket, ...]]
    stats: dict[str, int]
    service_times: dict[str, tuple[int, ...]]
    calls: tuple[CallRecord, ...]
    parked: int = 0
    closed_until_ms: int | None = None
    turns: dict[str, int] = field(default_factory=dict)
    """Under the rule "ratio": each group's turn (`dispatcher/dispatch.py`)."""

    @property
    def open_windows(self) -> frozenset[str]:
        return open_window_ids(self.windows)


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of the hall's event log, as the store parsed it.

    `number`, `window` and `service` are None where the event has none (a
    window event names no ticket; an issue names no window); `status` is
    the window's new state on a `window` event only.
    """

    seq: int
    type: EventType
    at_ms: int
    number: str | None
    window: str | None
    service: str | None
    waiting: dict[str, int]
    status: WindowStatus | None = None
    reason: CallReason | None = None
    """On a `called` event: why the ticket was called."""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes a change: `label` lands on the ticket (reports per clerk) and,
    with a `role` (clerk, manager, admin), in the audit entry with `client`."""

    label: str = ""
    role: str = ""
    client: str = ""


NOBODY = Actor()


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: str
    """The cursor: `<ms>-<n>`, rising."""
    at_ms: int
    actor: str
    role: str
    action: str
    window: str | None
    number: str | None
    client: str
    reason: str | None = None
    """On a call (call-next, call, resume): why the ticket was called."""
    ahead_of: int | None = None


@dataclass(frozen=True, slots=True)
class DayState:
    """The hall's day as Redis holds it (`keys.HallKeys.day`)."""

    done_ms: int
    """The latest calendar boundary passed."""
    expired_through_ms: int
    closed_until_ms: int | None
    """A manager's close in force until then."""
    status: str | None
    """open | closed, as last announced."""


class ScreenPage(StrEnum):
    DISPLAY = "display"
    STRIP = "strip"
    CONSOLE = "console"
    KIOSK = "kiosk"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class ScreenPresence:
    """A connected screen as presence records it: which page of which hall,
    on which replica, since when, with which credential."""

    screen: str
    page: ScreenPage
    window: str | None
    replica: str
    connected_ms: int
    last_seen_ms: int
    owner: str = ""
    """The label of the credential it connected with (caps count per owner)."""


@dataclass(frozen=True, slots=True)
class OutcomeEvent:
    """What a script did, for metrics: one per event it appended."""

    type: EventType
    service: str
    priority: str
    group: str
    wait_ms: int | None
    service_ms: int | None = None
    """Call to completion, on a `completed` outcome."""
