"""The manager's live dashboard (运营看板): waiting, waits, windows, service
level breaches, screens and estimate accuracy of one hall, on a desktop or a
wall monitor.

The shell holds only what the hall shows anyway (its names, which groups a
window serves, the services' target waits); the manager's token is asked
for by the page's script and checked with `GET /credential`. Figures come
from `GET /dashboard`; the hall's WebSocket moves window states, current
tickets and waiting counts at once, between reads.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from displays.page_kit import hall_of, heartbeat_s, not_found, page_config, render
from queue_core.config import HallConfig

__all__ = ["dashboard_config", "routes"]

_NO_HALL = "没有这个大厅 / no such hall"


def dashboard_config(config: HallConfig, heartbeat_s: float) -> dict[str, Any]:
    """What the dashboard's script needs, embedded in the page as JSON."""
    # `other`: the gateway's presence knows no dashboard page, and this is
    # not a screen of the hall's own.
    base = page_config(config, "other", heartbeat_s)
    api = f"/api/v1/halls/{config.id}"
    return base | {
        # Which groups a window serves: open windows per group follow a
        # window event at once, before the next read.
        "windows": [{"id": w.id, "name": w.name, "groups": list(w.groups)} for w in config.windows],
        "services": [
            {"id": s.id, "name": s.name, "group": s.group, "target_minutes": s.target_minutes}
            for s in config.services
        ],
        "api_path": api,
        "dashboard_path": f"{api}/dashboard",
        "credential_path": f"{api}/credential",
        "report_path": f"{api}/reports/",
        # HallLink re-checks its token with a GET here after failed opens:
        # the dashboard read refuses exactly the roles this page refuses.
        "snapshot_path": f"{api}/dashboard",
    }


async def dashboard_page(request: Request) -> Response:
    hall = hall_of(request)
    if hall is None:
        return not_found(_NO_HALL)
    config = hall.config
    return render(
        "dashboard.html",
        hall=config,
        config=dashboard_config(config, heartbeat_s(request)),
    )


def routes() -> list[BaseRoute]:
    return [Route("/halls/{hall}/dashboard", dashboard_page)]
