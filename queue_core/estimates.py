"""What a hall's wait estimates are, as the rest of qms reads them.

The estimates are made by the dispatcher (`dispatcher/estimator.py`
replays the dispatch rule on learned service times); ticket, screen and
kiosk bodies only look them up by a ticket's group and place in line.
These protocols are that shape, so the domain and the screens need not
know how an estimate is made.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Estimates", "WaitRange"]


class WaitRange(Protocol):
    """Seconds until a ticket is called: `central` is the median, and the
    true wait should fall in [p10, p90] eight times out of ten."""

    @property
    def central(self) -> float: ...

    @property
    def p10(self) -> float: ...

    @property
    def p90(self) -> float: ...


class Estimates(Protocol):
    """A hall's estimates as of one read, by group and place in line."""

    def at(self, group: str, position: int) -> WaitRange | None:
        """The estimate for the ticket at `position` (0 = next) of `group`;
        None when no open window serves the group."""
