"""The hall's figures (dispatcher/figures.py) and the ETA table
(dispatcher/estimator.py) on hand-built data: pure functions, no Redis.

The test day is 2026-11-21 in Asia/Shanghai; `at(h, m)` is that local time
in epoch ms (an hour before 0 reaches into the day before).
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest

from dispatcher.estimator import (
    CALL_MOMENT_S,
    OpenWindow,
    ServiceTimeModel,
    WaitEstimate,
    WaitingTicket,
    estimate_wait,
    estimate_waits,
    eta_table,
    model_from_visits,
)
from dispatcher.figures import (
    BREACHES_SHOWN,
    Accuracy,
    HourFigures,
    OfflineScreen,
    WaitSummary,
    accuracy,
    day_start_ms,
    estimates,
    hall_figures,
    hour_figures,
    service_model,
    wait_summary,
)
from queue_core.config import HallConfig
from queue_core.models import (
    CallRecord,
    HallState,
    QueuedTicket,
    ScreenPage,
    ScreenPresence,
    Ticket,
    TicketStatus,
    WindowState,
    WindowStatus,
)
from tests.support import START_S, make_config, make_config_with_targets

MIN = 60_000
HOUR = 60 * MIN


def at(hour: int, minute: int = 0) -> int:
    """Local time on the test day (START_S is 09:00), in epoch ms."""
    return round(START_S * 1000) + (hour - 9) * HOUR + minute * MIN


def by_group(config: HallConfig) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for s in config.services:
        out.setdefault(s.group, []).append(s.id)
    return out


# ------------------------------------------------------------------ wait_summary


def call(wait_s: float, est: tuple[float, float, float] | None = None) -> CallRecord:
    """A call at 10:00 that waited `wait_s`, with its estimate (central, low, high) in s."""
    if est is None:
        return CallRecord(at(10), round(wait_s * 1000), "natural", "social-security")
    c, lo, hi = (round(x * 1000) for x in est)
    return CallRecord(at(10), round(wait_s * 1000), "natural", "social-security", c, lo, hi)


def test_wait_summary_mean_and_nearest_rank_p90() -> None:
    # 1..10 minutes, shuffled: mean 5.5 min = 330 s; nearest rank of 0.9 * 10 = 9th = 540 s
    waits = [7, 2, 10, 1, 5, 9, 3, 8, 6, 4]
    assert wait_summary([call(60 * m) for m in waits]) == WaitSummary(10, 330.0, 540.0)
    # 11 waits: rank ceil(9.9) = 10, the 10th smallest (not an interpolation)
    eleven = [call(60 * m) for m in [*waits, 11]]
    assert wait_summary(eleven) == WaitSummary(11, 360.0, 600.0)
    # one wait is its own p90; none is no figure at all
    assert wait_summary([call(42)]) == WaitSummary(1, 42.0, 42.0)
    assert wait_summary([]) == WaitSummary(0, None, None)
    # three waits: rank ceil(2.7) = 3, the longest
    assert wait_summary([call(300), call(1200), call(600)]) == WaitSummary(3, 700.0, 1200.0)


# ---------------------------------------------------------------------- accuracy


def test_accuracy_mae_in_range_and_calls_without_an_estimate_ignored() -> None:
    calls = [
        call(600, (500, 300, 900)),  # |600 - 500| = 100, inside [300, 900]
        call(1200, (800, 400, 1000)),  # |1200 - 800| = 400, above the range
        call(5000),  # no estimate at issue: not a sample
        call(300, (300, 300, 300)),  # exact, and on both bounds: inside
    ]
    # MAE (100 + 400 + 0) / 3 = 166.67 s; inside 2 of 3
    got = accuracy(calls)
    assert got.samples == 3
    assert got.mae_s == pytest.approx(500 / 3)
    assert got.in_range == pytest.approx(2 / 3)
    assert accuracy([call(5000)]) == Accuracy(0, None, None)
    assert accuracy([]) == Accuracy(0, None, None)


# ------------------------------------------------------------------ hour_figures


def test_hour_figures_from_the_days_stats() -> None:
    stats = {
        "issued:09": 3,
        "called:09": 2,
        "wait:09": 900_000,  # two first calls, 15 minutes together
        "served:09": 1,
        "issued:10": 1,
        "served:11": 2,  # an hour with completions only
        # per-window, rating and estimate fields are not hours
        "served:w:1": 4,
        "busy:w:1": 123_000,
        "open:w:1": 456_000,
        "rating:satisfied": 1,
        "est:n": 2,
        "est:abs": 10,
        "est:in": 1,
    }
    assert hour_figures(stats) == (
        HourFigures("09", 3, 2, 1, 450.0),
        HourFigures("10", 1, 0, 0, None),
        HourFigures("11", 0, 0, 2, None),
    )
    assert hour_figures({}) == ()


# ------------------------------------------------------------------ hall_figures


def queued(
    tid: str, number: str, service: str, group: str, issued: int, effective: int | None = None
) -> QueuedTicket:
    e = issued if effective is None else effective
    return QueuedTicket(
        tid, number, service, group, issued, float(e), f"{e:015d}:000000000001:{tid}"
    )


def at_window(tid: str, number: str, service: str, window: str, called: int) -> Ticket:
    """A natural-group ticket called to `window` at `called`."""
    return Ticket(
        tid, number, service, "natural", "normal", TicketStatus.CALLED,
        called - 10 * MIN, float(called - 10 * MIN), called, window, None, None,
    )  # fmt: skip


@pytest.fixture
def target_config(tmp_path: Path) -> HallConfig:
    # social-security: 10 minutes, business-licence: 15; the others have no target
    return make_config_with_targets(tmp_path, {"social-security": 10, "business-licence": 15})


NOW = at(10)


def hand_built_state() -> HallState:
    """The hall at 10:00.

    Windows:
      1 open since 09:00, A010 (social-security) called 09:50; today's ended
        visits 20 min busy, 2 served.
      2 open since 23:00 yesterday (a running span from before midnight),
        A011 (housing-fund) called 09:30.
      3 paused, A012 called 23:50 yesterday and still there (running visit
        from before midnight); 2 h of ended open spans today.
      9 closed: 30 min open, 10 min busy, 1 served today.
    Queues (dispatch order, i.e. by effective time):
      natural: A002 housing-fund issued 09:30; A005 elderly social-security
               issued 09:55 with 20 min credit (effective 09:35); A003
               social-security 09:40; A004 social-security 09:52.
      legal:   C001 issued 09:10; C002 09:50.
      police:  nobody.
    """
    ss, hf = "social-security", "housing-fund"
    windows = (
        WindowState("1", WindowStatus.OPEN, at_window("a10", "A010", ss, "1", at(9, 50))),
        WindowState("2", WindowStatus.OPEN, at_window("a11", "A011", hf, "2", at(9, 30))),
        WindowState("3", WindowStatus.PAUSED, at_window("a12", "A012", ss, "3", at(-1, 50))),
        WindowState("9", WindowStatus.CLOSED, None),
    )
    natural = (
        queued("a2", "A002", "housing-fund", "natural", at(9, 30)),
        queued("a5", "A005", "social-security", "natural", at(9, 55), at(9, 35)),
        queued("a3", "A003", "social-security", "natural", at(9, 40)),
        queued("a4", "A004", "social-security", "natural", at(9, 52)),
    )
    legal = (
        queued("c1", "C001", "business-licence", "legal", at(9, 10)),
        queued("c2", "C002", "business-licence", "legal", at(9, 50)),
    )
    stats = {
        "issued:09": 9,
        "called:09": 3,
        "wait:09": 2_100_000,
        "served:09": 3,
        "busy:w:1": 20 * MIN,
        "served:w:1": 2,
        "open:w:3": 2 * HOUR,
        "open:w:9": 30 * MIN,
        "busy:w:9": 10 * MIN,
        "served:w:9": 1,
        "est:n": 4,
        "est:abs": 1_000_000,
        "est:in": 3,
        "rating:satisfied": 2,
        "rating:very_dissatisfied": 1,
    }
    calls = (
        CallRecord(at(9, 55), 300_000, "natural", "social-security"),  # no estimate
        CallRecord(at(9, 50), 1_200_000, "natural", "social-security", 800_000, 400_000, 1_000_000),
        CallRecord(at(9, 30), 600_000, "natural", "housing-fund", 500_000, 300_000, 900_000),
        # more than an hour ago: in neither the last hour's waits nor its accuracy
        CallRecord(at(8, 59), 9_999_000, "legal", "business-licence", 1, 1, 1),
    )
    return HallState(
        seq=77,
        windows=windows,
        window_since_ms={"1": at(9), "2": at(-1), "3": at(9, 40), "9": at(9, 40)},
        waiting_by_group={"natural": 4, "legal": 2, "police": 0},
        waiting_by_service={
            "social-security": 3,
            "housing-fund": 1,
            "business-licence": 2,
            "household": 0,
        },
        queues={"natural": natural, "legal": legal, "police": ()},
        stats=stats,
        service_times={},
        calls=calls,
    )


def test_day_start_is_local_midnight(target_config: HallConfig) -> None:
    # 09:00 in Shanghai (UTC+8) is 01:00 UTC; local midnight is 9 hours earlier
    assert day_start_ms(NOW, target_config) == at(0)
    assert day_start_ms(at(0), target_config) == at(0)
    assert day_start_ms(at(0) - 1, target_config) == at(0) - 24 * HOUR


def test_hall_figures_from_a_hand_built_state(target_config: HallConfig) -> None:
    config = target_config
    state = hand_built_state()
    model = service_model(config, state)
    table = estimates(config, state, model, NOW)
    online = [ScreenPresence("s1", ScreenPage.DISPLAY, None, "r1", at(8), NOW - 1000)]
    last_seen = {
        "s1": NOW - 1000,  # online
        "s2": NOW - HOUR,  # lapsed an hour ago: offline
        "s0": NOW - 24 * HOUR,  # exactly a day: still offline
        "s3": NOW - 25 * HOUR,  # over a day: retired, not listed
    }
    f = hall_figures(config, state, table, online, last_seen, NOW)

    assert f.at_ms == NOW
    assert f.seq == 77
    # groups: waiting from the counts; oldest by issue time among the heads
    # (natural: A002 issued 09:30 → 1800 s; legal: C001 09:10 → 3000 s);
    # open windows serving them: natural 1 and 2, legal 1 (3 is paused), police none
    got_groups = [(g.id, g.waiting, g.oldest_wait_s, g.open_windows) for g in f.groups]
    assert got_groups == [
        ("natural", 4, 1800.0, 2),
        ("legal", 2, 3000.0, 1),
        ("police", 0, None, 0),
    ]

    # breaches, longest first: C001 waited 50 min (> 15), A003 20 min (> 10);
    # A002 waited 30 min but housing-fund has no target; A005 5 min, A004 8 min, C002 10 min
    got_breaches = [(b.ticket.number, b.waited_s, b.target_s) for b in f.breaches]
    assert got_breaches == [("C001", 3000.0, 900.0), ("A003", 1200.0, 600.0)]
    assert f.breach_count == 2

    services = {s.id: s for s in f.services}
    assert [s.id for s in f.services] == [s.id for s in config.services]
    assert services["social-security"].waiting == 3
    assert services["social-security"].target_s == 600.0
    assert services["social-security"].over_target == 1
    assert services["housing-fund"].target_s is None
    assert services["housing-fund"].over_target == 0
    assert services["business-licence"].over_target == 1
    assert services["business-licence"].target_s == 900.0
    assert services["household"].waiting == 0
    # a ticket taken now goes after everyone waiting in its group
    assert services["social-security"].eta == table.at("natural", 4)
    assert services["housing-fund"].eta == table.at("natural", 4)
    assert services["business-licence"].eta == table.at("legal", 2)
    assert services["business-licence"].eta is not None
    assert services["household"].eta is None  # no open window serves police

    windows = {w.state.id: w for w in f.windows}
    # 1: open 09:00 → 10:00 = 3600 s; busy 1200 s ended + 600 s running = 1800; idle 1800
    one = windows["1"]
    assert (one.served, one.busy_s, one.idle_s, one.open_s) == (2, 1800.0, 1800.0, 3600.0)
    assert one.utilisation == pytest.approx(0.5)
    # 2: open since 23:00 yesterday, counted from midnight: 10 h = 36000 s;
    # busy: A011 since 09:30 = 1800 s; idle 34200 s
    two = windows["2"]
    assert (two.served, two.busy_s, two.idle_s, two.open_s) == (0, 1800.0, 34200.0, 36000.0)
    assert two.utilisation == pytest.approx(0.05)
    # 3: paused (no running open span): open 7200 s ended today; its visit
    # from 23:50 yesterday is counted from midnight: busy 36000 s; idle never
    # negative, utilisation capped at 1
    three = windows["3"]
    assert (three.busy_s, three.idle_s, three.open_s) == (36000.0, 0.0, 7200.0)
    assert three.utilisation == 1.0
    # 9: closed: only the ended spans. open 1800, busy 600, idle 1200
    nine = windows["9"]
    assert (nine.served, nine.busy_s, nine.idle_s, nine.open_s) == (1, 600.0, 1200.0, 1800.0)
    assert nine.utilisation == pytest.approx(1 / 3)

    # the last hour: three calls (the one at 08:59 is older than an hour)
    # mean (300 + 1200 + 600) / 3 = 700; nearest-rank p90 of 3 = the longest
    assert f.last_hour == WaitSummary(3, 700.0, 1200.0)
    # accuracy over the two with an estimate: |1200-800| = 400 (out), |600-500| = 100 (in)
    assert f.accuracy_last_hour == Accuracy(2, 250.0, 0.5)
    # today from the counters: 1 000 000 ms / 4 = 250 s; 3 of 4 inside
    assert f.accuracy_today == Accuracy(4, 250.0, 0.75)
    assert f.hours == (HourFigures("09", 9, 3, 3, 700.0),)
    assert f.ratings == {"satisfied": 2, "very_dissatisfied": 1}
    assert f.screens_online == tuple(online)
    assert f.screens_offline == (
        OfflineScreen("s0", NOW - 24 * HOUR),
        OfflineScreen("s2", NOW - HOUR),
    )


def test_breaches_are_capped_but_all_counted(target_config: HallConfig) -> None:
    state = hand_built_state()
    # 60 social-security tickets, issued a minute apart from 07:00: all past 10 minutes
    natural = tuple(
        queued(f"x{i}", f"A{i:03d}", "social-security", "natural", at(7) + i * MIN)
        for i in range(60)
    )
    crowded = HallState(
        seq=state.seq,
        windows=state.windows,
        window_since_ms=state.window_since_ms,
        waiting_by_group={"natural": 60, "legal": 0, "police": 0},
        waiting_by_service={"social-security": 60},
        queues={"natural": natural, "legal": (), "police": ()},
        stats={},
        service_times={},
        calls=(),
    )
    model = service_model(target_config, crowded)
    table = estimates(target_config, crowded, model, NOW)
    f = hall_figures(target_config, crowded, table, [], {}, NOW)
    assert f.breach_count == 60
    assert len(f.breaches) == BREACHES_SHOWN == 50
    # longest first: the 07:00 ticket waited 3 h
    assert f.breaches[0].ticket.number == "A000"
    assert f.breaches[0].waited_s == 3 * 3600.0
    waited = [b.waited_s for b in f.breaches]
    assert waited == sorted(waited, reverse=True)
    assert next(s for s in f.services if s.id == "social-security").over_target == 60
    # nothing ran today: no hours, no accuracy, no ratings
    assert f.hours == ()
    assert f.accuracy_today == Accuracy(0, None, None)
    assert f.last_hour == WaitSummary(0, None, None)
    assert f.ratings == {}


def test_estimates_replay_the_open_windows_with_their_visits(target_config: HallConfig) -> None:
    """`estimates` hands the replay the open windows only, each with the
    service now at it and how long it has lasted, and the queues by member."""
    config = target_config
    state = hand_built_state()
    model = service_model(config, state)
    got = estimates(config, state, model, NOW)
    queues = {
        g: [
            WaitingTicket(t.member, g, t.service, t.effective_ms / 1000, t.issued_ms / 1000)
            for t in q
        ]
        for g, q in state.queues.items()
    }
    windows = [
        OpenWindow("1", ("natural", "legal"), "social-security", 600.0),  # since 09:50
        OpenWindow("2", ("natural",), "housing-fund", 1800.0),  # since 09:30
    ]
    assert got == eta_table(model, queues, windows, by_group(config))
    # and the elapsed time matters: a fresh visit at window 1 gives another table
    fresh = [OpenWindow("1", ("natural", "legal"), "social-security", 0.0), windows[1]]
    assert got != eta_table(model, queues, fresh, by_group(config))


# --------------------------------------------------------------------- eta_table


def waiting(group: str, service: str, n: int, start: float = 0.0) -> list[WaitingTicket]:
    return [WaitingTicket(f"{group}{i}", group, service, start + i, start + i) for i in range(n)]


def test_eta_table_places_tail_and_beyond(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    model = ServiceTimeModel.from_config(config)
    queues = {
        "natural": waiting("natural", "social-security", 5),
        "legal": waiting("legal", "business-licence", 2, start=0.5),
    }
    windows = [
        OpenWindow("1", ("natural", "legal"), "social-security", 120.0),
        OpenWindow("2", ("natural",)),
    ]
    table = eta_table(model, queues, windows, by_group(config))
    everyone = [t for q in queues.values() for t in q]
    each = estimate_waits(model, everyone, windows)
    natural = table.groups["natural"]

    # places are the replay's estimates, in queue order
    assert natural.places == tuple(each[t.id] for t in queues["natural"])
    assert table.groups["legal"].places == tuple(each[t.id] for t in queues["legal"])
    for i, t in enumerate(queues["natural"]):
        assert table.at("natural", i) == each[t.id]

    # the tail: a ticket issued now, after everyone waiting
    newcomer = WaitingTicket("new", "natural", "housing-fund", 1e12, 1e12)
    assert natural.tail == estimate_wait(model, newcomer, everyone, windows)
    assert table.at("natural", 5) == natural.tail

    # beyond: one more natural visit (mean of 8 and 6 min = 420 s) shared by
    # the 2 windows serving natural: 210 s a place
    assert natural.step_mean == pytest.approx(210.0)
    for extra in (1, 2, 10):
        assert natural.at(5 + extra).mean == pytest.approx(natural.tail.mean + extra * 210.0)
    # monotone: every figure grows with the place in line, through the tail
    ladder = [table.at("natural", p) for p in range(40)]
    assert all(e is not None for e in ladder)
    for a, b in itertools.pairwise(ladder):
        assert a is not None and b is not None
        assert a.mean <= b.mean and a.central <= b.central
        assert a.p10 <= a.central <= a.p90
        assert a.p90 <= b.p90

    # legal is served by window 1 alone: a place is a whole visit (12 min)
    assert table.groups["legal"].step_mean == pytest.approx(720.0)
    # police: no open window, no estimate at any place
    assert "police" not in table.groups
    assert table.at("police", 0) is None
    assert table.at("police", 7) is None


def test_a_window_serving_two_groups_shares_itself_by_dispatch_order(tmp_path: Path) -> None:
    """Windows 1 (natural + legal) and 2 (natural), both free. Natural has
    n0, n1 (effective 0 and 1 s), legal l0 (2 s). Replay (mean times):
      t=0  window 1 takes n0 (the smallest effective over its groups), busy to 480
      t=0  window 2 takes n1, busy to 480
      t=480 window 1 takes l0 (nothing else in natural), busy to 480 + 720 = 1200
      t=480 window 2: nothing natural left, drops out
    so natural's places expect 0 and 0, legal's 480; a natural newcomer is
    taken by window 2 at 480 (window 1 took l0 first, which is ahead of it),
    a legal newcomer waits for window 1 at 1200."""
    config = make_config(tmp_path)
    model = ServiceTimeModel.from_config(config)
    queues = {
        "natural": waiting("natural", "social-security", 2),
        "legal": [WaitingTicket("l0", "legal", "business-licence", 2.0, 2.0)],
    }
    windows = [OpenWindow("1", ("natural", "legal")), OpenWindow("2", ("natural",))]
    table = eta_table(model, queues, windows, by_group(config))
    natural, legal = table.groups["natural"], table.groups["legal"]
    assert [e.mean for e in natural.places] == [0.0, 0.0]
    assert natural.places[0] == WaitEstimate(0.0, 0.0, CALL_MOMENT_S, 0.0, 0.0)
    assert [e.mean for e in legal.places] == [480.0]
    assert natural.tail.mean == 480.0
    assert legal.tail.mean == 1200.0
    # beyond the tail: natural 420 / 2 windows, legal 720 / 1 window
    assert natural.at(3).mean == pytest.approx(480.0 + 210.0)
    assert legal.at(3).mean == pytest.approx(1200.0 + 1440.0)
    assert table.at("legal", 3) == legal.at(3)
    # the legal ticket waits on the shared window: without natural's queue it
    # would be called at once
    alone = eta_table(model, {"legal": queues["legal"]}, windows, by_group(config))
    assert alone.at("legal", 0) == WaitEstimate(0.0, 0.0, CALL_MOMENT_S, 0.0, 0.0)


def test_a_group_without_an_open_window_has_no_entry(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    model = ServiceTimeModel.from_config(config)
    queues = {"police": waiting("police", "household", 3)}
    table = eta_table(model, queues, [OpenWindow("2", ("natural",))], by_group(config))
    assert table.at("police", 0) is None
    assert table.at("police", 3) is None
    # natural has a window and nobody waiting: the tail is place 0, called at once
    assert table.at("natural", 0) == WaitEstimate(0.0, 0.0, CALL_MOMENT_S, 0.0, 0.0)
    assert table.groups["natural"].places == ()


# -------------------------------------------------------------- model_from_visits


def test_model_learns_toward_recent_visits(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    prior = ServiceTimeModel.from_config(config)
    assert prior.mean("social-security") == 480.0  # 8 min configured

    # one 900 s visit weighs 1 / (5 prior visits + 0 + 1): 480 + 420 / 6 = 550
    one = model_from_visits(config, {"social-security": [900.0]})
    assert one.mean("social-security") == pytest.approx(550.0)
    assert one.stats("social-security").count == 1

    # twenty slow visits: well above the config, still below the visits
    many = model_from_visits(config, {"social-security": [900.0] * 20})
    assert 800.0 < many.mean("social-security") < 900.0
    # more visits, closer to them: it follows a slower clerk
    means = [
        model_from_visits(config, {"social-security": [900.0] * n}).mean("social-security")
        for n in range(0, 25)
    ]
    assert means == sorted(means) and len(set(means)) == len(means)
    # other services keep their prior
    assert many.mean("housing-fund") == 360.0

    # a forgotten button (10 000 s) is clipped to 4 means (1920 s): 480 + 1440 / 6 = 720
    clipped = model_from_visits(config, {"social-security": [10_000.0]})
    assert clipped.mean("social-security") == pytest.approx(720.0)

    # and figures' service_model reads the store's ms
    state = HallState(
        seq=0,
        windows=(),
        window_since_ms={},
        waiting_by_group={},
        waiting_by_service={},
        queues={},
        stats={},
        service_times={"social-security": (900_000,)},
        calls=(),
    )
    assert service_model(config, state).mean("social-security") == pytest.approx(550.0)
    assert math.isclose(service_model(config, state).mean("household"), 600.0)
