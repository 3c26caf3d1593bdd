"""The contract's JSON shapes, built from store values (pure functions).

Times are ISO 8601 in the hall's own time zone with its offset.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from queue_core.calendar import MINUTE_MS, HallHours, closed_message
from queue_core.config import HallConfig, Service
from queue_core.estimates import Estimates, WaitRange
from queue_core.models import (
    Appointment,
    AuditEntry,
    Event,
    EventType,
    Snapshot,
    Ticket,
    TicketStatus,
    TicketView,
    WindowState,
    WindowView,
)
from queue_core.reasons import CallReason, reason_text


def iso(ms: int | None, tz: ZoneInfo) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz).isoformat(timespec="seconds")


def iso_ms(ms: int, tz: ZoneInfo) -> str:
    """An event's time, to the millisecond: screens measure their lag with it."""
    return datetime.fromtimestamp(ms / 1000, tz).isoformat(timespec="milliseconds")


def ticket_estimate(
    view: TicketView, config: HallConfig, table: Estimates | None
) -> WaitRange | None:
    """The learned estimate for a waiting ticket at its live place in line;
    None once called, or while no open window serves its group. Only a
    waiting ticket needs a `table`."""
    t = view.ticket
    if t.status is not TicketStatus.WAITING or view.position is None or table is None:
        return None
    if not any(t.group in w.groups for w in config.windows if w.id in view.open_windows):
        return None
    return table.at(t.group, view.position)


def _range(est: WaitRange | None) -> list[int] | None:
    return None if est is None else [round(est.p10), round(est.p90)]


def ticket_body(view: TicketView, config: HallConfig, table: Estimates | None) -> dict[str, Any]:
    """The contract's ticket, with `eta_range_seconds`: the 80% range. Only
    for the visitor and for whoever issues the ticket to them (a kiosk): its
    `id` is the visitor's only credential."""
    return {"id": view.ticket.id} | staff_ticket_body(view, config, table)


def staff_ticket_body(
    view: TicketView, config: HallConfig, table: Estimates | None
) -> dict[str, Any]:
    """The ticket as hall staff get it in an answer: the contract's ticket
    without `id`. Whoever holds the id can cancel the ticket and rate its
    service, so clerks, managers, admins and screens never see it."""
    t = view.ticket
    waiting = t.status is TicketStatus.WAITING and view.position is not None
    position = view.position if waiting else None
    est = ticket_estimate(view, config, table)
    called = t.status is TicketStatus.CALLED or t.called_ms is not None
    return {
        "number": t.number,
        "service": t.service,
        "group": t.group,
        "priority": t.priority,
        "status": t.status.value,
        "issued_at": iso(t.issued_ms, config.timezone),
        "called_at": iso(t.called_ms, config.timezone) if called else None,
        "window": t.window if called else None,
        "position": position,
        "eta_seconds": None if est is None else round(est.central),
        "eta_range_seconds": _range(est),
        "recalls": t.recalls,
        "rejoin_until": iso(rejoin_until_ms(t, config), config.timezone),
        "notify": t.notify,
        "snoozed_until": iso(t.snoozed_until_ms, config.timezone),
    }


def rejoin_until_ms(t: Ticket, config: HallConfig) -> int | None:
    """Until when a no-show ticket may rejoin the queue (None: it may not).
    The day's end closes it earlier: rejoin then answers `hall_closed`."""
    late = config.calling.late_return_minutes
    if t.status is not TicketStatus.NO_SHOW or t.rejoined_ms is not None or late <= 0:
        return None
    if t.finished_ms is None:
        return None
    return t.finished_ms + round(late * MINUTE_MS)


def hall_body(hours: HallHours, config: HallConfig, now_ms: int) -> dict[str, Any]:
    """Whether the hall takes tickets now and when it next does, with the
    sentence a closed kiosk shows in each language of the pages."""
    tz = config.timezone
    body: dict[str, Any] = {
        "open": hours.open,
        "opens_at": iso(hours.opens_at_ms, tz),
        "closes_at": iso(hours.closes_at_ms, tz),
        "in_span": hours.in_span,
        "closed_by_manager": hours.closed_by_manager,
        "message": None,
    }
    if not hours.open:
        body["message"] = {
            lang: closed_message(now_ms, hours.opens_at_ms, tz, lang) for lang in ("zh", "en")
        }
    return body


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


def _service_queues(snap: Snapshot, config: HallConfig, table: Estimates) -> list[dict[str, Any]]:
    """Each service's waiting count and the estimate for a ticket taken now."""
    open_ids = snap.open_windows
    served = {g for w in config.windows if w.id in open_ids for g in w.groups}
    queues = []
    for s in config.services:
        est = (
            table.at(s.group, snap.waiting_by_group.get(s.group, 0)) if s.group in served else None
        )
        queues.append(
            {
                "id": s.id,
                "waiting": snap.waiting_by_service.get(s.id, 0),
                "eta_seconds": None if est is None else round(est.central),
            }
        )
    return queues


