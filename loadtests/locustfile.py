"""Locust scenarios: a county hall's devices against one qms.

    locust -f loadtests/locustfile.py --headless --host http://127.0.0.1:8000 \\
           --run-time 3m --csv loadtests/results/county \\
           --html loadtests/results/county.html --exit-code-on-error 1 \\
           [--qms-shape county|stress] [--qms-speedup K]

or `python -m loadtests.county`, which starts the qms to test as well. The
hall is `loadtests/county_hall.toml` (`--qms-config` for another; its plain
tokens are used, or QMS_LOAD_KIOSK_TOKEN / QMS_LOAD_DISPLAY_TOKEN /
QMS_LOAD_CLERK_TOKEN). The options this file adds, each also read from an
environment variable (locust's `--help` does not list them):

    --qms-shape county|stress   QMS_LOAD_SHAPE     (county)
    --qms-speedup K             QMS_LOAD_SPEEDUP   (1: real time)
    --qms-config PATH           QMS_LOAD_CONFIG    (loadtests/county_hall.toml)
    --qms-kiosks N              QMS_LOAD_KIOSKS    (4)
    --qms-phones N              QMS_LOAD_PHONES    (200)
    --qms-step-seconds S        QMS_LOAD_STEP_S    (stress: 15)
    --qms-p99-ms MS             QMS_LOAD_P99_MS    (stress: 100)

The users are the hall's devices:

- KioskUser (4, more when the rate needs them): issues tickets as a Poisson
  process at the hall's arrival rate, services and priorities drawn from the
  county's mix, each with an `Idempotency-Key`; a connection error or 5xx is
  retried with the SAME key (the failed attempt still counts as a failure).
  One issue in fifty is sent twice on purpose ("issue replay"): the replay
  must return the same ticket.
- ClerkUser (one per window, 30): opens its window, then call-next → a
  service time (gamma around the service's expected minutes, CV 0.5) →
  complete; 5% of calls need a recall first, 4% end in a no-show, 3% in a
  transfer to another service. Nobody waiting (204): call again after 20 s.
- ScreenUser (the hall display and a strip per window, 31): holds a
  WebSocket (`loadtests/locust_ws.py`: websockets' Sans-I/O protocol in the
  user's own greenlet; `websockets.sync.client` can abort a gevent process
  when it closes a socket whose reader fell behind), checks that
  `seq` rises by exactly one (a gap, duplicate or a heartbeat ahead of the
  screen is a failure of "WS seq"), and reports call-to-screen latency
  (arrival minus the frame's server `at`, for `called` and `recalled`) as
  request type "WS", name "call→screen". A dropped socket is a failure of
  "WS disconnect" and is reopened with `since=<last seq>`. When the test
  stops, every screen must have reached the latest event any screen saw:
  one "WS seq" success per screen (content size: events it saw), a failure
  for a screen left behind.
- PhoneUser (a pool of 200): 60% of issued tickets are followed on a phone
  polling GET /tickets/{id} ("ticket poll") until called, at the visitor
  page's rhythm (2 s on screen, 0.6 s when 3 or fewer are ahead, 15 s
  hidden; on screen a third of the time).

Shapes (one LoadTestShape, `--qms-shape` picks the plan):

- county: 3,000 visitors a day, 25% of them in the 9-10 o'clock peak: 750
  tickets in the hour, 0.208 a second at real time. `--qms-speedup K`
  compresses the hall's clock: arrivals x K (2.08/s at K = 10), service
  times and the clerks' pauses / K (an 8-minute service: 48 s at K = 10),
  so 6 wall minutes at K = 10 are the whole peak hour. Phones keep the
  page's wall-clock rhythm: their number (0.6 x the waiting tickets, which
  by Little's law does not depend on K) and so their request rate are the
  real peak's. The 30 windows serve about 30 x 60 / 8.4 = 214 visitors an
  hour at the demo's expected minutes (8.4 on average over the mix), so the
  queue grows by about 540 an hour through the peak, as a real one does.
  The shape runs all devices until one peak hour of hall time has passed
  (3600 / K s) or `--run-time` ends it.
- stress: the county at speed K, then every `--qms-step-seconds` (15) a
  level x sqrt(2) busier: arrivals and clerk pace x m, phones poll x m
  faster, kiosks added past 5 issues/s each. Clerks take 214/750 of the
  expected minutes, serving visitors as fast as they arrive, so what grows
  is the request rate, not the queue: the county's backlog, sped up by
  every level, would pass 10,000 waiting tickets, which no hall has. A
  level holds if it had no failure and the p99 of its HTTP requests (GET
  and POST, not WS) stayed within `--qms-p99-ms` (100). The test stops at
  the first failure or at the end of the first level that did not hold,
  logs the last level that held, and writes every level to
  `<csv prefix>_levels.csv`.

One process only (no `--processes`, no workers): windows are handed out
and tickets passed to phones within the process.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import random
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import gevent  # type: ignore[import-untyped]
from gevent.queue import Empty, Queue  # type: ignore[import-untyped]
from locust import LoadTestShape, User, constant, events, task
from locust.contrib.fasthttp import FastHttpUser
from locust.env import Environment
from locust.exception import StopUser
from websockets.exceptions import WebSocketException

from loadtests import locust_hall as lh
from loadtests.locust_ws import GreenWebSocket

log = logging.getLogger("qms.load")

SPAWN_RATE = 100.0
RETRIES = 3
"""A kiosk or clerk request that met a connection error or a 5xx is sent
again this many times, with the same Idempotency-Key."""
RETRY_BACKOFF_S = (0.25, 0.5, 1.0)
REPLAY_SHARE = 0.02
PHONE_RETRIES = 3
WS_OPEN_TIMEOUT_S = 10.0
WS_CLOSE_TIMEOUT_S = 2.0
WS_RECONNECT_S = (0.2, 0.5, 1.0, 2.0, 5.0)
SCREENS_IN_STEP_S = 2.0
"""At the end, how long the screens get to reach the latest event any of them saw."""
CSV_LAST_WRITE_S = 1.3
"""Longer than locust's CSV_STATS_INTERVAL_SEC (1 s)."""
CALL_TYPES = frozenset({"called", "recalled"})
EVENT_TYPES = frozenset(
    {"issued", "called", "recalled", "completed", "no_show", "transferred", "cancelled", "window"}
)


