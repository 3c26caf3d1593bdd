"""The visitor's phone pages: one ticket followed live (with its 好差评
rating once served), and remote ticket taking (取号 without a kiosk).

Neither needs a token. The ticket page's URL carries the ticket id, which
is the visitor's only credential; the page itself holds nothing but the
names the hall shows on its walls anyway, and its script reads the ticket
by that id. The remote page is public like the /services it reads.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from displays.page_kit import hall_of, heartbeat_s, not_found, page_config, render
from queue_core import validation
from queue_core.config import HallConfig
from queue_core.errors import NotFound, QmsError

__all__ = ["routes"]

_NO_HALL = "没有这个大厅 / no such hall"


def _config(request: Request, config: HallConfig, page: str, **extra: Any) -> dict[str, Any]:
    return {
        **page_config(config, page, heartbeat_s(request)),
        "api": f"/api/v1/halls/{config.id}",
        "ticket_path": f"/halls/{config.id}/tickets/",
        "remote_path": f"/halls/{config.id}/remote",
        # How long a waiting visitor may put off their turn, once (0: not at all).
        "snooze_max_minutes": config.calling.max_snooze_minutes,
        **extra,
    }


async def ticket_page(request: Request) -> Response:
    hall = hall_of(request)
    if hall is None:
        return not_found(_NO_HALL)
    ticket = request.path_params["ticket"]
    # An unknown id answers 404 with the phone page saying so, not a shell
    # that polls for ever. Any other trouble (Redis down) still serves the
    # shell: its script retries and shows the connection state.
    missing = False
    try:
        await hall.store.ticket(validation.ticket_id(ticket))
    except NotFound:
        missing = True
    except QmsError:
        pass
    return render(
        "visitor.html",
        404 if missing else 200,
        hall=hall.config,
        missing=missing,
        config=_config(request, hall.config, "visitor", ticket_id=ticket, missing=missing),
    )


async def remote_page(request: Request) -> Response:
    hall = hall_of(request)
    if hall is None:
        return not_found(_NO_HALL)
    return render(
        "remote.html",
        hall=hall.config,
        config=_config(request, hall.config, "remote"),
    )


def routes() -> list[BaseRoute]:
    return [
        Route("/halls/{hall}/tickets/{ticket}", ticket_page),
        Route("/halls/{hall}/remote", remote_page),
    ]