def snapshot_body(
    snap: Snapshot, config: HallConfig, table: Estimates, hall: dict[str, Any]
) -> dict[str, Any]:
    """`hall` is a `hall_body`: whether the hall is open, for the screens."""
    return {
        "seq": snap.seq,
        "hall": hall,
        "parked": snap.parked,
        "windows": [window_body(w, config) for w in snap.windows],
        "groups": [{"id": g, "waiting": n} for g, n in snap.waiting_by_group.items()],
        "services": _service_queues(snap, config, table),
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
    if event.type is EventType.HALL:
        body["number"] = body["service"] = body["window"] = None
        body["status"] = event.status.value if event.status else None
    if event.reason is not None:
        body["reason"] = reason_body(event.reason, event.service, config)
    return body


def reason_body(reason: CallReason, service: str | None, config: HallConfig) -> dict[str, Any]:
    """Why a ticket of `service` was called: `{code, text, ahead_of}`, the
    text in the hall's language."""
    svc = config.service_by_id.get(service or "")
    group = config.group_by_id.get(svc.group) if svc else None
    text = reason_text(reason, config.language, group.name if group else "")
    return {"code": reason.code, "text": text, "ahead_of": reason.ahead_of}


def rating_body(t: Ticket, config: HallConfig) -> dict[str, Any]:
    return {
        "score": t.rating,
        "reason": t.rating_reason,
        "rated_at": iso(t.rated_ms, config.timezone),
    }


def _queued_body(t: Ticket, config: HallConfig) -> dict[str, Any]:
    """A ticket in the console's list: no id (the visitor's credential)."""
    return {
        "number": t.number,
        "service": t.service,
        "group": t.group,
        "priority": t.priority,
        "status": t.status.value,
        "issued_at": iso(t.issued_ms, config.timezone),
        "called_at": iso(t.called_ms, config.timezone),
        "recalls": t.recalls,
    }


def parked_body(tickets: list[Ticket], config: HallConfig) -> list[dict[str, Any]]:
    """The contract's `GET /parked`: who stepped aside, and where."""
    return [
        {
            "number": t.number,
            "service": t.service,
            "group": t.group,
            "window": t.parked_window,
            "parked_at": iso(t.parked_ms, config.timezone),
        }
        for t in tickets
    ]


def audit_body(entries: list[AuditEntry], since: str | None, config: HallConfig) -> dict[str, Any]:
    return {
        "entries": [
            {
                "id": e.id,
                "at": iso_ms(e.at_ms, config.timezone),
                "actor": e.actor,
                "role": e.role,
                "action": e.action,
                "window": e.window,
                "number": e.number,
                "client": e.client,
            }
            | ({"reason": e.reason, "ahead_of": e.ahead_of} if e.reason else {})
            for e in entries
        ],
        "next": entries[-1].id if entries else since,
    }


def _current_body(t: Ticket, config: HallConfig) -> dict[str, Any]:
    """The ticket at a window, with why it was called (the console shows it)."""
    body = _queued_body(t, config)
    if t.why is not None:
        body["reason"] = reason_body(t.why, t.service, config)
    return body


def window_view_body(view: WindowView, config: HallConfig) -> dict[str, Any]:
    """The clerk console's read: the window, its current ticket, and who waits
    in its groups in the order call-next takes them (`position` 0 = next)."""
    state = view.state
    return {
        "window": window_body(state, config),
        "current": None if state.ticket is None else _current_body(state.ticket, config),
        "waiting": [_queued_body(t, config) | {"position": i} for i, t in enumerate(view.waiting)],
        "waiting_total": view.waiting_total,
        "recall_limit": config.calling.recall_limit,
    }


def _service_left(snap: Snapshot, service: Service) -> dict[str, int | None]:
    """`daily_cap` and the tickets `left` of it today (None: no cap), for a
    kiosk to show a service as taken before anyone presses it."""
    cap = service.daily_cap
    if cap is None:
        return {"daily_cap": None, "left": None}
    return {"daily_cap": cap, "left": max(0, cap - snap.issued_by_service.get(service.id, 0))}


def services_body(
    snap: Snapshot, config: HallConfig, table: Estimates, hall: dict[str, Any]
) -> dict[str, Any]:
    """What a kiosk or a phone shows before issuing: the hall's services by
    group, with how many wait and about how long (no window or ticket
    detail), and whether it takes tickets now (`open`, `opens_at`; `hours`
    is the whole `hall_body`)."""
    return {
        "hall": {"id": config.id, "name": config.name},
        "open": hall["open"],
        "opens_at": hall["opens_at"],
        "hours": hall,
        "groups": [
            {"id": g.id, "name": g.name, "waiting": snap.waiting_by_group.get(g.id, 0)}
            for g in config.groups
        ],
        "services": [
            {"id": s.id, "name": s.name, "group": s.group, "prefix": s.prefix}
            | queue
            | _service_left(snap, s)
            for s, queue in zip(config.services, _service_queues(snap, config, table), strict=True)
        ],
        "priorities": sorted(config.kiosk_classes()),
        "remote": {
            "enabled": config.remote.enabled,
            "require_phone": config.remote.require_phone,
        },
        # Whether tickets may ask to be told through the hall's gateway, and
        # from what estimated wait the kiosk offers it; how long a visitor
        # may put off their turn (0: not at all).
        "notify": {
            "enabled": config.notify.enabled,
            "kiosk_ask_minutes": config.notify.kiosk_ask_minutes,
        },
        "snooze_max_minutes": config.calling.max_snooze_minutes,
    }
