"""`qms simulate`'s parts: the rules as configs, the generated day, the
statistics on hand-made days, the output, and the player driving the real
scripts on the test Redis."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from datetime import date, datetime
from pathlib import Path

import pytest

from dispatcher.policy_sim import output
from dispatcher.policy_sim.day import (
    APPOINTMENT_SHARE,
    DISABLED_SHARE,
    ELDERLY_SHARE,
    NO_SHOW_SHARE,
    Arrival,
    Day,
    EmptyDay,
    archived_day,
    day_hours,
    default_visitors,
    generate_day,
)
from dispatcher.policy_sim.player import HallInUse, play_day
from dispatcher.policy_sim.rules import (
    UnknownRule,
    config_for_rule,
    with_windows,
)
from dispatcher.policy_sim.stats import (
    PlayedDay,
    Visit,
    Waits,
    class_waits,
    max_overtaking,
    outcome,
    percentile,
    summary,
    utilisation,
)
from queue_core.archive import ArchivedTicket
from queue_core.config import HallConfig, Window
from queue_core.keys import HallKeys
from queue_core.models import TicketStatus
from queue_core.redis_client import RedisClient
from queue_core.scripts import Scripts
from tests.support import START_S, make_config

MIN = 60_000
NINE = round(START_S * 1000)
"""2026-11-21 09:00 in Shanghai, epoch ms."""
DAY = date(2026, 11, 21)

HOURS = """
[hours]
mon = ["09:00-12:00", "13:30-17:00"]
tue = ["09:00-12:00", "13:30-17:00"]
wed = ["09:00-12:00", "13:30-17:00"]
thu = ["09:00-12:00", "13:30-17:00"]
fri = ["09:00-12:00", "13:30-17:00"]
sat = ["09:00-12:00", "13:30-17:00"]
sun = []
issue_until_minutes = 30
"""


@pytest.fixture
def config(tmp_path: Path) -> HallConfig:
    return make_config(tmp_path)


# ------------------------------------------------------------------ rules


def test_each_rule_is_the_hall_under_another_dispatch_rule(config: HallConfig) -> None:
    assert config_for_rule(config, "credit") == config
    strict = config_for_rule(config, "strict")
    assert strict.priority == dict.fromkeys(config.priority, math.inf)
    assert strict.dispatch.rule == "credit"
    for rule in ("fifo", "ratio"):
        changed = config_for_rule(config, rule)
        assert changed.dispatch.rule == rule
        assert changed.priority == config.priority
        assert dataclasses.replace(changed, dispatch=config.dispatch) == config
    # A hall configured as fifo is played under credit as credit.
    fifo_hall = config_for_rule(config, "fifo")
    assert config_for_rule(fifo_hall, "credit") == config


def test_an_unknown_rule_is_named(config: HallConfig) -> None:
    with pytest.raises(UnknownRule, match="'lottery'"):
        config_for_rule(config, "lottery")


def test_windows_serving_every_group(config: HallConfig) -> None:
    hall = with_windows(config, 3)
    assert [w.id for w in hall.windows] == ["1", "2", "3"]
    assert all(w.groups == tuple(g.id for g in config.groups) for w in hall.windows)
    assert hall.window_by_id["2"] is hall.windows[1]
    with pytest.raises(ValueError):
        with_windows(config, 0)


# ---------------------------------------------------------- generated day


def test_a_generated_day_is_the_same_for_the_same_seed(config: HallConfig) -> None:
    one = generate_day(config, DAY, 500, seed=7)
    assert generate_day(config, DAY, 500, seed=7) == one
    assert generate_day(config, DAY, 500, seed=8) != one
    assert len(one.arrivals) == 500
    assert [a.at_ms for a in one.arrivals] == sorted(a.at_ms for a in one.arrivals)


def test_a_generated_day_has_the_shares_and_peaks_of_a_hall(config: HallConfig) -> None:
    n = 4000
    day = generate_day(config, DAY, n, seed=1)
    classes = Counter(a.priority for a in day.arrivals)
    assert classes["elderly"] / n == pytest.approx(ELDERLY_SHARE, abs=0.02)
    assert classes["disabled"] / n == pytest.approx(DISABLED_SHARE, abs=0.01)
    assert classes["appointment"] / n == pytest.approx(APPOINTMENT_SHARE, abs=0.015)
    assert sum(a.no_show for a in day.arrivals) / n == pytest.approx(NO_SHOW_SHARE, abs=0.01)
    assert set(classes) == {"normal", "elderly", "disabled", "appointment"}
    # Two peaks: 10:00 and 14:30 are busier than 12:30 and 17:00.
    hours = Counter(
        datetime.fromtimestamp(a.at_ms / 1000, config.timezone).strftime("%H")
        for a in day.arrivals
        if a.priority != "appointment"
    )
    assert hours["10"] > 2 * hours["12"] and hours["14"] > 2 * hours["12"]
    assert hours["10"] > hours["16"]
    # Visits last the service's expected minutes on average.
    for service in config.services:
        lengths = [a.minutes for a in day.arrivals if a.service == service.id]
        assert len(lengths) > 100
        assert sum(lengths) / len(lengths) == pytest.approx(service.expected_minutes, rel=0.1)
    # Appointments check in around their slot, within the kiosk's hours.
    issuing, _, _ = day_hours(config, DAY)
    for a in day.arrivals:
        assert any(s <= a.at_ms < e for s, e in issuing)
        if a.priority == "appointment":
            assert a.slot_ms is not None
            assert -30 * MIN <= a.at_ms - a.slot_ms <= 30 * MIN


def test_a_day_keeps_to_the_halls_hours(tmp_path: Path) -> None:
    config = make_config(tmp_path, extra=HOURS)
    day = generate_day(config, DAY, 800, seed=2)  # a Saturday
    for a in day.arrivals:
        local = datetime.fromtimestamp(a.at_ms / 1000, config.timezone).strftime("%H:%M")
        assert "09:00" <= local < "11:30" or "13:30" <= local < "16:30", local
    assert not day.all_day
    assert len(day.serving) == 2
    with pytest.raises(EmptyDay, match="does not open"):
        generate_day(config, date(2026, 11, 22), 10, seed=2)  # a Sunday


def test_only_the_classes_a_hall_has_come(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    config = dataclasses.replace(config, priority={"elderly": 20.0})
    classes = Counter(a.priority for a in generate_day(config, DAY, 1000, seed=3).arrivals)
    assert set(classes) == {"normal", "elderly"}


def test_the_default_count_keeps_the_windows_busy_but_not_overrun(config: HallConfig) -> None:
    # 4 windows, 8:30-17:30, services of 6 to 12 minutes: some hundreds.
    assert 150 < default_visitors(config, DAY) < 400


def test_an_archived_day_replays_its_tickets(config: HallConfig) -> None:
    def ticket(i: int, **kw: object) -> ArchivedTicket:
        fields: dict[str, object] = dict(
            hall=config.id, day=DAY.isoformat(), id=f"t{i}", number=f"A{i:03}",
            service="social-security", group="natural", priority="normal",
            status=TicketStatus.COMPLETED, issued_ms=NINE + i * MIN,
            called_ms=NINE + (i + 1) * MIN, finished_ms=NINE + (i + 13) * MIN, window="1",
        )  # fmt: skip
        fields.update(kw)
        return ArchivedTicket(**fields)  # type: ignore[arg-type]

    tickets = [
        ticket(2, priority="elderly"),
        ticket(1),
        ticket(3, status=TicketStatus.CANCELLED),
        ticket(4, service="gone"),
        ticket(5, priority="appointment"),
        ticket(6, priority="veteran"),
        ticket(7, status=TicketStatus.NO_SHOW, finished_ms=None),
    ]
    day = archived_day(config, DAY, tickets, seed=1)
    assert [(a.at_ms - NINE) // MIN for a in day.arrivals] == [1, 2, 5, 6, 7]
    assert [a.priority for a in day.arrivals] == [
        "normal", "elderly", "appointment", "normal", "normal",
    ]  # fmt: skip
    assert day.arrivals[0].minutes == 12
    assert day.arrivals[2].slot_ms == day.arrivals[2].at_ms
    assert day.arrivals[4].no_show
    assert day.left_out == 2
    with pytest.raises(EmptyDay, match="no tickets"):
        archived_day(config, DAY, [], seed=1)


# ------------------------------------------------------------- statistics


def visit(
    priority: str, group: str, issued: float, call: int | None, window: str | None, **kw: object
) -> Visit:
    called = None if call is None else NINE + 60 * MIN + call * MIN
    return Visit(priority, group, NINE + round(issued * MIN), called, call, window, **kw)  # type: ignore[arg-type]


WINDOWS = (Window("a", "A", ("g1",)), Window("b", "B", ("g2",)), Window("ab", "AB", ("g1", "g2")))


def test_overtaking_counts_tickets_called_before_by_a_window_that_could_call_it() -> None:
    visits = [
        visit("normal", "g1", 0, 2, "a"),
        visit("elderly", "g1", 5, 0, "a"),  # called before the normal, issued 5 min later
        visit("normal", "g2", 20, 1, "b"),  # later still, but window b cannot call g1
    ]
    assert max_overtaking(visits, WINDOWS) == 5
    # A window serving both groups calls the g2 ticket: now it overtook too.
    visits[2] = visit("normal", "g2", 20, 1, "ab")
    assert max_overtaking(visits, WINDOWS) == 20


def test_overtaking_is_of_normal_tickets_that_were_there() -> None:
    assert (
        max_overtaking(
            [visit("elderly", "g1", 0, 1, "a"), visit("normal", "g1", 5, 0, "a")], WINDOWS
        )
        == 0
    )
    no_show = [visit("normal", "g1", 0, 1, "a", no_show=True), visit("elderly", "g1", 5, 0, "a")]
    assert max_overtaking(no_show, WINDOWS) == 0
    # Never called: every call of its group's windows came before it.
    never = [visit("normal", "g1", 0, None, None), visit("elderly", "g1", 7.5, 0, "a")]
    assert max_overtaking(never, WINDOWS) == 7.5
    # Arrival order: nothing, ties included.
    fifo = [visit("normal", "g1", i // 2, i, "ab") for i in range(6)]
    assert max_overtaking(fifo, WINDOWS) == 0


def test_waits_per_class() -> None:
    visits = [
        visit("normal", "g1", 50, 10, "a"),  # called at 70: waited 20
        visit("elderly", "g1", 60, 12, "a"),  # waited 12
        visit("normal", "g1", 40, None, None),  # never called: waited until the end
        visit("normal", "g1", 0, 1, "a", no_show=True),  # not counted
    ]
    end = NINE + 100 * MIN
    assert class_waits(visits, end) == {"normal": [20.0, 60.0], "elderly": [12.0]}
    assert summary([20.0, 60.0]) == output_waits(40.0, 20.0, 60.0, 60.0, 2)
    assert percentile([float(x) for x in range(1, 11)], 50) == 5
    assert percentile([float(x) for x in range(1, 11)], 90) == 9
    assert summary([]).count == 0


def output_waits(mean: float, p50: float, p90: float, top: float, count: int) -> Waits:
    return Waits(mean, p50, p90, top, count)


def test_utilisation_is_busy_time_while_open_over_open_time() -> None:
    open_spans = [(0, 100), (200, 300)]
    busy = {
        "1": [(0, 50), (90, 110), (250, 260)],  # 50 + 10 (of 20, 10 after the close) + 10
        "2": [],
        "3": [(0, 300)],  # busy through lunch: only open time counts
    }
    assert utilisation(busy, open_spans) == {"1": 0.35, "2": 0.0, "3": 1.0}


def test_outcome_of_a_played_day() -> None:
    played = PlayedDay(
        visits=(visit("normal", "g1", 0, 1, "a"), visit("elderly", "g1", 30, 0, "a")),
        windows=WINDOWS[:1],
        busy={"a": ((NINE + 60 * MIN, NINE + 70 * MIN),)},
        open=((NINE, NINE + 100 * MIN),),
        end_ms=NINE + 100 * MIN,
    )
    o = outcome(played)
    assert list(o.classes) == ["normal", "elderly"]
    assert o.classes["normal"].p90 == 61
    assert o.max_overtaken_minutes == 30
    assert o.utilisation == (0.1, 0.1)
    shape = output.to_json(output.Report("h", DAY, "", "", {"credit": o}))
    assert shape == {
        "rules": {
            "credit": {
                "classes": {
                    "normal": {"mean": 61.0, "p50": 61.0, "p90": 61.0, "max": 61.0, "count": 1},
                    "elderly": {"mean": 30.0, "p50": 30.0, "p90": 30.0, "max": 30.0, "count": 1},
                },
                "max_overtaken_minutes": 30.0,
                "utilisation": {"min": 0.1, "max": 0.1},
            }
        }
    }
    page = output.render_html(output.Report("h <&>", DAY, "x", "y", {"credit": o, "fifo": o}))
    assert page.count("<svg") == 2 and "h &lt;&amp;&gt;" in page
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org", "")


# ------------------------------------------------------------------ player


def small_day(*arrivals: tuple[float, str]) -> Day:
    """Visitors for social security (10 minutes each) at minutes after 09:00."""
    return Day(
        DAY,
        tuple(Arrival(NINE + round(m * MIN), "social-security", p, 10.0) for m, p in arrivals),
        issuing=((NINE, NINE + 8 * 60 * MIN),),
        serving=((NINE, NINE + 15 * 60 * MIN),),
        all_day=True,
    )


@pytest.mark.redis
@pytest.mark.parametrize(
    ("rule", "order"),
    [("credit", ["normal", "elderly", "normal"]), ("fifo", ["normal", "normal", "elderly"])],
)
async def test_the_player_lets_the_scripts_decide(
    config: HallConfig, redis: RedisClient, rule: str, order: list[str]
) -> None:
    hall = config_for_rule(with_windows(config, 1), rule)
    day = small_day((0, "normal"), (2, "normal"), (3, "elderly"))
    played = await play_day(redis, Scripts.register(redis), hall, day)
    calls = sorted(played.visits, key=lambda v: v.call or 0)
    assert [v.priority for v in calls] == order
    assert [(v.called_ms or 0) - NINE for v in calls] == [0, 10 * MIN, 20 * MIN]
    assert played.busy["1"] == tuple(
        (NINE + i * 10 * MIN, NINE + (i + 1) * 10 * MIN) for i in range(3)
    )
    # Open all day: the windows count as open to the end of the issuing
    # hours, since the work was done before.
    assert played.open == ((NINE, NINE + 8 * 60 * MIN),)
    assert not [k async for k in redis.scan_iter(match=HallKeys(hall.id).match_all())]


@pytest.mark.redis
async def test_the_player_plays_only_a_fresh_hall(config: HallConfig, redis: RedisClient) -> None:
    keys = HallKeys(config.id)
    await redis.set(keys.seq, 1)
    try:
        with pytest.raises(HallInUse):
            await play_day(redis, Scripts.register(redis), config, small_day((0, "normal")))
    finally:
        await redis.delete(keys.seq)


@pytest.mark.redis
async def test_no_shows_and_visitors_after_hours(tmp_path: Path, redis: RedisClient) -> None:
    config = with_windows(make_config(tmp_path, extra=HOURS), 1)
    day = Day(
        DAY,
        (
            Arrival(NINE, "social-security", "normal", 10.0, no_show=True),
            Arrival(NINE + MIN, "social-security", "normal", 200.0),
            Arrival(NINE + 2 * MIN, "social-security", "normal", 10.0),
            Arrival(NINE + 150 * MIN, "social-security", "normal", 10.0),  # 11:30: no tickets
        ),
        issuing=((NINE, NINE + 150 * MIN),),
        serving=((NINE, NINE + 180 * MIN),),
        all_day=False,
    )
    played = await play_day(redis, Scripts.register(redis), config, day)
    assert played.turned_away == 1
    called = sorted((v for v in played.visits if v.call is not None), key=lambda v: v.call or 0)
    assert [v.no_show for v in called] == [True, False]
    assert [(v.called_ms or 0) - NINE for v in called] == [0, 2 * MIN]
    o = outcome(played)
    assert o.unserved == 1 and o.no_shows == 1
    assert o.classes["normal"].max == 178  # waited from 09:02 to the day's end at 12:00
    assert o.utilisation == (1.0, 1.0)  # busy from 09:00 past 12:00


@pytest.mark.redis
async def test_windows_rest_between_spans(tmp_path: Path, redis: RedisClient) -> None:
    config = make_config(tmp_path, extra=HOURS)
    day = generate_day(config, DAY, 300, seed=4)  # 4 windows: queues at the peaks
    played = await play_day(redis, Scripts.register(redis), config, day)
    noon, half_one = NINE + 3 * 60 * MIN, NINE + 270 * MIN
    calls = [v.called_ms for v in played.visits if v.called_ms is not None]
    assert calls and not [c for c in calls if noon <= c < half_one]
    assert any(c == half_one for c in calls)  # the queue left at noon, called at 13:30
    assert played.open == day.serving
