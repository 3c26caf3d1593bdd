"""`[priority] elderly_age` and `[issuing] one_active_per_person` (issue 16):
defaults, valid values, and each mistake reported under its key, also by
`qms check-config`."""

from __future__ import annotations

from pathlib import Path

import pytest

from qms.cli import main
from queue_core.config import IssuingRules, load_hall_config
from tests.test_config import VALID, edited, keys_of, problems_of, write

PRIORITY = "[priority]\nappointment = 30\nelderly = 20\n"


def test_defaults_without_the_keys(tmp_path: Path) -> None:
    hall = load_hall_config(write(tmp_path, VALID))
    assert hall.elderly_age == 60
    assert hall.issuing == IssuingRules(one_active_per_person=False)


def test_the_keys_load(tmp_path: Path) -> None:
    issuing = "[issuing]\none_active_per_person = true\n"
    text = edited(PRIORITY, f"{PRIORITY}elderly_age = 65\n{issuing}")
    hall = load_hall_config(write(tmp_path, text))
    assert hall.elderly_age == 65
    assert hall.issuing.one_active_per_person is True
    # The age is no class: it gets no credit and a kiosk cannot ask for it.
    assert hall.priority == {"appointment": 30.0, "elderly": 20.0}
    assert "elderly_age" not in hall.kiosk_classes()


@pytest.mark.parametrize("age", [50, 100])
def test_the_ends_of_the_range(tmp_path: Path, age: int) -> None:
    text = edited(PRIORITY, f"{PRIORITY}elderly_age = {age}\n")
    assert load_hall_config(write(tmp_path, text)).elderly_age == age


@pytest.mark.parametrize(
    ("lines", "key", "fragment"),
    [
        ("elderly_age = 49", "priority.elderly_age", "from 50 to 100 years, not 49"),
        ("elderly_age = 101", "priority.elderly_age", "from 50 to 100 years, not 101"),
        ("elderly_age = 60.5", "priority.elderly_age", "whole number of years, not a float"),
        ('elderly_age = "60"', "priority.elderly_age", "(remove the quotes)"),
        ("elderly_age = true", "priority.elderly_age", "not a boolean"),
        ("[issuing]\none_active_per_person = 1", "issuing.one_active_per_person", "true or false"),
        ('[issuing]\none_active_per_person = "yes"', "issuing.one_active_per_person", "true or"),
        ("[issuing]\none_active = true", "issuing.one_active", "did you mean"),
    ],
)
def test_mistakes_are_reported_under_their_key(
    tmp_path: Path, lines: str, key: str, fragment: str
) -> None:
    problems = problems_of(tmp_path, edited(PRIORITY, f"{PRIORITY}{lines}\n"))
    assert keys_of(problems) == [key], problems
    assert fragment in problems[0].message


def test_an_age_without_an_elderly_class_is_dead_config(tmp_path: Path) -> None:
    text = edited(PRIORITY, "[priority]\nappointment = 30\nelderly_age = 70\n")
    problems = problems_of(tmp_path, text)
    assert keys_of(problems) == ["priority.elderly_age"]
    assert "no elderly class" in problems[0].message


def test_issuing_must_be_a_table(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, "issuing = true\n" + VALID)
    assert keys_of(problems) == ["issuing"]
    assert "must be a table [issuing]" in problems[0].message


def test_an_unknown_section_near_issuing(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, VALID + "\n[issueing]\none_active_per_person = true\n")
    assert keys_of(problems) == ["issueing"]
    assert "did you mean 'issuing'?" in problems[0].message


def test_check_config_lists_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = edited(
        PRIORITY, f"{PRIORITY}elderly_age = 120\n[issuing]\none_active_per_person = 1\nx = 2\n"
    )
    path = write(tmp_path, text)
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: priority.elderly_age: must be from 50 to 100 years, not 120" in err
    assert f"{path}: issuing.one_active_per_person: must be true or false" in err
    assert f"{path}: issuing.x: unknown key" in err