class ScreenError(Exception):
    """A screen saw something the contract rules out (seq gap, duplicate …)."""


# ------------------------------------------------------------- run state


@dataclass
class Load:
    """One run's settings and the state its users share."""

    plan: lh.HallPlan
    shape: str
    speedup: float
    kiosks: int
    phones: int
    step_s: float
    p99_ms: float
    multiplier: float = 1.0
    """The stress level's load over the county peak (1 for the county shape)."""
    service_factor: float = 1.0
    """Clerks' time per visitor over the expected minutes (stress: < 1)."""
    kiosks_live: int = 0
    windows: Any = field(default_factory=Queue)
    screens: Any = field(default_factory=Queue)
    follow: Any = field(default_factory=Queue)
    """Ids of issued tickets waiting for a phone to follow them."""
    followed: int = 0
    watching: set[ScreenUser] = field(default_factory=set)

    @property
    def speed(self) -> float:
        return self.speedup * self.multiplier

    @property
    def api(self) -> str:
        return f"/api/v1/halls/{self.plan.hall}"

    def kiosks_now(self) -> int:
        return lh.kiosks_for(lh.arrivals_per_s(self.speed), self.kiosks)

    def users_for(self, kiosks: int) -> int:
        """Every fixed device (clerks, screens, phones) plus `kiosks`."""
        windows = len(self.plan.windows)
        return windows + (1 + windows) + self.phones + kiosks


_load: Load | None = None


def current() -> Load:
    if _load is None:
        raise RuntimeError("the locustfile's init listener has not run")
    return _load


