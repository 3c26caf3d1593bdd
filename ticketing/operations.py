"""Issuing and the visitor's own ticket: kiosk tickets, appointments, status, cancel."""

from __future__ import annotations

from queue_core import validation as v
from queue_core.models import NORMAL, Role
from queue_core.operations import Call, Operation, Reply, created, ok
from queue_core.wire import appointment_body, ticket_body

KIOSK = frozenset({Role.KIOSK, Role.ADMIN})


async def issue_ticket(call: Call) -> Reply:
    v.only_fields(call.body, {"service", "priority"})
    service = v.required_string(call.body, "service")
    priority = v.string_field(call.body, "priority", required=False) or NORMAL
    result = await call.hall.store.issue(service, priority, call.idempotency)
    return created(ticket_body(result.value, call.hall.config))


async def get_ticket(call: Call) -> Reply:
    view = await call.hall.store.ticket(v.ticket_id(call.params["ticket"]))
    return ok(ticket_body(view, call.hall.config))


async def cancel_ticket(call: Call) -> Reply:
    tid = v.ticket_id(call.params["ticket"])
    result = await call.hall.store.cancel(tid, call.idempotency)
    return ok(ticket_body(result.value, call.hall.config))


async def book_appointment(call: Call) -> Reply:
    v.only_fields(call.body, {"service", "start"})
    service = v.required_string(call.body, "service")
    start = v.local_time_ms(
        v.required_string(call.body, "start"), call.hall.config.timezone, "start"
    )
    result = await call.hall.store.book_appointment(service, start, call.idempotency)
    return created(appointment_body(result.value, call.hall.config))


async def check_in(call: Call) -> Reply:
    code = v.appointment_code(call.params["code"])
    result = await call.hall.store.check_in(code, call.idempotency)
    return created(ticket_body(result.value, call.hall.config))


OPERATIONS = (
    Operation("POST", "/tickets", issue_ticket, KIOSK, takes_body=True),
    Operation("GET", "/tickets/{ticket}", get_ticket, None),
    Operation("POST", "/tickets/{ticket}/cancel", cancel_ticket, None),
    Operation("POST", "/appointments", book_appointment, KIOSK, takes_body=True),
    Operation("POST", "/appointments/{code}/check-in", check_in, KIOSK),
)
