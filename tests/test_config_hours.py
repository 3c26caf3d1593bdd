"""Hall config additions of issue 14: `[hours]`, `[calling]`, `[hall] language`,
and references to groups when the [[group]] section is missing. Every
problem is listed at once, under its dotted key."""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path

import pytest

from queue_core.calendar import CallingRules, Hours, Span
from queue_core.config import HallConfig, Problem, load_hall_config
from tests.test_config import VALID, edited, keys_of, problems_of, write

HALL_LINE = 'timezone = "Asia/Shanghai"\n'
GROUPS = (
    '[[group]]\nid = "natural"\nname = "自然人综合窗口"\n\n'
    '[[group]]\nid = "legal"\nname = "法人综合窗口"\n'
)


def with_sections(toml: str) -> str:
    """VALID with `toml` (whole sections) added before its [[group]] entries."""
    return edited(GROUPS, f"{toml}\n{GROUPS}")


def loaded(tmp_path: Path, toml: str) -> HallConfig:
    return load_hall_config(write(tmp_path, with_sections(toml)))


def problems_with(tmp_path: Path, toml: str) -> list[Problem]:
    return problems_of(tmp_path, with_sections(toml))


def pairs(problems: list[Problem]) -> list[tuple[str, str]]:
    return [(p.key, p.message) for p in problems]


