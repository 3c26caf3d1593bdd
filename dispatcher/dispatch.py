"""Who a window calls next: the hall's dispatch rule as plain data and
functions, with no I/O.

A waiting ticket stands at its *place*: its effective time (issue time
minus its class's credit, `queue_core.policy.effective_ms`), then its issue
time, then its id (on Redis the queue member, which begins with the issue
time and the hall's issue counter). Smaller places are called first. Each
group's queue is kept in place order, so a window only compares the heads
of the groups it serves and takes the smallest.

`call_next.lua` (taking a ticket) and `window_view.lua` (the clerk's list of
who comes next) implement this rule on Redis; the estimator's replay calls
`take` itself. `tests/dispatch_scenarios.py` is the one table of scenarios
that this module and the scripts are both checked against, so the three
cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol, TypeVar

__all__ = ["GROUPS", "PLACE", "Queued", "dispatch_key", "in_dispatch_order", "take", "take_order"]

PLACE = "place"
"""A window's order: the smallest place over the heads of all its groups."""
GROUPS = "groups"
"""A window's order: the head of its first group (in its own order) with anyone waiting."""


class Queued(Protocol):
    """What dispatch needs to know of a waiting ticket."""

    @property
    def id(self) -> str: ...

    @property
    def group(self) -> str: ...

    @property
    def effective(self) -> float:
        """Issue time minus the class's credit (any unit and epoch: only order matters)."""

    @property
    def issued(self) -> float:
        """Issue time, in the same unit and epoch as `effective`."""


Q = TypeVar("Q", bound=Queued)


def dispatch_key(ticket: Queued) -> tuple[float, float, str]:
    """A ticket's place: the smaller is called first."""
    return (ticket.effective, ticket.issued, ticket.id)


def in_dispatch_order(tickets: Iterable[Q]) -> list[Q]:
    """`tickets` in the order the hall calls them (one group's queue, or all)."""
    return sorted(tickets, key=dispatch_key)


def take(groups: Iterable[str], heads: Mapping[str, Q], order: str = PLACE) -> Q | None:
    """The ticket a window serving `groups` (in its own order) calls, given
    the head (first in place order) of each group's queue that has anyone
    waiting. Its `order` "place": the head with the smallest place; "groups":
    the head of its first group with anyone (a work profile). None when none
    of its groups has anyone."""
    best: Q | None = None
    for group in groups:
        head = heads.get(group)
        if head is not None and (best is None or dispatch_key(head) < dispatch_key(best)):
            best = head
            if order == GROUPS:
                break
    return best


def take_order(
    groups: Sequence[str], queues: Mapping[str, Sequence[Q]], order: str = PLACE
) -> list[Q]:
    """Everyone a window serving `groups` would call, in the order it would
    call them if it alone called and nobody else came: `take` again and
    again. `queues` holds each group's queue in place order."""
    at = dict.fromkeys(groups, 0)
    called: list[Q] = []
    while True:
        heads = {g: q[at[g]] for g in groups if at[g] < len(q := queues.get(g, ()))}
        ticket = take(groups, heads, order)
        if ticket is None:
            return called
        called.append(ticket)
        at[ticket.group] += 1
