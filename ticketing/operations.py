"""Issuing and the visitor's own ticket: kiosk and remote tickets,
appointments, status, cancel, rating, and the public list of services."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from queue_core import metrics
from queue_core import validation as v
from queue_core.errors import QmsError
from queue_core.models import NORMAL, Rating, Role, TicketView
from queue_core.operations import (
    Body,
    Call,
    Field,
    Operation,
    Reply,
    actor_of,
    created,
    hall_hours_body,
    ok,
    ticket_reply,
)
from queue_core.store import Result
from queue_core.wire import (
    appointment_body,
    rating_body,
    services_body,
    ticket_body,
)

KIOSK = frozenset({Role.KIOSK, Role.ADMIN})


async def _issued(call: Call, result: Result[TicketView]) -> Reply:
    """The new ticket, its estimate kept so that its call can measure it."""
    table = await call.hall.monitor.issued(result)
    return created(ticket_body(result.value, call.hall.config, table))


async def issue_ticket(call: Call) -> Reply:
    service = v.required_string(call.body, "service")
    priority = v.string_field(call.body, "priority", required=False) or NORMAL
    id_number = v.id_number_field(call.body, call.hall.config.language)
    notify = v.notify_field(call.body)
    with _counting_full(call, service):
        result = await call.hall.store.issue(
            service,
            priority,
            call.idempotency,
            actor=actor_of(call),
            id_number=id_number,
            notify=notify,
        )
    return await _issued(call, result)


@contextlib.contextmanager
def _counting_full(call: Call, service: str) -> Iterator[None]:
    """Counts a refusal past the service's `daily_cap`: demand the hall turned away."""
    try:
        yield
    except QmsError as exc:
        if exc.code == "service_full":
            metrics.SERVICE_FULL.labels(call.hall.config.id, service).inc()
        raise


async def get_ticket(call: Call) -> Reply:
    view = await call.hall.store.ticket(v.ticket_id(call.params["ticket"]))
    return ok(await ticket_reply(call.hall, view))


async def cancel_ticket(call: Call) -> Reply:
    tid = v.ticket_id(call.params["ticket"])
    result = await call.hall.store.cancel(tid, call.idempotency, actor=actor_of(call))
    return ok(await ticket_reply(call.hall, result.value))


async def rejoin_ticket(call: Call) -> Reply:
    tid = v.ticket_id(call.params["ticket"])
    result = await call.hall.store.rejoin(tid, call.idempotency, actor=actor_of(call))
    return ok(await ticket_reply(call.hall, result.value))


async def snooze_ticket(call: Call) -> Reply:
    tid = v.ticket_id(call.params["ticket"])
    minutes = v.minutes_field(call.body, "minutes")
    result = await call.hall.store.snooze(tid, minutes, call.idempotency)
    return ok(await ticket_reply(call.hall, result.value))


async def book_appointment(call: Call) -> Reply:
    service = v.required_string(call.body, "service")
    start = v.local_time_ms(
        v.required_string(call.body, "start"), call.hall.config.timezone, "start"
    )
    result = await call.hall.store.book_appointment(
        service, start, call.idempotency, actor=actor_of(call)
    )
    return created(appointment_body(result.value, call.hall.config))


async def check_in(call: Call) -> Reply:
    code = v.appointment_code(call.params["code"])
    result = await call.hall.store.check_in(code, call.idempotency, actor=actor_of(call))
    return await _issued(call, result)


# Anyone may ask, as often as they like: one Redis read per second per process.
SERVICES_MAX_AGE_S = 1.0


async def list_services(call: Call) -> Reply:
    snap = await call.hall.store.recent_snapshot(SERVICES_MAX_AGE_S)
    table = await call.hall.monitor.table(snap.open_windows)
    hours = hall_hours_body(call.hall, snap.closed_until_ms)
    return ok(services_body(snap, call.hall.config, table, hours))


async def issue_remote(call: Call) -> Reply:
    service = v.required_string(call.body, "service")
    rules = call.hall.config.remote
    phone = None
    if rules.require_phone:
        phone = v.mobile_number(v.required_string(call.body, "phone"))
    notify = v.notify_field(call.body)
    try:
        with _counting_full(call, service):
            result = await call.hall.store.issue_remote(
                service, call.client, phone, call.idempotency, notify=notify
            )
    except QmsError as exc:
        if exc.code in ("rate_limited", "remote_quota_exhausted", "phone_has_ticket"):
            metrics.REMOTE_REFUSED.labels(call.hall.config.id, exc.code).inc()
        raise
    return await _issued(call, result)