def m(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def span(text: str) -> Span:
    start, end = text.split("-")
    return Span(m(start), m(end))


# --- defaults -----------------------------------------------------------------


def test_without_the_new_sections_the_defaults_apply(tmp_path: Path) -> None:
    hall = load_hall_config(write(tmp_path, VALID))
    assert hall.hours is None  # the calendar: open all day, every day
    assert hall.calling == CallingRules(recall_limit=3, late_return_minutes=0.0)
    assert hall.language == "zh"


def test_hall_config_built_by_hand_keeps_its_old_signature() -> None:
    hall = load_hall_config(Path(__file__).resolve().parents[1] / "qms" / "demo_hall.toml")
    # Every existing constructor call (positional and keyword) still works.
    rebuilt = HallConfig(
        hall.id,
        hall.name,
        hall.timezone,
        hall.priority,
        hall.appointments,
        hall.groups,
        hall.services,
        hall.windows,
        hall.credentials,
        hall.remote,
        hall.source,
    )
    # ... and leaves the new sections at their defaults (the demo hall has hours)
    assert rebuilt == dataclasses.replace(hall, hours=None, calling=CallingRules(), language="zh")
    assert (rebuilt.hours, rebuilt.calling, rebuilt.language) == (None, CallingRules(), "zh")


# --- valid sections -------------------------------------------------------------


def test_hours_parse_into_the_calendar_objects(tmp_path: Path) -> None:
    hall = loaded(
        tmp_path,
        """
[hours]
mon = ["13:30-17:30", "08:30-12:00"]
tue = ["08:30-12:00", "12:00-13:00"]
wed = []
sat = ["09:00-12:00"]
sun = ["00:00-24:00"]
closed = ["2026-10-01", 2026-10-02]
open = { "2026-09-27" = ["08:30-17:30"], 2026-10-10 = [" 09:00 - 12:00 "] }
issue_until_minutes = 15
""",
    )
    assert hall.hours == Hours(
        weekly=(
            (span("08:30-12:00"), span("13:30-17:30")),  # sorted by start
            (span("08:30-12:00"), span("12:00-13:00")),  # spans may touch
            (),  # [] : closed
            (),  # thu absent: closed
            (),  # fri absent: closed
            (span("09:00-12:00"),),
            (Span(0, 1440),),
        ),
        closed=frozenset({date(2026, 10, 1), date(2026, 10, 2)}),
        open={
            date(2026, 9, 27): (span("08:30-17:30"),),
            date(2026, 10, 10): (span("09:00-12:00"),),
        },
        issue_until_minutes=15.0,
    )


def test_an_empty_hours_table_closes_every_day(tmp_path: Path) -> None:
    hours = loaded(tmp_path, "[hours]\n").hours
    assert hours is not None
    assert hours.weekly == ((),) * 7
    assert (hours.closed, hours.open, hours.issue_until_minutes) == (frozenset(), {}, 0.0)


def test_a_fractional_issue_stop_is_kept(tmp_path: Path) -> None:
    hours = loaded(tmp_path, '[hours]\nmon = ["08:30-12:00"]\nissue_until_minutes = 7.5\n').hours
    assert hours is not None and hours.issue_until_minutes == 7.5


def test_calling_rules_parse(tmp_path: Path) -> None:
    hall = loaded(tmp_path, "[calling]\nrecall_limit = 0\nlate_return_minutes = 30\n")
    assert hall.calling == CallingRules(recall_limit=0, late_return_minutes=30.0)
    assert loaded(tmp_path, "[calling]\n").calling == CallingRules()


@pytest.mark.parametrize("language", ["zh", "en"])
def test_the_hall_language(tmp_path: Path, language: str) -> None:
    text = edited(HALL_LINE, f'{HALL_LINE}language = "{language}"\n')
    assert load_hall_config(write(tmp_path, text)).language == language


# --- one mistake at a time ------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        pytest.param(
            '[hours]\nmon = ["25:00-26:00"]',
            [
                (
                    "hours.mon[0]",
                    "'25:00' is not a time of day: use 00:00 to 23:59, or 24:00 as an end",
                ),
                (
                    "hours.mon[0]",
                    "'26:00' is not a time of day: use 00:00 to 23:59, or 24:00 as an end",
                ),
            ],
            id="hour-out-of-range",
        ),
        pytest.param(
            '[hours]\nmon = ["08:30-12:60"]',
            [
                (
                    "hours.mon[0]",
                    "'12:60' is not a time of day: use 00:00 to 23:59, or 24:00 as an end",
                )
            ],
            id="minute-out-of-range",
        ),
        pytest.param(
            '[hours]\nmon = ["24:00-24:00"]',
            [("hours.mon[0]", "'24:00' can only end a span: start at 00:00 instead")],
            id="24-as-start",
        ),
        pytest.param(
            '[hours]\nmon = ["08:30-24:30"]',
            [
                (
                    "hours.mon[0]",
                    "'24:30' is not a time of day: use 00:00 to 23:59, or 24:00 as an end",
                )
            ],
            id="past-24",
        ),
        pytest.param(
            '[hours]\nmon = ["8:30-12:00"]',
            [("hours.mon[0]", "'8:30' is not a time: write HH:MM, such as 08:30")],
            id="not-hhmm",
        ),
        pytest.param(
            '[hours]\nmon = ["08:30 to 12:00"]',
            [("hours.mon[0]", "'08:30 to 12:00' is not a span of time: write \"08:30-12:00\"")],
            id="not-a-span",
        ),
        pytest.param(
            '[hours]\nmon = ["12:00-08:30"]',
            [
                (
                    "hours.mon[0]",
                    "'12:00-08:30' must end after it starts (a span cannot cross midnight: "
                    "end it at 24:00, start the next day at 00:00)",
                )
            ],
            id="end-before-start",
        ),
        pytest.param(
            '[hours]\nmon = ["08:30-08:30"]',
            [("hours.mon[0]", "'08:30-08:30' must end after it starts")],
            id="empty-span",
        ),
        pytest.param(
            '[hours]\nmon = ["13:00-17:30", "08:30-13:30"]',
            [("hours.mon", "'08:30-13:30' and '13:00-17:30' overlap")],
            id="overlap",
        ),
        pytest.param(
            '[hours]\nmon = ["08:30-12:00", "08:30-12:00"]',
            [("hours.mon", "'08:30-12:00' is listed twice")],
            id="span-twice",
        ),
        pytest.param(
            '[hours]\nmon = "08:30-12:00"',
            [("hours.mon", 'must be an array of spans, not a string: write ["08:30-12:00"]')],
            id="brackets-forgotten",
        ),
        pytest.param(
            "[hours]\nmon = 8",
            [("hours.mon", 'must be an array of spans such as ["08:30-12:00"], not an integer')],
            id="day-type",
        ),
        pytest.param(
            "[hours]\nmon = [830]",
            [("hours.mon[0]", 'must be a string such as "08:30-12:00", not an integer')],
            id="span-type",
        ),
        pytest.param(
            '[hours]\nclosed = ["2026-02-30"]',
            [("hours.closed[0]", "'2026-02-30' is not a day of the calendar")],
            id="no-such-day",
        ),
        pytest.param(
            '[hours]\nclosed = ["tomorrow"]',
            [
                (
                    "hours.closed[0]",
                    "'tomorrow' is not a date: write YYYY-MM-DD, such as \"2026-10-01\"",
                )
            ],
            id="not-a-date",
        ),
        pytest.param(
            '[hours]\nclosed = ["20261001"]',
            [
                (
                    "hours.closed[0]",
                    "'20261001' is not a date: write YYYY-MM-DD, such as \"2026-10-01\"",
                )
            ],
            id="date-basic-format",
        ),
        pytest.param(
            "[hours]\nclosed = [2026-10-01T09:00:00]",
            [
                (
                    "hours.closed[0]",
                    'must be a date without a time of day: write YYYY-MM-DD, such as "2026-10-01"',
                )
            ],
            id="date-time",
        ),
        pytest.param(
            "[hours]\nclosed = [20261001]",
            [
                (
                    "hours.closed[0]",
                    'must be a date (write YYYY-MM-DD, such as "2026-10-01"), not an integer',
                )
            ],
            id="date-type",
        ),
        pytest.param(
            '[hours]\nclosed = "2026-10-01"',
            [("hours.closed", 'must be an array of dates such as ["2026-10-01"], not a string')],
            id="closed-type",
        ),
        pytest.param(
            '[hours]\nclosed = ["2026-10-01", 2026-10-01]',
            [("hours.closed[1]", "2026-10-01 is listed twice")],
            id="date-twice",
        ),
        pytest.param(
            '[hours]\nclosed = ["2026-10-01"]\nopen = { "2026-10-01" = ["08:30-12:00"] }',
            [
                (
                    "hours.open.2026-10-01",
                    "this date is also in hours.closed; a date is either closed or open",
                )
            ],
            id="closed-and-open",
        ),
        pytest.param(
            '[hours]\nopen = { "2026-9-27" = ["08:30-12:00"] }',
            [
                (
                    "hours.open.2026-9-27",
                    "'2026-9-27' is not a date: write YYYY-MM-DD, such as \"2026-10-01\"",
                )
            ],
            id="open-date",
        ),
        pytest.param(
            '[hours]\nopen = { "2026-09-27" = [] }',
            [
                (
                    "hours.open.2026-09-27",
                    "must list at least one span; to close the day, list it in hours.closed",
                )
            ],
            id="open-without-spans",
        ),
        pytest.param(
            '[hours]\nopen = ["2026-09-27"]',
            [
                (
                    "hours.open",
                    'must be a table such as { "2026-09-27" = ["08:30-12:00"] }, not an array',
                )
            ],
            id="open-type",
        ),
        pytest.param(
            '[hours]\nmonday = ["08:30-12:00"]',
            [("hours.monday", "unknown key; did you mean 'mon'?")],
            id="unknown-weekday",
        ),
        pytest.param(
            "[hours]\nissue_until_minute = 10",
            [("hours.issue_until_minute", "unknown key; did you mean 'issue_until_minutes'?")],
            id="unknown-hours-key",
        ),
        pytest.param(
            "[hours]\nissue_until_minutes = -5",
            [("hours.issue_until_minutes", "must be 0 or more, not -5")],
            id="issue-until-negative",
        ),
        pytest.param(
            '[hours]\nissue_until_minutes = "10"',
            [
                (
                    "hours.issue_until_minutes",
                    "must be a number of minutes, not a string (remove the quotes)",
                )
            ],
            id="issue-until-type",
        ),
        pytest.param(
            "[hour]\nmon = []",
            [("hour", "unknown section; did you mean 'hours'?")],
            id="unknown-section",
        ),
        pytest.param(
            "[calling]\nrecall_limit = -1",
            [("calling.recall_limit", "must be 0 or more, not -1")],
            id="recall-negative",
        ),
        pytest.param(
            "[calling]\nrecall_limit = 2.5",
            [("calling.recall_limit", "must be a whole number, not a float")],
            id="recall-type",
        ),
        pytest.param(
            "[calling]\nlate_return_minutes = -10",
            [("calling.late_return_minutes", "must be 0 or more, not -10")],
            id="late-negative",
        ),
        pytest.param(
            "[calling]\nlate_return_minutes = true",
            [("calling.late_return_minutes", "must be a number of minutes, not a boolean")],
            id="late-type",
        ),
        pytest.param(
            "[calling]\nrecall_limits = 3",
            [("calling.recall_limits", "unknown key; did you mean 'recall_limit'?")],
            id="calling-key",
        ),
    ],
)
def test_each_mistake_is_listed_under_its_key(
    tmp_path: Path, toml: str, expected: list[tuple[str, str]]
) -> None:
    assert pairs(problems_with(tmp_path, toml)) == expected


