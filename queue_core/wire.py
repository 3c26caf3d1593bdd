"""The contract's JSON shapes, built from store values (pure functions).

Times are ISO 8601 in the hall's own time zone with its offset.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from queue_core.config import HallConfig
from queue_core.estimate import eta_seconds
from queue_core.models import (
    Appointment,
    Event,
    EventType,
    Snapshot,
    Ticket,
    TicketStatus,
    TicketView,
    WindowState,
    WindowStatus,
    WindowView,
)


def iso(ms: int | None, tz: ZoneInfo) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz).isoformat(timespec="seconds")


def iso_ms(ms: int, tz: ZoneInfo) -> str:
    """An event's time, to the millisecond: screens measure their lag with it."""
    return datetime.fromtimestamp(ms / 1000, tz).isoformat(timespec="milliseconds")


def ticket_body(view: TicketView, config: HallConfig) -> dict[str, Any]:
    t = view.ticket
    waiting = t.status is TicketStatus.WAITING and view.position is not None
    position = view.position if waiting else None
    eta = (
        eta_seconds(config, t.group, view.position, view.open_windows)
        if waiting and view.position is not None
        else None
    )
    called = t.status is TicketStatus.CALLED or t.called_ms is not None
    return {
        "id": t.id,
        "number": t.number,
        "service": t.service,
        "group": t.group,
        "priority": t.priority,
        "status": t.status.value,
        "issued_at": iso(t.issued_ms, config.timezone),
        "called_at": iso(t.called_ms, config.timezone) if called else None,
        "window": t.window if called else None,
        "position": position,
        "eta_seconds": eta,
    }


def window_body(state: WindowState, config: HallConfig) -> dict[str, Any]:
    t = state.ticket
    return {
        "id": state.id,
        "name": config.window_by_id[state.id].name,
        "status": state.status.value,
        "ticket": None
        if t is None
        else {
            "number": t.number,
            "service": t.service,
            "called_at": iso(t.called_ms, config.timezone),
        },
    }


def appointment_body(a: Appointment, config: HallConfig) -> dict[str, Any]:
    return {"code": a.code, "service": a.service, "start": iso(a.start_ms, config.timezone)}


def _service_queues(snap: Snapshot, config: HallConfig) -> list[dict[str, Any]]:
    """Each service's waiting count and the estimate for a ticket taken now."""
    open_ids = {w.id for w in snap.windows if w.status is WindowStatus.OPEN}
    return [
        {
            "id": s.id,
            "waiting": snap.waiting_by_service.get(s.id, 0),
            "eta_seconds": eta_seconds(
                config, s.group, snap.waiting_by_group.get(s.group, 0), open_ids
            ),
        }
        for s in config.services
    ]


def snapshot_body(snap: Snapshot, config: HallConfig) -> dict[str, Any]:
    return {
        "seq": snap.seq,
        "windows": [window_body(w, config) for w in snap.windows],
        "groups": [{"id": g, "waiting": n} for g, n in snap.waiting_by_group.items()],
        "services": _service_queues(snap, config),
        "recent_calls": [
            {"number": c.number, "window": c.window, "at": iso(c.at_ms, config.timezone)}
            for c in snap.recent_calls
        ],
    }


def event_body(event: Event, config: HallConfig) -> dict[str, Any]:
    """The contract's event frame (without the frame's own `type` wrapper:
    the event's type is the frame's)."""
    body: dict[str, Any] = {
        "type": event.type.value,
        "seq": event.seq,
        "at": iso_ms(event.at_ms, config.timezone),
        "number": event.number,
        "window": event.window,
        "service": event.service,
        "waiting": {g.id: event.waiting.get(g.id, 0) for g in config.groups},
    }
    if event.type is EventType.WINDOW:
        body["number"] = body["service"] = None
        body["status"] = event.status.value if event.status else None
    return body


def rating_body(t: Ticket, config: HallConfig) -> dict[str, Any]:
    return {
        "score": t.rating,
        "reason": t.rating_reason,
        "rated_at": iso(t.rated_ms, config.timezone),
    }


def staff_ticket_body(t: Ticket, config: HallConfig) -> dict[str, Any]:
    """A ticket as hall staff see it: no id (the visitor's credential)."""
    return {
        "number": t.number,
        "service": t.service,
        "group": t.group,
        "priority": t.priority,
        "status": t.status.value,
        "issued_at": iso(t.issued_ms, config.timezone),
        "called_at": iso(t.called_ms, config.timezone),
    }


def window_view_body(view: WindowView, config: HallConfig) -> dict[str, Any]:
    """The clerk console's read: the window, its current ticket, and who waits
    in its groups in the order call-next takes them (`position` 0 = next)."""
    state = view.state
    return {
        "window": window_body(state, config),
        "current": None if state.ticket is None else staff_ticket_body(state.ticket, config),
        "waiting": [
            staff_ticket_body(t, config) | {"position": i} for i, t in enumerate(view.waiting)
        ],
        "waiting_total": view.waiting_total,
    }


def services_body(snap: Snapshot, config: HallConfig) -> dict[str, Any]:
    """What a kiosk or a phone shows before issuing: the hall's services by
    group, with how many wait and about how long (no window or ticket detail)."""
    return {
        "hall": {"id": config.id, "name": config.name},
        "groups": [
            {"id": g.id, "name": g.name, "waiting": snap.waiting_by_group.get(g.id, 0)}
            for g in config.groups
        ],
        "services": [
            {"id": s.id, "name": s.name, "group": s.group, "prefix": s.prefix} | queue
            for s, queue in zip(config.services, _service_queues(snap, config), strict=True)
        ],
        "priorities": sorted(config.kiosk_classes()),
        "remote": {
            "enabled": config.remote.enabled,
            "require_phone": config.remote.require_phone,
        },
    }
