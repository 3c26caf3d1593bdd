"""The hall's calendar (queue_core.calendar): pure functions of the hours and
a clock. Every moment is built from a wall time in Asia/Shanghai.

The calendar used throughout, in September and October 2026:

    Mon 21 Sep … Fri 25 Sep   08:30-12:00, 13:30-17:30
    Sat 26 Sep                09:00-12:00
    Sun 20 Sep                closed (no `sun`)
    Sun 27 Sep                08:30-17:30 (`open`: a working Sunday, 调休)
    Thu 1 Oct, Fri 2 Oct      closed (holidays)
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from queue_core.calendar import (
    Boundary,
    Hours,
    Span,
    at_minute,
    closed_message,
    current_span,
    day_end,
    hall_hours,
    issuing_at,
    latest_boundary,
    latest_day_end,
    next_boundary,
    next_issuing,
    next_span_start,
    opening_phrase,
)

SH = ZoneInfo("Asia/Shanghai")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def at(
    month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, *, ms: int = 0
) -> int:
    """Epoch ms of a wall time in Shanghai in 2026."""
    moment = datetime(2026, month, day, hour, minute, second, ms * 1000, tzinfo=SH)
    return (moment - EPOCH) // timedelta(milliseconds=1)


def hm(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def spans(*texts: str) -> tuple[Span, ...]:
    return tuple(Span(hm(t.split("-")[0]), hm(t.split("-")[1])) for t in texts)


WEEKDAY = spans("08:30-12:00", "13:30-17:30")
HOURS = Hours(
    weekly=(WEEKDAY, WEEKDAY, WEEKDAY, WEEKDAY, WEEKDAY, spans("09:00-12:00"), ()),
    closed=frozenset({date(2026, 10, 1), date(2026, 10, 2)}),
    open={date(2026, 9, 27): spans("08:30-17:30")},
)
EARLY_STOP = Hours(weekly=HOURS.weekly, issue_until_minutes=30)


def test_the_clock_is_local_time() -> None:
    assert date(2026, 9, 21).weekday() == 0  # a Monday
    assert at(9, 21, 8, 30) == 1_789_950_600_000  # 2026-09-21T00:30:00Z
    assert datetime.fromtimestamp(at(9, 21, 8, 30) / 1000, UTC).hour == 0
    assert at_minute(date(2026, 9, 21), hm("08:30"), SH) == at(9, 21, 8, 30)
    assert at_minute(date(2026, 9, 21), 24 * 60, SH) == at(9, 22)


# --- open or not ---------------------------------------------------------------


def test_a_span_includes_its_start_and_excludes_its_end() -> None:
    assert not issuing_at(HOURS, SH, at(9, 21, 8, 29, 59, ms=999))
    assert issuing_at(HOURS, SH, at(9, 21, 8, 30))
    assert issuing_at(HOURS, SH, at(9, 21, 11, 59, 59, ms=999))
    assert not issuing_at(HOURS, SH, at(9, 21, 12))
    assert current_span(HOURS, SH, at(9, 21, 11, 59)) == (at(9, 21, 8, 30), at(9, 21, 12))
    assert current_span(HOURS, SH, at(9, 21, 12)) is None


def test_across_the_end_of_a_span() -> None:
    before = hall_hours(HOURS, SH, at(9, 21, 17, 29, 59))
    assert (before.open, before.closes_at_ms, before.opens_at_ms) == (True, at(9, 21, 17, 30), None)
    after = hall_hours(HOURS, SH, at(9, 21, 17, 30))
    assert (after.open, after.in_span, after.opens_at_ms) == (False, False, at(9, 22, 8, 30))
    assert not after.closed_by_manager


def test_the_lunch_break() -> None:
    lunch = hall_hours(HOURS, SH, at(9, 21, 12, 10))
    assert (lunch.open, lunch.in_span, lunch.opens_at_ms) == (False, False, at(9, 21, 13, 30))
    assert next_issuing(HOURS, SH, at(9, 21, 12, 10)) == at(9, 21, 13, 30)
    afternoon = hall_hours(HOURS, SH, at(9, 21, 13, 30))
    assert (afternoon.open, afternoon.closes_at_ms) == (True, at(9, 21, 17, 30))
    now = at(9, 21, 12, 10)
    assert closed_message(now, lunch.opens_at_ms, SH, "zh") == "现在不是取号时间，13:30 开始取号。"
    assert (
        closed_message(now, lunch.opens_at_ms, SH, "en")
        == "The hall is not issuing tickets now; it opens at 13:30."
    )


def test_before_opening_in_the_morning() -> None:
    early = hall_hours(HOURS, SH, at(9, 22, 7))
    assert (early.open, early.opens_at_ms) == (False, at(9, 22, 8, 30))
    assert closed_message(at(9, 22, 7), early.opens_at_ms, SH, "zh") == (
        "现在不是取号时间，08:30 开始取号。"
    )


def test_after_the_day_the_message_names_tomorrow() -> None:
    now = at(9, 21, 18)
    state = hall_hours(HOURS, SH, now)
    assert state.opens_at_ms == at(9, 22, 8, 30)
    assert (
        closed_message(now, state.opens_at_ms, SH, "zh") == "今日已停止取号，明天 08:30 开始取号。"
    )
    assert (
        closed_message(now, state.opens_at_ms, SH, "en")
        == "The hall is not issuing tickets now; it opens tomorrow at 08:30."
    )


def test_across_midnight() -> None:
    assert hall_hours(HOURS, SH, at(9, 21, 23, 59, 59, ms=999)).opens_at_ms == at(9, 22, 8, 30)
    # Just past midnight the next opening is "today", no longer "tomorrow".
    now = at(9, 22, 0, 0, 1)
    state = hall_hours(HOURS, SH, now)
    assert (state.open, state.opens_at_ms) == (False, at(9, 22, 8, 30))
    assert opening_phrase(now, state.opens_at_ms, SH, "zh") == "08:30"
    assert opening_phrase(now, state.opens_at_ms, SH, "en") == "at 08:30"


def test_a_span_ending_at_midnight_runs_into_the_next_day() -> None:
    late = Hours(weekly=((), (), (), (), spans("20:00-24:00"), spans("00:00-02:00"), ()))
    assert issuing_at(late, SH, at(9, 25, 23, 59, 59, ms=999))  # Friday
    assert current_span(late, SH, at(9, 25, 23)) == (at(9, 25, 20), at(9, 26))
    assert issuing_at(late, SH, at(9, 26))  # Saturday's span
    assert day_end(late, SH, date(2026, 9, 25)) == at(9, 26)
    boundary = latest_boundary(late, SH, at(9, 26, 0, 30))
    # Friday's day ended at that midnight: its waiting tickets expire.
    assert boundary == Boundary(at(9, 26), True, at(9, 26), at(9, 26))


# --- holidays and working weekends ------------------------------------------------


def test_a_holiday_is_closed() -> None:
    now = at(10, 1, 10)  # a Thursday, closed; so is Friday; Saturday opens at 09:00
    state = hall_hours(HOURS, SH, now)
    assert (state.open, state.in_span, state.opens_at_ms) == (False, False, at(10, 3, 9))
    assert day_end(HOURS, SH, date(2026, 10, 1)) is None
    assert latest_day_end(HOURS, SH, at(10, 2, 20)) == at(9, 30, 17, 30)
    assert (
        closed_message(now, state.opens_at_ms, SH, "zh") == "今日已停止取号，后天 09:00 开始取号。"
    )
    assert (
        closed_message(now, state.opens_at_ms, SH, "en")
        == "The hall is not issuing tickets now; it opens on Sat 3 Oct at 09:00."
    )


def test_a_working_weekend_is_open() -> None:
    sunday = hall_hours(HOURS, SH, at(9, 27, 15))
    assert (sunday.open, sunday.closes_at_ms) == (True, at(9, 27, 17, 30))  # not a lunch break
    # Saturday afternoon: the next opening is that working Sunday.
    assert hall_hours(HOURS, SH, at(9, 26, 13)).opens_at_ms == at(9, 27, 8, 30)
    # An ordinary Sunday stays closed.
    ordinary = hall_hours(HOURS, SH, at(9, 20, 10))
    assert (ordinary.open, ordinary.opens_at_ms) == (False, at(9, 21, 8, 30))


def test_a_date_in_open_replaces_the_weekday_rule() -> None:
    # open also changes a weekday: Monday 21 Sep with morning hours only.
    hours = Hours(weekly=HOURS.weekly, open={date(2026, 9, 21): spans("08:30-12:00")})
    assert hall_hours(hours, SH, at(9, 21, 12, 30)).opens_at_ms == at(9, 22, 8, 30)
    assert day_end(hours, SH, date(2026, 9, 21)) == at(9, 21, 12)


# --- issue_until_minutes ---------------------------------------------------------


def test_issuing_stops_before_the_span_ends() -> None:
    open_ = hall_hours(EARLY_STOP, SH, at(9, 21, 11, 29, 59))
    assert (open_.open, open_.closes_at_ms) == (True, at(9, 21, 11, 30))
    stopped = hall_hours(EARLY_STOP, SH, at(9, 21, 11, 30))
    # Still within the span: visitors already waiting are still called.
    assert (stopped.open, stopped.in_span, stopped.opens_at_ms) == (False, True, at(9, 21, 13, 30))
    evening = at(9, 21, 17, 10)
    state = hall_hours(EARLY_STOP, SH, evening)
    assert (state.in_span, state.opens_at_ms) == (True, at(9, 22, 8, 30))
    assert closed_message(evening, state.opens_at_ms, SH, "zh") == (
        "今日已停止取号，明天 08:30 开始取号。"
    )


def test_a_span_shorter_than_the_issue_stop_never_issues() -> None:
    hours = Hours(weekly=(spans("08:30-08:50", "09:00-12:00"), (), (), (), (), (), ()))
    hours = Hours(weekly=hours.weekly, issue_until_minutes=30)
    assert next_issuing(hours, SH, at(9, 21, 8)) == at(9, 21, 9)


# --- a manager's close --------------------------------------------------------------


def test_a_managers_close_lasts_until_the_next_span_start() -> None:
    now = at(9, 21, 10)
    until = next_span_start(HOURS, SH, now)
    assert until == at(9, 21, 13, 30)
    closed = hall_hours(HOURS, SH, now, closed_until_ms=until)
    assert closed.closed_by_manager
    assert (closed.open, closed.in_span, closed.opens_at_ms, closed.closes_at_ms) == (
        False,
        True,
        at(9, 21, 13, 30),
        None,
    )
    reopened = hall_hours(HOURS, SH, at(9, 21, 13, 30), closed_until_ms=until)
    assert (reopened.open, reopened.closed_by_manager) == (True, False)


def test_a_managers_close_in_the_evening_reopens_tomorrow() -> None:
    now = at(9, 21, 16)
    until = next_span_start(HOURS, SH, now)
    assert until == at(9, 22, 8, 30)
    state = hall_hours(HOURS, SH, now, closed_until_ms=until)
    assert (state.open, state.closed_by_manager, state.opens_at_ms) == (False, True, until)
    assert (
        closed_message(now, state.opens_at_ms, SH, "zh") == "今日已停止取号，明天 08:30 开始取号。"
    )


def test_a_close_that_has_lapsed_is_ignored() -> None:
    state = hall_hours(HOURS, SH, at(9, 21, 10), closed_until_ms=at(9, 21, 9))
    assert (state.open, state.closed_by_manager) == (True, False)


def test_a_close_outside_the_hours_still_says_when_issuing_resumes() -> None:
    # Closed over lunch until 13:30, with the early stop: 13:30 issues.
    state = hall_hours(EARLY_STOP, SH, at(9, 21, 12, 30), closed_until_ms=at(9, 21, 13, 30))
    assert (state.open, state.in_span, state.closed_by_manager) == (False, False, True)
    assert state.opens_at_ms == at(9, 21, 13, 30)


# --- boundaries ------------------------------------------------------------------


SAT_END = at(9, 19, 12)  # the day end before Monday 21 Sep (Sunday 20 Sep is closed)
MON = at(9, 21)


@pytest.mark.parametrize(
    ("now", "latest", "next_"),
    [
        pytest.param(
            at(9, 21, 7),
            Boundary(MON, False, SAT_END, MON),
            Boundary(at(9, 21, 8, 30), True, SAT_END, MON),
            id="early-morning",
        ),
        pytest.param(
            at(9, 21, 8, 30),
            Boundary(at(9, 21, 8, 30), True, SAT_END, MON),
            Boundary(at(9, 21, 12), False, SAT_END, MON),
            id="at-a-span-start",
        ),
        pytest.param(
            at(9, 21, 12, 10),
            Boundary(at(9, 21, 12), False, SAT_END, MON),  # lunch: not a day end
            Boundary(at(9, 21, 13, 30), True, SAT_END, MON),
            id="lunch",
        ),
        pytest.param(
            at(9, 21, 17, 30),
            Boundary(at(9, 21, 17, 30), False, at(9, 21, 17, 30), MON),  # the day end
            Boundary(at(9, 22), False, at(9, 21, 17, 30), at(9, 22)),
            id="at-the-day-end",
        ),
        pytest.param(
            at(9, 21, 23, 59, 59, ms=999),
            Boundary(at(9, 21, 17, 30), False, at(9, 21, 17, 30), MON),
            Boundary(at(9, 22), False, at(9, 21, 17, 30), at(9, 22)),
            id="before-midnight",
        ),
        pytest.param(
            at(9, 22),
            Boundary(at(9, 22), False, at(9, 21, 17, 30), at(9, 22)),  # finish yesterday's
            Boundary(at(9, 22, 8, 30), True, at(9, 21, 17, 30), at(9, 22)),
            id="at-midnight",
        ),
        pytest.param(
            at(10, 1, 10),
            Boundary(at(10, 1), False, at(9, 30, 17, 30), at(10, 1)),
            Boundary(at(10, 2), False, at(9, 30, 17, 30), at(10, 2)),
            id="holiday",
        ),
        pytest.param(
            at(9, 27, 9),
            Boundary(at(9, 27, 8, 30), True, at(9, 26, 12), at(9, 27)),
            Boundary(at(9, 27, 17, 30), False, at(9, 27, 17, 30), at(9, 27)),
            id="working-sunday",
        ),
    ],
)
def test_latest_and_next_boundary(now: int, latest: Boundary, next_: Boundary) -> None:
    assert latest_boundary(HOURS, SH, now) == latest
    assert next_boundary(HOURS, SH, now) == next_
    assert latest.at_ms <= now < next_.at_ms


def test_passing_the_next_boundary_makes_it_the_latest() -> None:
    now = at(9, 21, 6)
    for _ in range(30):  # a few days of boundaries, one after the other
        upcoming = next_boundary(HOURS, SH, now)
        assert latest_boundary(HOURS, SH, upcoming.at_ms) == upcoming
        assert upcoming.finish_before_ms <= upcoming.at_ms
        assert upcoming.expire_before_ms <= upcoming.at_ms
        now = upcoming.at_ms


# --- a hall without hours ---------------------------------------------------------


def test_without_hours_the_hall_is_open_all_day_every_day() -> None:
    for now in (at(9, 20, 3), at(10, 1, 12), at(9, 21, 23, 59, 59, ms=999)):
        assert issuing_at(None, SH, now)
    state = hall_hours(None, SH, at(9, 21, 10))
    assert (state.open, state.in_span, state.closes_at_ms) == (True, True, at(9, 22))


def test_without_hours_the_day_ends_at_midnight() -> None:
    assert day_end(None, SH, date(2026, 9, 21)) == at(9, 22)
    assert latest_boundary(None, SH, at(9, 21, 10)) == Boundary(MON, True, MON, MON)
    assert next_boundary(None, SH, at(9, 21, 10)) == Boundary(at(9, 22), True, at(9, 22), at(9, 22))
    assert latest_day_end(None, SH, at(9, 21, 10)) == MON


def test_without_hours_a_managers_close_lasts_until_midnight() -> None:
    now = at(9, 21, 10)
    until = next_span_start(None, SH, now)
    assert until == at(9, 22)
    state = hall_hours(None, SH, now, closed_until_ms=until)
    assert (state.open, state.opens_at_ms, state.closed_by_manager) == (False, at(9, 22), True)
    assert (
        closed_message(now, state.opens_at_ms, SH, "zh") == "今日已停止取号，明天 00:00 开始取号。"
    )


def test_a_hall_that_never_opens_has_no_next_opening() -> None:
    never = Hours(weekly=((),) * 7)
    state = hall_hours(never, SH, at(9, 21, 10))
    assert (state.open, state.opens_at_ms) == (False, None)
    assert latest_day_end(never, SH, at(9, 21, 10)) == 0
    assert closed_message(at(9, 21, 10), None, SH, "zh") == "本大厅暂停取号，暂无开放安排。"
    assert (
        closed_message(at(9, 21, 10), None, SH, "en")
        == "The hall is closed and has no opening on its calendar."
    )


# --- the words a visitor reads ----------------------------------------------------


@pytest.mark.parametrize(
    ("opens", "zh", "en"),
    [
        (at(9, 21, 13, 30), "13:30", "at 13:30"),
        (at(9, 22, 8, 30), "明天 08:30", "tomorrow at 08:30"),
        (at(9, 23, 8, 30), "后天 08:30", "on Wed 23 Sep at 08:30"),
        (at(10, 8, 8, 30), "10月8日（周四）08:30", "on Thu 8 Oct at 08:30"),
        (None, "暂无开放安排", "not on the calendar yet"),
    ],
)
def test_opening_phrase(opens: int | None, zh: str, en: str) -> None:
    now = at(9, 21, 12, 10)
    assert opening_phrase(now, opens, SH, "zh") == zh
    assert opening_phrase(now, opens, SH, "zh-CN") == zh
    assert opening_phrase(now, opens, SH, "en") == en


def test_days_are_counted_in_the_halls_time_zone() -> None:
    # 07:00 on the 22nd in Shanghai is 23:00 UTC on the 21st: the opening at
    # 08:30 (00:30 UTC on the 22nd) is today there, tomorrow in UTC.
    now, opens = at(9, 22, 7), at(9, 22, 8, 30)
    assert opening_phrase(now, opens, SH, "en") == "at 08:30"
    assert opening_phrase(now, opens, ZoneInfo("UTC"), "en") == "tomorrow at 00:30"
