"""The demo's simulated clock (a pure object), where `qms demo` starts it, and
the day keeper's sleep on a fast clock."""

from __future__ import annotations

from datetime import datetime
from importlib.resources import as_file, files

import pytest

from dispatcher.day_keeper import MAX_SLEEP_S, DayKeeper
from dispatcher.simulator import SimulatedClock, demo_start
from queue_core.config import HallConfig, load_halls


class RealTime:
    """The real clock the simulated one follows, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_clock_starts_where_told_and_runs_speed_times_faster() -> None:
    real = RealTime()
    clock = SimulatedClock(1_800_000_000.0, 30.0, real)
    assert clock() == 1_800_000_000.0
    real.now += 2.0
    assert clock() == 1_800_000_060.0
    real.now += 0.5
    assert clock() == 1_800_000_075.0
    assert (clock.start, clock.speed, clock.skipped_s) == (1_800_000_000.0, 30.0, 0.0)


def test_the_clock_jumps_forward_and_runs_on_from_there() -> None:
    real = RealTime()
    clock = SimulatedClock(1_800_000_000.0, 10.0, real)
    real.now += 1.0
    assert clock.jump_to(1_800_003_600.0)
    assert clock() == 1_800_003_600.0
    assert clock.skipped_s == 3590.0
    real.now += 3.0
    assert clock() == 1_800_003_630.0
    assert clock.jump_to(1_800_003_700.0)
    assert clock.skipped_s == 3590.0 + 70.0


def test_the_clock_never_jumps_back() -> None:
    real = RealTime()
    clock = SimulatedClock(1_800_000_000.0, 10.0, real)
    real.now += 1.0
    assert not clock.jump_to(1_799_999_000.0)
    assert not clock.jump_to(1_800_000_010.0)  # exactly now: nothing to skip
    assert clock() == 1_800_000_010.0
    assert clock.skipped_s == 0.0


@pytest.mark.parametrize("speed", [0.0, -2.0, float("nan")])
def test_a_clock_needs_a_positive_speed(speed: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        SimulatedClock(1_800_000_000.0, speed)


def test_by_default_the_clock_follows_real_time() -> None:
    clock = SimulatedClock(1_800_000_000.0, 1.0)
    first = clock()
    assert 1_800_000_000.0 <= first <= clock()


@pytest.fixture(scope="module")
def demo_hall() -> HallConfig:
    with as_file(files("qms") / "demo_hall.toml") as path:
        return load_halls([path])[0]


def _at(hall: HallConfig, text: str) -> float:
    """Epoch seconds of a wall time in the hall's zone."""
    return datetime.fromisoformat(text).replace(tzinfo=hall.timezone).timestamp()


@pytest.mark.parametrize(
    ("now", "start"),
    [
        # Monday 7 December 2026: issuing now, the clock starts now.
        ("2026-12-07 10:17:03", "2026-12-07 10:17:03"),
        # Before the doors open, at lunch, after the kiosk stopped issuing
        # (15 minutes before the span ends), in the evening: the next opening.
        ("2026-12-07 04:35:00", "2026-12-07 08:30:00"),
        ("2026-12-07 11:50:00", "2026-12-07 13:30:00"),
        ("2026-12-07 17:20:00", "2026-12-08 08:30:00"),
        ("2026-12-07 21:00:00", "2026-12-08 08:30:00"),
        # Saturday morning only; Sunday closed.
        ("2026-12-12 12:30:00", "2026-12-14 08:30:00"),
        ("2026-12-13 10:00:00", "2026-12-14 08:30:00"),
        ("2026-12-12 08:00:00", "2026-12-12 09:00:00"),
    ],
)
def test_the_demo_starts_now_when_the_hall_issues_else_at_its_next_opening(
    demo_hall: HallConfig, now: str, start: str
) -> None:
    assert demo_start(demo_hall, _at(demo_hall, now)) == _at(demo_hall, start)


@pytest.mark.parametrize(("rate", "longest"), [(1.0, 30.0), (30.0, 1.0), (150.0, 0.2), (0.5, 30.0)])
def test_the_day_keeper_wakes_as_often_on_the_demo_clock_as_in_life(
    rate: float, longest: float
) -> None:
    assert MAX_SLEEP_S == 30.0
    keeper = DayKeeper({}, rate=rate)
    assert keeper.seconds_to_next() == pytest.approx(longest)
    assert DayKeeper({}, rate=rate, max_sleep_s=5.0).seconds_to_next() == 5.0
