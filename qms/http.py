"""HTTP translation: requests in, operation calls, JSON out.

Authentication, the body limit, idempotency scoping and error mapping are
done here once for every operation; handlers never see a raw request.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any, cast

from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.websockets import WebSocket

from qms.security import add_security_headers, loggable_path
from queue_core import validation
from queue_core.auth import authorize, idempotency_scope
from queue_core.config import Credential, LimitKind
from queue_core.errors import (
    ErrorKind,
    Invalid,
    Malformed,
    NotFound,
    QmsError,
    RateLimited,
    TooLarge,
    Unavailable,
)
from queue_core.operations import Call, Hall, Operation, Reply, ReplyKind

log = logging.getLogger("qms.http")

API_PREFIX = "/api/v1/halls/{hall}"
MAX_BODY_BYTES = 16 * 1024
REDIS_BUDGET_S = 0.8
"""How long an operation may wait on Redis before it is answered 503
`redis_unavailable`: the contract's "a 503 within 1 s, never a hang" while
Redis is unreachable, hung or has no primary (docs/operations.md#failover)."""

STATUS = {
    ErrorKind.MALFORMED: 400,
    ErrorKind.UNAUTHORIZED: 401,
    ErrorKind.FORBIDDEN: 403,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.CONFLICT: 409,
    ErrorKind.TOO_LARGE: 413,
    ErrorKind.INVALID: 422,
    ErrorKind.RATE_LIMITED: 429,
    ErrorKind.UNAVAILABLE: 503,
}

_REPLY_STATUS = {ReplyKind.OK: 200, ReplyKind.CREATED: 201, ReplyKind.EMPTY: 204}


class JSON(JSONResponse):
    """UTF-8 JSON with CJK left readable."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def error_response(
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    details: Mapping[str, str] | None = None,
) -> Response:
    if status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
    error = {**(details or {}), "code": code, "message": message}
    return JSON({"error": error}, status, headers=headers)


UNAVAILABLE_RETRY_AFTER_S = 1


def qms_error_response(exc: QmsError) -> Response:
    headers = None
    if isinstance(exc, RateLimited):
        headers = {"Retry-After": str(exc.retry_after_s)}
    elif isinstance(exc, Unavailable):
        # Redis away, full or without a primary: a failover takes ~2 s, and a
        # client that waits a second and retries with its key loses nothing.
        headers = {"Retry-After": str(UNAVAILABLE_RETRY_AFTER_S)}
    return error_response(STATUS[exc.kind], exc.code, exc.message, headers, exc.details)


def halls_of(request: Request) -> Mapping[str, Hall]:
    return cast(Mapping[str, Hall], request.state.halls)


def bearer_token(conn: HTTPConnection) -> str | None:
    scheme, _, token = conn.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def refuse_declared_oversize(request: Request) -> None:
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise _too_large()


async def read_body(request: Request) -> bytes:
    """The raw body, refused with 413 past the limit: by its Content-Length
    before reading, or while reading a body streamed without one."""
    refuse_declared_oversize(request)
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            raise _too_large()
    return bytes(raw)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """A body as a JSON object: 400 if it is not JSON, 422 if not an object
    or if any string in it is not well-formed Unicode (a lone surrogate)."""
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: 16 KiB of nested brackets is valid JSON deeper than
        # the parser goes; to the client it is simply not a usable body.
        raise Malformed("malformed_json", "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise Invalid("invalid_body", "The request body must be a JSON object.")
    validation.well_formed(body)
    return body


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def _too_large() -> TooLarge:
    return TooLarge("body_too_large", f"The request body is over {MAX_BODY_BYTES} bytes.")


def redis_budget_s(min_replicas: int, wait_ms: int) -> float:
    """`REDIS_BUDGET_S`, or more when every change waits for replicas
    longer than it allows (`QMS_REDIS_WAIT_MS` set above ~500)."""
    if min_replicas <= 0:
        return REDIS_BUDGET_S
    return max(REDIS_BUDGET_S, wait_ms / 1000 + 0.3)


def _endpoint(op: Operation, budget_s: float) -> Any:
    async def endpoint(request: Request) -> Response:
        try:
            reply = await _handle(op, request, budget_s)
        except QmsError as exc:
            return qms_error_response(exc)
        if reply.kind is ReplyKind.EMPTY:
            return Response(status_code=204)
        return JSON(reply.body, _REPLY_STATUS[reply.kind])

    endpoint.__name__ = op.handler.__name__
    return endpoint


async def _handle(op: Operation, request: Request, budget_s: float) -> Reply:
    refuse_declared_oversize(request)  # before any other work
    params = dict(request.path_params)
    hall_id = params.pop("hall")
    hall = halls_of(request).get(hall_id)
    if hall is None:
        raise NotFound("hall_not_found", f"There is no hall {hall_id!r} here.")
    window = params.get("window")
    if window is not None and window not in hall.config.window_by_id:
        raise NotFound("window_not_found", f"This hall has no window {window!r}.")
    credential = hall.credentials.find(bearer_token(request))
    if op.roles is not None:
        authorize(credential, op.roles, clerk_window=window)
    client = request.client.host if request.client else ""
    key = request.headers.get("idempotency-key")
    scope = None
    if key is not None:
        # Without a credential the client's address scopes the key, so two
        # phones choosing the same key never share an answer.
        who = credential.digest_id if credential is not None else f"anonymous:{client}"
        scope = idempotency_scope(hall_id, who, request.url.path, validation.idempotency_key(key))
    # Read even where no body is expected, so the limit holds for every request.
    raw = await read_body(request)
    body = parse_json_object(raw) if op.takes_body else {}
    if op.body is not None:
        op.body.check(body)
    query = dict(request.query_params)
    call = Call(hall, credential, params, body, scope, query, client)
    # The budget starts once the body is in: a slow upload is the client's
    # time, not Redis's. A command cut off here may still have run (as after
    # a socket timeout): its connection is dropped, never reused with a late
    # reply in it, and the client's retry with the same Idempotency-Key
    # gets the first answer.
    try:
        async with asyncio.timeout(budget_s):
            kind = op.limit
            if kind is not None:
                # Before the operation: past the limit a request does nothing
                # but answer 429. (A body refused above never reached Redis.)
                allowance = _limited_as(kind, params, credential, client)
                if allowance is not None:
                    await hall.store.check_limit(kind, allowance)
            return await op.handler(call)
    except TimeoutError:
        raise Unavailable(
            "redis_unavailable", "The queue store did not answer in time; try again."
        ) from None


def _limited_as(
    kind: LimitKind, params: dict[str, str], credential: Credential | None, client: str
) -> str | None:
    """Whose allowance a request uses (None: none). Issuing: its
    credential's. Public endpoints: none when a valid credential comes with
    the request (a hall's kiosks poll `/services` with theirs, and their pace
    is never limited); a ticket's own endpoints count per ticket (its
    unguessable id is the holder's credential; per address, a hall's phones
    behind one Wi-Fi address, each following its ticket every 2 s, would
    share 300 a minute and be refused together); the rest per address."""
    if kind is LimitKind.PUBLIC:
        if credential is not None:
            return None
        ticket = params.get("ticket")
        return f"ticket:{ticket}" if ticket else f"address:{client}"
    return credential.digest_id if credential is not None else ""


def api_routes(operations: Iterable[Operation], budget_s: float = REDIS_BUDGET_S) -> list[Route]:
    """One route per operation; each answers 503 once it has waited
    `budget_s` on Redis."""
    return [
        Route(API_PREFIX + op.path, _endpoint(op, budget_s), methods=[op.method])
        for op in operations
    ]


async def http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 in the contract's shape."""
    assert isinstance(exc, HTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    code = codes.get(exc.status_code, "http_error")
    message = "No such resource." if exc.status_code == 404 else str(exc.detail)
    # exc.headers carries the Allow header a 405 must have.
    return error_response(exc.status_code, code, message, exc.headers)


async def unexpected(request: Request, exc: Exception) -> Response:
    """The last resort: log the traceback here, show the user a sentence."""
    path = loggable_path(request.url.path)
    log.error("unhandled error on %s %s", request.method, path, exc_info=exc)
    response = error_response(500, "internal_error", "Something went wrong on the server.")
    # Starlette sends this one outside every middleware: add what they would.

    return add_security_headers(response, str(request.scope.get("scheme", "http")))


async def deny_websocket(ws: WebSocket, exc: QmsError) -> None:
    """Refuse a handshake with the contract's error body and status."""
    response = qms_error_response(exc)
    try:
        await ws.send_denial_response(response)
    except RuntimeError:
        # A server without the denial-response extension: a bare refusal (403).
        await ws.close(1008)
