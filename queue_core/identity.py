"""Resident identity numbers (居民身份证号码, GB 11643-1999): checking one,
the holder's age on a day, and the keyed digest that stands for it. Pure
functions, no I/O.

A number is sensitive personal information: it is held in memory only for
the request that carries it. What may be kept (in Redis, to find a second
ticket of the same person) is `person_digest`, an HMAC under a key that
lives outside Redis, so neither a dump of Redis nor an archive gives the
numbers back. Nothing here puts a number in an exception message, and a
`ResidentId` does not show its number in its repr, so a log line or a
traceback that mentions one does not leak it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Final

LENGTH: Final = 18
OLD_LENGTH: Final = 15
"""The first-generation card's number (no check digit, two-digit year): not accepted."""
_WEIGHTS: Final = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK: Final = "10X98765432"  # ISO 7064 MOD 11-2: (weighted sum mod 11) -> check character
_SHAPE: Final = re.compile(r"[0-9]{17}[0-9X]")
EARLIEST_BIRTH_YEAR: Final = 1800
"""18-digit numbers carry a four-digit year of the 19th, 20th or 21st century;
an earlier one is a typing slip the check digit happened to miss."""
MIN_KEY_BYTES: Final = 32


class IdProblem(StrEnum):
    """Why a number was refused, for the kiosk to say it in its own words."""

    OLD_FORMAT = "old_format"
    LENGTH = "length"
    CHARACTERS = "characters"
    CHECK_DIGIT = "check_digit"
    BIRTH_DATE = "birth_date"


class BadIdNumber(ValueError):
    """A number that is not a valid 18-character resident identity number.
    Its message never contains the number."""

    def __init__(self, problem: IdProblem) -> None:
        super().__init__(problem.value)
        self.problem = problem


@dataclass(frozen=True, slots=True)
class ResidentId:
    """A checked number (upper-case X) and the birth date it carries."""

    number: str = field(repr=False)
    birth: date


def check_character(first17: str) -> str:
    """The 18th character of a number whose first 17 digits are `first17`."""
    total = sum(int(c) * w for c, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK[total % 11]


def normalise(text: str) -> str:
    """What a kiosk may have sent, as the standard writes it: full-width
    digits and letters (a Chinese input method's) made ASCII, spaces and
    hyphens that group the digits dropped, x made X."""
    folded = unicodedata.normalize("NFKC", text)
    return re.sub(r"[\s-]", "", folded).upper()


def parse_id_number(text: str, today: date) -> ResidentId:
    """A resident identity number checked against GB 11643: 17 digits and a
    check character (a digit or X, by ISO 7064 MOD 11-2) whose digits 7-14
    are a real birth date (YYYYMMDD) not after `today` (the hall's local
    day). Raises `BadIdNumber` naming the first problem found."""
    number = normalise(text)
    if len(number) == OLD_LENGTH and number.isascii() and number.isdigit():
        raise BadIdNumber(IdProblem.OLD_FORMAT)
    if len(number) != LENGTH:
        raise BadIdNumber(IdProblem.LENGTH)
    if not _SHAPE.fullmatch(number):
        raise BadIdNumber(IdProblem.CHARACTERS)
    if check_character(number[:17]) != number[17]:
        raise BadIdNumber(IdProblem.CHECK_DIGIT)
    digits = number[6:14]
    try:
        birth = date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        raise BadIdNumber(IdProblem.BIRTH_DATE) from None
    if birth.year < EARLIEST_BIRTH_YEAR or birth > today:
        raise BadIdNumber(IdProblem.BIRTH_DATE)
    return ResidentId(number, birth)


def age_on(birth: date, day: date) -> int:
    """Whole years of age on `day` (周岁): one more on each birthday. Someone
    born on 29 February has a birthday on 1 March in a common year."""
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def person_digest(key: bytes, hall: str, number: str) -> str:
    """What stands for a number in Redis: HMAC-SHA256 under the deployment's
    key, of the hall and the number (the same person has unrelated digests
    in two halls), as 32 hex digits (128 bits: collisions never happen in
    practice). Without the key it cannot be reversed by trying every number."""
    mac = hmac.new(key, f"{hall}\x00{number}".encode(), hashlib.sha256)
    return mac.hexdigest()[:32]


_MESSAGES: Final[dict[str, dict[IdProblem, str]]] = {
    "zh": {
        IdProblem.OLD_FORMAT: "15 位的旧身份证号码不能使用，请使用 18 位居民身份证号码。",
        IdProblem.LENGTH: "居民身份证号码应为 18 位，请核对后重新输入。",
        IdProblem.CHARACTERS: (
            "居民身份证号码由 17 位数字和最后一位数字或 X 组成，请核对后重新输入。"
        ),
        IdProblem.CHECK_DIGIT: "居民身份证号码校验不通过，请核对后重新输入。",
        IdProblem.BIRTH_DATE: "居民身份证号码中的出生日期不正确，请核对后重新输入。",
    },
    "en": {
        IdProblem.OLD_FORMAT: (
            "The old 15-digit identity number is not accepted; "
            "use the 18-character resident identity number."
        ),
        IdProblem.LENGTH: "A resident identity number has 18 characters; please check it.",
        IdProblem.CHARACTERS: (
            "A resident identity number is 17 digits and a last digit or X; please check it."
        ),
        IdProblem.CHECK_DIGIT: (
            "This identity number's check digit does not match; please check it."
        ),
        IdProblem.BIRTH_DATE: (
            "The birth date in this identity number is not valid; please check it."
        ),
    },
}

_HELD: Final = {
    "zh": "这个身份证号已有 {number} 号在排队或办理中，同一人同时只能持有一个号。",
    "en": "This identity number already holds ticket {number}; one ticket per person at a time.",
}


def problem_message(problem: IdProblem, language: str) -> str:
    """The sentence for a refused number, in the hall's language."""
    return _MESSAGES.get(language, _MESSAGES["zh"])[problem]


def held_message(number: str, language: str) -> str:
    """The sentence for a person who already holds ticket `number`."""
    return _HELD.get(language, _HELD["zh"]).format(number=number)
