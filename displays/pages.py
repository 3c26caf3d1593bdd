"""The pages' routes, and the screen pages themselves: the LED hall screen
and the per-window LED strip.

Both screens are server-rendered shells holding only names the hall shows
on its wall anyway (hall, windows, groups, services), so they need no
token; the page's script asks for the display token and reads everything
live from the WebSocket.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from displays import console_page, dashboard_page, kiosk_page, visitor_page
from displays.page_kit import (
    STATIC_PATH,
    hall_and_window_of,
    hall_of,
    heartbeat_s,
    not_found,
    page_config,
    render,
)

__all__ = ["page_routes"]


async def display_page(request: Request) -> Response:
    hall = hall_of(request)
    if hall is None:
        return not_found("没有这个大厅 / no such hall")
    config = hall.config
    return render(
        "display.html",
        hall=config,
        config=page_config(config, "display", heartbeat_s(request)),
    )


async def strip_page(request: Request) -> Response:
    found = hall_and_window_of(request)
    if isinstance(found, Response):
        return found
    hall, window = found
    return render(
        "strip.html",
        hall=hall.config,
        window=window,
        config=page_config(hall.config, "strip", heartbeat_s(request), window.id),
    )


def page_routes() -> list[BaseRoute]:
    return [
        Route("/halls/{hall}/display", display_page),
        Route("/halls/{hall}/windows/{window}/strip", strip_page),
        *kiosk_page.routes(),
        *console_page.routes(),
        *visitor_page.routes(),
        *dashboard_page.routes(),
        Mount(STATIC_PATH, StaticFiles(packages=[("displays", "static")])),
    ]