def _options(parser: Any, **_: Any) -> None:
    group = parser.add_argument_group("qms hall")
    group.add_argument(
        "--qms-shape",
        choices=("county", "stress"),
        default="county",
        env_var="QMS_LOAD_SHAPE",
        help="county: the hall's peak hour; stress: ramp until an error or p99 over the limit",
    )
    group.add_argument(
        "--qms-speedup",
        type=float,
        default=1.0,
        env_var="QMS_LOAD_SPEEDUP",
        help="hall seconds per wall second: arrivals x K, service times / K",
    )
    group.add_argument(
        "--qms-config", default=str(lh.CONFIG), env_var="QMS_LOAD_CONFIG", help="hall config"
    )
    group.add_argument("--qms-kiosks", type=int, default=lh.KIOSKS, env_var="QMS_LOAD_KIOSKS")
    group.add_argument("--qms-phones", type=int, default=lh.PHONES, env_var="QMS_LOAD_PHONES")
    group.add_argument(
        "--qms-step-seconds", type=float, default=lh.STRESS_STEP_S, env_var="QMS_LOAD_STEP_S"
    )
    group.add_argument(
        "--qms-p99-ms", type=float, default=lh.STRESS_P99_MS, env_var="QMS_LOAD_P99_MS"
    )


def _on_init(environment: Environment, **_: Any) -> None:
    global _load
    opts = environment.parsed_options
    if opts is None:
        raise RuntimeError("this locustfile runs from the locust command line")
    if opts.qms_speedup <= 0 or opts.qms_kiosks < 1 or opts.qms_phones < 1:
        raise SystemExit("qms: --qms-speedup must be > 0, --qms-kiosks and --qms-phones >= 1")
    plan = lh.HallPlan.load(Path(opts.qms_config))
    load = Load(
        plan=plan,
        shape=opts.qms_shape,
        speedup=opts.qms_speedup,
        kiosks=opts.qms_kiosks,
        phones=opts.qms_phones,
        step_s=opts.qms_step_seconds,
        p99_ms=opts.qms_p99_ms,
    )
    if load.shape == "stress":
        load.service_factor = lh.balanced_service_factor(plan)
    for w in plan.windows:
        load.windows.put(w)
    load.screens.put(("display", None))
    for w in plan.windows:
        load.screens.put(("strip", w))
    # Fixed devices are spawned first; kiosks, the only weighted class, are
    # what the shape's user count adds on top.
    ClerkUser.fixed_count = len(plan.windows)
    ScreenUser.fixed_count = 1 + len(plan.windows)
    PhoneUser.fixed_count = load.phones
    _load = load
    hooks(environment).test_stopping.add_listener(_screens_in_step)
    hooks(environment).quitting.add_listener(_on_quitting)
    log.info(
        "hall %s: %d windows serving about %.0f visitors/h; peak arrivals %.2f/s at speed %g; "
        "clerks take %.2f x the expected minutes",
        plan.hall,
        len(plan.windows),
        plan.served_per_hour(),
        lh.arrivals_per_s(load.speed),
        load.speed,
        load.service_factor,
    )


def _screens_in_step(environment: Environment, **_: Any) -> None:
    """Every screen still watching must reach the latest event any screen saw:
    a screen that silently stopped getting frames shows no gap by itself."""
    load = current()
    screens = list(load.watching)
    if not screens:
        return
    target = max(s.tracker.last or 0 for s in screens)
    deadline = time.monotonic() + SCREENS_IN_STEP_S
    while time.monotonic() < deadline and any((s.tracker.last or 0) < target for s in screens):
        gevent.sleep(0.05)
    behind = 0
    for screen in screens:
        last = screen.tracker.last or 0
        error = None
        if last < target:
            behind += 1
            error = ScreenError(f"a screen stopped behind the hall: at seq {last} of {target}")
        hooks(environment).request.fire(
            request_type="WS",
            name="seq",
            response_time=0,
            response_length=screen.tracker.events,
            exception=error,
            context={"screen": screen.screen_id},
        )
    log.info("screens: %d of %d in step at seq %d", len(screens) - behind, len(screens), target)


