"""The dashboard's report download: `GET /api/v1/halls/{hall}/reports/{day}.csv`.

A route of its own rather than an `Operation`: operations answer JSON, this
answers a file. Hall lookup, authentication and errors follow `qms.http`
(the same helpers, the contract's error shape); the CSV is `render_csv`'s.
"""

from __future__ import annotations

import logging
from typing import cast

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from qms.http import API_PREFIX, bearer_token, halls_of, qms_error_response, read_body
from qms.reporting import ArchiveUnavailable, parse_day, report_of_day
from queue_core.archive import Archive
from queue_core.auth import authorize
from queue_core.errors import NotFound, QmsError
from queue_core.models import Role
from queue_core.report import render_csv

log = logging.getLogger("qms.http")

REPORT_READERS = frozenset({Role.MANAGER, Role.ADMIN})
CSV = "text/csv; charset=utf-8"


async def download_report(request: Request) -> Response:
    hall_id = request.path_params["hall"]
    try:
        hall = halls_of(request).get(hall_id)
        if hall is None:
            raise NotFound("hall_not_found", f"There is no hall {hall_id!r} here.")
        authorize(hall.credentials.find(bearer_token(request)), REPORT_READERS)
        await read_body(request)  # the body limit holds for every request
        day = parse_day(request.path_params["day"])
        report = await report_of_day(hall.config, day, _archive(request), hall.store.redis)
    except ArchiveUnavailable as exc:
        log.warning("qms: report of hall %s: archive unreadable: %s", hall_id, exc.reason)
        return qms_error_response(exc)
    except QmsError as exc:
        return qms_error_response(exc)
    return Response(
        render_csv(report),
        media_type=CSV,
        headers={
            "Content-Disposition": f'attachment; filename="{hall_id}-{report.day}.csv"',
            # Today's report changes with every finished ticket.
            "Cache-Control": "no-store",
        },
    )


def _archive(request: Request) -> Archive | None:
    """The app's archive; None when it runs without one (its tests): Redis only."""
    return cast(Archive | None, getattr(request.state, "archive", None))


def report_routes() -> list[Route]:
    return [Route(API_PREFIX + "/reports/{day}.csv", download_report, methods=["GET"])]
