"""Headers every answer carries, and who may call the API from a browser.

`SecurityHeaders` adds them to every HTTP answer and every refused
WebSocket handshake; `StrictCors` lets only the origins of `QMS_CORS_ORIGINS`
read answers from a browser (none by default: qms's own pages are served
from its own origin and need no CORS).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "CORS_ORIGINS_ENV",
    "SecurityHeaders",
    "StrictCors",
    "add_security_headers",
    "cors_origins",
    "loggable_path",
    "security_headers",
]

CORS_ORIGINS_ENV = "QMS_CORS_ORIGINS"

HSTS = "max-age=31536000"
"""A year; no `includeSubDomains`: qms does not know what else its domain serves."""

DEFAULT_CSP = "default-src 'none'; frame-ancestors 'none'"
"""For an answer that sets no policy of its own (JSON, Prometheus text, an
error): it is data, so nothing in it may load, run or be framed. Pages set
their own, each with `frame-ancestors 'none'`."""


def security_headers(scheme: str) -> dict[str, str]:
    """The headers of every answer. `Referrer-Policy: no-referrer`, not
    `strict-origin`: a visitor's page has its ticket id, the visitor's only
    credential, in its path, and a device page may carry its token in its
    address on its first load; no referrer at all leaks neither, and no qms
    page needs one. HSTS only over TLS (`scheme` as uvicorn reports it,
    from `X-Forwarded-Proto` behind a trusted proxy): sent over plain HTTP
    a browser ignores it, and a hall's LAN may serve qms without TLS."""
    headers = {
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    if scheme in ("https", "wss"):
        headers["Strict-Transport-Security"] = HSTS
    return headers


def _add(headers: MutableHeaders, scheme: str) -> None:
    for name, value in security_headers(scheme).items():
        headers[name] = value
    if "content-security-policy" not in headers:
        headers["Content-Security-Policy"] = DEFAULT_CSP


class SecurityHeaders:
    """ASGI middleware: `security_headers` on every answer (a page keeps its
    own Content-Security-Policy; any other answer gets `DEFAULT_CSP`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        scheme = str(scope.get("scheme", "http"))

        async def send_with_headers(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.http.response.start"):
                _add(MutableHeaders(scope=message), scheme)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def add_security_headers(response: Response, scheme: str) -> Response:
    """`response` with `SecurityHeaders`' headers, for the answers Starlette
    sends outside every middleware (its 500 for an unhandled error)."""
    _add(response.headers, scheme)
    return response


def cors_origins(raw: str) -> tuple[str, ...]:
    """`QMS_CORS_ORIGINS`: comma-separated origins (`https://host[:port]`),
    each exactly as a browser sends it. Raises ValueError for anything else,
    `*` included: qms answers carry tickets and hall state, so every origin
    allowed is named."""
    origins = []
    for part in raw.split(","):
        origin = part.strip()
        if not origin:
            continue
        url = urlsplit(origin)
        if (
            url.scheme not in ("http", "https")
            or not url.hostname
            or url.path
            or url.query
            or url.fragment
            or "@" in url.netloc
            or origin != f"{url.scheme}://{url.netloc}"
            or origin != origin.lower()
        ):
            raise ValueError(
                f"{CORS_ORIGINS_ENV}: {origin!r} is not an origin; "
                "write scheme://host[:port] in lowercase, such as https://app.example.gov.cn"
            )
        origins.append(origin)
    return tuple(origins)


class StrictCors(CORSMiddleware):
    """Starlette's CORS middleware for the named origins only: an allowed
    origin gets `Access-Control-Allow-Origin` and its preflight answered;
    any other origin gets neither, and its preflight is refused (403
    `cors_origin_not_allowed`) in the contract's error shape."""

    def __init__(self, app: ASGIApp, origins: Iterable[str]) -> None:
        super().__init__(
            app,
            allow_origins=list(origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            expose_headers=["Retry-After"],
            max_age=600,
        )

    def preflight_response(self, request_headers: Headers) -> Response:
        if not self.is_allowed_origin(origin=request_headers["origin"]):
            return _error(403, "cors_origin_not_allowed", "This origin may not call this API.")
        response = super().preflight_response(request_headers)
        if response.status_code != 200:
            headers = dict(response.headers)
            headers.pop("content-length", None)
            headers.pop("content-type", None)
            message = bytes(response.body).decode()
            return _error(400, "cors_request_not_allowed", message, headers)
        return response


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    # The contract's error shape (qms.http.error_response, which imports this module).
    return JSONResponse({"error": {"code": code, "message": message}}, status, headers)


# A path segment that is a credential: a ticket id (the visitor's only key
# to its ticket, on the API and on the visitor's page) or an appointment code.
_SECRET_SEGMENT = re.compile(r"(/(?:tickets|appointments)/)([^/?#\s]+)")
_LOG_KEY = secrets.token_bytes(32)
"""Keys the digests of a process's log: one made at start, never written
anywhere. An appointment code has only 40 bits; an unkeyed digest of it
could be reversed by trying them all."""


def loggable_path(path: str) -> str:
    """`path` as a log may show it: without its query string, and each ticket
    id or appointment code in it replaced by `~` and 8 hex digits of a keyed
    digest. The same id gives the same digest in one process's log (its
    requests can be followed), another after a restart or on another
    replica."""
    path = path.partition("?")[0]
    return _SECRET_SEGMENT.sub(lambda m: m[1] + "~" + _digest(m[2]), path)


def _digest(segment: str) -> str:
    return hmac.new(_LOG_KEY, segment.encode(), hashlib.sha256).hexdigest()[:8]
