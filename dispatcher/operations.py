"""Window operations and the hall snapshot."""

from __future__ import annotations

from typing import Any

from dispatcher.dashboard import dashboard_body
from dispatcher.figures import HallFigures
from queue_core import validation as v
from queue_core.models import Role, TicketView, WindowStatus
from queue_core.operations import (
    Call,
    Handler,
    Operation,
    Reply,
    actor_of,
    empty,
    hall_hours_body,
    ok,
    staff_reply,
)
from queue_core.wire import (
    audit_body,
    parked_body,
    reason_body,
    snapshot_body,
    window_body,
    window_view_body,
)

CLERK = frozenset({Role.CLERK, Role.ADMIN})
SUPERVISOR = frozenset({Role.CLERK, Role.MANAGER, Role.ADMIN})
READER = frozenset({Role.DISPLAY, Role.MANAGER, Role.ADMIN})
MANAGER = frozenset({Role.MANAGER, Role.ADMIN})


def _set_status(status: WindowStatus) -> Handler:
    async def handler(call: Call) -> Reply:
        result = await call.hall.store.set_window(
            call.params["window"], status, call.idempotency, actor=actor_of(call)
        )
        return ok(window_body(result.value, call.hall.config))

    return handler


async def call_next(call: Call) -> Reply:
    result = await call.hall.store.call_next(
        call.params["window"], call.idempotency, actor=actor_of(call)
    )
    if result.value is None:
        return empty()
    return ok(await _called_reply(call, result.value))


async def _called_reply(call: Call, view: TicketView) -> dict[str, Any]:
    """A call's answer: the ticket (without its id), and why it was called
    (`reason`)."""
    body = await staff_reply(call.hall, view)
    why = view.ticket.why
    if why is not None:
        body["reason"] = reason_body(why, view.ticket.service, call.hall.config)
    return body


def _number(call: Call) -> str:
    """The ticket number a `{"number"}` body names."""
    v.only_fields(call.body, {"number"})
    return v.ticket_number(v.required_string(call.body, "number"))


async def call_number(call: Call) -> Reply:
    result = await call.hall.store.call_number(
        call.params["window"], _number(call), call.idempotency, actor=actor_of(call)
    )
    return ok(await _called_reply(call, result.value))


async def recall(call: Call) -> Reply:
    result = await call.hall.store.recall(
        call.params["window"], call.idempotency, actor=actor_of(call)
    )
    return ok(await staff_reply(call.hall, result.value))


async def complete(call: Call) -> Reply:
    result = await call.hall.store.complete(
        call.params["window"], call.idempotency, actor=actor_of(call)
    )
    return ok(await staff_reply(call.hall, result.value))


async def no_show(call: Call) -> Reply:
    result = await call.hall.store.no_show(
        call.params["window"], call.idempotency, actor=actor_of(call)
    )
    return ok(await staff_reply(call.hall, result.value))


async def transfer(call: Call) -> Reply:
    v.only_fields(call.body, {"service"})
    service = v.required_string(call.body, "service")
    result = await call.hall.store.transfer(
        call.params["window"], service, call.idempotency, actor=actor_of(call)
    )
    return ok(await staff_reply(call.hall, result.value))


async def park(call: Call) -> Reply:
    result = await call.hall.store.park(
        call.params["window"], call.idempotency, actor=actor_of(call)
    )
    return ok(await staff_reply(call.hall, result.value))


async def resume(call: Call) -> Reply:
    result = await call.hall.store.resume(
        call.params["window"], _number(call), call.idempotency, actor=actor_of(call)
    )
    return ok(await _called_reply(call, result.value))


async def parked(call: Call) -> Reply:
    return ok(parked_body(await call.hall.store.parked(), call.hall.config))


async def close_hall(call: Call) -> Reply:
    result = await call.hall.store.close_hall(call.idempotency, actor=actor_of(call))
    return ok(hall_hours_body(call.hall, result.value.closed_until_ms))


async def open_hall(call: Call) -> Reply:
    result = await call.hall.store.open_hall(call.idempotency, actor=actor_of(call))
    return ok(hall_hours_body(call.hall, result.value.closed_until_ms))


async def audit(call: Call) -> Reply:
    since = v.audit_cursor(call.query.get("since"))
    limit = v.limit(call.query.get("limit"), default=100, maximum=1000)
    entries = await call.hall.store.audit(since, limit)
    return ok(audit_body(entries, since, call.hall.config))


async def window_view(call: Call) -> Reply:
    limit = v.limit(call.query.get("limit"), default=50, maximum=500)
    view = await call.hall.store.window_view(call.params["window"], limit)
    return ok(window_view_body(view, call.hall.config))


async def snapshot(call: Call) -> Reply:
    snap = await call.hall.store.snapshot()
    table = await call.hall.monitor.table(snap.open_windows)
    hours = hall_hours_body(call.hall, snap.closed_until_ms)
    return ok(snapshot_body(snap, call.hall.config, table, hours))


async def dashboard(call: Call) -> Reply:
    figures = await call.hall.monitor.figures()
    assert isinstance(figures, HallFigures)  # the monitor is the dispatcher's own
    return ok(dashboard_body(figures, call.hall.config))


OPERATIONS = (
    Operation("POST", "/windows/{window}/open", _set_status(WindowStatus.OPEN), SUPERVISOR),
    Operation("POST", "/windows/{window}/pause", _set_status(WindowStatus.PAUSED), SUPERVISOR),
    Operation("POST", "/windows/{window}/close", _set_status(WindowStatus.CLOSED), SUPERVISOR),
    Operation("POST", "/windows/{window}/call-next", call_next, CLERK),
    Operation("POST", "/windows/{window}/call", call_number, CLERK, takes_body=True),
    Operation("POST", "/windows/{window}/recall", recall, CLERK),
    Operation("POST", "/windows/{window}/complete", complete, CLERK),
    Operation("POST", "/windows/{window}/no-show", no_show, CLERK),
    Operation("POST", "/windows/{window}/transfer", transfer, CLERK, takes_body=True),
    Operation("POST", "/windows/{window}/park", park, CLERK),
    Operation("POST", "/windows/{window}/resume", resume, CLERK, takes_body=True),
    Operation("GET", "/parked", parked, SUPERVISOR),
    Operation("POST", "/close", close_hall, MANAGER),
    Operation("POST", "/open", open_hall, MANAGER),
    Operation("GET", "/audit", audit, MANAGER),
    Operation("GET", "/windows/{window}", window_view, SUPERVISOR),
    Operation("GET", "/snapshot", snapshot, READER),
    Operation("GET", "/dashboard", dashboard, MANAGER),
)