def _on_quitting(environment: Environment, **_: Any) -> None:
    load = current()
    log.info(
        "phones: %d tickets followed, %d still waiting for a phone",
        load.followed,
        load.follow.qsize(),
    )
    opts = environment.parsed_options
    if getattr(opts, "csv_prefix", None):
        # Locust rewrites its CSV files once a second and closes them at exit
        # without a last write, so what happened in the last second (the
        # screens' final check among it) would be missing from them.
        gevent.sleep(CSV_LAST_WRITE_S)


# ----------------------------------------------------------------- users


class HallHttpUser(FastHttpUser):
    """A device that talks HTTP to the hall's API."""

    abstract = True
    network_timeout = 10.0
    connection_timeout = 5.0

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.rng = random.Random()

    def post_op(
        self,
        path: str,
        name: str,
        token: str,
        body: Mapping[str, Any] | None = None,
        ok: tuple[int, ...] = (200,),
        key: str | None = None,
    ) -> tuple[int, dict[str, Any] | None]:
        """POST with an Idempotency-Key, retried with the same key on a
        connection error or 5xx (as a kiosk must). Returns (status, body)."""
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key or uuid.uuid4().hex}
        status = 0
        for attempt in range(RETRIES + 1):
            with self.client.post(
                f"{current().api}{path}",
                name=name,
                json=body,
                data="" if body is None else None,  # no body: still "Content-Length: 0"
                headers=headers,
                catch_response=True,
            ) as resp:
                status = int(resp.status_code or 0)
                if status in ok:
                    resp.success()
                    return status, _json_object(resp.content) if status != 204 else None
                resp.failure(f"{status} {_error_code(resp.content)}")
            if status and status < 500:
                break
            if attempt < RETRIES:
                gevent.sleep(RETRY_BACKOFF_S[min(attempt, len(RETRY_BACKOFF_S) - 1)])
        return status, None


def _json_object(raw: bytes | None) -> dict[str, Any] | None:
    try:
        value = json.loads(raw or b"null")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _error_code(raw: bytes | None) -> str:
    body = _json_object(raw)
    error = body.get("error") if body else None
    return str(error.get("code")) if isinstance(error, dict) else "(no error body)"


class KioskUser(HallHttpUser):
    """Issues tickets: Poisson arrivals at the hall's rate, shared by all kiosks."""

    weight = 1

    def on_start(self) -> None:
        current().kiosks_live += 1
        self._next_s = time.monotonic()

    def on_stop(self) -> None:
        current().kiosks_live -= 1

    def wait_time(self) -> float:
        load = current()
        rate = lh.arrivals_per_s(load.speed) / max(1, load.kiosks_live)
        now = time.monotonic()
        # A kiosk that fell behind (a slow answer) catches up, but not with a
        # burst of more than a second's worth of arrivals.
        self._next_s = max(self._next_s, now - 1.0) + self.rng.expovariate(rate)
        return max(0.0, self._next_s - now)

    @task
    def issue(self) -> None:
        load = current()
        service = load.plan.pick_service(self.rng)
        body: dict[str, Any] = {"service": service.id}
        priority = lh.pick_priority(self.rng)
        if priority:
            body["priority"] = priority
        key = uuid.uuid4().hex
        _, ticket = self.post_op("/tickets", "issue", load.plan.kiosk_token, body, (201,), key)
        if ticket is None:
            return
        if self.rng.random() < lh.PHONE_SHARE:
            load.follow.put(ticket["id"])
        if self.rng.random() < REPLAY_SHARE:
            self._replay(body, key, ticket)

    def _replay(self, body: Mapping[str, Any], key: str, first: Mapping[str, Any]) -> None:
        """The same key again (a kiosk that lost the answer): the same ticket."""
        load = current()
        headers = {"Authorization": f"Bearer {load.plan.kiosk_token}", "Idempotency-Key": key}
        with self.client.post(
            f"{load.api}/tickets",
            name="issue replay",
            json=dict(body),
            headers=headers,
            catch_response=True,
        ) as resp:
            again = _json_object(resp.content)
            if resp.status_code not in (200, 201):
                resp.failure(f"{resp.status_code} {_error_code(resp.content)}")
            elif again is None or again.get("id") != first["id"]:
                resp.failure(f"replay answered another ticket: {again}")
            else:
                resp.success()


