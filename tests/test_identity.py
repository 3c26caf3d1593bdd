"""Resident identity numbers as pure functions: GB 11643 check digits, birth
dates, age on a day, the keyed digest. No Redis, no HTTP."""

from __future__ import annotations

from datetime import date

import pytest

from queue_core.identity import (
    BadIdNumber,
    IdProblem,
    ResidentId,
    age_on,
    check_character,
    held_message,
    normalise,
    parse_id_number,
    person_digest,
    problem_message,
)

TODAY = date(2026, 11, 21)

# Check characters worked out by hand from the standard's weights
# (7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2) and its table 1 0 X 9 8 7 6 5 4 3 2;
# the first two are the examples printed in GB 11643-1999 itself.
VALID = {
    "11010519491231002X": date(1949, 12, 31),
    "440524188001010014": date(1880, 1, 1),
    "110101196603070011": date(1966, 3, 7),
    "320106195808151233": date(1958, 8, 15),
    "510107200002290045": date(2000, 2, 29),
}


@pytest.mark.parametrize(("number", "birth"), VALID.items())
def test_known_valid_numbers_pass_with_their_birth_dates(number: str, birth: date) -> None:
    assert check_character(number[:17]) == number[17]
    parsed = parse_id_number(number, TODAY)
    assert parsed == ResidentId(number, birth)


def test_the_check_character_by_hand() -> None:
    # 1*7+1*9+0*10+1*5+0*8+5*4+1*2+9*1+4*6+9*3+1*7+2*9+3*10+1*5+0*8+0*4+2*2 = 167;
    # 167 mod 11 = 2, and the table's third entry is X.
    assert check_character("11010519491231002") == "X"
    # 4*7+4*9+0+5*5+2*8+4*4+1*2+8*1+8*6+0+0+1*9+0+1*5+0+0+1*2 = 195; 195 mod 11 = 8 -> 4.
    assert check_character("44052418800101001") == "4"


def test_a_lower_case_x_and_friendly_spacing_are_normalised() -> None:
    assert parse_id_number("11010519491231002x", TODAY).number == "11010519491231002X"
    assert parse_id_number(" 110105 19491231 002X ", TODAY).number == "11010519491231002X"
    # A Chinese input method's full-width digits and letter.
    full_width = "１１０１０５１９４９１２３１００２ｘ"
    assert parse_id_number(full_width, TODAY).number == "11010519491231002X"
    assert normalise("1101-0519") == "11010519"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("110105491231002", IdProblem.OLD_FORMAT),  # the first-generation card's 15 digits
        ("", IdProblem.LENGTH),
        ("11010519491231002", IdProblem.LENGTH),
        ("11010519491231002XX", IdProblem.LENGTH),
        ("1101051949123100X2", IdProblem.CHARACTERS),  # X only last
        ("11010519491231002Y", IdProblem.CHARACTERS),
        ("A1010519491231002X", IdProblem.CHARACTERS),
        ("١١٠١٠٥١٩٤٩١٢٣١٠٠٢X", IdProblem.CHARACTERS),  # Arabic-Indic digits are not ASCII
        ("110105194912310021", IdProblem.CHECK_DIGIT),
        ("110105194912310020", IdProblem.CHECK_DIGIT),
        ("11010519491231012X", IdProblem.CHECK_DIGIT),  # one digit mistyped
        ("11010519941231002X", IdProblem.CHECK_DIGIT),  # two digits swapped
    ],
)
def test_bad_numbers_are_refused_with_their_problem(text: str, problem: IdProblem) -> None:
    with pytest.raises(BadIdNumber) as caught:
        parse_id_number(text, TODAY)
    assert caught.value.problem is problem
    if text:
        assert text not in str(caught.value)


def _with_birth(birth: str) -> str:
    """A number with a right check character around an arbitrary YYYYMMDD."""
    first17 = f"110105{birth}002"
    return first17 + check_character(first17)


@pytest.mark.parametrize(
    "birth",
    [
        "19490230",  # no 30 February
        "19491301",  # no month 13
        "19490000",
        "19010229",  # 1901 is a common year
        "17991231",  # before 1800: a slip the check digit missed
        "20261122",  # tomorrow in the hall
        "20991231",
    ],
)
def test_birth_dates_that_cannot_be(birth: str) -> None:
    with pytest.raises(BadIdNumber) as caught:
        parse_id_number(_with_birth(birth), TODAY)
    assert caught.value.problem is IdProblem.BIRTH_DATE


def test_a_birth_today_is_accepted() -> None:
    assert parse_id_number(_with_birth("20261121"), TODAY).birth == TODAY


def test_the_repr_of_a_checked_number_hides_it() -> None:
    parsed = parse_id_number("11010519491231002X", TODAY)
    assert "11010519491231002X" not in repr(parsed)
    assert "1949" in repr(parsed)  # the birth date is not the secret


@pytest.mark.parametrize(
    ("birth", "day", "age"),
    [
        (date(1966, 11, 21), date(2026, 11, 20), 59),
        (date(1966, 11, 21), date(2026, 11, 21), 60),  # a birthday counts from its first moment
        (date(1966, 11, 21), date(2026, 11, 22), 60),
        (date(1966, 12, 31), date(2026, 1, 1), 59),
        (date(1964, 2, 29), date(2026, 2, 28), 61),
        (date(1964, 2, 29), date(2026, 3, 1), 62),  # a 29 February birthday, in a common year
        (date(1964, 2, 29), date(2024, 2, 29), 60),
        (date(2026, 11, 21), date(2026, 11, 21), 0),
    ],
)
def test_age_on_a_day(birth: date, day: date, age: int) -> None:
    assert age_on(birth, day) == age


def test_the_digest_is_keyed_and_per_hall() -> None:
    key, other_key = b"k" * 32, b"j" * 32
    number = "11010519491231002X"
    digest = person_digest(key, "daye", number)
    assert len(digest) == 32 and int(digest, 16) >= 0
    assert digest == person_digest(key, "daye", number)
    assert digest != person_digest(other_key, "daye", number)
    assert digest != person_digest(key, "huangshi", number)
    assert digest != person_digest(key, "daye", "440524188001010014")
    assert number not in digest


def test_messages_in_the_halls_language() -> None:
    assert "15 位" in problem_message(IdProblem.OLD_FORMAT, "zh")
    assert "15-digit" in problem_message(IdProblem.OLD_FORMAT, "en")
    for problem in IdProblem:
        assert problem_message(problem, "zh") and problem_message(problem, "en")
    assert "A012" in held_message("A012", "zh")
    assert "A012" in held_message("A012", "en")
