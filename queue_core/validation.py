"""Request-body validation helpers (pure). Each failure is an `Invalid`
naming the field, so a kiosk developer sees exactly what to fix."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from queue_core import identity
from queue_core.errors import Invalid, NotFound
from queue_core.models import Notify

TICKET_ID = re.compile(r"[A-Za-z0-9_-]{22}")
APPOINTMENT_CODE = re.compile(r"[2-9A-HJ-NP-Z]{8}")
TICKET_NUMBER = re.compile(r"[A-Z]{1,2}[0-9]{3,9}")
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,128}")


MAX_FIELD_CHARS: Final = 64
"""The longest a one-line field may be (service and class ids, numbers,
times, phone numbers are all far shorter)."""

# Lone surrogates (a JSON "\ud800" escape with no partner) cannot be encoded
# as UTF-8: Redis, the logs and the answer itself would fail on them. C0 and
# C1 control characters, NUL included, have no place in a hall's text.
_NOT_TEXT: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_SURROGATE: Final = re.compile(r"[\ud800-\udfff]")


def well_formed(body: Any) -> None:
    """Refuse a parsed JSON body holding a string (a value or a key, at any
    depth) that is not well-formed Unicode: a lone UTF-16 surrogate. Every
    body passes here before any of its fields is read, so no field of any
    endpoint, present or future, reaches Redis, a log or an answer with one.
    (I-JSON, RFC 7493, forbids them; Python's parser lets them through.)"""
    todo: list[tuple[str, Any]] = [("", body)]
    while todo:
        where, value = todo.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                raise _not_text(where or "body")
        elif isinstance(value, dict):
            for key, item in value.items():
                if _SURROGATE.search(key):
                    raise _not_text(where or "body")
                todo.append((f"{where}.{key}" if where else key, item))
        elif isinstance(value, list):
            todo.extend((f"{where}[{i}]", item) for i, item in enumerate(value))


def _not_text(where: str) -> Invalid:
    # The field's name (its start), never its value.
    return Invalid(
        "invalid_field",
        f"Field {where[:64]!r} is not well-formed Unicode text (a lone surrogate).",
    )


def text(value: str, name: str, max_chars: int) -> str:
    """`value` if it is well-formed text of at most `max_chars` characters
    without control characters, else a 422 naming the field. Never echoes
    the value."""
    if len(value) > max_chars:
        raise Invalid("invalid_field", f"Field {name!r} is limited to {max_chars} characters.")
    if _NOT_TEXT.search(value):
        raise Invalid(
            "invalid_field",
            f"Field {name!r} holds a control character or is not well-formed Unicode text.",
        )
    return value


def string_field(
    body: Mapping[str, Any],
    name: str,
    *,
    required: bool = True,
    max_chars: int = MAX_FIELD_CHARS,
) -> str | None:
    """A one-line string field, stripped; refused when longer than
    `max_chars` or holding a control character (see `text`)."""
    value = body.get(name)
    if value is None:
        if required:
            raise Invalid("missing_field", f"Field {name!r} is required.")
        return None
    if not isinstance(value, str) or not value.strip():
        raise Invalid("invalid_field", f"Field {name!r} must be a non-empty string.")
    return text(value.strip(), name, max_chars)


def required_string(body: Mapping[str, Any], name: str) -> str:
    value = string_field(body, name)
    assert value is not None  # required=True never returns None
    return value


def local_time_ms(value: str, tz: ZoneInfo, field: str) -> int:
    """An ISO 8601 time as epoch ms; without an offset it is the hall's local time."""
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=tz)
        ms = round(parsed.timestamp() * 1000)
        # A time the hall's clock cannot show (year 1, year 9999 with an
        # offset) would be stored and then fail to render: refuse it here.
        datetime.fromtimestamp(ms / 1000, tz).isoformat()
    except (ValueError, OverflowError, OSError):
        raise Invalid(
            "invalid_field", f"Field {field!r} must be an ISO 8601 time, e.g. 2026-11-21T09:30."
        ) from None
    return ms


def ticket_id(value: str) -> str:
    if not TICKET_ID.fullmatch(value):
        raise NotFound("ticket_not_found", "There is no such ticket.")
    return value


