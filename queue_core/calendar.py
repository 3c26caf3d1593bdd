"""The hall's calendar: when it is open, when the kiosk stops issuing, when
its day ends. Pure functions of the config and a time (epoch ms), no I/O.

A hall with `[hours]` is open during the spans of each local day: the
weekday's spans, none on a `closed` date, and the listed spans on an `open`
date (a working weekend, 调休). A hall without `[hours]` is open all day,
every day: one span 00:00-24:00. Spans never cross midnight.

The day ends at the end of its last span (local midnight without
`[hours]`): what still waits then expires. The moments where something
may change are *boundaries*: every span start and end, and every local
midnight (where tickets still called from an earlier day are finished,
so a number is never held twice). `Boundary` says what passing one means;
the scheduler passes the latest one once, and passing the latest covers
every earlier one it missed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

DAY_MINUTES = 24 * 60
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HORIZON_DAYS = 400
"""How far the calendar looks for the next opening: a hall closed for longer
than a year has no next opening."""
MINUTE_MS = 60_000


@dataclass(frozen=True, slots=True, order=True)
class Span:
    """Open from `start` to `end`, minutes after local midnight (end ≤ 1440)."""

    start: int
    end: int

    def __str__(self) -> str:
        return f"{_hhmm(self.start)}-{_hhmm(self.end)}"


ALL_DAY = (Span(0, DAY_MINUTES),)


@dataclass(frozen=True, slots=True)
class Hours:
    """`[hours]` of the hall config."""

    weekly: tuple[tuple[Span, ...], ...] = tuple(ALL_DAY for _ in WEEKDAYS)
    """Spans per weekday, Monday first."""
    closed: frozenset[date] = frozenset()
    open: dict[date, tuple[Span, ...]] = field(default_factory=dict)
    issue_until_minutes: float = 0.0

    def spans_on(self, day: date) -> tuple[Span, ...]:
        if day in self.open:
            return self.open[day]
        if day in self.closed:
            return ()
        return self.weekly[day.weekday()]


@dataclass(frozen=True, slots=True)
class CallingRules:
    """`[calling]` of the hall config."""

    recall_limit: int = 3
    """Announcements after the first call; the next recall is refused."""
    late_return_minutes: float = 0.0
    """How long after its no-show a ticket may rejoin (0: never)."""
    max_snooze_minutes: float = 30.0
    """The longest a waiting visitor may put off their turn, once (at least
    `MIN_SNOOZE_MINUTES`; 0: visitors cannot snooze)."""


@dataclass(frozen=True, slots=True)
class Boundary:
    """A moment where the hall's day may change, and what passing it does."""

    at_ms: int
    open_after: bool
    """Whether a span is in force just after it."""
    expire_before_ms: int
    """The latest day end at or before it: waiting and parked tickets that
    joined the queue before this have outlived their day (0: none yet)."""
    finish_before_ms: int
    """The local midnight at or before it: a ticket still called that was
    issued before this is from an earlier day and is finished."""


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _spans(hours: Hours | None, day: date) -> tuple[Span, ...]:
    return ALL_DAY if hours is None else hours.spans_on(day)


def _day_of(ms: int, tz: ZoneInfo) -> date:
    return datetime.fromtimestamp(ms / 1000, tz).date()


def at_minute(day: date, minute: int, tz: ZoneInfo) -> int:
    """Epoch ms of `minute` minutes after local midnight of `day` (wall time)."""
    midnight = datetime(day.year, day.month, day.day, tzinfo=tz)
    if minute >= DAY_MINUTES:
        nxt = day + timedelta(days=1)
        return at_minute(nxt, minute - DAY_MINUTES, tz)
    return round((midnight + timedelta(minutes=minute)).timestamp() * 1000)


def current_span(hours: Hours | None, tz: ZoneInfo, now_ms: int) -> tuple[int, int] | None:
    """(start, end) in epoch ms of the span `now_ms` is in, else None."""
    day = _day_of(now_ms, tz)
    for span in _spans(hours, day):
        start, end = at_minute(day, span.start, tz), at_minute(day, span.end, tz)
        if start <= now_ms < end:
            return start, end
    return None


def _issue_stop(hours: Hours | None, end_ms: int) -> int:
    minutes = 0.0 if hours is None else hours.issue_until_minutes
    return end_ms - round(minutes * MINUTE_MS)


def issuing_at(hours: Hours | None, tz: ZoneInfo, now_ms: int) -> bool:
    """Whether the calendar lets the kiosk issue at `now_ms`."""
    span = current_span(hours, tz, now_ms)
    return span is not None and now_ms < _issue_stop(hours, span[1])


def next_issuing(hours: Hours | None, tz: ZoneInfo, from_ms: int) -> int | None:
    """The first moment at or after `from_ms` when the kiosk may issue, or
    None when no span within `HORIZON_DAYS` allows it."""
    if issuing_at(hours, tz, from_ms):
        return from_ms
    first = _day_of(from_ms, tz)
    for offset in range(HORIZON_DAYS):
        day = first + timedelta(days=offset)
        for span in _spans(hours, day):
            start, end = at_minute(day, span.start, tz), at_minute(day, span.end, tz)
            if start >= from_ms and start < _issue_stop(hours, end):
                return start
    return None


def next_span_start(hours: Hours | None, tz: ZoneInfo, after_ms: int) -> int | None:
    """The first span start strictly after `after_ms` (None past the horizon)."""
    first = _day_of(after_ms, tz)
    for offset in range(HORIZON_DAYS):
        day = first + timedelta(days=offset)
        for span in _spans(hours, day):
            start = at_minute(day, span.start, tz)
            if start > after_ms:
                return start
    return None