class ClerkUser(HallHttpUser):
    """One window's clerk: call-next → serve → complete, with the odd recall,
    no-show and transfer."""

    wait_time = constant(0)

    def on_start(self) -> None:
        load = current()
        try:
            self.window: str = load.windows.get_nowait()
        except Empty:
            raise StopUser() from None
        self.token = load.plan.clerk_tokens[self.window]
        self.open_window()

    def on_stop(self) -> None:
        with contextlib.suppress(AttributeError):
            current().windows.put(self.window)

    def op(self, action: str, body: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        return self.post_op(f"/windows/{self.window}/{action}", action, self.token, body)[1]

    def open_window(self) -> None:
        self.op("open")

    def pause(self, hall_s: float) -> None:
        gevent.sleep(lh.wall_s(hall_s, current().speed))

    @task
    def serve_next(self) -> None:
        load = current()
        status, ticket = self.post_op(
            f"/windows/{self.window}/call-next", "call-next", self.token, None, (200, 204)
        )
        if status == 409:
            self.open_window()  # closed behind our back (a restart with another hall state)
        if ticket is None:
            self.pause(lh.IDLE_RETRY_HALL_S)
            return
        service = load.plan.service_by_id.get(str(ticket.get("service")))
        minutes = service.expected_minutes if service else 8.0
        outcome = lh.clerk_outcome(self.rng)
        if outcome == "no_show":
            self.pause(lh.NO_SHOW_AFTER_HALL_S * load.service_factor)
            self.op("no-show")
            return
        if outcome == "recall":
            self.pause(lh.RECALL_AFTER_HALL_S * load.service_factor)
            self.op("recall")
        serve_s = lh.service_wall_s(minutes * load.service_factor, load.speed, self.rng)
        if outcome == "transfer":
            gevent.sleep(serve_s / 3)
            target = load.plan.transfer_target(str(ticket.get("service")), self.rng)
            self.op("transfer", {"service": target.id})
            return
        gevent.sleep(serve_s)
        self.op("complete")


class PhoneUser(HallHttpUser):
    """A visitor's phone: follows one ticket until it is called, then the next."""

    wait_time = constant(0)

    @task
    def follow(self) -> None:
        load = current()
        ticket_id = load.follow.get()
        load.followed += 1
        failures = 0
        while True:
            with self.client.get(
                f"{load.api}/tickets/{ticket_id}", name="ticket poll", catch_response=True
            ) as resp:
                ticket = _json_object(resp.content) if resp.status_code == 200 else None
                if ticket is not None:
                    resp.success()
                else:
                    resp.failure(f"{resp.status_code} {_error_code(resp.content)}")
            if ticket is None:
                failures += 1
                if failures > PHONE_RETRIES or resp.status_code == 404:
                    return
                gevent.sleep(2.0 * 2 ** (failures - 1))  # the page's backoff
                continue
            failures = 0
            if ticket.get("status") != "waiting":
                return
            position = ticket.get("position")
            gevent.sleep(
                lh.phone_delay_s(
                    position if isinstance(position, int) else None, self.rng, load.multiplier
                )
            )


class ScreenUser(User):
    """A hall display or window strip on the WebSocket."""

    wait_time = constant(0)

    def on_start(self) -> None:
        load = current()
        try:
            self.page, self.window = load.screens.get_nowait()
        except Empty:
            raise StopUser() from None
        self.screen_id = f"load-{self.page}" + (f"-{self.window}" if self.window else "")
        self.tracker = lh.SeqTracker()
        self.asked_since: int | None = None
        load.watching.add(self)

    def on_stop(self) -> None:
        load = current()
        load.watching.discard(self)
        load.screens.put((self.page, self.window))

    def url(self, since: int | None) -> str:
        load = current()
        query: dict[str, str] = {
            "token": load.plan.display_token,
            "format": "json",
            "screen": self.screen_id,
            "page": self.page,
        }
        if self.window:
            query["window"] = self.window
        if since is not None:
            query["since"] = str(since)
        base = (self.host or "").rstrip("/")
        base = "ws" + base.removeprefix("http") if base.startswith("http") else base
        return f"{base}/ws/halls/{load.plan.hall}/display?{urlencode(query)}"

    def fire(
        self, name: str, response_time: float, length: int, error: Exception | None = None
    ) -> None:
        hooks(self.environment).request.fire(
            request_type="WS",
            name=name,
            response_time=response_time,
            response_length=length,
            exception=error,
            context={"screen": self.screen_id},
        )

    @task
    def watch(self) -> None:
        """Hold the socket; when it drops, reopen it from the last seq seen."""
        failed_opens = 0
        while True:
            since = self.tracker.last
            started = time.perf_counter()
            opened = False
            try:
                ws = GreenWebSocket.connect(self.url(since), WS_OPEN_TIMEOUT_S, WS_CLOSE_TIMEOUT_S)
                opened = True
                self.fire("connect", (time.perf_counter() - started) * 1000, 0)
                self.asked_since = since
                self.receive(ws)
            except (OSError, WebSocketException) as e:
                # ConnectionClosed included: qms closes a screen only when it
                # falls behind (1013) or the replica stops (1001); either
                # way the screen comes back with since=<last seq>.
                self.fire("disconnect" if opened else "connect", 0, 0, e)
            failed_opens = 0 if opened else failed_opens + 1
            gevent.sleep(WS_RECONNECT_S[min(failed_opens, len(WS_RECONNECT_S) - 1)])

    def receive(self, ws: GreenWebSocket) -> None:
        try:
            while True:
                raw = ws.recv()
                self.on_frame(raw, time.time())
        finally:
            # However the loop ends (the user stopped, the socket dropped),
            # a normal close: a screen switched off is not an error.
            ws.close()

    def on_frame(self, raw: str | bytes, arrived_s: float) -> None:
        frame = _json_object(raw if isinstance(raw, bytes) else raw.encode())
        if frame is None:
            self.fire("frame", 0, len(raw), ScreenError(f"not a JSON object: {raw[:80]!r}"))
            return
        kind = frame.get("type")
        seq = frame.get("seq")
        if not isinstance(seq, int):
            return  # a frame type this screen does not know: ignored, as the contract says
        problem: str | None = None
        if kind == "snapshot":
            since = self.asked_since
            if since is not None and seq > since:
                problem = f"reconnect from {since} answered with a snapshot at {seq}"
            self.tracker.start(seq)
        elif kind == "heartbeat":
            problem = self.tracker.heartbeat(seq)
        elif kind in EVENT_TYPES:
            problem = self.tracker.event(seq)
            if kind in CALL_TYPES:
                latency_ms = (arrived_s - lh.parse_at(str(frame["at"]))) * 1000
                self.fire("call→screen", max(0.0, latency_ms), len(raw))
        if problem:
            self.fire("seq", 0, len(raw), ScreenError(problem))


# ----------------------------------------------------------------- shapes


@dataclass
class StressRun:
    """The stress plan's state: the level running and those that held."""

    level: lh.StressLevel
    held: list[lh.StressLevel] = field(default_factory=list)

    def on_request(
        self, request_type: str, response_time: float, exception: Exception | None, **_: Any
    ) -> None:
        error = None if exception is None else str(exception)
        self.level.record(request_type, response_time, error)


class HallShape(LoadTestShape):
    """County or stress, as `--qms-shape` says (one shape class per file is
    what headless locust runs without a class picker)."""

    # Headless locust only starts its --run-time timer once a shape has
    # finished, so the shape reads --run-time itself (and this also keeps
    # locust from warning that the option does not apply to shapes).
    use_common_options = True

    stress: StressRun | None = None

    def run_time_s(self) -> float:
        # LoadTestShape.get_run_time, which locust leaves untyped.
        return time.perf_counter() - float(self.start_time)

    def run_time_limit_s(self) -> float | None:
        opts = self.runner.environment.parsed_options if self.runner else None
        limit = getattr(opts, "run_time", None)
        return float(limit) if limit else None

    def tick(self) -> tuple[int, float] | None:
        load = current()
        now = self.run_time_s()
        limit = self.run_time_limit_s()
        if load.shape == "stress":
            return self.stress_tick(load, now, limit)
        if now >= 3600 / load.speedup:
            log.info("county: one peak hour of hall time has passed")
            return None
        if limit is not None and now >= limit:
            log.info("county: --run-time reached")
            return None
        return load.users_for(load.kiosks_now()), SPAWN_RATE

    def stress_tick(self, load: Load, now: float, limit: float | None) -> tuple[int, float] | None:
        if self.stress is None:
            self.stress = StressRun(lh.StressLevel(0, 1.0, now))
            if self.runner is not None:
                hooks(self.runner.environment).request.add_listener(self.stress.on_request)
        run = self.stress
        level = run.level
        if self.runner is not None:
            cpu = float(self.runner.current_cpu_usage)
            level.client_cpu_pct = max(level.client_cpu_pct or 0.0, cpu)
        complete = now - level.started_s >= load.step_s
        why_not = level.broken(load.p99_ms, complete)
        if why_not is not None:
            self.stress_end(load, now, broke=level, why=why_not)
            return None
        if complete:
            level.finish(now)
            run.held.append(level)
            log.info(
                "stress: level %d (x%.2f, %.1f issues/s) held: %d HTTP requests, p99 %s ms",
                level.level,
                level.multiplier,
                lh.arrivals_per_s(load.speedup * level.multiplier),
                len(level.http_ms),
                _ms(level.p99()),
            )
            if level.level >= lh.STRESS_MAX_LEVEL:
                self.stress_end(load, now, broke=None, why="the last level held too")
                return None
            nxt = level.level + 1
            run.level = lh.StressLevel(nxt, lh.stress_multiplier(nxt), now)
            load.multiplier = run.level.multiplier
        if limit is not None and now >= limit:
            self.stress_end(load, now, broke=None, why="--run-time reached first")
            return None
        return load.users_for(load.kiosks_now()), SPAWN_RATE

    def stress_end(self, load: Load, now: float, broke: lh.StressLevel | None, why: str) -> None:
        """Log and print the last level that held, write every level to
        `<csv prefix>_levels.csv`."""
        run = self.stress
        assert run is not None
        if broke is not None:
            broke.finish(now)
        last = run.held[-1] if run.held else None
        if last is None:
            verdict = "stress: no level held"
        else:
            verdict = (
                f"stress: last level that held: {last.level} (x{last.multiplier:.2f} the county "
                f"peak at speed {load.speedup:g}: "
                f"{lh.arrivals_per_s(load.speedup * last.multiplier):.1f} issues/s, HTTP p99 "
                f"{_ms(last.p99())} ms)"
            )
        if broke is not None:
            verdict += f"; level {broke.level} (x{broke.multiplier:.2f}) did not: {why}"
        else:
            verdict += f"; stopped: {why}"
        log.warning(verdict)
        print(verdict, flush=True)
        opts = self.runner.environment.parsed_options if self.runner else None
        prefix = getattr(opts, "csv_prefix", None)
        if prefix:
            with Path(f"{prefix}_levels.csv").open("w", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, fieldnames=lh.STRESS_CSV_FIELDS)
                writer.writeheader()
                for level in run.held:
                    writer.writerow(lh.stress_row(level, load.speedup, True, ""))
                if broke is not None:
                    writer.writerow(lh.stress_row(broke, load.speedup, False, why))


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def hooks(environment: Environment | None = None) -> Any:
    """Locust's event hooks (untyped in locust): the environment's, or the
    module-level ones before an environment exists."""
    return events if environment is None else environment.events


hooks().init_command_line_parser.add_listener(_options)
hooks().init.add_listener(_on_init)
