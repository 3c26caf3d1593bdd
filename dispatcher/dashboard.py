"""The manager's dashboard as the API sends it: the monitor's `HallFigures`
with the hall's names (`GET /dashboard`)."""

from __future__ import annotations

from typing import Any

from dispatcher.figures import Accuracy, HallFigures
from queue_core.config import HallConfig
from queue_core.models import Rating
from queue_core.wire import hall_body, iso, iso_ms, window_body


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
