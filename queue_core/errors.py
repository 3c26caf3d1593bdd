"""Domain errors. Each carries a kind (what went wrong, in the contract's
terms), a snake_case code and a human sentence; the web layer maps the kind
to a status code, so nothing here knows about HTTP."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class ErrorKind(StrEnum):
    MALFORMED = "malformed"  # not JSON at all
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    TOO_LARGE = "too_large"
    INVALID = "invalid"  # well-formed but fails validation
    RATE_LIMITED = "rate_limited"  # too many requests from one client
    UNAVAILABLE = "unavailable"  # Redis unreachable


class QmsError(Exception):
    kind: ErrorKind = ErrorKind.INVALID

    def __init__(self, code: str, message: str, details: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = dict(details or {})
        """More fields of the error object, for a client to act on (the
        ticket number a person already holds)."""


class Malformed(QmsError):
    kind = ErrorKind.MALFORMED


class Unauthorized(QmsError):
    kind = ErrorKind.UNAUTHORIZED


class Forbidden(QmsError):
    kind = ErrorKind.FORBIDDEN


class NotFound(QmsError):
    kind = ErrorKind.NOT_FOUND


class Conflict(QmsError):
    kind = ErrorKind.CONFLICT


class TooLarge(QmsError):
    kind = ErrorKind.TOO_LARGE


class Invalid(QmsError):
    kind = ErrorKind.INVALID


class Unavailable(QmsError):
    kind = ErrorKind.UNAVAILABLE


class RateLimited(QmsError):
    kind = ErrorKind.RATE_LIMITED

    def __init__(
        self,
        code: str,
        message: str,
        details: Mapping[str, str] | None = None,
        *,
        retry_after_s: int = 60,
    ) -> None:
        super().__init__(code, message, details)
        self.retry_after_s = max(1, retry_after_s)
        """Whole seconds until the limit lets the caller through again."""
