"""The async store: the only code that talks to Redis.

Each state change is one Lua script that checks, mutates and appends its
event in one atomic step; each has one typed coroutine here that builds its
KEYS/ARGV and parses its reply, so nothing above sees a raw Redis reply.
Times come from the store's clock (replicas are expected to be NTP-synced);
tests pass their own clock to travel in time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Generic, TypeVar, cast

from queue_core import calendar, identity, metrics, policy
from queue_core.config import MIN_SNOOZE_MINUTES, HallConfig, LimitKind, Service, Window
from queue_core.errors import Conflict, Invalid, NotFound, QmsError, RateLimited, Unavailable
from queue_core.keys import AUDIT_SECRET, HallKeys
from queue_core.models import (
    APPOINTMENT,
    ELDERLY,
    NOBODY,
    NORMAL,
    Actor,
    Appointment,
    AuditEntry,
    CallRecord,
    DayState,
    EventType,
    HallState,
    Notify,
    OutcomeEvent,
    QueuedTicket,
    Rating,
    RecentCall,
    Snapshot,
    Ticket,
    TicketStatus,
    TicketView,
    WindowState,
    WindowStatus,
    WindowView,
)
from queue_core.reasons import CallReason
from queue_core.redis_client import REFUSING_WRITES, RedisClient, guarded, run_and_wait
from queue_core.scripts import Scripts

T = TypeVar("T")

Observer = Callable[[str, Sequence[OutcomeEvent]], None]
"""Told (hall id, what happened) after each state change that was not a replay."""

OutboxHook = Callable[[str], None]
"""Told the hall id after a change that appended deliveries to its outbox
(the local sender posts them at once; every sender's sweep finds them too)."""

APPOINTMENT_CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
APPOINTMENT_CODE_LENGTH = 8


@dataclass(frozen=True, slots=True)
class Result(Generic[T]):
    """What an operation returned; `replayed` when an idempotency key matched."""

    value: T
    replayed: bool
    outcomes: tuple[OutcomeEvent, ...]


def new_ticket_id() -> str:
    """128 random bits, URL-safe: the visitor's only credential for its ticket."""
    return secrets.token_urlsafe(16)


def new_appointment_code() -> str:
    return "".join(
        secrets.choice(APPOINTMENT_CODE_ALPHABET) for _ in range(APPOINTMENT_CODE_LENGTH)
    )


@dataclass(frozen=True, slots=True)
class _Now:
    """One operation's moment: epoch ms, the hall's local day and hour, and
    the latest day end at or before it (what joined before has expired)."""

    ms: int
    day: str
    """YYYYMMDD"""
    hour: str
    """HH"""
    stale_ms: int


@dataclass(frozen=True, slots=True)
class _Calendar:
    """What the calendar says, valid for `from_ms <= now < until_ms`: between
    two boundaries (and issue stops) nothing in it changes, so most
    operations reuse it instead of working through dates."""

    from_ms: int
    until_ms: int
    hours: calendar.HallHours
    stale_ms: int


AUDIT_KEEP_MS = 3 * 86_400_000
"""Audit entries stay in Redis three days; the sweep archives them hourly."""


async def load_audit_secret(redis: RedisClient) -> bytes:
    """The deployment's audit key, made by the first replica that asks and
    then shared: every replica derives the same short id for a credential."""
    await guarded(redis.set(AUDIT_SECRET, secrets.token_hex(32), nx=True))
    value = await guarded(redis.get(AUDIT_SECRET))
    return bytes.fromhex(value.decode() if isinstance(value, bytes) else str(value))


class HallStore:
    """One hall's state in Redis."""

    def __init__(
        self,
        redis: RedisClient,
        scripts: Scripts,
        config: HallConfig,
        *,
        stream_maxlen: int = 10_000,
        idempotency_ttl_s: int = 86_400,
        clock: Callable[[], float] = time.time,
        observer: Observer | None = None,
        audit_keep_ms: int = AUDIT_KEEP_MS,
        min_replicas: int = 0,
        wait_ms: int = 500,
        id_digest_key: bytes | None = None,
        outbox_hook: OutboxHook | None = None,
    ) -> None:
        if config.issuing.one_active_per_person and id_digest_key is None:
            # The CLI refuses to start first, in one line (qms.settings); this
            # guards every other way of building a store.
            raise ValueError(
                f"hall {config.id} sets [issuing] one_active_per_person, "
                "which needs an identity digest key (QMS_ID_DIGEST_KEY)"
            )
        self.redis = redis
        self.config = config
        self.keys = HallKeys(config.id)
        self._scripts = scripts
        self._maxlen = stream_maxlen
        self._idem_ttl = idempotency_ttl_s
        self._clock = clock
        self._observer = observer
        self._group_ids = [g.id for g in config.groups]
        self._queue_keys = [self.keys.queue(g) for g in self._group_ids]
        d = config.dispatch
        # The rule for the scripts that call and place tickets (_dispatch.lua).
        self._dispatch_args: list[str | int] = [d.rule, d.ratio_normal, d.ratio_priority]
        n = config.notify
        # `[notify] ahead` for the scripts; '' (no gateway) turns notifying off.
        self._notify_arg = ",".join(str(a) for a in n.ahead) if n.enabled else ""
        self._outbox_hook = outbox_hook
        self._recent: tuple[float, Snapshot] | None = None
        self._audit_keep_ms = audit_keep_ms
        self._cal: _Calendar | None = None
        self._min_replicas = min_replicas
        self._wait_ms = wait_ms
        self._id_key = id_digest_key
        self._deployment_key: bytes | None = None
        """`load_audit_secret`'s key, read at the first remote ticket."""

    # ------------------------------------------------------------ visitors

    async def issue(
        self,
        service: str,
        priority: str = NORMAL,
        idempotency: str | None = None,
        *,
        actor: Actor = NOBODY,
        id_number: str | None = None,
        notify: Notify | None = None,
    ) -> Result[TicketView]:
        """Issue a ticket for a service in a priority class a kiosk may set;
        `hall_closed` outside the hall's hours.

        With `id_number` (a resident identity number, else 422
        `bad_id_number`) the ticket is `elderly` when its holder is at least
        `[priority] elderly_age` on the hall's day and that class gives more
        credit than the one asked for; under `[issuing]
        one_active_per_person` a person holding an active ticket gets 409
        `already_waiting` naming its number. The number stays in this call:
        only its keyed digest reaches Redis, and only for that rule.

        With `notify` the visitor is told through the hall's gateway when
        the turn nears and when called (`[notify]`; else 422
        `notify_not_offered`)."""
        svc = self._service(service)
        self._check_notify(notify)
        if priority not in self.config.kiosk_classes():
            raise Invalid("unknown_priority", f"Priority class {priority!r} is not offered here.")
        now = self._now()
        person = ""
        if id_number is not None:
            holder = self._resident(id_number, now)
            priority = self._class_of(holder, priority, now)
            if self._id_key is not None and self.config.issuing.one_active_per_person:
                person = identity.person_digest(self._id_key, self.config.id, holder.number)
            del holder, id_number  # nothing below needs the number
        tid = new_ticket_id()
        e = policy.effective_ms(now.ms, self.config.credit_minutes(priority))
        keys = [self.keys.counter(now.day, svc.prefix), self.keys.numbers(now.day)]
        args: list[str | int | float] = [
            tid, svc.id, svc.group, svc.prefix, priority, e, self._issuing(now), person,
            *_notify_args(notify), svc.daily_cap or "",
        ]  # fmt: skip
        reply = await self._mutate("issue", now, idempotency, keys, args, actor)
        return self._result(reply, self._ticket_view(reply))

    def _resident(self, id_number: str, now: _Now) -> identity.ResidentId:
        try:
            return identity.parse_id_number(id_number, _local_date(now))
        except identity.BadIdNumber as exc:
            message = identity.problem_message(exc.problem, self.config.language)
            raise Invalid("bad_id_number", message, {"reason": exc.problem.value}) from None

    def _class_of(self, holder: identity.ResidentId, asked: str, now: _Now) -> str:
        """`elderly` for a holder of the hall's elderly age where the hall has
        the class and it gives more credit than `asked`, else `asked`: an
        identity number can raise a ticket's class, never lower it."""
        cfg = self.config
        if ELDERLY not in cfg.priority:
            return asked
        if identity.age_on(holder.birth, _local_date(now)) < cfg.elderly_age:
            return asked
        return ELDERLY if cfg.credit_minutes(ELDERLY) > cfg.credit_minutes(asked) else asked

    async def book_appointment(
        self, service: str, start_ms: int, idempotency: str | None = None, *, actor: Actor = NOBODY
    ) -> Result[Appointment]:
        svc = self._service(service)
        now = self._now()
        for _ in range(5):
            code = new_appointment_code()
            args: list[str | int | float] = [code, svc.id, start_ms]
            try:
                reply = await self._mutate(
                    "appointment", now, idempotency, [self.keys.appointments], args, actor
                )
            except _CodeTaken:
                continue
            a = reply["a"]
            return self._result(reply, Appointment(a["code"], a["service"], int(a["start"]), None))
        raise Conflict("code_taken", "Could not find a free appointment code; try again.")

    async def check_in(
        self, code: str, idempotency: str | None = None, *, actor: Actor = NOBODY
    ) -> Result[TicketView]:
        """Check in an appointment: on time gets the appointment credit, else
        normal; `hall_closed` outside the hall's hours."""
        raw = await self._call(self.redis.hget(self.keys.appointments, code), "hget")
        if raw is None:
            raise NotFound("appointment_not_found", f"No appointment has code {code}.")
        # An appointment already checked in is refused by the script, after it
        # has answered a retry (same Idempotency-Key) with the first ticket.
        booked = json.loads(raw)
        svc = self._service(booked["service"])
        now = self._now()
        start = int(booked["start"])
        on_time = policy.appointment_on_time(now.ms, start, self.config.appointments)
        priority = APPOINTMENT if on_time else NORMAL
        e = (
            # In arrival order (a side of its own under "ratio"): the check-in is the arrival.
            policy.effective_ms(now.ms, self.config.credit_minutes(priority))
            if self.config.dispatch.rule in ("fifo", "ratio")
            else policy.checkin_effective_ms(
                now.ms, start, on_time, self.config.credit_minutes(APPOINTMENT)
            )
        )
        tid = new_ticket_id()
        keys = [
            self.keys.appointments,
            self.keys.counter(now.day, svc.prefix),
            self.keys.numbers(now.day),
        ]
        args: list[str | int | float] = [
            code, start, tid, svc.id, svc.group, svc.prefix, priority, e, self._issuing(now)
        ]  # fmt: skip
        reply = await self._mutate("checkin", now, idempotency, keys, args, actor)
        return self._result(reply, self._ticket_view(reply))

    async def cancel(
        self, ticket_id: str, idempotency: str | None = None, *, actor: Actor = NOBODY
    ) -> Result[TicketView]:
        reply = await self._mutate("cancel", self._now(), idempotency, [], [ticket_id], actor)
        return self._result(reply, self._ticket_view(reply))

    async def snooze(
        self, ticket_id: str, minutes: float, idempotency: str | None = None
    ) -> Result[TicketView]:
        """A waiting visitor lets others pass for `minutes` (from
        `MIN_SNOOZE_MINUTES` to the hall's `[calling] max_snooze_minutes`),
        once: its place moves that much later, with a `snoozed` event."""
        longest = self.config.calling.max_snooze_minutes
        if longest <= 0:
            raise Conflict("snooze_not_offered", "This hall does not let a ticket be put off.")
        if not MIN_SNOOZE_MINUTES <= minutes <= longest:
            raise Invalid(
                "bad_minutes",
                f"minutes must be from {MIN_SNOOZE_MINUTES:g} to {longest:g}.",
            )
        args: list[str | int | float] = [ticket_id, minutes]
        reply = await self._mutate("snooze", self._now(), idempotency, [], args)
        return self._result(reply, self._ticket_view(reply))

    async def rejoin(
        self, ticket_id: str, idempotency: str | None = None, *, actor: Actor = NOBODY
    ) -> Result[TicketView]:
        """A no-show ticket waits again, once, within the hall's late-return
        time, placed as if issued now with its class credit;
        `late_return_closed` otherwise, `hall_closed` outside the hours."""
        now = self._now()
        raw = await self._call(self.redis.hget(self.keys.tickets, ticket_id), "hget")
        if raw is None:
            raise NotFound("ticket_not_found", "There is no such ticket.")
        # The class is fixed at issue: reading it first cannot race with the script.
        priority = json.loads(raw)["priority"]
        e = policy.effective_ms(now.ms, self.config.credit_minutes(priority))
        late_ms = round(self.config.calling.late_return_minutes * policy.MINUTE_MS)
        in_span = self._calendar(now.ms).hours.in_span
        # A rejoin is no new ticket: within a span it may come back (also
        # in the minutes before the span's end when the kiosk has stopped).
        args: list[str | int | float] = [ticket_id, late_ms, e, "1" if in_span else "0"]
        reply = await self._mutate("rejoin", now, idempotency, [], args, actor)
        return self._result(reply, self._ticket_view(reply))

    async def issue_remote(
        self,
        service: str,
        client: str,
        phone: str | None,
        idempotency: str | None = None,
        notify: Notify | None = None,
    ) -> Result[TicketView]:
        """Issue a normal ticket taken on a phone, within the hall's remote
        rules: a daily cap per service, a limit per client (an address) per
        hour and, with `phone`, one active remote ticket per number. Only
        digests of the client and phone reach Redis."""
        rules = self.config.remote
        if not rules.enabled:
            raise NotFound("remote_not_offered", "This hall does not offer remote tickets.")
        svc = self._service(service)
        self._check_notify(notify)
        client_digest = await self._digest("client", client)
        phone_digest = await self._digest("phone", phone) if phone else ""
        now = self._now()
        tid = new_ticket_id()
        e = policy.effective_ms(now.ms, 0.0)
        keys = [
            self.keys.counter(now.day, svc.prefix),
            self.keys.numbers(now.day),
            self.keys.remote_count(now.day, svc.id),
            self.keys.remote_client(now.day + now.hour, client_digest),
            self.keys.remote_phones(now.day),
        ]
        args: list[str | int | float] = [
            tid, svc.id, svc.group, svc.prefix, NORMAL, e,
            rules.daily_cap, rules.per_client_per_hour,
            phone_digest, self._issuing(now), *_notify_args(notify), svc.daily_cap or "",
        ]  # fmt: skip
        reply = await self._mutate("remote_issue", now, idempotency, keys, args)
        return self._result(reply, self._ticket_view(reply))

    async def rate(self, ticket_id: str, rating: Rating, reason: str | None) -> TicketView:
        """Record the visitor's rating of a completed ticket, once."""
        args: list[str | int | float] = [ticket_id, rating.value, reason or ""]
        reply = await self._mutate("rate", self._now(), None, [], args)
        return self._ticket_view(reply)

    async def ticket_exists(self, ticket_id: str) -> bool:
        """Whether the hall holds a ticket with this id (one O(1) read)."""
        return bool(await self._call(self.redis.hexists(self.keys.tickets, ticket_id), "hexists"))

    async def ticket(self, ticket_id: str) -> TicketView:
        """A ticket with its live position; `NotFound` for an unknown id."""
        keys = [self.keys.tickets, self.keys.open_windows, self.keys.dispatch, *self._queue_keys]
        args = [ticket_id, *self._dispatch_args, *self._group_ids]
        raw = await self._call(self._scripts["ticket"](keys=keys, args=args), "ticket")
        reply = self._parse(raw)
        return self._ticket_view(reply)

    # ------------------------------------------------------------- windows

    async def call_next(
        self, window: str, idempotency: str | None = None, *, actor: Actor = NOBODY
    ) -> Result[TicketView | None]:
        """Complete the window's current ticket, then call the next by the dispatch rule.

        The value is None when nobody is waiting in the window's groups."""
        w = self._window(window)
        reply = await self._mutate(
            "call_next", self._now(), idempotency, [], [w.id, ",".join(w.groups), w.order], actor
        )
        value = None if reply.get("none") else self._ticket_view(reply)
        return self._result(reply, value)

    async def call_number(
        self, window: str, number: str, idempotency: str | None = None, *, actor: Actor = NOBODY
    ) -> Result[TicketView]:
        """Call one waiting number out of turn (it must be of a group the window serves)."""
        w = self._window(window)
        now = self._now()
        args: list[str | int | float] = [w.id, ",".join(w.groups), number]
        reply = await self._mutate(
            "call_number", now, idempotency, [self.keys.numbers(now.day)], args, actor
        )
        return self._result(reply, self._ticket_view(reply))

    async def recall(
        self, window: str, idempotency: str | None = None, *, actor: Actor = NOBODY
    ) -> Result[TicketView]:
        w = self._window(window)
        args: list[str | int | float] = [w.id, self.config.calling.recall_limit]
        reply = await self._mutate("recall", self._now(), idempotency, [], args, actor)
        return self._result(reply, self._ticket_view(reply))

    async def complete(
        self, window: str, idempotency: str | None = None, *, actor: Actor = NOBODY
    ) -> Result[TicketView]:
        return await self._finish(window, TicketStatus.COMPLETED, idempotency, actor)

    async def no_show(
        self, window: str, idempotency: str | None = None, *, actor: Actor = NOBODY
    ) -> Result[TicketView]:
        return await self._finish(window, TicketStatus.NO_SHOW, idempotency, actor)

    async def transfer(
        self, window: str, service: str, idempotency: str | None = None, *, actor: Actor = NOBODY
    ) -> Result[TicketView]:
        """Send the window's current ticket to another service, keeping its place."""
        w = self._window(window)
        svc = self._service(service)
        args: list[str | int | float] = [w.id, svc.id, svc.group]
        reply = await self._mutate("transfer", self._now(), idempotency, [], args, actor)
        return self._result(reply, self._ticket_view(reply))

    async def set_window(
        self,
        window: str,
        status: WindowStatus,
        idempotency: str | None = None,
        *,
        actor: Actor = NOBODY,
    ) -> Result[WindowState]:
        w = self._window(window)
        args: list[str | int | float] = [w.id, status.value]
        reply = await self._mutate("window_state", self._now(), idempotency, [], args, actor)
        ticket = ticket_from_json(reply["wt"]) if reply.get("wt") else None
        return self._result(reply, WindowState(w.id, WindowStatus(reply["w"]["status"]), ticket))

    async def park(
        self, window: str, idempotency: str | None = None, *, actor: Actor = NOBODY
    ) -> Result[TicketView]:
        """The window's called ticket steps aside (`parked`); the window is free."""
        w = self._window(window)
        reply = await self._mutate("park", self._now(), idempotency, [], [w.id], actor)
        return self._result(reply, self._ticket_view(reply))

    async def resume(
        self, window: str, number: str, idempotency: str | None = None, *, actor: Actor = NOBODY
    ) -> Result[TicketView]:
        """Call a parked ticket at this window (one of its group's windows),
        completing the window's current ticket first."""
        w = self._window(window)
        now = self._now()
        args: list[str | int | float] = [w.id, ",".join(w.groups), number]
        reply = await self._mutate(
            "resume", now, idempotency, [self.keys.numbers(now.day)], args, actor
        )
        return self._result(reply, self._ticket_view(reply))

    # ---------------------------------------------------------- the hall's day

    def hall_hours(self, closed_until_ms: int | None = None) -> calendar.HallHours:
        """Whether the hall takes tickets now (the calendar, and a manager's
        close in force until `closed_until_ms`)."""
        now_ms = self._now_ms()
        if closed_until_ms is not None and closed_until_ms > now_ms:
            return calendar.hall_hours(
                self.config.hours, self.config.timezone, now_ms, closed_until_ms
            )
        return self._calendar(now_ms).hours

    async def close_hall(
        self, idempotency: str | None = None, *, actor: Actor = NOBODY
    ) -> Result[DayState]:
        """Close the hall now until the next span starts (or `open_hall`):
        windows close, waiting and parked tickets expire, issuing stops."""
        now = self._now()
        until = calendar.next_span_start(self.config.hours, self.config.timezone, now.ms)
        # No span ahead within the horizon: closed until a manager opens it.
        until_ms = until if until is not None else now.ms + calendar.HORIZON_DAYS * 86_400_000
        reply = await self._mutate("hall_close", now, idempotency, [], [until_ms], actor)
        self._recent = None  # the next /services must say closed
        return self._result(reply, _day_state(reply["day"]))

    async def open_hall(
        self, idempotency: str | None = None, *, actor: Actor = NOBODY
    ) -> Result[DayState]:
        """Lift a manager's close; the calendar's hours still apply."""
        now = self._now()
        in_span = self._calendar(now.ms).hours.in_span
        args: list[str | int | float] = ["1" if in_span else "0"]
        reply = await self._mutate("hall_open", now, idempotency, [], args, actor)
        self._recent = None
        return self._result(reply, _day_state(reply["day"]))

    async def pass_boundary(self, boundary: calendar.Boundary) -> tuple[bool, int]:
        """Pass one calendar boundary (`calendar.latest_boundary`) unless some
        replica already has: (whether this call passed it, tickets expired)."""
        args: list[str | int | float] = [
            boundary.at_ms,
            "1" if boundary.open_after else "0",
            boundary.expire_before_ms,
            boundary.finish_before_ms,
        ]
        reply = await self._mutate("day_boundary", self._now(), None, [], args)
        self._result(reply, None)
        return bool(reply["passed"]), int(reply["expired"])

    async def day_state(self) -> DayState:
        raw = await self._call(self.redis.hgetall(self.keys.day), "hgetall")
        return _day_state(raw)

    async def parked(self) -> list[Ticket]:
        """The parked tickets, earliest parked first."""
        keys = [self.keys.parked, self.keys.tickets]
        raw = await self._call(self._scripts["parked"](keys=keys, args=[]), "parked")
        return [ticket_from_json(t) for t in json.loads(raw)]

    async def audit(self, since: str | None, limit: int) -> list[AuditEntry]:
        """Audit entries after the cursor `since` (from the oldest kept), oldest first."""
        low = "-" if since is None else f"({since}"
        raw = await self._call(self.redis.xrange(self.keys.audit, low, "+", count=limit), "xrange")
        return parse_audit(raw)

    # --------------------------------------------------------------- reads

    async def window_view(self, window: str, limit: int = 50) -> WindowView:
        """A window with its current ticket and its first `limit` waiting
        tickets in dispatch order, read in one atomic script."""
        w = self._window(window)
        keys = [
            self.keys.windows, self.keys.tickets, self.keys.dispatch,
            *(self.keys.queue(g) for g in w.groups),
        ]  # fmt: skip
        args = [w.id, limit, w.order, *self._dispatch_args, *w.groups]
        raw = await self._call(self._scripts["window_view"](keys=keys, args=args), "window_view")
        data = json.loads(raw)
        state = data["w"]
        current = ticket_from_json(data["wt"]) if data.get("wt") else None
        waiting = data.get("waiting") or []
        return WindowView(
            WindowState(w.id, WindowStatus(state.get("status", "closed")), current),
            tuple(ticket_from_json(t) for t in waiting),
            int(data.get("total") or 0),
        )

    async def snapshot(self) -> Snapshot:
        """The hall at one event number, read in one atomic script."""
        k = self.keys
        keys = [
            k.seq,
            k.tickets,
            k.windows,
            k.waiting_by_service,
            k.recent_calls,
            k.day,
            k.parked,
            k.issued(self._now().day),
            *self._queue_keys,
        ]
        raw = await self._call(
            self._scripts["snapshot"](keys=keys, args=self._group_ids), "snapshot"
        )
        data = json.loads(raw)
        windows_raw: dict[str, Any] = data["windows"] or {}
        tickets_raw: dict[str, Any] = data["tickets"] or {}
        windows = []
        for w in self.config.windows:
            state = windows_raw.get(w.id) or {}
            tid = state.get("ticket")
            ticket = ticket_from_json(tickets_raw[tid]) if tid and tid in tickets_raw else None
            windows.append(WindowState(w.id, WindowStatus(state.get("status", "closed")), ticket))
        services_raw: dict[str, Any] = data["services"] or {}
        groups_raw: dict[str, Any] = data["groups"] or {}
        recent = []
        for item in data["recent"] or []:
            call = json.loads(item)
            recent.append(RecentCall(call["number"], call["window"], int(call["at"])))
        return Snapshot(
            seq=int(data["seq"]),
            windows=tuple(windows),
            waiting_by_group={g: int(groups_raw.get(g, 0)) for g in self._group_ids},
            waiting_by_service={s.id: int(services_raw.get(s.id, 0)) for s in self.config.services},
            recent_calls=tuple(recent),
            closed_until_ms=_opt_int(data.get("closed_until")),
            parked=int(data.get("parked") or 0),
            issued_by_service={s: int(n) for s, n in (data["issued"] or {}).items()},
        )

    async def hall_state(self, *, head: int, calls_since_ms: int) -> HallState:
        """The windows, the first `head` tickets of each queue, today's
        counters, recent visit times and the calls since `calls_since_ms`,
        read in one atomic script for the hall monitor."""
        k = self.keys
        day = self._now().day
        keys = [
            k.seq, k.tickets, k.windows, k.waiting_by_service,
            k.stats(day), k.service_times, k.waits, k.day, k.parked, k.dispatch,
            *self._queue_keys,
        ]  # fmt: skip
        args: list[str | int] = [head, calls_since_ms, *self._dispatch_args, *self._group_ids]
        raw = await self._call(self._scripts["hall_state"](keys=keys, args=args), "hall_state")
        data = json.loads(raw)
        windows_raw: dict[str, Any] = data["windows"] or {}
        tickets_raw: dict[str, Any] = data["tickets"] or {}
        windows = []
        since: dict[str, int] = {}
        for w in self.config.windows:
            state = windows_raw.get(w.id) or {}
            tid = state.get("ticket")
            ticket = ticket_from_json(tickets_raw[tid]) if tid and tid in tickets_raw else None
            windows.append(WindowState(w.id, WindowStatus(state.get("status", "closed")), ticket))
            if state.get("since") is not None:
                since[w.id] = int(state["since"])
        groups_raw: dict[str, Any] = data["groups"] or {}
        queues: dict[str, tuple[QueuedTicket, ...]] = {}
        waiting_by_group: dict[str, int] = {}
        for g in self._group_ids:
            entry = groups_raw.get(g) or {}
            waiting_by_group[g] = int(entry.get("n") or 0)
            heads = []
            # cjson writes an empty Lua table as {}, not [].
            for member, score, doc in entry.get("q") or []:
                t = json.loads(doc)
                heads.append(
                    QueuedTicket(
                        t["id"],
                        t["number"],
                        t["service"],
                        g,
                        int(t["issued"]),
                        float(score),
                        member,
                        t.get("priority") or NORMAL,
                    )
                )
            queues[g] = tuple(heads)
        services_raw: dict[str, Any] = data["services"] or {}
        calls = []
        for item in data["waits"] or []:
            c = json.loads(item)
            estimate = (_opt_int(c.get("c")), _opt_int(c.get("lo")), _opt_int(c.get("hi")))
            calls.append(CallRecord(int(c["at"]), int(c["w"]), c["g"], c["s"], *estimate))
        return HallState(
            seq=int(data["seq"]),
            windows=tuple(windows),
            window_since_ms=since,
            waiting_by_group=waiting_by_group,
            waiting_by_service={
                s.id: int(services_raw.get(s.id) or 0) for s in self.config.services
            },
            queues=queues,
            stats={f: int(n) for f, n in (data["stats"] or {}).items()},
            service_times={s: _durations(v) for s, v in (data["svc_times"] or {}).items()},
            calls=tuple(calls),
            parked=int(data.get("parked") or 0),
            closed_until_ms=_opt_int(data.get("closed_until")),
            turns={g: int((groups_raw.get(g) or {}).get("turn") or 0) for g in self._group_ids},
        )

    async def note_estimate(
        self, ticket_id: str, central_ms: int, low_ms: int, high_ms: int
    ) -> bool:
        """Keep the estimate a ticket was given at issue, for measuring it when
        it is called; False when the ticket is no longer waiting (or has one)."""
        doc = json.dumps({"c": central_ms, "lo": low_ms, "hi": high_ms})
        keys = [self.keys.tickets, self.keys.estimates]
        kept = await self._call(
            self._scripts["note_estimate"](keys=keys, args=[ticket_id, doc]), "note_estimate"
        )
        return bool(kept)

    async def recent_snapshot(self, max_age_s: float) -> Snapshot:
        """A snapshot at most `max_age_s` old (this process's clock): the
        public readers (kiosks, phones) share reads instead of each costing
        a script call."""
        now = time.monotonic()
        cached = self._recent
        if cached is not None and now - cached[0] <= max_age_s:
            return cached[1]
        snap = await self.snapshot()
        self._recent = (now, snap)
        return snap

    async def ping(self) -> None:
        await self._call(self.redis.ping(), "ping")

    async def check_limit(self, kind: LimitKind, who: str) -> None:
        """Count one request of `who` (a credential id or a client address)
        against the hall's `[limits]` entry for `kind`, in fixed windows of a
        minute of the store's clock; past the limit raise `RateLimited` with
        the seconds left in the window. Only a digest of `who` reaches Redis.
        A refused request is not counted, and this changes no hall state."""
        limit = self.config.limits.per_minute(kind)
        now_ms = self._now_ms()
        window = now_ms // LIMIT_WINDOW_MS
        key = self.keys.rate_limit(
            kind.value, window, await self._digest(f"limit-{kind.value}", who)
        )
        # Kept a window past its own so a replica whose clock runs a little
        # behind still finds it; Redis forgets it after that.
        try:
            allowed = await self._call(
                self._scripts["rate_limit"](keys=[key], args=[limit, 2 * LIMIT_WINDOW_MS]),
                "rate_limit",
            )
        except Unavailable as exc:
            # A Redis that answers but refuses writes cannot count: let the
            # request through rather than turn it into a refusal of reads too.
            if exc.code in REFUSING_WRITES:
                return
            raise
        if int(allowed) != 1:
            left_ms = (window + 1) * LIMIT_WINDOW_MS - now_ms
            raise RateLimited(
                "rate_limited",
                f"More than {limit} requests a minute from here; try again shortly.",
                retry_after_s=-(-left_ms // 1000),
            )

    # ------------------------------------------------------------ plumbing

    async def _finish(
        self, window: str, status: TicketStatus, idempotency: str | None, actor: Actor
    ) -> Result[TicketView]:
        w = self._window(window)
        args: list[str | int | float] = [w.id, status.value]
        reply = await self._mutate("finish", self._now(), idempotency, [], args, actor)
        return self._result(reply, self._ticket_view(reply))

    async def _mutate(
        self,
        name: str,
        now: _Now,
        idempotency: str | None,
        own_keys: list[str],
        own_args: list[str | int | float],
        actor: Actor = NOBODY,
    ) -> dict[str, Any]:
        k = self.keys
        idem_key = k.idempotency(idempotency or "unused")
        keys = [
            k.seq, k.events, idem_key, k.tickets, k.windows, k.open_windows,
            k.waiting_by_service, k.recent_calls,
            k.stats(now.day), k.service_times, k.estimates, k.waits,
            k.day, k.audit, k.parked, k.dispatch, k.persons, k.arrivals, k.notify, k.outbox,
            k.issued(now.day), *own_keys, *self._queue_keys,
        ]  # fmt: skip
        ttl = self._idem_ttl if idempotency else 0
        args = [
            now.ms, ttl, self._maxlen, len(self._group_ids), actor.label, now.hour,
            actor.role, actor.client, now.stale_ms, self._audit_keep_ms, *self._dispatch_args,
            self._notify_arg, *own_args, *self._group_ids,
        ]  # fmt: skip
        if self._min_replicas <= 0:
            raw = await self._call(self._scripts[name](keys=keys, args=args), name)
            return self._parse(raw)
        raw, acked = await self._call(self._replicated(name, keys, args), name)
        reply = self._parse(raw)  # a refusal wrote nothing: it needs no replica
        if acked < self._min_replicas:
            metrics.NOT_REPLICATED.labels(self.config.id).inc()
            raise Unavailable(
                "not_replicated",
                f"The change reached {acked} of the {self._min_replicas} replicas it needs; "
                "retry with the same Idempotency-Key.",
            )
        return reply

    async def _replicated(self, name: str, keys: list[str], args: list[Any]) -> tuple[str, int]:
        """The script, then WAIT on the same connection (a pipeline): a change
        is acknowledged only once `min_replicas` replicas have it. When they
        do not confirm within `wait_ms` the change stands on the primary but
        is not acknowledged (503 `not_replicated`), and the client's retry
        with the same idempotency key gets the first answer."""
        raw, acked = await run_and_wait(
            self.redis, self._scripts[name], keys, args, self._min_replicas, self._wait_ms
        )
        return str(raw), acked

    def _parse(self, raw: str) -> dict[str, Any]:
        reply: dict[str, Any] = json.loads(raw)
        if "err" in reply:
            if reply["err"] == "hall_closed":
                raise self._closed(self._now_ms(), _opt_int(reply.get("until")))
            if reply["err"] == "already_waiting":
                number = str(reply.get("number") or "")
                message = identity.held_message(number, self.config.language)
                raise Conflict("already_waiting", message, {"number": number})
            if reply["err"] == "recall_limit":
                limit = int(reply.get("limit") or 0)
                raise Conflict(
                    "recall_limit",
                    f"This ticket has been announced again {limit} times, the hall's limit; "
                    "mark it a no-show instead.",
                )
            if reply["err"] == "rate_limited":
                # The remote guard counts per local clock hour: free at its end.
                raise RateLimited(
                    "rate_limited",
                    "Too many remote tickets from here; try again later.",
                    retry_after_s=_seconds_to_next_hour(self._now_ms(), self.config),
                )
            if reply["err"] == "service_full":
                svc = self.config.service_by_id[str(reply.get("service"))]
                raise Conflict("service_full", _full_message(svc, self.config.language),
                               {"service": svc.id})  # fmt: skip
            raise _refusal(reply["err"])
        return reply

    def _calendar(self, now_ms: int) -> _Calendar:
        cal = self._cal
        if cal is not None and cal.from_ms <= now_ms < cal.until_ms:
            return cal
        hours, tz = self.config.hours, self.config.timezone
        state = calendar.hall_hours(hours, tz, now_ms)
        until = calendar.next_boundary(hours, tz, now_ms).at_ms
        if state.closes_at_ms is not None:
            until = min(until, state.closes_at_ms)
        latest = calendar.latest_boundary(hours, tz, now_ms)
        # Past a span's issue stop the state began at that stop, not at the
        # span's start: valid from now (the stop is no boundary).
        start = now_ms if state.in_span and not state.open else latest.at_ms
        cal = self._cal = _Calendar(start, until, state, latest.expire_before_ms)
        return cal

    def _closed(self, now_ms: int, closed_until_ms: int | None) -> Conflict:
        cfg = self.config
        state = calendar.hall_hours(cfg.hours, cfg.timezone, now_ms, closed_until_ms)
        message = calendar.closed_message(now_ms, state.opens_at_ms, cfg.timezone, cfg.language)
        return HallClosed(message, state.opens_at_ms)

    def _issuing(self, now: _Now) -> str:
        """'1' when the calendar lets the kiosk issue at `now`: the script
        refuses otherwise, after answering a retry (same key) with its ticket."""
        return "1" if self._calendar(now.ms).hours.open else "0"

    def _result(self, reply: dict[str, Any], value: T) -> Result[T]:
        replayed = bool(reply.get("replayed"))
        out = [] if replayed else (reply.get("out") or [])
        outcomes = tuple(_outcome(o) for o in out if o["type"] != _OUTBOX)
        if outcomes and self._observer is not None:
            self._observer(self.config.id, outcomes)
        if len(outcomes) < len(out):
            for o in out:
                if o["type"] == _OUTBOX:
                    metrics.NOTIFY_QUEUED.labels(self.config.id, o["kind"]).inc()
            if self._outbox_hook is not None:
                self._outbox_hook(self.config.id)
        return Result(value, replayed, outcomes)

    def _check_notify(self, notify: Notify | None) -> None:
        if notify is not None and not self.config.notify.enabled:
            raise Invalid(
                "notify_not_offered", "This hall has no gateway to send notifications through."
            )

    def _ticket_view(self, reply: dict[str, Any]) -> TicketView:
        pos = reply.get("pos")
        # ZRANK's nil arrives as JSON false, and a bool is an int: test exactly.
        position = int(pos) if type(pos) is int else None
        open_ids = reply.get("open") or []
        return TicketView(
            ticket_from_json(reply["t"]),
            position,
            frozenset(open_ids),
        )

    async def _call(self, awaitable: Any, name: str = "other") -> Any:
        return await timed(awaitable, name)

    async def _digest(self, kind: str, value: str) -> str:
        """A remote ticket's phone number or client address as it may reach
        Redis: an HMAC-SHA256 under the deployment key, of the kind, the hall
        (one phone's digest differs from hall to hall) and the value; 128
        bits kept. Keyed, since ~10^10 mobile numbers (or 2^32 IPv4
        addresses) are few enough to try every one against a plain hash."""
        if self._deployment_key is None:
            self._deployment_key = await load_audit_secret(self.redis)
        text = f"{kind}\x00{self.config.id}\x00{value}".encode()
        return hmac.new(self._deployment_key, text, hashlib.sha256).hexdigest()[:32]

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _now(self) -> _Now:
        ms = self._now_ms()
        day, hour = policy.local_day_and_hour(ms, self.config.timezone)
        return _Now(ms, day, hour, self._calendar(ms).stale_ms)

    def now_ms(self) -> int:
        """The store's clock, in epoch ms (tests move it)."""
        return self._now_ms()

    def _service(self, service: str) -> Service:
        svc = self.config.service_by_id.get(service)
        if svc is None:
            raise NotFound("service_not_found", f"This hall has no service {service!r}.")
        return svc

    def _window(self, window: str) -> Window:
        w = self.config.window_by_id.get(window)
        if w is None:
            raise NotFound("window_not_found", f"This hall has no window {window!r}.")
        return w


class _CodeTaken(QmsError):
    pass


class HallClosed(Conflict):
    """409 `hall_closed`: its message names the next opening in the hall's language."""

    def __init__(self, message: str, opens_at_ms: int | None) -> None:
        super().__init__("hall_closed", message)
        self.opens_at_ms = opens_at_ms


def _day_state(d: dict[str, Any]) -> DayState:
    return DayState(
        done_ms=int(d.get("done") or 0),
        expired_through_ms=int(d.get("expired_through") or 0),
        closed_until_ms=_opt_int(d.get("closed_until")),
        status=str(d["status"]) if d.get("status") else None,
    )


_REFUSALS: dict[str, tuple[type[QmsError], str]] = {
    "window_not_open": (Conflict, "The window is not open: open it before calling."),
    "no_current_ticket": (Conflict, "The window has no called ticket right now."),
    "number_not_waiting": (NotFound, "No ticket with that number is waiting."),
    "group_not_served": (Conflict, "That ticket belongs to a group this window does not serve."),
    "ticket_not_found": (NotFound, "There is no such ticket."),
    "ticket_not_waiting": (
        Conflict,
        "The ticket is no longer waiting: it was called, ended or expired.",
    ),
    "already_snoozed": (Conflict, "This ticket has already been put off once."),
    "appointment_not_found": (NotFound, "There is no appointment with that code."),
    "already_checked_in": (Conflict, "This appointment is already checked in."),
    "appointment_changed": (Conflict, "The appointment changed during check-in; try again."),
    "code_taken": (_CodeTaken, "That appointment code is taken."),
    "not_completed": (Conflict, "Only a completed visit can be rated."),
    "already_rated": (Conflict, "This visit has already been rated."),
    "remote_quota_exhausted": (
        Conflict,
        "Today's remote tickets for this service are all taken; please take one at the hall.",
    ),
    "phone_has_ticket": (Conflict, "This phone number already holds a ticket that is waiting."),
    "number_not_parked": (NotFound, "No ticket with that number is parked."),
    "late_return_closed": (
        Conflict,
        "This ticket can no longer rejoin the queue: only a missed call, once, "
        "within the hall's late-return time.",
    ),
}


def _full_message(service: Service, language: str) -> str:
    if language == "zh":
        return f"“{service.name}”今天的号已经取完，请改日再来。"
    return f"Today's tickets for {service.name} are all taken; please come back another day."


_OUTBOX = "outbox"
"""The `out` entry of a script that appended a delivery to the outbox."""


def _notify_args(notify: Notify | None) -> list[str | int | float]:
    return ["", ""] if notify is None else [notify.to, notify.via]


def _durations(raw: str) -> tuple[int, ...]:
    """A service's recent visit times: "412000,385000" (or, written by an
    older qms, a JSON array)."""
    if raw.startswith("["):
        return tuple(int(x) for x in json.loads(raw))
    return tuple(int(x) for x in raw.split(",") if x)


LIMIT_WINDOW_MS = 60_000
"""`[limits]` counts requests in fixed windows of one minute."""


async def timed(awaitable: Any, name: str = "other") -> Any:
    """A Redis call, `guarded`, its round trip counted by name
    (`qms_redis_command_seconds`): how every Redis call of the store goes."""
    started = time.perf_counter()
    try:
        return await guarded(awaitable)
    finally:
        metrics.REDIS_LATENCY.labels(name).observe(time.perf_counter() - started)


def _refusal(code: str) -> QmsError:
    cls, message = _REFUSALS.get(code, (Conflict, "The operation was refused."))
    return cls(code, message)


def parse_audit(raw: object) -> list[AuditEntry]:
    """An XRANGE reply of the audit stream as `AuditEntry`s, oldest first."""
    out = []
    for entry_id, fields in cast(list[tuple[object, dict[object, object]]], raw or []):
        f = {_text(k): _text(v) for k, v in fields.items()}
        out.append(
            AuditEntry(
                id=_text(entry_id),
                at_ms=int(f["at"]),
                actor=f.get("actor", ""),
                role=f.get("role", ""),
                action=f.get("action", ""),
                window=f.get("window") or None,
                number=f.get("number") or None,
                client=f.get("client", ""),
                reason=f.get("reason") or None,
                ahead_of=int(f["ahead"]) if f.get("ahead") else None,
            )
        )
    return out


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _seconds_to_next_hour(now_ms: int, config: HallConfig) -> int:
    local = datetime.fromtimestamp(now_ms / 1000, config.timezone)
    top = local.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return max(1, math.ceil((top.timestamp() * 1000 - now_ms) / 1000))


def _local_date(now: _Now) -> date:
    """The hall's local day of `now`."""
    return date(int(now.day[:4]), int(now.day[4:6]), int(now.day[6:]))


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def ticket_from_json(d: dict[str, Any]) -> Ticket:
    """A ticket from its JSON in the tickets hash (the one mapping from Redis to `Ticket`)."""
    return Ticket(
        id=d["id"],
        number=d["number"],
        service=d["service"],
        group=d["group"],
        priority=d["priority"],
        status=TicketStatus(d["status"]),
        issued_ms=int(d["issued"]),
        effective_ms=float(d["e"]),
        called_ms=_opt_int(d.get("called")),
        window=d.get("window"),
        finished_ms=_opt_int(d.get("done")),
        appointment=d.get("appt"),
        rating=d.get("rating"),
        rating_reason=d.get("reason"),
        rated_ms=_opt_int(d.get("rated")),
        remote=bool(d.get("remote")),
        clerk=d.get("clerk"),
        recalls=int(d.get("recalls") or 0),
        parked_ms=_opt_int(d.get("parked")),
        parked_window=d.get("parked_at"),
        rejoined_ms=_opt_int(d.get("rejoined")),
        why=_why(d),
        notify=bool(d.get("nt")),
        snoozed_until_ms=_opt_int(d.get("snoozed")),
    )


def _why(d: dict[str, Any]) -> CallReason | None:
    why = d.get("why")
    if not isinstance(why, dict):
        return None
    return CallReason(str(why["code"]), int(why.get("ahead") or 0), d["priority"])


def _outcome(o: dict[str, Any]) -> OutcomeEvent:
    return OutcomeEvent(
        type=EventType(o["type"]),
        service=o.get("service", ""),
        priority=o.get("priority", ""),
        group=o.get("group", ""),
        wait_ms=_opt_int(o.get("wait")),
        service_ms=_opt_int(o.get("dur")),
    )
