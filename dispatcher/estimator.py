"""Learned wait estimates with an 80% range: pure functions, no I/O.

The model, in two parts.

1. **Service times, learned per service.** Each service keeps three numbers
   (`ServiceStats`: count, mean, variance), updated on every completed visit
   with an exponentially weighted mean and variance. The configured
   `expected_minutes` is the prior: it counts as `PRIOR_WEIGHT` earlier
   visits with a coefficient of variation of `PRIOR_CV`, so a service with no
   visits yet today is estimated from the config, and the learned value
   takes over after a handful of visits. The weight of a new visit never
   falls below `MIN_WEIGHT`, so the model forgets: it follows a clerk who is
   slower this afternoon (an effective memory of about 20 visits). One very
   long visit (a clerk who forgot to press the button) is clipped to
   `CLIP_FACTOR` times the current mean before it is learned.

2. **Waits, by replaying the dispatch rule on expected times.** The waiting
   tickets are taken in the dispatch order (smallest effective time first,
   then issue time: `dispatcher/dispatch.py`, the rule the scripts follow),
   and the open windows are replayed: each window becomes
   free when its current visit is expected to end (the learned mean of the
   remaining time of a lognormal visit that has already lasted `elapsed`),
   and when free it takes, among the groups it serves, the waiting ticket
   with the smallest effective time, then stays busy for that ticket's
   learned mean service time. This is the hall's own rule, so a window
   serving two groups gives each only the share the two queues actually
   leave it, and a ticket of another group that is ahead on a shared window
   delays you; one replay gives every waiting ticket its expected call
   time, O(n log w) for the whole queue. The replay ignores visitors who
   have not arrived yet, including priority visitors who will arrive and go
   ahead (a correction for them at their recent arrival rate was tried and
   made the estimates worse on simulated days; probably because no-shows,
   counted here as full visits, already make the replay a little long).

   The range: the call time of a ticket is the sum of the visits that must
   end before it, spread over the `c` windows serving its group, so its
   variance is about (sum of those visits' variances) / c², plus the
   learned means' own uncertainty (which does not average out: if the
   service is slower than we think, every visit ahead is), plus an
   unmodelled share `UNMODELLED_CV` of the wait (windows closing, no-shows,
   transfers, priority arrivals). The wait is then taken as lognormal
   with that mean and variance: the central estimate is its
   median (the value that minimises the mean absolute error), the range its
   10th and 90th percentiles.

No open window serving a ticket's group means no estimate (`None`): the
replay would never call it.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from dispatcher.dispatch import (
    CREDIT_POLICY,
    NORMAL,
    PLACE,
    RATIO,
    Policy,
    dispatch_key,
    group_sequence,
    in_dispatch_order,
    take,
)
from queue_core.config import HallConfig

PRIOR_WEIGHT = 5.0
"""How many visits the configured expected time counts as."""
PRIOR_CV = 0.6
"""Coefficient of variation assumed until visits are seen: public-service
visits are skewed (most are quick, a few take three times as long)."""
MIN_WEIGHT = 0.1
"""The smallest weight of a new visit: memory of about (2 - w) / w = 19 visits."""
CLIP_FACTOR = 4.0
"""A visit longer than this many current means is learned as this many."""
UNMODELLED_CV = 0.3
"""Share of the expected wait added as standard deviation for what the
replay does not see (windows closing or opening, no-shows, transfers);
calibrated on simulated days with seeds other than those reported."""
CALL_MOMENT_S = 60.0
"""The shortest top of a range: the replay calls a ticket the instant a
window is free, but a clerk takes a moment to press call-next (and waits
are told in minutes), so a wait of "now" is told as 0 to 1 minute. Without
it a ticket taken while a window stands free was given [0, 0] and every
such call counted as missed."""
DEFAULT_SERVICE_SECONDS = 600.0
"""A service the model has never heard of (not in the config): 10 minutes."""

_Z90 = 1.2815515655446004  # standard normal quantile of 0.9


@dataclass(frozen=True, slots=True)
class ServiceStats:
    """The learned state of one service: what the store would keep per service."""

    count: int
    mean: float
    var: float

    @classmethod
    def prior(cls, expected_seconds: float) -> ServiceStats:
        return cls(0, expected_seconds, (PRIOR_CV * expected_seconds) ** 2)

    def observe(self, seconds: float) -> ServiceStats:
        """The state after one more completed visit of `seconds`."""
        if not math.isfinite(seconds) or seconds < 0:
            return self  # a clock glitch must not poison the day's model
        x = min(seconds, CLIP_FACTOR * self.mean) if self.mean > 0 else seconds
        # 1/(prior + n + 1) is the running mean of the prior's pseudo-visits
        # and the real ones; MIN_WEIGHT then turns it into forgetting.
        w = max(1.0 / (PRIOR_WEIGHT + self.count + 1), MIN_WEIGHT)
        diff = x - self.mean
        mean = self.mean + w * diff
        var = (1 - w) * (self.var + w * diff * diff)
        return ServiceStats(self.count + 1, mean, var)

    @property
    def standard_error(self) -> float:
        """Uncertainty of `mean` itself (not of one visit)."""
        effective_visits = min(PRIOR_WEIGHT + self.count, (2 - MIN_WEIGHT) / MIN_WEIGHT)
        return math.sqrt(self.var / effective_visits)


class ServiceTimeModel:
    """Learned service times of one hall's services, with the config as prior.

    Mutable only through `observe`; holds no I/O. Build it from the config,
    optionally with the stats the store kept (`stats`)."""

    __slots__ = ("_fallback", "_stats")

    def __init__(
        self,
        expected_seconds: Mapping[str, float],
        stats: Mapping[str, ServiceStats] | None = None,
    ) -> None:
        self._stats = {s: ServiceStats.prior(sec) for s, sec in expected_seconds.items()}
        self._stats.update(stats or {})
        priors = list(expected_seconds.values())
        fallback = sum(priors) / len(priors) if priors else DEFAULT_SERVICE_SECONDS
        self._fallback = ServiceStats.prior(fallback)

    @classmethod
    def from_config(
        cls, config: HallConfig, stats: Mapping[str, ServiceStats] | None = None
    ) -> ServiceTimeModel:
        return cls({s.id: 60.0 * s.expected_minutes for s in config.services}, stats)

    def observe(self, service: str, seconds: float) -> None:
        self._stats[service] = self.stats(service).observe(seconds)

    def stats(self, service: str) -> ServiceStats:
        return self._stats.get(service, self._fallback)

    def mean(self, service: str) -> float:
        return self.stats(service).mean

    def snapshot(self) -> dict[str, ServiceStats]:
        return dict(self._stats)


@dataclass(frozen=True, slots=True)
class WaitingTicket:
    """A ticket in a group's queue. `effective` is its dispatch score
    (issued − credit) and `issued` the tie-break, both in seconds (any epoch:
    only their order matters)."""

    id: str
    group: str
    service: str
    effective: float
    issued: float
    priority: str = NORMAL
    """Its class: the side it stands on under the rule "ratio"."""


@dataclass(frozen=True, slots=True)
class OpenWindow:
    """An open window: the groups it serves and the visit at it, if any."""

    id: str
    groups: tuple[str, ...]
    serving: str | None = None
    """Service of the ticket being served, None when the window is free."""
    elapsed: float = 0.0
    """Seconds since that ticket was called."""
    order: str = PLACE
    """How it picks among its groups (`dispatcher.dispatch`)."""


@dataclass(frozen=True, slots=True)
class WaitEstimate:
    """Seconds until the ticket is called: `central` is the median, the true
    wait should fall in [p10, p90] eight times out of ten."""

    central: float
    p10: float
    p90: float
    mean: float
    sd: float


def estimate_waits(
    model: ServiceTimeModel,
    waiting: Iterable[WaitingTicket],
    windows: Sequence[OpenWindow],
    policy: Policy = CREDIT_POLICY,
    turns: Mapping[str, int] | None = None,
) -> dict[str, WaitEstimate | None]:
    """Estimates for every waiting ticket, from one replay of the dispatch
    under the hall's `policy` (and, under "ratio", each group's turn now)."""
    tickets = in_dispatch_order(waiting)
    capacity: dict[str, int] = {}
    for w in windows:
        for g in w.groups:
            capacity[g] = capacity.get(g, 0) + 1

    by_group: dict[str, list[WaitingTicket]] = {}
    for t in tickets:
        by_group.setdefault(t.group, []).append(t)
    # Each group's tickets in the order its windows call them.
    queues = {g: group_sequence(q, policy, (turns or {}).get(g, 0)) for g, q in by_group.items()}
    heads = dict.fromkeys(queues, 0)  # next index per group

    # Variance and mean-uncertainty of the visits that end before the next call
    # on each group's windows; the visits now at the windows start them off.
    var_ahead = dict.fromkeys(capacity, 0.0)
    se_ahead = dict.fromkeys(capacity, 0.0)
    free: list[tuple[float, int]] = []
    for i, w in enumerate(windows):
        at = 0.0
        if w.serving is not None:
            stats = model.stats(w.serving)
            at, var = _remaining(stats, w.elapsed)
            for g in w.groups:
                var_ahead[g] += var
                se_ahead[g] += stats.standard_error * (at / stats.mean if stats.mean else 0.0)
        free.append((at, i))
    heapq.heapify(free)

    called: dict[str, tuple[float, float]] = {}  # id -> (expected call time, variance)
    while free:
        at, i = heapq.heappop(free)
        window = windows[i]
        best = take(window.groups, {g: q[heads[g]] for g in window.groups
                                    if (q := queues.get(g)) and heads[g] < len(q)},
                    window.order, policy.rule)  # fmt: skip
        if best is None:
            continue  # nobody this window may call is waiting: it drops out of the replay
        heads[best.group] += 1
        c = capacity[best.group]
        called[best.id] = (at, (var_ahead[best.group] + se_ahead[best.group] ** 2) / (c * c))
        stats = model.stats(best.service)
        for g in window.groups:
            var_ahead[g] += stats.var
            se_ahead[g] += stats.standard_error
        heapq.heappush(free, (at + stats.mean, i))

    result: dict[str, WaitEstimate | None] = {}
    for t in tickets:
        if t.id not in called:
            result[t.id] = None
            continue
        at, var = called[t.id]
        var += (UNMODELLED_CV * at) ** 2
        result[t.id] = _lognormal(at, var)
    return result


def estimate_wait(
    model: ServiceTimeModel,
    ticket: WaitingTicket,
    ahead: Iterable[WaitingTicket],
    windows: Sequence[OpenWindow],
    policy: Policy = CREDIT_POLICY,
    turns: Mapping[str, int] | None = None,
) -> WaitEstimate | None:
    """The estimate for one ticket. `ahead` may hold the whole hall's queue:
    by place, tickets after this one are dropped, since no window takes them
    before it, and neither can they hold a window it could use (not under
    "ratio", whose two sides are called in turn)."""
    if policy.rule != RATIO:
        key = dispatch_key(ticket)
        ahead = [t for t in ahead if dispatch_key(t) < key]
    return estimate_waits(model, [*ahead, ticket], windows, policy, turns)[ticket.id]


def _remaining(stats: ServiceStats, elapsed: float) -> tuple[float, float]:
    """Expected remaining seconds (and their variance) of a lognormal visit
    that has already lasted `elapsed`: a long visit is likely a long one."""
    m, v = stats.mean, stats.var
    if m <= 0:
        return 0.0, 0.0
    if elapsed <= 0:
        return m, v
    s2 = math.log1p(v / (m * m))
    s = math.sqrt(s2)
    mu = math.log(m) - s2 / 2
    if s == 0:
        return max(m - elapsed, 0.0), 0.0
    z = (math.log(elapsed) - mu) / s
    tail = _norm_sf(z)
    # E[X | X > a] = m * Phi(sigma - z) / Phi(-z) for a lognormal.
    # Far in the tail the formula is 0/0; there the remaining time grows with elapsed.
    rest = elapsed / max(s2, 0.1) if tail < 1e-12 else m * _norm_sf(z - s) / tail - elapsed
    rest = max(rest, 0.0)
    return rest, (rest * math.sqrt(v) / m) ** 2


def _lognormal(mean: float, var: float) -> WaitEstimate:
    if mean <= 0:
        return WaitEstimate(0.0, 0.0, CALL_MOMENT_S, 0.0, 0.0)
    s2 = math.log1p(var / (mean * mean))
    s = math.sqrt(s2)
    mu = math.log(mean) - s2 / 2
    return WaitEstimate(
        central=math.exp(mu),
        p10=math.exp(mu - _Z90 * s),
        p90=max(math.exp(mu + _Z90 * s), CALL_MOMENT_S),
        mean=mean,
        sd=math.sqrt(var),
    )


def _norm_sf(z: float) -> float:
    """P(Z > z) for a standard normal."""
    return 0.5 * math.erfc(z / math.sqrt(2))


def model_from_visits(
    config: HallConfig, visits: Mapping[str, Sequence[float]]
) -> ServiceTimeModel:
    """The model after learning each service's recent visits (seconds, oldest
    first) on top of the config's expected times: what the store keeps is the
    last few dozen visits per service, which is all the forgetting model
    remembers anyway."""
    model = ServiceTimeModel.from_config(config)
    for service, seconds in visits.items():
        for x in seconds:
            model.observe(service, x)
    return model


@dataclass(frozen=True, slots=True)
class GroupEtas:
    """The estimates for the places of one group's queue, as of one replay:
    `places[i]` for the ticket at position i (0 = next) and `tail` for the
    place just after them (a ticket issued now). Each place further back adds
    `step_mean` seconds and `step_var` variance: one more visit of the group,
    shared by the open windows that serve it."""

    places: tuple[WaitEstimate, ...]
    tail: WaitEstimate
    step_mean: float
    step_var: float

    def at(self, position: int) -> WaitEstimate:
        if position < len(self.places):
            return self.places[position]
        extra = position - len(self.places)
        if extra == 0:
            return self.tail
        modelled = max(self.tail.sd**2 - (UNMODELLED_CV * self.tail.mean) ** 2, 0.0)
        mean = self.tail.mean + extra * self.step_mean
        return _lognormal(mean, modelled + extra * self.step_var + (UNMODELLED_CV * mean) ** 2)


@dataclass(frozen=True, slots=True)
class EtaTable:
    """Wait estimates by (group, position), from replays of the hall's
    queues: a ticket's place in line is all a reader needs to look up its
    estimate. A group no open window serves has no entry (no estimate)."""

    groups: Mapping[str, GroupEtas]

    def at(self, group: str, position: int) -> WaitEstimate | None:
        etas = self.groups.get(group)
        return None if etas is None else etas.at(position)


def eta_table(
    model: ServiceTimeModel,
    queues: Mapping[str, Sequence[WaitingTicket]],
    windows: Sequence[OpenWindow],
    group_services: Mapping[str, Sequence[str]],
    policy: Policy = CREDIT_POLICY,
    turns: Mapping[str, int] | None = None,
) -> EtaTable:
    """Replay the dispatch under `policy` over the queues (each in place
    order; under "ratio" the heads of both sides) and tabulate every group's
    estimates by position. `group_services` names each group's services:
    the mix a place beyond the table is made of."""
    everyone = [t for q in queues.values() for t in q]
    estimates = estimate_waits(model, everyone, windows, policy, turns)
    capacity: dict[str, int] = {}
    for w in windows:
        for g in w.groups:
            capacity[g] = capacity.get(g, 0) + 1
    groups: dict[str, GroupEtas] = {}
    for group, c in capacity.items():
        sequence = group_sequence(
            in_dispatch_order(queues.get(group, ())), policy, (turns or {}).get(group, 0)
        )
        places = tuple(e for t in sequence if (e := estimates.get(t.id)) is not None)
        services = list(group_services.get(group) or ())
        # A normal ticket issued now comes after everyone of its side (its
        # effective time is the latest), which one more replay with it
        # appended gives exactly.
        newcomer = WaitingTicket(
            "\x00new", group, services[0] if services else "", math.inf, math.inf
        )
        tail = estimate_wait(model, newcomer, everyone, windows, policy, turns)
        if tail is None:  # cannot happen: an open window serves the group
            continue
        stats = [model.stats(s) for s in services] or [model.stats("")]
        mean = sum(s.mean for s in stats) / len(stats)
        # A visit drawn from the group's services: within plus between variance.
        second = sum(s.var + s.mean * s.mean for s in stats) / len(stats)
        groups[group] = GroupEtas(places, tail, mean / c, (second - mean * mean) / (c * c))
    return EtaTable(groups)
