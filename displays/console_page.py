"""The clerk console: the page on the desktop at a window (窗口).

The shell holds only what the hall shows anyway (its names, the window's
groups, the services a ticket can be transferred to, the priority classes);
the clerk's token is asked for by the page's script and checked against
`GET /windows/{w}`, which is also where the page reads its window from.
"""

from __future__ import annotations

import math
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from displays.page_kit import hall_and_window_of, heartbeat_s, page_config, render
from queue_core.config import HallConfig, Window


def console_config(config: HallConfig, window: Window, heartbeat_s: float) -> dict[str, Any]:
    """What the console's script needs, embedded in the page as JSON."""
    base = page_config(config, "console", heartbeat_s, window.id)
    window_path = f"/api/v1/halls/{config.id}/windows/{window.id}"
    return base | {
        "api_path": f"/api/v1/halls/{config.id}",
        "window_path": window_path,
        # The hall's parked tickets: any window serving a ticket's group may resume it.
        "parked_path": f"/api/v1/halls/{config.id}/parked",
        # HallLink checks its token with a GET on this path: /snapshot refuses
        # clerks, their own window's view does not (limit=1: a cheap read).
        "snapshot_path": f"{window_path}?limit=1",
        "window_groups": list(window.groups),
        # Classes with a time credit are marked on the waiting list; `normal`
        # and any class the hall gives no credit are plain.
        "priorities": [
            {"id": name, "credit": "inf" if math.isinf(credit) else credit}
            for name, credit in sorted(config.priority.items())
        ],
    }


async def console_page(request: Request) -> Response:
    found = hall_and_window_of(request)
    if isinstance(found, Response):
        return found
    hall, window = found
    return render(
        "console.html",
        hall=hall.config,
        window=window,
        config=console_config(hall.config, window, heartbeat_s(request)),
    )


def routes() -> list[BaseRoute]:
    return [Route("/halls/{hall}/windows/{window}", console_page)]