def test_hours_must_be_a_table(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, 'hours = "08:30-17:30"\n' + VALID)
    assert pairs(problems) == [("hours", "must be a table [hours], not a string")]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('language = "fr"', '\'fr\' is not valid: use "zh" (Chinese) or "en" (English)'),
        ('language = "zh-CN"', '\'zh-CN\' is not valid: use "zh" (Chinese) or "en" (English)'),
        ('language = "EN"', '\'EN\' is not valid: use "zh" (Chinese) or "en" (English)'),
        ("language = 1", 'must be a string, not an integer (put it in quotes: "1")'),
        ('language = ""', "must not be empty"),
    ],
)
def test_a_language_other_than_zh_or_en_is_a_problem(
    tmp_path: Path, line: str, message: str
) -> None:
    problems = problems_of(tmp_path, edited(HALL_LINE, f"{HALL_LINE}{line}\n"))
    assert pairs(problems) == [("hall.language", message)]


def test_a_misspelt_language_key_gets_a_hint(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, edited(HALL_LINE, f'{HALL_LINE}lang = "en"\n'))
    assert pairs(problems) == [("hall.lang", "unknown key; did you mean 'language'?")]


# --- many at once ------------------------------------------------------------


def test_every_problem_of_the_new_sections_is_listed_at_once(tmp_path: Path) -> None:
    text = edited(HALL_LINE, f'{HALL_LINE}language = "fr"\n')
    text = edited(
        GROUPS,
        """
[hours]
mon = ["08:30-12:00", "11:30-14:00", "25:00-26:00"]
tue = ["12:60-13:00", "17:30-08:30"]
wed = "08:30-17:30"
fir = ["08:30-17:30"]
closed = ["2026-02-30", "tomorrow", "2026-10-01"]
open = { "2026-10-01" = ["08:30-12:00"], "someday" = ["24:00-24:00"] }
issue_until_minutes = -1

[calling]
recall_limit = -2
late_return_minutes = "soon"
"""
        + GROUPS,
        text,
    )
    problems = problems_of(tmp_path, text)
    assert keys_of(problems) == [
        "hall.language",
        "hours.fir",
        "hours.mon[2]",
        "hours.mon[2]",
        "hours.mon",
        "hours.tue[0]",
        "hours.tue[1]",
        "hours.wed",
        "hours.closed[0]",
        "hours.closed[1]",
        "hours.open.2026-10-01",
        "hours.open.someday",
        "hours.open.someday[0]",
        "hours.issue_until_minutes",
        "calling.recall_limit",
        "calling.late_return_minutes",
    ], problems
    messages = dict(pairs(problems))
    assert messages["hours.fir"] == "unknown key; did you mean 'fri'?"
    assert messages["hours.mon"] == "'08:30-12:00' and '11:30-14:00' overlap"
    assert (
        messages["hours.open.someday[0]"] == "'24:00' can only end a span: start at 00:00 instead"
    )
    assert all(p.file == str(tmp_path / "hall.toml") for p in problems)


