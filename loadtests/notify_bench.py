"""How long a notification takes to reach the hall's gateway, at the
county's peak and through a gateway outage.

    python -m loadtests.notify_bench [--speed 10] [--minutes 2] [--outage-s 60]
                                     [--recovery-s 150] [--json PATH]

Starts a webhook receiver (`loadtests.webhook_receiver`) and `qms serve`
with the county hall (`loadtests/county_hall.toml`, 30 windows) plus a
`[notify]` section pointing at it (`ahead = [5, 1]`), its embedded Redis
with `appendfsync everysec`. Then it plays the hall's 9-10 o'clock peak at
`--speed` times real time: 750 visitors an hour, every one asking to be
told (the worst case for the outbox), and the 30 windows calling as fast as
they serve (about 210 an hour). Each delivery's delay is its arrival at the
receiver minus its `at` (the change that caused it, same machine clock).

1. `county`: `--minutes` of the peak with the gateway answering 200.
2. `outage`: the gateway answers 503 for `--outage-s` while the peak goes
   on, then 200 again; the run continues `--recovery-s` so the retries
   land. Deliveries caused during the outage are reported apart.

Afterwards it reads qms's /metrics and checks what was queued against what
arrived: each delivery id arrived (2xx) exactly once or was dropped (its
ticket no longer waited or was called by the time it went), none was lost
and none is left in the outbox.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from loadtests import locust_hall as lh
from loadtests.serve_process import HOST, ServeProcess, free_port, percentile
from loadtests.webhook_receiver import Received, WebhookReceiver

SECRET = "notify-bench-secret-0123456789abcdef"
STARTUP_TIMEOUT_S = 30.0
DEFAULT_JSON = Path(__file__).with_name("results") / "notify_bench.json"


@dataclass
class Phase:
    name: str
    deliveries: int
    p50_ms: float
    p99_ms: float
    max_ms: float


@dataclass
class Report:
    speed: float
    seconds: float
    tickets: int
    calls: int
    queued: int
    arrived_once: int
    arrived_twice: int
    dropped: int
    retries: int
    left_in_outbox: int
    lost: int
    phases: list[Phase]


def hall_config(workdir: Path, url: str) -> Path:
    text = lh.CONFIG.read_text(encoding="utf-8")
    text += f'\n[notify]\nurl = "{url}"\nahead = [5, 1]\n'
    path = workdir / "county_notify.toml"
    path.write_text(text, encoding="utf-8")
    return path


async def start_qms(workdir: Path, config: Path) -> ServeProcess:
    port = free_port()
    cmd = [
        sys.executable, "-m", "qms", "serve", "--config", str(config), "--host", HOST,
        "--port", str(port), "--data-dir", str(workdir / "data"), "--fsync", "everysec",
    ]  # fmt: skip
    log = workdir / "qms.log"
    server = ServeProcess(
        ServeProcess.spawn(cmd, log, env={"QMS_NOTIFY_SECRET": SECRET}), port, log
    )
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    async with httpx.AsyncClient(timeout=2) as client:
        while True:
            if server.proc.poll() is not None:
                raise RuntimeError(f"qms serve exited: {server.log_tail()}")
            try:
                if (await client.get(f"http://{HOST}:{port}/readyz")).status_code == 200:
                    return server
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"qms serve not ready: {server.log_tail()}")
            await asyncio.sleep(0.2)


class Peak:
    """The county's peak hour at `speed`: issues with `notify` and calls,
    each on its own Poisson clock."""

    def __init__(self, client: httpx.AsyncClient, plan: lh.HallPlan, speed: float) -> None:
        self.client = client
        self.plan = plan
        self.api = f"/api/v1/halls/{plan.hall}"
        self.issue_rate = lh.PEAK_ARRIVALS_PER_HOUR / 3600 * speed
        self.call_rate = plan.served_per_hour() / 3600 * speed
        self.rng = random.Random(17)
        self.tickets = 0
        self.calls = 0
        self.errors: list[str] = []

    async def open_windows(self) -> None:
        for w, token in self.plan.clerk_tokens.items():
            r = await self.client.post(f"{self.api}/windows/{w}/open", headers=_bearer(token))
            r.raise_for_status()

    async def issue(self) -> None:
        service = self.plan.pick_service(self.rng)
        phone = f"139{self.rng.randrange(10**8):08d}"
        r = await self.client.post(
            f"{self.api}/tickets",
            json={"service": service.id, "notify": {"phone": phone}},
            headers=_bearer(self.plan.kiosk_token),
        )
        if r.status_code == 201:
            self.tickets += 1
        else:
            self.errors.append(f"issue {r.status_code}")

    async def call(self) -> None:
        w = self.rng.choice(self.plan.windows)
        token = self.plan.clerk_tokens[w]
        r = await self.client.post(f"{self.api}/windows/{w}/call-next", headers=_bearer(token))
        if r.status_code in (200, 204):
            self.calls += 1
        else:
            self.errors.append(f"call {r.status_code}")

    async def run(self, seconds: float) -> None:
        async def every(rate: float, step: Callable[[], Awaitable[None]]) -> None:
            end = time.monotonic() + seconds
            while True:
                wait = self.rng.expovariate(rate)
                if time.monotonic() + wait > end:
                    return
                await asyncio.sleep(wait)  # the visitors' own pace
                await step()

        await asyncio.gather(every(self.issue_rate, self.issue), every(self.call_rate, self.call))


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def phase(name: str, received: list[Received]) -> Phase:
    delays = sorted(1000 * r.delay_s for r in received)
    return Phase(
        name,
        len(delays),
        round(percentile(delays, 50), 1),
        round(percentile(delays, 99), 1),
        round(delays[-1], 1) if delays else 0.0,
    )


def counter(text: str, name: str, hall: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            wanted = {"hall": hall, **labels}
            if s.name == name and all(s.labels.get(k) == v for k, v in wanted.items()):
                total += s.value
    return total


async def run(args: argparse.Namespace) -> Report:
    receiver = WebhookReceiver(SECRET.encode())
    await receiver.start()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="qms-notify-bench-") as tmp:
        workdir = Path(tmp)
        config = hall_config(workdir, receiver.url)
        plan = lh.HallPlan.load(config)
        server = await start_qms(workdir, config)
        try:
            base = f"http://{HOST}:{server.port}"
            limits = httpx.Limits(max_connections=50)
            async with httpx.AsyncClient(base_url=base, timeout=10, limits=limits) as client:
                peak = Peak(client, plan, args.speed)
                await peak.open_windows()
                print(f"notify bench: county peak x{args.speed:g} for {args.minutes:g} min",
                      file=sys.stderr, flush=True)  # fmt: skip
                await peak.run(args.minutes * 60)
                county = list(receiver.received)

                print(
                    f"notify bench: gateway down {args.outage_s:g} s", file=sys.stderr, flush=True
                )
                mark = len(receiver.received)
                outage_began = time.time()
                receiver.status = 503
                await peak.run(args.outage_s)
                outage_ended = time.time()
                receiver.status = 200
                print(f"notify bench: gateway back; {args.recovery_s:g} s more",
                      file=sys.stderr, flush=True)  # fmt: skip
                await peak.run(args.recovery_s)
                later = [r for r in receiver.received[mark:] if r.status < 300]
                caused_in_outage = [
                    r for r in later if outage_began <= r.arrival_at - r.delay_s < outage_ended
                ]
                after = [r for r in later if r.arrival_at - r.delay_s >= outage_ended]
                metrics = (await client.get("/metrics")).text
                ready = await client.get("/readyz")
                ready.raise_for_status()
        finally:
            server.stop()
    await receiver.stop()
    hall = plan.hall
    ids = [r.body["id"] for r in receiver.received if r.status < 300]
    once = len(set(ids))
    twice = len(ids) - once
    queued = round(counter(metrics, "qms_notifications_queued_total", hall))
    dropped = round(counter(metrics, "qms_notifications_total", hall, result="dropped"))
    retries = round(counter(metrics, "qms_notifications_total", hall, result="retry"))
    pending = round(counter(metrics, "qms_notifications_pending", hall))
    sent = round(counter(metrics, "qms_notifications_total", hall, result="sent"))
    given_up = round(counter(metrics, "qms_notifications_total", hall, result="expired"))
    given_up += round(counter(metrics, "qms_notifications_total", hall, result="rejected"))
    return Report(
        speed=args.speed,
        seconds=round(time.monotonic() - started, 1),
        tickets=peak.tickets,
        calls=peak.calls,
        queued=queued,
        arrived_once=once,
        arrived_twice=twice,
        dropped=dropped,
        retries=retries,
        left_in_outbox=pending,
        lost=queued - sent - dropped - pending - given_up,
        phases=[
            phase("county peak, gateway up", [r for r in county if r.status < 300]),
            phase("caused during the outage", caused_in_outage),
            phase("after the gateway came back", after),
        ],
    )


def table(report: Report) -> str:
    lines = [
        f"notify bench: county peak x{report.speed:g}, {report.tickets} tickets (all asked "
        f"to be told), {report.calls} calls, {report.seconds:.0f} s",
        f"queued {report.queued}, arrived {report.arrived_once} (twice: {report.arrived_twice}), "
        f"dropped {report.dropped}, retries {report.retries}, left {report.left_in_outbox}, "
        f"lost {report.lost}",
        "",
        f"{'deliveries':<32}{'count':>8}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}",
    ]
    for p in report.phases:
        lines.append(f"{p.name:<32}{p.deliveries:>8}{p.p50_ms:>10.1f}{p.p99_ms:>10.1f}"
                     f"{p.max_ms:>10.1f}")  # fmt: skip
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m loadtests.notify_bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--speed", type=float, default=10.0, help="hall time per real time")
    p.add_argument("--minutes", type=float, default=2.0, help="real minutes of the peak")
    p.add_argument("--outage-s", type=float, default=60.0)
    p.add_argument("--recovery-s", type=float, default=150.0)
    p.add_argument("--json", type=Path, default=DEFAULT_JSON)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = asyncio.run(run(args))
    except (RuntimeError, OSError, httpx.HTTPError) as exc:
        print(f"notify bench: {exc}", file=sys.stderr)
        return 1
    print(table(report))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(asdict(report), indent=2), encoding="utf-8")
    print(f"\nwrote {args.json}")
    return 0 if report.lost == 0 and report.left_in_outbox == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
