"""Operations as declarations: what a request may do, free of any web framework.

`ticketing` and `dispatcher` each export a tuple of `Operation`s; the
assembly (`qms`) turns them into HTTP routes, doing authentication, body
limits and error mapping once for all of them. A handler receives a `Call`
(already authenticated and parsed) and returns a `Reply`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from enum import StrEnum
from typing import Any, Literal, Protocol

from queue_core.auth import Credentials
from queue_core.config import Credential, HallConfig, LimitKind
from queue_core.errors import Invalid
from queue_core.estimates import Estimates
from queue_core.models import Actor, Role, TicketStatus, TicketView
from queue_core.store import HallStore, Result
from queue_core.wire import hall_body, staff_ticket_body, ticket_body


class Monitor(Protocol):
    """A hall's recent estimates and figures (the dispatcher's `HallMonitor`)."""

    async def table(self, open_windows: frozenset[str] | None = None) -> Estimates: ...

    async def issued(self, result: Result[TicketView]) -> Estimates: ...

    async def figures(self) -> object:
        """The dashboard's figures, whose shape only the dispatcher knows."""


@dataclass(frozen=True, slots=True)
class Hall:
    """Everything a request needs about one hall."""

    config: HallConfig
    store: HallStore
    credentials: Credentials
    monitor: Monitor


@dataclass(frozen=True, slots=True)
class Call:
    hall: Hall
    credential: Credential | None
    params: Mapping[str, str]
    body: Mapping[str, Any]
    idempotency: str | None
    """The scoped digest of the request's Idempotency-Key, if it sent one."""
    query: Mapping[str, str] = field(default_factory=dict)
    client: str = ""
    """The client's address (behind a trusted proxy, the one it forwarded)."""


AUDITED = frozenset({Role.CLERK, Role.MANAGER, Role.ADMIN})
"""Roles whose changes get an audit entry."""


def actor_of(call: Call) -> Actor:
    """Who makes the call's change: the credential's label, and its role when
    its changes are audited."""
    c = call.credential
    if c is None:
        return Actor(client=call.client)
    role = c.role.value if c.role in AUDITED else ""
    return Actor(call.hall.credentials.label(c), role, call.client)


class ReplyKind(StrEnum):
    OK = "ok"
    CREATED = "created"
    EMPTY = "empty"


@dataclass(frozen=True, slots=True)
class Reply:
    kind: ReplyKind
    body: dict[str, Any] | list[Any] | None = None


Handler = Callable[[Call], Awaitable[Reply]]


FieldType = Literal["string", "number", "integer", "boolean", "object"]


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a request body or one query parameter, as plain data:
    the handlers' validation and the OpenAPI description both read it."""

    name: str
    type: FieldType
    description: str
    required: bool = False
    enum: tuple[str, ...] = ()
    max_length: int | None = None
    properties: tuple[Field, ...] = ()
    """An object's own fields (`type` "object")."""
    one_of_properties: bool = False
    """An object that holds exactly one of its `properties`."""


@dataclass(frozen=True, slots=True)
class Body:
    """A JSON object body: its fields, and nothing else."""

    fields: tuple[Field, ...]

    @property
    def allowed(self) -> frozenset[str]:
        return frozenset(f.name for f in self.fields)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.required)

    def check(self, body: Mapping[str, Any]) -> None:
        """Refuse a field not declared (422 `unknown_field`: a misspelt
        `priorty` must not silently issue a normal ticket) and a required
        field absent or null (422 `missing_field`). Types and values are the
        handler's to check, with codes of their own."""
        unknown = sorted(set(body) - self.allowed)
        if unknown:
            raise Invalid(
                "unknown_field",
                f"Unknown field {unknown[0]!r}; allowed: {sorted(self.allowed)}.",
            )
        for name in self.required:
            if body.get(name) is None:
                raise Invalid("missing_field", f"Field {name!r} is required.")


@dataclass(frozen=True, slots=True)
class Operation:
    """One endpoint. `path` is relative to the hall; `roles` None means anyone
    holding the path's secret (a ticket id). A `{window}` in the path limits
    clerks to the windows on their credential. `limit` says which rate limit
    is checked before the handler runs.

    The rest describes it (`qms/openapi.py` makes the OpenAPI document of
    it) and is enforced where it can be: `body` by `Body.check` before the
    handler runs. `answers` are its success statuses; `errors` the 4xx
    statuses it may give beyond those every endpoint of its shape gives
    (a token: 401/403; a body: 400/422; a path id: 404); `returns` names the
    schema of its 2xx body."""

    method: Literal["GET", "POST"]
    path: str
    handler: Handler
    roles: frozenset[Role] | None
    _: KW_ONLY
    summary: str
    body: Body | None = None
    query: tuple[Field, ...] = ()
    answers: tuple[int, ...] = (200,)
    errors: tuple[int, ...] = ()
    returns: Literal["ticket", "object", "array"] = "ticket"
    issues: bool = False
    """It issues a ticket: counted against `[limits] issue_per_minute`."""

    @property
    def takes_body(self) -> bool:
        return self.body is not None

    @property
    def limit(self) -> LimitKind | None:
        """The `[limits]` entry a request to it counts against: every
        endpoint that takes no token counts per client address."""
        if self.roles is None:
            return LimitKind.PUBLIC
        return LimitKind.ISSUE if self.issues else None


def ok(body: dict[str, Any] | list[Any]) -> Reply:
    return Reply(ReplyKind.OK, body)


def created(body: dict[str, Any]) -> Reply:
    return Reply(ReplyKind.CREATED, body)


def empty() -> Reply:
    return Reply(ReplyKind.EMPTY)


async def ticket_reply(hall: Hall, view: TicketView) -> dict[str, Any]:
    """A ticket's body for the one who holds its id (the visitor, or the
    kiosk that issues it). Only a waiting ticket has an estimate, so only
    then is the monitor's table read (it may cost a read of the hall)."""
    return ticket_body(view, hall.config, await _table(hall, view))


async def staff_reply(hall: Hall, view: TicketView) -> dict[str, Any]:
    """A ticket's body for hall staff: `ticket_reply`'s without the id."""
    return staff_ticket_body(view, hall.config, await _table(hall, view))


async def _table(hall: Hall, view: TicketView) -> Estimates | None:
    waiting = view.ticket.status is TicketStatus.WAITING
    return await hall.monitor.table(view.open_windows) if waiting else None


def hall_hours_body(hall: Hall, closed_until_ms: int | None) -> dict[str, Any]:
    """The hall's `hall_body` now, with a manager's close read from Redis."""
    store = hall.store
    return hall_body(store.hall_hours(closed_until_ms), hall.config, store.now_ms())