def day_end(hours: Hours | None, tz: ZoneInfo, day: date) -> int | None:
    """When `day` ends: the end of its last span (None on a day without spans)."""
    spans = _spans(hours, day)
    return at_minute(day, spans[-1].end, tz) if spans else None


def latest_day_end(hours: Hours | None, tz: ZoneInfo, at_ms: int) -> int:
    """The latest day end at or before `at_ms` (0 when none within the horizon)."""
    day = _day_of(at_ms, tz)
    for offset in range(HORIZON_DAYS):
        end = day_end(hours, tz, day - timedelta(days=offset))
        if end is not None and end <= at_ms:
            return end
    return 0


def _boundary(hours: Hours | None, tz: ZoneInfo, at_ms: int) -> Boundary:
    day = _day_of(at_ms, tz)
    return Boundary(
        at_ms=at_ms,
        open_after=current_span(hours, tz, at_ms) is not None,
        expire_before_ms=latest_day_end(hours, tz, at_ms),
        finish_before_ms=at_minute(day, 0, tz),
    )


def _moments(hours: Hours | None, tz: ZoneInfo, day: date) -> list[int]:
    moments = {at_minute(day, 0, tz)}
    for span in _spans(hours, day):
        moments.add(at_minute(day, span.start, tz))
        moments.add(at_minute(day, span.end, tz))
    return sorted(moments)


def latest_boundary(hours: Hours | None, tz: ZoneInfo, now_ms: int) -> Boundary:
    """The latest boundary at or before `now_ms` (today's midnight at the earliest)."""
    day = _day_of(now_ms, tz)
    passed = [m for m in _moments(hours, tz, day) if m <= now_ms]
    return _boundary(hours, tz, max(passed))


def next_boundary(hours: Hours | None, tz: ZoneInfo, now_ms: int) -> Boundary:
    """The first boundary strictly after `now_ms` (tomorrow's midnight at the latest)."""
    day = _day_of(now_ms, tz)
    ahead = [m for m in _moments(hours, tz, day) if m > now_ms]
    at = min(ahead) if ahead else at_minute(day + timedelta(days=1), 0, tz)
    return _boundary(hours, tz, at)


@dataclass(frozen=True, slots=True)
class HallHours:
    """Whether the hall takes tickets now, and when it next does."""

    open: bool
    """The kiosk may issue: within a span, before `issue_until_minutes`, and
    not closed by a manager."""
    opens_at_ms: int | None
    """When closed: the next moment it issues (None: not within a year)."""
    closes_at_ms: int | None
    """When open: when the kiosk stops issuing."""
    in_span: bool
    """Within a span (visitors already waiting are still called)."""
    closed_by_manager: bool


def hall_hours(
    hours: Hours | None, tz: ZoneInfo, now_ms: int, closed_until_ms: int | None = None
) -> HallHours:
    """The hall's state at `now_ms`; `closed_until_ms` is a manager's close
    still in force (it lasts until that moment, the next span start)."""
    manual = closed_until_ms is not None and closed_until_ms > now_ms
    span = current_span(hours, tz, now_ms)
    if not manual and issuing_at(hours, tz, now_ms):
        assert span is not None
        return HallHours(True, None, _issue_stop(hours, span[1]), True, False)
    start = closed_until_ms if manual and closed_until_ms is not None else now_ms
    return HallHours(False, next_issuing(hours, tz, start), None, span is not None, manual)


_WEEKDAY_ZH = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")


def opening_phrase(now_ms: int, opens_ms: int | None, tz: ZoneInfo, language: str) -> str:
    """When the hall opens next, as words for a visitor: "13:30", "明天 08:30",
    "12月8日（周二）08:30"; English: "at 13:30", "tomorrow at 08:30",
    "on Tue 8 Dec at 08:30"."""
    zh = language.startswith("zh")
    if opens_ms is None:
        return "暂无开放安排" if zh else "not on the calendar yet"
    today = _day_of(now_ms, tz)
    moment = datetime.fromtimestamp(opens_ms / 1000, tz)
    clock = moment.strftime("%H:%M")
    days = (moment.date() - today).days
    if zh:
        if days == 0:
            return clock
        if days == 1:
            return f"明天 {clock}"
        if days == 2:
            return f"后天 {clock}"
        weekday = _WEEKDAY_ZH[moment.weekday()]
        return f"{moment.month}月{moment.day}日（{weekday}）{clock}"
    if days == 0:
        return f"at {clock}"
    if days == 1:
        return f"tomorrow at {clock}"
    return f"on {moment.strftime('%a')} {moment.day} {moment.strftime('%b')} at {clock}"


def closed_message(now_ms: int, opens_ms: int | None, tz: ZoneInfo, language: str) -> str:
    """The sentence a refused issue carries: "今日已停止取号，明天 08:30 开始取号。"."""
    when = opening_phrase(now_ms, opens_ms, tz, language)
    stopped_today = opens_ms is None or _day_of(opens_ms, tz) != _day_of(now_ms, tz)
    if language.startswith("zh"):
        if opens_ms is None:
            return "本大厅暂停取号，暂无开放安排。"
        lead = "今日已停止取号" if stopped_today else "现在不是取号时间"
        return f"{lead}，{when} 开始取号。"
    if opens_ms is None:
        return "The hall is closed and has no opening on its calendar."
    return f"The hall is not issuing tickets now; it opens {when}."