# --- references to groups without a [[group]] section ---------------------------


GHOST_HALL = """
[hall]
id = "ghosts"
name = "No groups"
timezone = "Asia/Shanghai"

[[service]]
id = "haunting"
name = "Haunting"
group = "ghost"
prefix = "G"
expected_minutes = 5

[[window]]
id = "1"
name = "Window 1"
groups = ["ghost"]
"""


def test_references_to_groups_are_listed_without_a_group_section(tmp_path: Path) -> None:
    assert pairs(problems_of(tmp_path, GHOST_HALL)) == [
        ("group", "at least one [[group]] is required"),
        ("service[0].group", "there is no group 'ghost'; the groups are: none"),
        ("window[0].groups", "there is no group 'ghost'; the groups are: none"),
    ]


def test_references_to_groups_are_listed_with_an_unusable_group_section(
    tmp_path: Path,
) -> None:
    text = GHOST_HALL + '\n[group]\nid = "ghost"\nname = "Ghost"\n'
    assert keys_of(problems_of(tmp_path, text)) == [
        "group",
        "service[0].group",
        "window[0].groups",
    ]


def test_check_config_lists_the_ghost_group(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from qms.cli import main

    path = write(tmp_path, GHOST_HALL)
    assert main(["check-config", str(path)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        f"{path}: group: at least one [[group]] is required",
        f"{path}: service[0].group: there is no group 'ghost'; the groups are: none",
        f"{path}: window[0].groups: there is no group 'ghost'; the groups are: none",
    ]
