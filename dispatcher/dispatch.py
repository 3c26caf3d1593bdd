"""Who a window calls next: the hall's dispatch rule as plain data and
functions, with no I/O.

A waiting ticket stands at its *place* in its group's queue: its effective
time (issue time minus its class's credit, `queue_core.policy.effective_ms`),
then its issue time, then its id (on Redis the queue member, which begins
with the issue time and the hall's issue counter). The hall's rule decides
how a group's queue is called:

- "credit": in place order (the classes' time credits);
- "fifo": in place order with every credit 0, which is arrival order
  (`HallConfig.credit_minutes` gives the 0);
- "ratio": two sides in arrival order, the normal tickets and those of any
  priority class (scored with an infinite credit, so they lead the queue),
  taken in turn: `normal` of one side, then `priority` of the other, per
  group. A side with nobody waiting is skipped; the turn moves only when
  the side whose turn it is was called, so a priority visitor arriving
  after a run of normals is called next.

A window looks only at what each of its groups would give next (its
*head*): by default (order "place") it takes the earliest, compared by
place, or under "ratio" by arrival; a window whose order is "groups" (a work
profile) takes the head of its first group with anyone waiting.

`call_next.lua`, `window_view.lua`, `ticket.lua` and `hall_state.lua` (with
`_dispatch.lua`) implement this on Redis; the estimator's replay calls it
itself. `tests/dispatch_scenarios.py` is the one table of scenarios that
this module and the scripts are both checked against.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from queue_core.config import HallConfig

__all__ = [
    "CREDIT",
    "CREDIT_POLICY",
    "FIFO",
    "GROUPS",
    "NORMAL",
    "PLACE",
    "RATIO",
    "Policy",
    "Queued",
    "call_reason",
    "dispatch_key",
    "earlier_waiting",
    "group_sequence",
    "in_dispatch_order",
    "next_turn",
    "policy_of",
    "take",
    "take_order",
]

CREDIT, FIFO, RATIO = "credit", "fifo", "ratio"
PLACE = "place"
"""A window's order: the earliest head over all its groups."""
GROUPS = "groups"
"""A window's order: the head of its first group (in its own order) with anyone waiting."""
NORMAL = "normal"
"""The class with no priority."""


@dataclass(frozen=True, slots=True)
class Policy:
    """The hall's rule (`[dispatch]`)."""

    rule: str = CREDIT
    normal: int = 2
    """Under "ratio": normal tickets called per turn."""
    priority: int = 1
    """Under "ratio": priority tickets called per turn."""

    @property
    def cycle(self) -> int:
        return self.normal + self.priority


CREDIT_POLICY = Policy()
"""The default rule: the classes' time credits."""


def policy_of(config: HallConfig) -> Policy:
    """The hall's `[dispatch]` as a `Policy`."""
    d = config.dispatch
    return Policy(d.rule, d.ratio_normal, d.ratio_priority)


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

    @property
    def priority(self) -> str:
        """Its class: `NORMAL`, or a priority class."""


Q = TypeVar("Q", bound=Queued)


def dispatch_key(ticket: Queued) -> tuple[float, float, str]:
    """A ticket's place: the smaller is called first (within its side, under "ratio")."""
    return (ticket.effective, ticket.issued, ticket.id)


def _arrival_key(ticket: Queued) -> tuple[float, str]:
    return (ticket.issued, ticket.id)


def in_dispatch_order(tickets: Iterable[Q]) -> list[Q]:
    """`tickets` in place order (one group's queue as Redis keeps it, or all)."""
    return sorted(tickets, key=dispatch_key)


def next_turn(policy: Policy, turn: int, called: Queued) -> int:
    """A group's turn after calling `called` ("ratio"): it moves on when the
    side whose turn it was was called, and stays when that side was empty."""
    wanted_normal = turn < policy.normal
    if (called.priority == NORMAL) == wanted_normal:
        return (turn + 1) % policy.cycle
    return turn


def group_sequence(queue: Sequence[Q], policy: Policy, turn: int = 0) -> list[Q]:
    """The order a group's waiting tickets are called in, given its queue in
    place order and, under "ratio", its turn now. Every window calls a
    group's tickets in this order, so a ticket's index here is its
    `position`."""
    if policy.rule != RATIO:
        return list(queue)
    normals = [t for t in queue if t.priority == NORMAL]
    priorities = [t for t in queue if t.priority != NORMAL]
    sequence: list[Q] = []
    i = j = 0
    while i < len(normals) or j < len(priorities):
        if (turn < policy.normal and i < len(normals)) or j == len(priorities):
            ticket = normals[i]
            i += 1
        else:
            ticket = priorities[j]
            j += 1
        turn = next_turn(policy, turn, ticket)
        sequence.append(ticket)
    return sequence


def earlier_waiting(called: Queued, waiting: Iterable[Queued]) -> int:
    """How many of `waiting` (the tickets of the window's groups, `called`
    among them or not) were issued before `called`: those its call goes
    ahead of. Issue order is (issue time, then id), as the queue member."""
    key = _arrival_key(called)
    return sum(1 for t in waiting if _arrival_key(t) < key)


def call_reason(called: Queued, ahead: int, rule: str = CREDIT) -> str:
    """Why a window's call-next took `called`, ahead of `ahead` earlier
    tickets (`queue_core.reasons` words it): "place" (in turn), "ratio" (its
    side's turn), "credit" or "appointment" (its class's credit), else
    "order" (the window's work profile)."""
    if ahead == 0:
        return "place"
    if rule == RATIO:
        return "ratio"
    if called.effective < called.issued:
        return "appointment" if called.priority == "appointment" else "credit"
    return "order"


def take(
    groups: Iterable[str], heads: Mapping[str, Q], order: str = PLACE, rule: str = CREDIT
) -> Q | None:
    """The ticket a window serving `groups` (in its own order) calls, given
    each group's head: what the group gives next (`group_sequence`), for
    those with anyone waiting. Order "place": the earliest head, by place
    (by arrival under "ratio", where places of the two sides do not
    compare); "groups": the head of its first group with anyone. None when
    none of its groups has anyone."""
    key = _arrival_key if rule == RATIO else dispatch_key
    best: Q | None = None
    for group in groups:
        head = heads.get(group)
        if head is not None and (best is None or key(head) < key(best)):
            best = head
            if order == GROUPS:
                break
    return best


def take_order(
    groups: Sequence[str],
    sequences: Mapping[str, Sequence[Q]],
    order: str = PLACE,
    rule: str = CREDIT,
) -> list[Q]:
    """Everyone a window serving `groups` would call, in the order it would
    call them if it alone called and nobody else came: `take` again and
    again. `sequences` holds each group's `group_sequence`."""
    at = dict.fromkeys(groups, 0)
    called: list[Q] = []
    while True:
        heads = {g: q[at[g]] for g in groups if at[g] < len(q := sequences.get(g, ()))}
        ticket = take(groups, heads, order, rule)
        if ticket is None:
            return called
        called.append(ticket)
        at[ticket.group] += 1
