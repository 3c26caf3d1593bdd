"""The ticket kiosk (取号机) page and the QR code printed on its tickets.

The page is a server-rendered shell holding only what the hall shows anyway
(its groups and services); the kiosk's script takes the kiosk token, polls
the public GET /services for waiting counts, estimates and whether the hall
issues now, and issues tickets, check-ins and rejoins (a missed ticket's
QR code scanned) with the token.

The QR code encodes the visitor page's absolute URL. It is drawn here rather
than in the browser so the page needs no QR library and the printed receipt
and the screen show the same picture; the ticket id in the URL is the
visitor's credential, so nothing is looked up to draw it.
"""

from __future__ import annotations

import functools
import io
import os
from typing import Any

import segno
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from displays.page_kit import hall_of, not_found, render
from queue_core.config import HallConfig
from queue_core.errors import QmsError
from queue_core.validation import TICKET_ID

__all__ = ["kiosk_config", "routes", "visitor_url"]

PUBLIC_URL_ENV = "QMS_PUBLIC_URL"
"""The address visitors' phones reach qms at, when the kiosk reaches it by
another (a LAN address behind a public reverse proxy)."""

_NO_HALL = "没有这个大厅 / no such hall"

# An image of a URL that is a credential: never cached by a proxy, never
# sniffed as anything but SVG, never running anything if opened directly.
_QR_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
    ),
}


def visitor_url(request: Request, hall: str, ticket_id: str) -> str:
    """The visitor page of a ticket as an absolute URL: under QMS_PUBLIC_URL
    when set, else under the address this request came in by."""
    base = os.environ.get(PUBLIC_URL_ENV, "").strip() or str(request.base_url)
    return f"{base.rstrip('/')}/halls/{hall}/tickets/{ticket_id}"


@functools.lru_cache(maxsize=1024)
def qr_svg(url: str) -> bytes:
    """`url` as a QR code in SVG: black on white with the standard four-module
    quiet zone, so it scans on the kiosk's screen as well as on paper; sized
    by its viewBox only, the page and the receipt set its size; the URL as its
    title for screen readers."""
    qr = segno.make(url, error="m", micro=False)
    out = io.BytesIO()
    qr.save(
        out,
        kind="svg",
        xmldecl=False,
        omitsize=True,
        border=4,
        dark="#000",
        light="#fff",
        title=url,
        svgclass=None,
        lineclass=None,
    )
    return out.getvalue()


def kiosk_config(config: HallConfig) -> dict[str, Any]:
    """What the kiosk's script needs, embedded in the page as JSON."""
    api = f"/api/v1/halls/{config.id}"
    return {
        "hall": {"id": config.id, "name": config.name, "timezone": config.timezone.key},
        "page": "kiosk",
        "groups": [{"id": g.id, "name": g.name} for g in config.groups],
        "services": [{"id": s.id, "name": s.name, "group": s.group} for s in config.services],
        "priorities": sorted(config.kiosk_classes()),
        # A missed ticket may come back this long after its no-show (0: never,
        # and the kiosk offers no 我回来了).
        "late_return_minutes": config.calling.late_return_minutes,
        "services_path": f"{api}/services",
        "tickets_path": f"{api}/tickets",
        "appointments_path": f"{api}/appointments",
        "credential_path": f"{api}/credential",
        "qr_path": f"/halls/{config.id}/tickets/{{id}}/qr.svg",
    }


async def kiosk_page(request: Request) -> Response:
    hall = hall_of(request)
    if hall is None:
        return not_found(_NO_HALL)
    config = hall.config
    groups = [
        (g, [s for s in config.services if s.group == g.id])
        for g in config.groups
        if any(s.group == g.id for s in config.services)
    ]
    return render(
        "kiosk.html",
        hall=config,
        groups=groups,
        elderly="elderly" in config.kiosk_classes(),
        rejoin=config.calling.late_return_minutes > 0,
        config=kiosk_config(config),
    )


async def ticket_qr(request: Request) -> Response:
    hall = hall_of(request)
    ticket_id = request.path_params["ticket"]
    if hall is None or not TICKET_ID.fullmatch(ticket_id):
        return not_found(_NO_HALL if hall is None else "没有这张票 / no such ticket")
    # Drawing a code costs ~10 ms of CPU: only for a ticket the hall holds
    # (ids are unguessable, so made-up ones cost one O(1) read), and a kiosk
    # or phone asking again for the same one gets the drawing already made.
    try:
        exists = await hall.store.ticket_exists(ticket_id)
    except QmsError:
        return Response(status_code=503, headers={"Retry-After": "1"})
    if not exists:
        return not_found("没有这张票 / no such ticket")
    url = visitor_url(request, hall.config.id, ticket_id)
    return Response(qr_svg(url), media_type="image/svg+xml", headers=_QR_HEADERS)


def routes() -> list[BaseRoute]:
    return [
        Route("/halls/{hall}/kiosk", kiosk_page),
        Route("/halls/{hall}/tickets/{ticket}/qr.svg", ticket_qr),
    ]