def appointment_code(value: str) -> str:
    code = value.strip().upper()
    if not APPOINTMENT_CODE.fullmatch(code):
        raise NotFound("appointment_not_found", "There is no appointment with that code.")
    return code


def ticket_number(value: str) -> str:
    number = value.strip().upper()
    if not TICKET_NUMBER.fullmatch(number):
        raise Invalid("invalid_field", f"{value!r} is not a ticket number such as A023.")
    return number


def idempotency_key(value: str) -> str:
    if not IDEMPOTENCY_KEY.fullmatch(value):
        raise Invalid(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 128 printable ASCII characters without spaces.",
        )
    return value


def id_number_field(body: Mapping[str, Any], language: str) -> str | None:
    """`id_number` as sent (checked by the store, which knows the hall's
    day), or None when absent; anything but a string is a 422
    `bad_id_number`. Never echoes the value."""
    value = body.get("id_number")
    if value is None:
        return None
    if not isinstance(value, str):
        problem = identity.IdProblem.CHARACTERS
        message = identity.problem_message(problem, language)
        raise Invalid("bad_id_number", message, {"reason": problem.value})
    return value


MOBILE = re.compile(r"1[3-9][0-9]{9}")
MAX_REASON_CHARS = 200


def minutes_field(body: Mapping[str, Any], name: str) -> float:
    """A required number of minutes (a JSON number, not a string or a bool)."""
    value = body.get(name)
    if value is None:
        raise Invalid("missing_field", f"Field {name!r} is required.")
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise Invalid("bad_minutes", f"Field {name!r} must be a number of minutes.")
    return float(value)


def mobile_number(value: str) -> str:
    """A mainland mobile number, as 11 digits: spaces, dashes and +86 dropped."""
    digits = re.sub(r"[\s-]", "", value)
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("0086"):
        digits = digits[4:]
    if not MOBILE.fullmatch(digits):
        raise Invalid("invalid_phone", "Field 'phone' must be a mobile number such as 13800138000.")
    return digits


CHANNEL: Final = re.compile(r"[A-Za-z0-9_.:@-]{1,64}")


def notify_field(body: Mapping[str, Any]) -> Notify | None:
    """`notify`: {"phone"} (a mainland mobile number) or {"channel"} (an id
    the hall's gateway knows, such as a WeChat openid), or absent. Never
    echoes the value."""
    value = body.get("notify")
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) != 1 or not set(value) <= {"phone", "channel"}:
        raise Invalid(
            "invalid_notify",
            'Field \'notify\' must be {"phone": "13800138000"} or {"channel": "<id>"}.',
        )
    if "phone" in value:
        phone = value["phone"]
        if not isinstance(phone, str):
            raise Invalid(
                "invalid_phone", "notify.phone must be a mobile number such as 13800138000."
            )
        return Notify(mobile_number(phone), "phone")
    channel = value["channel"]
    if not isinstance(channel, str) or not CHANNEL.fullmatch(channel):
        raise Invalid(
            "invalid_notify",
            "notify.channel must be 1 to 64 letters, digits or _ . : @ -.",
        )
    return Notify(channel, "channel")


def rating(value: str, allowed: Iterable[str]) -> str:
    choices = list(allowed)
    if value not in choices:
        raise Invalid("invalid_rating", f"Field 'score' must be one of {choices}.")
    return value


def reason_text(body: Mapping[str, Any]) -> str | None:
    value = body.get("reason")
    if value is None:
        return None
    if not isinstance(value, str):
        raise Invalid("invalid_field", "Field 'reason' must be a string.")
    # Runs of whitespace (line breaks and tabs included) become one space
    # first; what control characters are left (NUL…) are refused.
    return text(" ".join(value.split()), "reason", MAX_REASON_CHARS) or None


def limit(raw: str | None, default: int, maximum: int) -> int:
    if raw is None or raw == "":
        return default
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise Invalid("invalid_limit", f"limit must be a whole number from 1 to {maximum}.")
    return int(raw)


AUDIT_CURSOR = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")


def audit_cursor(raw: str | None) -> str | None:
    """An audit cursor as `GET /audit` gave it in `next` (`<ms>-<n>`), or None."""
    if raw is None or raw == "":
        return None
    if not AUDIT_CURSOR.fullmatch(raw):
        raise Invalid("invalid_cursor", "since must be a cursor from an earlier answer's next.")
    return raw