async def rate_ticket(call: Call) -> Reply:
    tid = v.ticket_id(call.params["ticket"])
    score = Rating(v.rating(v.required_string(call.body, "score"), (r.value for r in Rating)))
    view = await call.hall.store.rate(tid, score, v.reason_text(call.body))
    t = view.ticket
    metrics.RATINGS.labels(call.hall.config.id, t.service, t.window or "", score.value).inc()
    return created(rating_body(t, call.hall.config))


async def get_rating(call: Call) -> Reply:
    view = await call.hall.store.ticket(v.ticket_id(call.params["ticket"]))
    return ok(rating_body(view.ticket, call.hall.config))


async def whoami(call: Call) -> Reply:
    assert call.credential is not None  # every role may ask, so it was authorized
    c = call.credential
    return ok({"role": c.role.value, "windows": sorted(c.windows)})


SERVICE = Field("service", "string", "A service id of the hall's config.", required=True)
NOTIFY = Field(
    "notify",
    "object",
    "Where the hall's gateway tells the visitor: a mainland mobile number or a "
    "channel id the gateway knows (docs/notifications.md).",
    properties=(
        Field("phone", "string", "A mainland mobile number such as 13800138000."),
        Field("channel", "string", "1 to 64 letters, digits or _ . : @ -.", max_length=64),
    ),
    one_of_properties=True,
)

OPERATIONS = (
    Operation(
        "POST",
        "/tickets",
        issue_ticket,
        KIOSK,
        summary="Issue a ticket (header Idempotency-Key: the same key, the same ticket).",
        issues=True,
        body=Body(
            (
                SERVICE,
                Field(
                    "priority",
                    "string",
                    "A priority class of the hall's [priority], or normal (the default).",
                ),
                Field(
                    "id_number",
                    "string",
                    "An 18-character resident identity number (GB 11643); never stored.",
                    max_length=64,
                ),
                NOTIFY,
            )
        ),
        answers=(201,),
        errors=(404, 409),
    ),
    Operation(
        "GET",
        "/tickets/{ticket}",
        get_ticket,
        None,
        summary="A ticket with its live position and estimate.",
    ),
    Operation(
        "POST",
        "/tickets/{ticket}/cancel",
        cancel_ticket,
        None,
        summary="Cancel a waiting ticket.",
        errors=(409,),
    ),
    Operation(
        "POST",
        "/tickets/{ticket}/rejoin",
        rejoin_ticket,
        None,
        summary="A no-show ticket waits again, within late_return_minutes.",
        errors=(409,),
    ),
    Operation(
        "POST",
        "/tickets/{ticket}/snooze",
        snooze_ticket,
        None,
        summary="Let others pass for 5 to 30 minutes, once.",
        body=Body((Field("minutes", "number", "5 to 30.", required=True),)),
        errors=(409,),
    ),
    Operation(
        "POST",
        "/appointments",
        book_appointment,
        KIOSK,
        summary="Book an appointment.",
        body=Body(
            (
                SERVICE,
                Field(
                    "start",
                    "string",
                    "ISO 8601; without an offset, the hall's local time.",
                    required=True,
                ),
            )
        ),
        answers=(201,),
        errors=(404, 409),
        returns="object",
    ),
    Operation(
        "POST",
        "/appointments/{code}/check-in",
        check_in,
        KIOSK,
        summary="Check in an appointment: its ticket.",
        issues=True,
        answers=(201,),
        errors=(409,),
    ),
    Operation(
        "POST",
        "/tickets/{ticket}/rating",
        rate_ticket,
        None,
        summary="Rate the service of a finished ticket (好差评), once.",
        body=Body(
            (
                Field("score", "string", "The rating.", required=True, enum=tuple(Rating)),
                Field(
                    "reason",
                    "string",
                    "A comment.",
                    max_length=v.MAX_REASON_CHARS,
                ),
            )
        ),
        answers=(201,),
        errors=(409,),
        returns="object",
    ),
    Operation(
        "GET",
        "/tickets/{ticket}/rating",
        get_rating,
        None,
        summary="A ticket's rating.",
        returns="object",
    ),
    Operation(
        "GET",
        "/services",
        list_services,
        None,
        summary="The hall's services, their queues and whether it issues now.",
        returns="object",
    ),
    Operation(
        "GET",
        "/credential",
        whoami,
        frozenset(Role),
        summary="The role and windows of the token sent.",
        returns="object",
    ),
    Operation(
        "POST",
        "/remote/tickets",
        issue_remote,
        None,
        summary="A ticket taken from a phone, outside the hall ([remote]).",
        body=Body(
            (
                SERVICE,
                Field("phone", "string", "A mainland mobile number, when the hall asks for one."),
                NOTIFY,
            )
        ),
        answers=(201,),
        errors=(404, 409, 429),
    ),
)
