"""The dashboard's report downloads: `GET /api/v1/halls/{hall}/reports/{day}.csv`,
and the day's audit trail, `GET /api/v1/halls/{hall}/reports/{day}-audit.csv`.

A route of its own rather than an `Operation`: operations answer JSON, this
answers a file. Hall lookup, authentication and errors follow `qms.http`
(the same helpers, the contract's error shape); the CSV is `render_csv`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from typing import cast

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from qms.http import API_PREFIX, bearer_token, halls_of, qms_error_response, read_body
from qms.reporting import ArchiveUnavailable, audit_of_day, parse_day, report_of_day
from queue_core.archive import Archive
from queue_core.auth import authorize
from queue_core.errors import NotFound, QmsError
from queue_core.models import Role
from queue_core.operations import Hall
from queue_core.report import render_audit_csv, render_csv

log = logging.getLogger("qms.http")

REPORT_READERS = frozenset({Role.MANAGER, Role.ADMIN})
CSV = "text/csv; charset=utf-8"


async def download_report(request: Request) -> Response:
    async def render(hall: Hall, day: date, archive: Archive | None) -> tuple[bytes, str]:
        report = await report_of_day(hall.config, day, archive, hall.store.redis, hall.credentials)
        return render_csv(report), f"{hall.config.id}-{report.day}.csv"

    return await _download(request, "report", render)


async def download_audit(request: Request) -> Response:
    async def render(hall: Hall, day: date, archive: Archive | None) -> tuple[bytes, str]:
        entries = await audit_of_day(hall.config, day, archive, hall.store.redis, hall.credentials)
        data = render_audit_csv(entries, hall.config.timezone)
        return data, f"{hall.config.id}-{day.isoformat()}-audit.csv"

    return await _download(request, "audit", render)


async def _download(
    request: Request,
    what: str,
    render: Callable[[Hall, date, Archive | None], Awaitable[tuple[bytes, str]]],
) -> Response:
    """One CSV of the path's hall and day (`render` gives its bytes and file name)."""
    hall_id = request.path_params["hall"]
    try:
        hall = await _report_hall(request)
        day = parse_day(request.path_params["day"])
        data, filename = await render(hall, day, _archive(request))
    except ArchiveUnavailable as exc:
        log.warning("qms: %s of hall %s: archive unreadable: %s", what, hall_id, exc.reason)
        return qms_error_response(exc)
    except QmsError as exc:
        return qms_error_response(exc)
    return _csv(data, filename)


async def _report_hall(request: Request) -> Hall:
    """The path's hall, once the request's token may read its reports."""
    hall_id = request.path_params["hall"]
    hall = halls_of(request).get(hall_id)
    if hall is None:
        raise NotFound("hall_not_found", f"There is no hall {hall_id!r} here.")
    authorize(hall.credentials.find(bearer_token(request)), REPORT_READERS)
    await read_body(request)  # the body limit holds for every request
    return hall


def _csv(data: bytes, filename: str) -> Response:
    return Response(
        data,
        media_type=CSV,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            # Today's file changes with every finished ticket and every change.
            "Cache-Control": "no-store",
        },
    )


def _archive(request: Request) -> Archive | None:
    """The app's archive; None when it runs without one (its tests): Redis only."""
    return cast(Archive | None, getattr(request.state, "archive", None))


@dataclass(frozen=True, slots=True)
class Download:
    """One CSV download under the hall, as routed and as `qms/openapi.py`
    describes it."""

    path: str
    endpoint: Callable[[Request], Awaitable[Response]]
    summary: str


# The audit route first: `{day}.csv` would take `2026-11-21-audit.csv` as
# the day `2026-11-21-audit` (and refuse it).
DOWNLOADS = (
    Download("/reports/{day}-audit.csv", download_audit, "The day's audit trail as CSV."),
    Download("/reports/{day}.csv", download_report, "The day's report as CSV."),
)


def report_routes() -> list[Route]:
    return [Route(API_PREFIX + d.path, d.endpoint, methods=["GET"]) for d in DOWNLOADS]
