"""The OpenAPI 3.1 description of the HTTP API (`GET /openapi.json`), made
from the same `Operation` declarations the routes are made of: a path, a
role, a body field or an error status declared there is what is served,
and nothing is kept by hand beside it."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from qms.http import API_PREFIX, MAX_BODY_BYTES
from qms.reports_http import DOWNLOADS, REPORT_READERS
from queue_core.models import TicketStatus
from queue_core.operations import Body, Field, Operation

PATH_PARAMETER = re.compile(r"\{([a-z_]+)\}")

PATH_PARAMETERS = {
    "hall": "The hall's id ([hall] id of its config).",
    "ticket": "The ticket's id: its holder's only credential.",
    "window": "A window id of the hall's config.",
    "code": "An appointment code (8 characters; any case).",
    "day": "A hall day, YYYY-MM-DD.",
}

ERROR_DESCRIPTIONS = {
    400: "The body is not JSON.",
    401: "No valid token.",
    403: "The token's role or windows do not allow it.",
    404: "No such hall, window, ticket, appointment, service or number.",
    409: "The current state forbids it.",
    413: f"The body is over {MAX_BODY_BYTES} bytes.",
    422: "The body (or the Idempotency-Key, or a query parameter) fails validation.",
    429: "Past a rate limit; see Retry-After.",
    503: "Overloaded (overloaded), or Redis did not answer in time "
    "(redis_unavailable, not_replicated); see Retry-After where given.",
}

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "pattern": "^[a-z][a-z0-9]*(_[a-z0-9]+)*$"},
                "message": {"type": "string"},
            },
            "additionalProperties": {"type": "string"},
        }
    },
    "additionalProperties": False,
}

_TIME = {"type": "string", "format": "date-time"}
_TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}

TICKET = {
    "type": "object",
    "required": [
        "id",
        "number",
        "service",
        "group",
        "priority",
        "status",
        "issued_at",
        "called_at",
        "window",
        "position",
        "eta_seconds",
    ],
    "properties": {
        "id": {"type": "string"},
        "number": {"type": "string"},
        "service": {"type": "string"},
        "group": {"type": "string"},
        "priority": {"type": "string"},
        "status": {"type": "string", "enum": [s.value for s in TicketStatus]},
        "issued_at": _TIME,
        "called_at": _TIME_OR_NULL,
        "window": {"type": ["string", "null"]},
        "position": {"type": ["integer", "null"], "minimum": 0},
        "eta_seconds": {"type": ["integer", "null"]},
        "eta_range_seconds": {"type": ["array", "null"], "items": {"type": "integer"}},
        "recalls": {"type": "integer"},
        "rejoin_until": _TIME_OR_NULL,
        "notify": {"type": ["string", "null"]},
        "snoozed_until": _TIME_OR_NULL,
        "reason": {
            "type": "object",
            "description": "Why it was called (call-next, call, resume).",
            "properties": {
                "code": {"type": "string"},
                "text": {"type": "string"},
                "ahead_of": {"type": "integer"},
            },
        },
    },
}

_RETURNS = {
    "ticket": {"$ref": "#/components/schemas/Ticket"},
    "object": {"type": "object"},
    "array": {"type": "array"},
}


def field_schema(f: Field) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": f.type, "description": f.description}
    if f.enum:
        schema["enum"] = list(f.enum)
    if f.max_length is not None:
        schema["maxLength"] = f.max_length
    if f.properties:
        schema["properties"] = {p.name: field_schema(p) for p in f.properties}
        schema["additionalProperties"] = False
        if f.one_of_properties:
            schema["minProperties"] = schema["maxProperties"] = 1
    return schema


def body_schema(body: Body) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {f.name: field_schema(f) for f in body.fields},
        "additionalProperties": False,
    }
    if body.required:
        schema["required"] = list(body.required)
    return schema


def error_statuses(op: Operation) -> list[int]:
    """Every 4xx and 5xx status `op` may answer: those of its shape (what
    `qms.http` does for every operation) and those it declares."""
    statuses = {404, 413, 422, 503}  # a hall not served; the body limit; a bad Idempotency-Key
    if op.roles is not None:
        statuses |= {401, 403}
    if op.body is not None:
        statuses.add(400)
    return sorted(statuses | set(op.errors))


def _responses(statuses: Iterable[int]) -> dict[str, Any]:
    return {
        str(s): {
            "description": ERROR_DESCRIPTIONS[s],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for s in statuses
    }


def _path_parameters(path: str) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "in": "path",
            "required": True,
            "description": PATH_PARAMETERS[name],
            "schema": {"type": "string"},
        }
        for name in PATH_PARAMETER.findall(path)
    ]


def _security(roles: Iterable[Any] | None) -> dict[str, Any]:
    if roles is None:
        return {"security": [], "x-roles": []}
    return {"security": [{"bearer": []}], "x-roles": sorted(r.value for r in roles)}


def describe(op: Operation) -> dict[str, Any]:
    """The OpenAPI operation object of `op`."""
    parameters = _path_parameters(API_PREFIX + op.path)
    parameters += [
        {
            "name": q.name,
            "in": "query",
            "required": q.required,
            "description": q.description,
            "schema": {"type": "string"},
        }
        for q in op.query
    ]
    if op.method == "POST":
        parameters.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "A retried request with the same key gets the first answer.",
                "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,128}$"},
            }
        )
    responses: dict[str, Any] = {}
    for status in op.answers:
        if status == 204:
            responses["204"] = {"description": "Nothing to answer (nobody waiting)."}
        else:
            responses[str(status)] = {
                "description": "Done.",
                "content": {"application/json": {"schema": _RETURNS[op.returns]}},
            }
    responses |= _responses(error_statuses(op))
    described: dict[str, Any] = {
        "operationId": f"{op.method.lower()}{op.path}",
        "summary": op.summary,
        **_security(op.roles),
        "parameters": parameters,
        "responses": responses,
    }
    if op.body is not None:
        described["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body_schema(op.body)}},
        }
    return described


def _downloads() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for d in DOWNLOADS:
        path = API_PREFIX + d.path
        paths[path] = {
            "get": {
                "operationId": f"get{d.path}",
                "summary": d.summary,
                **_security(REPORT_READERS),
                "parameters": _path_parameters(path),
                "responses": {
                    "200": {
                        "description": "The CSV file.",
                        "content": {"text/csv": {"schema": {"type": "string"}}},
                    },
                    **_responses([401, 403, 404, 413, 422, 503]),
                },
            }
        }
    return paths


def openapi_document(operations: Iterable[Operation], version: str) -> dict[str, Any]:
    """The whole document: every operation and download under the hall prefix."""
    paths: dict[str, Any] = {}
    for op in operations:
        paths.setdefault(API_PREFIX + op.path, {})[op.method.lower()] = describe(op)
    paths |= _downloads()
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "qms",
            "version": version,
            "description": "Queue management for public service halls. Errors are a 4xx "
            "or 5xx status with the Error body; every answer is UTF-8 JSON unless said.",
        },
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR, "Ticket": TICKET},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
