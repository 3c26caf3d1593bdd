"""Window operations and the hall snapshot."""

from __future__ import annotations

from typing import Any

from dispatcher.dashboard import dashboard_body
from dispatcher.figures import HallFigures
from queue_core import validation as v
from queue_core.models import Role, TicketView, WindowStatus
from queue_core.operations import (
    Body,
    Call,
    Field,
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


NUMBER = Body((Field("number", "string", "A ticket number such as A023.", required=True),))


def _window(
    path: str, handler: Handler, roles: frozenset[Role], summary: str, **more: Any
) -> Operation:
    """A window's operation (`POST /windows/{window}/…`): 404 for a window
    the hall lacks, 409 for one whose state forbids it."""
    return Operation(
        "POST", "/windows/{window}" + path, handler, roles, summary=summary, errors=(409,), **more
    )


OPERATIONS = (
    _window(
        "/open", _set_status(WindowStatus.OPEN), SUPERVISOR, "Open a window.", returns="object"
    ),
    _window(
        "/pause", _set_status(WindowStatus.PAUSED), SUPERVISOR, "Pause a window.", returns="object"
    ),
    _window(
        "/close", _set_status(WindowStatus.CLOSED), SUPERVISOR, "Close a window.", returns="object"
    ),
    _window(
        "/call-next",
        call_next,
        CLERK,
        "Call the next ticket under the hall's rule (204: nobody waiting).",
        answers=(200, 204),
    ),
    _window("/call", call_number, CLERK, "Call a waiting number out of turn.", body=NUMBER),
    _window("/recall", recall, CLERK, "Announce the called ticket again."),
    _window("/complete", complete, CLERK, "Complete the called ticket."),
    _window("/no-show", no_show, CLERK, "The called visitor did not come."),
    _window(
        "/transfer",
        transfer,
        CLERK,
        "Send the called ticket to another service, its place kept.",
        body=Body((Field("service", "string", "A service id.", required=True),)),
    ),
    _window("/park", park, CLERK, "Park the called ticket (the visitor fetches a paper)."),
    _window("/resume", resume, CLERK, "Call a parked ticket at this window.", body=NUMBER),
    Operation("GET", "/parked", parked, SUPERVISOR, summary="The parked tickets.", returns="array"),
    Operation(
        "POST", "/close", close_hall, MANAGER, summary="Close the hall now.", returns="object"
    ),
    Operation(
        "POST", "/open", open_hall, MANAGER, summary="Open the hall again.", returns="object"
    ),
    Operation(
        "GET",
        "/audit",
        audit,
        MANAGER,
        summary="The audit trail of staff changes, a page at a time.",
        query=(
            Field("since", "string", "The cursor of an earlier answer's next."),
            Field("limit", "integer", "Entries in a page, 1 to 1000 (100)."),
        ),
        returns="object",
    ),
    Operation(
        "GET",
        "/windows/{window}",
        window_view,
        SUPERVISOR,
        summary="A window, its ticket and its recent calls (the clerk's console).",
        query=(Field("limit", "integer", "Recent entries, 1 to 500 (50)."),),
        returns="object",
    ),
    Operation(
        "GET",
        "/snapshot",
        snapshot,
        READER,
        summary="The hall's windows, queues and recent calls.",
        returns="object",
    ),
    Operation(
        "GET", "/dashboard", dashboard, MANAGER, summary="The manager's figures.", returns="object"
    ),
)
