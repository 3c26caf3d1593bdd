"""The dispatch rule's pure parts: no Redis here."""

from __future__ import annotations

import math
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dispatcher.naive_estimate import eta_seconds, mean_service_seconds, open_windows_serving
from queue_core import policy
from queue_core.config import AppointmentRules
from tests.support import make_config

T0 = 1_795_222_800_000
MIN = 60_000


def test_effective_time_subtracts_the_credit() -> None:
    assert policy.effective_ms(T0, 0) == T0
    assert policy.effective_ms(T0, 20) == T0 - 20 * MIN
    assert policy.effective_ms(T0, 0.5) == T0 - 30_000


def test_elderly_goes_ahead_of_those_who_came_less_than_its_credit_before() -> None:
    normal_19_min_earlier = policy.effective_ms(T0 - 19 * MIN, 0)
    normal_21_min_earlier = policy.effective_ms(T0 - 21 * MIN, 0)
    elderly = policy.effective_ms(T0, 20)
    assert elderly < normal_19_min_earlier
    assert elderly > normal_21_min_earlier


def test_infinite_credit_is_strict_priority_keeping_arrival_order() -> None:
    first = policy.effective_ms(T0, math.inf)
    second = policy.effective_ms(T0 + 1, math.inf)
    normal_a_day_earlier = policy.effective_ms(T0 - 24 * 60 * MIN, 0)
    finite_big_credit = policy.effective_ms(T0, 24 * 60)
    assert first < second < normal_a_day_earlier
    assert second < finite_big_credit
    # still exact in a double: every millisecond stays distinct
    assert second - first == 1


def test_negative_or_nan_credit_is_refused() -> None:
    with pytest.raises(ValueError):
        policy.effective_ms(T0, -1)
    with pytest.raises(ValueError):
        policy.effective_ms(T0, math.nan)


@pytest.mark.parametrize(
    ("offset_min", "on_time"),
    [(-31, False), (-30, True), (-5, True), (0, True), (10, True), (11, False)],
)
def test_appointment_on_time_window(offset_min: int, on_time: bool) -> None:
    rules = AppointmentRules(early_minutes=30, grace_minutes=10)
    assert policy.appointment_on_time(T0 + offset_min * MIN, T0, rules) is on_time


def test_checkin_effective_time() -> None:
    # early and on time: counts from arrival, minus the credit
    assert policy.checkin_effective_ms(T0 - 5 * MIN, T0, True, 30) == T0 - 35 * MIN
    # late but within grace: counts from the slot start
    assert policy.checkin_effective_ms(T0 + 5 * MIN, T0, True, 30) == T0 - 30 * MIN
    # outside the window: an ordinary arrival
    assert policy.checkin_effective_ms(T0 + 60 * MIN, T0, False, 30) == T0 + 60 * MIN


def test_local_day_follows_the_hall_time_zone() -> None:
    shanghai = ZoneInfo("Asia/Shanghai")
    # 2026-11-21 15:59:59 UTC is 23:59:59 in Shanghai; a second later it is the 22nd.
    before = 1_795_276_799_000
    assert policy.local_day(before, shanghai) == "20261121"
    assert policy.local_day(before + 1000, shanghai) == "20261122"


def test_estimate_from_expected_minutes_and_open_windows(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    # natural: social-security 8 min, housing-fund 6 min -> mean 7 min
    assert mean_service_seconds(config, "natural") == 420
    # windows 1 (natural+legal) and 2 (natural) serve natural
    assert open_windows_serving(config, "natural", {"1", "2", "3"}) == 2
    assert eta_seconds(config, "natural", 0, {"1", "2"}) == 105  # 0.5 x 420 / 2
    assert eta_seconds(config, "natural", 3, {"2"}) == 1470  # 3.5 x 420
    assert eta_seconds(config, "natural", 3, {"3", "9"}) is None  # none open serves it
