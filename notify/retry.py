"""When a failed delivery is tried again, and when qms gives up: pure."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class Verdict(StrEnum):
    SENT = "sent"
    RETRY = "retry"
    """The gateway failed (5xx, 408, 425, 429) or did not answer: try again."""
    REJECTED = "rejected"
    """The gateway refused the delivery itself (another 4xx, or a redirect):
    the same delivery would be refused again."""


RETRYABLE_4XX = frozenset({408, 425, 429})


def verdict(status: int | None) -> Verdict:
    """What a gateway's answer means; None when there was none (a timeout,
    a refused or broken connection)."""
    if status is None or status >= 500 or status in RETRYABLE_4XX:
        return Verdict.RETRY
    if 200 <= status < 300:
        return Verdict.SENT
    return Verdict.REJECTED


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter: the nth retry waits between half and
    all of `first_s * 2**(n-1)`, at most `cap_s`; a delivery not made within
    `give_up_s` of the change that caused it is given up. Jitter spreads the
    retries of a hall's backlog, so a gateway that comes back is not hit by
    all of them at once."""

    first_s: float = 2.0
    cap_s: float = 300.0
    give_up_s: float = 3600.0

    def delay_s(self, tries: int, rand: Callable[[], float]) -> float:
        """The wait before the next attempt, after `tries` failed ones
        (`rand` in [0, 1))."""
        ceiling = min(self.cap_s, self.first_s * 2.0 ** max(tries - 1, 0))
        return ceiling / 2 + rand() * ceiling / 2

    def next_attempt_ms(
        self, created_ms: int, now_ms: int, tries: int, rand: Callable[[], float]
    ) -> int | None:
        """When to try again after `tries` failed attempts, or None: give up."""
        at = now_ms + round(1000 * self.delay_s(tries, rand))
        return None if at - created_ms > 1000 * self.give_up_s else at
