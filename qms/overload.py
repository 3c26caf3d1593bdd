"""A bound on the requests one process has in flight.

Past the bound a request is answered at once with 503 `overloaded` and
`Retry-After`, in the contract's error shape: never held in a queue, where
it would wait for seconds and then time out anyway (API.md, "Overload,
abuse and bad input"). Only HTTP requests count: a WebSocket is a
long-lived connection the screen gateway bounds on its own terms.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from queue_core import metrics

DEFAULT_MAX_IN_FLIGHT = 128
"""`QMS_MAX_IN_FLIGHT`'s default: twice the Redis pool (64 connections), so
a burst keeps every connection busy with at most one request waiting behind
each; at the ~3,000 requests/s one process serves (docs/performance.md),
128 in flight is ~45 ms of work, far inside the 0.8 s Redis budget."""

RETRY_AFTER_S = 1
"""A process that was full clears its requests in tens of milliseconds."""

EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
"""Never refused: a liveness probe refused under load would get a busy but
healthy process restarted (and the load moved to fewer replicas), a
readiness probe refused would take it out of the Service while it serves,
and a scrape refused would hide the overload from the dashboards that
should show it. Each is cheap and bounded by the probes' own rate."""

_BODY = json.dumps(
    {
        "error": {
            "code": "overloaded",
            "message": "The server is busy; try again in a moment.",
        }
    }
).encode("utf-8")
_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(_BODY)).encode("ascii")),
    (b"retry-after", str(RETRY_AFTER_S).encode("ascii")),
    (b"x-content-type-options", b"nosniff"),
]


class InFlightLimit:
    """ASGI middleware: at most `limit` HTTP requests at once in `app`,
    except those to `exempt` paths, which are neither counted nor refused."""

    def __init__(self, app: ASGIApp, limit: int, exempt: Collection[str] = EXEMPT_PATHS) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        self.app = app
        self.limit = limit
        self.exempt = frozenset(exempt)
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            metrics.REQUESTS_REFUSED.labels("overloaded").inc()
            await _refuse(send)
            return
        # One event loop per process: no lock needed between the check and
        # the increment, as nothing awaits in between.
        self.in_flight += 1
        metrics.REQUESTS_IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
            metrics.REQUESTS_IN_FLIGHT.dec()


async def _refuse(send: Send) -> None:
    start: dict[str, Any] = {"type": "http.response.start", "status": 503, "headers": _HEADERS}
    await send(start)
    await send({"type": "http.response.body", "body": _BODY})
