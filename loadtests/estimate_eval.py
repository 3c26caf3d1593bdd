"""How good are the wait estimates? A simulated hall day, simple vs learned.

    python -m loadtests.estimate_eval [--seed N] [--seeds K] [--json PATH]

A discrete-event simulation of one day of the demo hall (`qms/demo_hall.toml`),
in pure Python (no Redis, no server: it evaluates the estimator, not the
store), seeds N, N+1, … N+K-1 (default 1..5):

- open 8:30-17:00, visitors until 16:30, Poisson arrivals whose rate follows
  the day: quiet early, a morning peak 9-11 and an afternoon peak 14-16
  slightly above what the windows can serve, a dip at lunch;
- each group gets a share of visitors in proportion to the windows serving
  it; within a group the services are equally likely;
- service times are lognormal per service, around `expected_minutes` times
  a per-service bias drawn per day in [0.85, 1.5] (most services slower
  than configured, as in real halls, so learning matters), with a
  coefficient of variation in [0.4, 0.8];
- priority as the config says: 6% appointments (on time, 30-minute credit),
  8% elderly and 2% disabled (20 minutes), the rest normal; the dispatch rule
  exactly as DESIGN.md (smallest issued − credit among the window's groups,
  ties by issue), 4% no-shows (a minute at the window, not learned from);
- windows 3, 4, 6, 8, 10 and 12 close for lunch 12:00-13:30 (a visit in
  progress is finished), so the open windows change during the day.

At each ticket's issue, it records the simple estimate
(`dispatcher.naive_estimate.eta_seconds`: position × configured group mean ÷ open
windows of the group) and the learned one (`dispatcher.estimator`), using
only what is known at that moment: the model has learned from the visits
completed so far that day. Then the actual wait when the ticket is called.
It also re-estimates every waiting ticket at each half hour (checkpoints),
as a screen refresh would.

Reported: mean absolute error of each (minutes), the reduction, the share of
actual waits inside the learned [p10, p90], over the whole day and for
tickets issued in each peak; mean and spread over the seeds; and the cost
of one estimate for a queue of 100.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import random
import statistics
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dispatcher import estimator as est
from dispatcher.naive_estimate import eta_seconds
from queue_core.config import HallConfig, load_hall_config

DEMO_HALL = Path(__file__).resolve().parent.parent / "qms" / "demo_hall.toml"

OPEN_S = 0.0  # 8:30
LAST_ARRIVAL_S = 8 * 3600.0  # 16:30
MORNING_PEAK = (1800.0, 9000.0)  # 9:00-11:00
AFTERNOON_PEAK = (19800.0, 27000.0)  # 14:00-16:00
LUNCH = (12600.0, 18000.0)  # 12:00-13:30
LUNCH_CLOSED = ("3", "4", "6", "8", "10", "12")
CHECKPOINT_EVERY_S = 1800.0

APPOINTMENT_SHARE = 0.06
ELDERLY_SHARE = 0.08
DISABLED_SHARE = 0.02
NO_SHOW_SHARE = 0.04
NO_SHOW_SECONDS = 60.0

PEAK_LOAD = 1.05
"""Arrivals at the peaks, as a share of the windows' capacity at the
configured service times (more than that at the true, slower ones)."""
BASE_LOAD = 0.55
LUNCH_LOAD = 0.4


SVC_TIMES_KEEP = 40
"""Visits kept per service, as `_lib.lua` keeps them."""


def _order(t: est.WaitingTicket) -> tuple[float, float, str]:
    return (t.effective, t.issued, t.id)


def load_at(t: float) -> float:
    """Arrival rate as a share of capacity, at `t` seconds after 8:30."""
    for start, end in (MORNING_PEAK, AFTERNOON_PEAK):
        if start <= t < end:
            # Ramp up and down over 20 minutes: a peak has shoulders.
            edge = min(t - start, end - t)
            return BASE_LOAD + (PEAK_LOAD - BASE_LOAD) * min(1.0, edge / 1200.0)
    if LUNCH[0] <= t < LUNCH[1]:
        return LUNCH_LOAD
    return BASE_LOAD


@dataclass(slots=True)
class Ticket:
    id: str
    group: str
    service: str
    priority: str
    issued: float
    effective: float
    no_show: bool
    called: float | None = None


@dataclass(slots=True)
class Record:
    """One estimate and what happened."""

    issued: float
    at: float  # when estimated
    checkpoint: bool
    actual: float
    simple: float
    central: float
    mean: float
    p10: float
    p90: float


@dataclass(slots=True)
class WindowState:
    id: str
    groups: tuple[str, ...]
    open: bool = True
    ticket: Ticket | None = None
    started: float = 0.0


@dataclass
class Day:
    config: HallConfig
    seed: int
    rng: random.Random = field(init=False)
    bias: dict[str, float] = field(init=False)
    cv: dict[str, float] = field(init=False)
    records: list[Record] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.bias = {s.id: self.rng.uniform(0.85, 1.5) for s in self.config.services}
        self.cv = {s.id: self.rng.uniform(0.4, 0.8) for s in self.config.services}

    def service_seconds(self, service: str) -> float:
        expected = 60.0 * self.config.service_by_id[service].expected_minutes
        mean, cv = expected * self.bias[service], self.cv[service]
        s2 = math.log1p(cv * cv)
        return self.rng.lognormvariate(math.log(mean) - s2 / 2, math.sqrt(s2))

    def run(self) -> list[Record]:
        config, rng = self.config, self.rng
        windows = [WindowState(w.id, w.groups) for w in config.windows]
        by_id = {w.id: w for w in windows}
        groups = [g.id for g in config.groups]
        services_of = {g: [s.id for s in config.services if s.group == g] for g in groups}
        # Group shares and capacity in proportion to the windows serving each
        # group, a shared window counting for each of its groups equally.
        weight = dict.fromkeys(groups, 0.0)
        for cw in config.windows:
            for g in cw.groups:
                weight[g] += 1.0 / len(cw.groups)
        per_window = {
            g: 60.0 * statistics.fmean(config.service_by_id[s].expected_minutes for s in ss)
            for g, ss in services_of.items()
        }
        capacity_per_s = sum(weight[g] / per_window[g] for g in groups)
        share = {g: weight[g] / per_window[g] / capacity_per_s for g in groups}

        # As the store keeps them: each service's last visits, the model
        # rebuilt from them whenever an estimate is made.
        visits: dict[str, deque[float]] = {
            s.id: deque(maxlen=SVC_TIMES_KEEP) for s in config.services
        }

        def model() -> est.ServiceTimeModel:
            return est.model_from_visits(config, visits)

        queues: dict[str, list[tuple[float, float, str]]] = {g: [] for g in groups}
        tickets: dict[str, Ticket] = {}
        # Each ticket's estimates: (when, simple, central, mean, p10, p90).
        pending: list[tuple[Ticket, list[tuple[float, float, float, float, float, float]]]] = []
        events: list[tuple[float, int, str, str]] = []
        seq = 0

        def push(at: float, kind: str, what: str) -> None:
            nonlocal seq
            seq += 1
            heapq.heappush(events, (at, seq, kind, what))

        # Arrivals by thinning a Poisson process at the peak rate.
        peak_rate = PEAK_LOAD * capacity_per_s
        t, n = OPEN_S, 0
        while True:
            t += rng.expovariate(peak_rate)
            if t >= LAST_ARRIVAL_S:
                break
            if rng.random() < load_at(t) / PEAK_LOAD:
                n += 1
                push(t, "arrive", str(n))
        for wid in LUNCH_CLOSED:
            push(LUNCH[0], "close", wid)
            push(LUNCH[1], "open", wid)
        cp = OPEN_S + CHECKPOINT_EVERY_S
        while cp < LAST_ARRIVAL_S:
            push(cp, "checkpoint", "")
            cp += CHECKPOINT_EVERY_S

        def call(w: WindowState, now: float) -> None:
            if not w.open or w.ticket is not None:
                return
            best: tuple[float, float, str] | None = None
            for g in w.groups:
                if queues[g] and (best is None or queues[g][0] < best):
                    best = queues[g][0]
            if best is None:
                return
            ticket = tickets[best[2]]
            heapq.heappop(queues[ticket.group])
            ticket.called = now
            w.ticket, w.started = ticket, now
            duration = NO_SHOW_SECONDS if ticket.no_show else self.service_seconds(ticket.service)
            push(now + duration, "done", w.id)

        def snapshot(now: float) -> tuple[list[est.WaitingTicket], list[est.OpenWindow]]:
            waiting = [
                est.WaitingTicket(tid, g, tickets[tid].service, e, issued)
                for g, q in queues.items()
                for e, issued, tid in q
            ]
            open_windows = [
                est.OpenWindow(
                    w.id,
                    w.groups,
                    None if w.ticket is None else w.ticket.service,
                    now - w.started,
                )
                for w in windows
                if w.open
            ]
            return waiting, open_windows

        def estimate(ticket: Ticket, now: float, learned: est.WaitEstimate | None) -> None:
            key = (ticket.effective, ticket.issued, ticket.id)
            position = sum(1 for k in queues[ticket.group] if k < key)
            open_ids = [w.id for w in windows if w.open]
            simple = eta_seconds(config, ticket.group, position, open_ids)
            if simple is None or learned is None:
                return
            values = (float(simple), learned.central, learned.mean, learned.p10, learned.p90)
            pending.append((ticket, [(now, *values)]))

        while events:
            now, _, kind, what = heapq.heappop(events)
            if kind == "arrive":
                roll = rng.random()
                group = rng.choices(groups, weights=[share[g] for g in groups])[0]
                service = rng.choice(services_of[group])
                if roll < APPOINTMENT_SHARE:
                    priority = "appointment"
                elif roll < APPOINTMENT_SHARE + ELDERLY_SHARE:
                    priority = "elderly"
                elif roll < APPOINTMENT_SHARE + ELDERLY_SHARE + DISABLED_SHARE:
                    priority = "disabled"
                else:
                    priority = "normal"
                credit = 60.0 * config.credit_minutes(priority)
                ticket = Ticket(
                    f"t{what}",
                    group,
                    service,
                    priority,
                    now,
                    now - credit,
                    rng.random() < NO_SHOW_SHARE,
                )
                tickets[ticket.id] = ticket
                heapq.heappush(queues[group], (ticket.effective, ticket.issued, ticket.id))
                # What qms tells the visitor: the table's estimate for the
                # ticket's place in line, from a replay of the whole hall.
                waiting, open_windows = snapshot(now)
                in_line = {
                    g: sorted((x for x in waiting if x.group == g), key=_order) for g in groups
                }
                table = est.eta_table(model(), in_line, open_windows, services_of)
                place = [x.id for x in in_line[group]].index(ticket.id)
                estimate(ticket, now, table.at(group, place))
                for w in windows:
                    if group in w.groups:
                        call(w, now)
            elif kind == "done":
                w = by_id[what]
                assert w.ticket is not None
                if not w.ticket.no_show:
                    visits[w.ticket.service].append(now - w.started)
                w.ticket = None
                call(w, now)
            elif kind == "close":
                by_id[what].open = False
            elif kind == "open":
                w = by_id[what]
                w.open = True
                call(w, now)
            elif kind == "checkpoint":
                waiting, open_windows = snapshot(now)
                all_learned = est.estimate_waits(model(), waiting, open_windows)
                by_ticket = {p[0].id: p for p in pending}
                for x in waiting:
                    learned = all_learned[x.id]
                    t_ = tickets[x.id]
                    key = (t_.effective, t_.issued, t_.id)
                    position = sum(1 for k in queues[x.group] if k < key)
                    simple = eta_seconds(config, x.group, position, [w.id for w in open_windows])
                    if simple is None or learned is None or x.id not in by_ticket:
                        continue
                    by_ticket[x.id][1].append(
                        (
                            now,
                            float(simple),
                            learned.central,
                            learned.mean,
                            learned.p10,
                            learned.p90,
                        )
                    )

        for ticket, estimates in pending:
            assert ticket.called is not None  # windows serve until every queue is empty
            for i, (at, simple_s, central, mean, p10, p90) in enumerate(estimates):
                self.records.append(
                    Record(
                        ticket.issued,
                        at,
                        i > 0,
                        ticket.called - at,
                        simple_s,
                        central,
                        mean,
                        p10,
                        p90,
                    )
                )
        return self.records


@dataclass(slots=True)
class Scores:
    tickets: int
    mae_simple_min: float
    mae_learned_min: float
    mae_learned_mean_min: float
    reduction_pct: float
    coverage_80_pct: float
    mean_actual_wait_min: float


def score(records: Sequence[Record]) -> Scores:
    if not records:
        return Scores(0, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan)
    n = len(records)
    simple = sum(abs(r.simple - r.actual) for r in records) / n / 60
    learned = sum(abs(r.central - r.actual) for r in records) / n / 60
    by_mean = sum(abs(r.mean - r.actual) for r in records) / n / 60
    # A zero-width range [0, 0] for a free window holds an actual wait of 0.
    inside = sum(1 for r in records if r.p10 - 1e-6 <= r.actual <= r.p90 + 1e-6)
    return Scores(
        tickets=n,
        mae_simple_min=simple,
        mae_learned_min=learned,
        mae_learned_mean_min=by_mean,
        reduction_pct=100 * (1 - learned / simple) if simple else math.nan,
        coverage_80_pct=100 * inside / n,
        mean_actual_wait_min=sum(r.actual for r in records) / n / 60,
    )


SLICES = ("day", "morning peak", "afternoon peak", "checkpoints")


def slices(records: Sequence[Record]) -> dict[str, Scores]:
    at_issue = [r for r in records if not r.checkpoint]
    return {
        "day": score(at_issue),
        "morning peak": score(
            [r for r in at_issue if MORNING_PEAK[0] <= r.issued < MORNING_PEAK[1]]
        ),
        "afternoon peak": score(
            [r for r in at_issue if AFTERNOON_PEAK[0] <= r.issued < AFTERNOON_PEAK[1]]
        ),
        "checkpoints": score([r for r in records if r.checkpoint]),
    }


def cost_per_ticket_us(config: HallConfig, queue: int = 100, repeat: int = 200) -> dict[str, float]:
    """Microseconds per waiting ticket: the whole queue in one replay, and one
    ticket at the back of the queue on its own."""
    rng = random.Random(0)
    model = est.ServiceTimeModel.from_config(config)
    services = [s for s in config.services]
    waiting = []
    for i in range(queue):
        s = rng.choice(services)
        waiting.append(est.WaitingTicket(f"t{i}", s.group, s.id, float(i * 30), float(i * 30)))
    windows = [est.OpenWindow(w.id, w.groups, services[0].id, 120.0) for w in config.windows]
    start = time.perf_counter()
    for _ in range(repeat):
        est.estimate_waits(model, waiting, windows)
    whole = (time.perf_counter() - start) / repeat / queue * 1e6
    last = waiting[-1]
    start = time.perf_counter()
    for _ in range(repeat):
        est.estimate_wait(model, last, waiting, windows)
    one = (time.perf_counter() - start) / repeat * 1e6
    return {"whole_queue_per_ticket_us": whole, "one_ticket_at_back_us": one}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1, help="first seed (default 1)")
    parser.add_argument("--seeds", type=int, default=5, help="how many days (default 5)")
    parser.add_argument("--config", type=Path, default=DEMO_HALL)
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args(argv)

    config = load_hall_config(args.config)
    started = time.perf_counter()
    per_seed: dict[int, dict[str, Scores]] = {}
    for seed in range(args.seed, args.seed + args.seeds):
        per_seed[seed] = slices(Day(config, seed).run())

    print(f"hall {config.id}: {args.seeds} simulated day(s), seeds {args.seed}..{max(per_seed)}")
    print(
        f"{'seed':>6} {'slice':<15} {'n':>5} {'wait':>6} {'MAE simple':>10} {'learned':>8}"
        f" {'(mean)':>7} {'cut %':>6} {'in 80%':>7}"
    )
    for seed, by_slice in per_seed.items():
        for name, s in by_slice.items():
            print(
                f"{seed:>6} {name:<15} {s.tickets:>5} {s.mean_actual_wait_min:>6.1f}"
                f" {s.mae_simple_min:>10.2f} {s.mae_learned_min:>8.2f}"
                f" {s.mae_learned_mean_min:>7.2f} {s.reduction_pct:>6.1f} {s.coverage_80_pct:>7.1f}"
            )
    summary: dict[str, dict[str, tuple[float, float]]] = {}
    print("\nmean ± sd over the seeds (MAE in minutes)")
    for name in SLICES:
        rows = [by_slice[name] for by_slice in per_seed.values()]
        summary[name] = {
            key: _mean_sd([getattr(r, key) for r in rows])
            for key in (
                "mae_simple_min",
                "mae_learned_min",
                "reduction_pct",
                "coverage_80_pct",
                "mean_actual_wait_min",
            )
        }
        m = summary[name]
        print(
            f"  {name:<15} wait {_fmt(m['mean_actual_wait_min'])}"
            f"  simple {_fmt(m['mae_simple_min'])}  learned {_fmt(m['mae_learned_min'])}"
            f"  cut {_fmt(m['reduction_pct'])} %  in 80% range {_fmt(m['coverage_80_pct'])} %"
        )
    cost = cost_per_ticket_us(config)
    print(
        f"\ncost, queue of 100 on 12 windows: {cost['whole_queue_per_ticket_us']:.1f} µs per ticket"
        f" (whole queue, one replay); {cost['one_ticket_at_back_us']:.0f} µs for the last"
        " ticket alone"
    )
    print(f"ran in {time.perf_counter() - started:.1f} s")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "hall": config.id,
                    "seeds": list(per_seed),
                    "per_seed": {
                        str(seed): {k: asdict(v) for k, v in by_slice.items()}
                        for seed, by_slice in per_seed.items()
                    },
                    "summary": summary,
                    "cost": cost,
                },
                indent=2,
            )
            + "\n"
        )
    return 0


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    clean = [v for v in values if not math.isnan(v)]
    if not clean:
        return math.nan, math.nan
    return statistics.fmean(clean), statistics.stdev(clean) if len(clean) > 1 else 0.0


def _fmt(pair: tuple[float, float]) -> str:
    return f"{pair[0]:.1f} ± {pair[1]:.1f}"


if __name__ == "__main__":
    raise SystemExit(main())
