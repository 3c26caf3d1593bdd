"""The contract's JSON shapes, built from store values (pure functions).

Times are ISO 8601 in the hall's own time zone with its offset.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from queue_core.calendar import MINUTE_MS, HallHours, closed_message
from queue_core.config import HallConfig
from queue_core.estimator import EtaTable, WaitEstimate
from queue_core.figures import Accuracy, HallFigures
from queue_core.models import (
    Appointment,
    AuditEntry,
    Event,
    EventType,
    Rating,
    Snapshot,
    Ticket,
    TicketStatus,
    TicketView,
    WindowState,
    WindowView,
)


def iso(ms: int | None, tz: ZoneInfo) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz).isoformat(timespec="seconds")


def iso_ms(ms: int, tz: ZoneInfo) -> str:
    """An event's time, to the millisecond: screens measure their lag with it."""
    return datetime.fromtimestamp(ms / 1000, tz).isoformat(timespec="milliseconds")


def ticket_estimate(
    view: TicketView, config: HallConfig, table: EtaTable | None
) -> WaitEstimate | None:
    """The learned estimate for a waiting ticket at its live place in line;
    None once called, or while no open window serves its group. Only a
    waiting ticket needs a `table`."""
    t = view.ticket
    if t.status is not TicketStatus.WAITING or view.position is None or table is None:
        return None
    if not any(t.group in w.groups for w in config.windows if w.id in view.open_windows):
        return None
    return table.at(t.group, view.position)


def _range(est: WaitEstimate | None) -> list[int] | None:
    return None if est is None else [round(est.p10), round(est.p90)]


def ticket_body(view: TicketView, config: HallConfig, table: EtaTable | None) -> dict[str, Any]:
    """The contract's ticket, with `eta_range_seconds`: the 80% range."""
    t = view.ticket
    waiting = t.status is TicketStatus.WAITING and view.position is not None
    position = view.position if waiting else None
    est = ticket_estimate(view, config, table)
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
        "eta_seconds": None if est is None else round(est.central),
        "eta_range_seconds": _range(est),
        "recalls": t.recalls,
        "rejoin_until": iso(rejoin_until_ms(t, config), config.timezone),
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


def _service_queues(snap: Snapshot, config: HallConfig, table: EtaTable) -> list[dict[str, Any]]:
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
    snap: Snapshot, config: HallConfig, table: EtaTable, hall: dict[str, Any]
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
            for e in entries
        ],
        "next": entries[-1].id if entries else since,
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
        "recall_limit": config.calling.recall_limit,
    }


def services_body(
    snap: Snapshot, config: HallConfig, table: EtaTable, hall: dict[str, Any]
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
            {"id": s.id, "name": s.name, "group": s.group, "prefix": s.prefix} | queue
            for s, queue in zip(config.services, _service_queues(snap, config, table), strict=True)
        ],
        "priorities": sorted(config.kiosk_classes()),
        "remote": {
            "enabled": config.remote.enabled,
            "require_phone": config.remote.require_phone,
        },
    }


def _secs(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _accuracy_body(acc: Accuracy) -> dict[str, Any]:
    return {
        "samples": acc.samples,
        "mae_seconds": _secs(acc.mae_s),
        "in_range": None if acc.in_range is None else round(acc.in_range, 3),
    }


def dashboard_body(f: HallFigures, config: HallConfig) -> dict[str, Any]:
    """The manager's dashboard: `HallFigures` with the hall's names."""
    tz = config.timezone
    rated = sum(f.ratings.values())
    satisfied = f.ratings.get("very_satisfied", 0) + f.ratings.get("satisfied", 0)
    hours = None if f.hall is None else hall_body(f.hall, config, f.at_ms)
    return {
        "at": iso_ms(f.at_ms, tz),
        "seq": f.seq,
        "hall": {"id": config.id, "name": config.name, "hours": hours},
        "parked": f.parked,
        "expired_today": f.expired_today,
        "groups": [
            {
                "id": g.id,
                "name": config.group_by_id[g.id].name,
                "waiting": g.waiting,
                "oldest_wait_seconds": None if g.oldest_wait_s is None else round(g.oldest_wait_s),
                "open_windows": g.open_windows,
            }
            for g in f.groups
        ],
        "services": [
            {
                "id": s.id,
                "name": config.service_by_id[s.id].name,
                "group": s.group,
                "waiting": s.waiting,
                "eta_seconds": None if s.eta is None else round(s.eta.central),
                "eta_low_seconds": None if s.eta is None else round(s.eta.p10),
                "eta_high_seconds": None if s.eta is None else round(s.eta.p90),
                "target_minutes": config.service_by_id[s.id].target_minutes,
                "over_target": s.over_target,
            }
            for s in f.services
        ],
        "waits": {
            "last_hour": {
                "called": f.last_hour.called,
                "mean_seconds": _secs(f.last_hour.mean_s),
                "p90_seconds": _secs(f.last_hour.p90_s),
            }
        },
        "hours": [
            {
                "hour": h.hour,
                "issued": h.issued,
                "called": h.called,
                "served": h.served,
                "mean_wait_seconds": _secs(h.mean_wait_s),
            }
            for h in f.hours
        ],
        "windows": [
            window_body(w.state, config)
            | {
                "served": w.served,
                "busy_seconds": round(w.busy_s),
                "idle_seconds": round(w.idle_s),
                "utilisation": None if w.utilisation is None else round(w.utilisation, 3),
            }
            for w in f.windows
        ],
        "breaches": [
            {
                "number": b.ticket.number,
                "service": b.ticket.service,
                "group": b.ticket.group,
                "waited_seconds": round(b.waited_s),
                "target_seconds": round(b.target_s),
            }
            for b in f.breaches
        ],
        "breach_count": f.breach_count,
        "screens": {
            "online": [
                {
                    "id": p.screen,
                    "page": p.page.value,
                    "window": p.window,
                    "since": iso(p.connected_ms, tz),
                }
                for p in f.screens_online
            ],
            "offline": [
                {"id": s.screen, "page": None, "window": None, "last_seen": iso(s.last_seen_ms, tz)}
                for s in f.screens_offline
            ],
        },
        "estimates": {
            "last_hour": _accuracy_body(f.accuracy_last_hour),
            "today": _accuracy_body(f.accuracy_today),
        },
        "ratings": {
            "rated": rated,
            "satisfied_share": round(satisfied / rated, 3) if rated else None,
            "scores": {r.value: f.ratings.get(r.value, 0) for r in Rating},
        },
    }
