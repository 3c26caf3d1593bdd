"""The one table of dispatch scenarios.

Each scenario is a hall (its windows and the groups each serves, the
classes' credits), the tickets issued (group, class, minute), the calls the
windows make in turn with the ticket each must take (None: nobody for it),
and every ticket's `position` once all are issued (0 = next in its group).

A scenario may name the hall's `[dispatch] rule` and windows' `order`.

`tests/test_dispatch_rule.py` plays every scenario twice: through the pure
rule (`dispatcher.dispatch`) and through the real scripts on Redis
(`call_next.lua`, `ticket.lua`, `window_view.lua` via the store), and both
must give what the table says. Add a scenario here when the rule changes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

GROUPS = ("natural", "legal", "police")
"""The groups a scenario may use; each has one service (`SERVICE_OF`)."""
SERVICE_OF = {"natural": "social-security", "legal": "business-licence", "police": "household"}
PREFIX_OF = {"natural": "A", "legal": "C", "police": "D"}

CREDITS = {"elderly": 20.0, "disabled": 20.0}
"""Minutes of credit by class, unless a scenario says otherwise."""


@dataclass(frozen=True, slots=True)
class Issue:
    label: str
    group: str
    minute: float
    """Issued this many minutes after the scenario starts."""
    priority: str = "normal"


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    windows: Mapping[str, tuple[str, ...]]
    tickets: tuple[Issue, ...]
    calls: tuple[tuple[str, str | None], ...]
    positions: Mapping[str, int]
    credits: Mapping[str, float] = field(default_factory=lambda: dict(CREDITS))
    rule: str = "credit"
    """`[dispatch] rule`."""
    ratio: tuple[int, int] = (2, 1)
    """`[dispatch] ratio`: normal, priority tickets per turn."""
    orders: Mapping[str, str] = field(default_factory=dict)
    """`[[window]] order` by window id, where not "place"."""
    reasons: Mapping[str, tuple[str, int]] = field(default_factory=dict)
    """The reason of a call, by the called label: (code, ahead_of)."""

    def credit(self, priority: str) -> float:
        """The credit a class gets in the queue under the scenario's rule
        (fifo: none; ratio: none for normal tickets, infinite for the rest)."""
        if self.rule == "fifo":
            return 0.0
        if self.rule == "ratio":
            return 0.0 if priority == "normal" else math.inf
        return self.credits.get(priority, 0.0)

    def order(self, window: str) -> str:
        return self.orders.get(window, "place")


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "one group: first come, first called",
        windows={"1": ("natural",)},
        tickets=(Issue("a", "natural", 0), Issue("b", "natural", 1), Issue("c", "natural", 2)),
        calls=(("1", "a"), ("1", "b"), ("1", "c"), ("1", None)),
        positions={"a": 0, "b": 1, "c": 2},
    ),
    Scenario(
        "an elderly visitor goes ahead by the credit, not past everyone",
        windows={"1": ("natural",)},
        tickets=(
            Issue("a", "natural", 0),
            Issue("b", "natural", 5),
            Issue("c", "natural", 15),
            Issue("old", "natural", 30, "elderly"),  # counts as issued at minute 10
        ),
        calls=(("1", "a"), ("1", "b"), ("1", "old"), ("1", "c")),
        positions={"a": 0, "b": 1, "old": 2, "c": 3},
        reasons={"a": ("place", 0), "old": ("credit", 1), "c": ("place", 0)},
    ),
    Scenario(
        "equal places: the earlier issue first, then the earlier number",
        windows={"1": ("natural",)},
        tickets=(
            Issue("a", "natural", 20, "elderly"),  # effective minute 0
            Issue("b", "natural", 0),  # effective minute 0, issued earlier
            Issue("c", "natural", 0),  # the same minute as b, a later number
        ),
        calls=(("1", "b"), ("1", "c"), ("1", "a")),
        positions={"b": 0, "c": 1, "a": 2},
    ),
    Scenario(
        "strict priority (an infinite credit) goes first and keeps its own arrival order",
        windows={"1": ("natural",)},
        tickets=(
            Issue("a", "natural", 0),
            Issue("d1", "natural", 50, "disabled"),
            Issue("d2", "natural", 40, "disabled"),
        ),
        calls=(("1", "d2"), ("1", "d1"), ("1", "a")),
        positions={"d2": 0, "d1": 1, "a": 2},
        credits={"elderly": 20.0, "disabled": math.inf},
    ),
    Scenario(
        "a window serving two groups takes the smaller place of their heads",
        windows={"1": ("natural", "legal"), "2": ("natural",), "3": ("legal",)},
        tickets=(
            Issue("n1", "natural", 0),
            Issue("l1", "legal", 1),
            Issue("n2", "natural", 2),
            Issue("l2", "legal", 3),
            Issue("l3", "legal", 40, "elderly"),  # effective minute 20
        ),
        calls=(("1", "n1"), ("1", "l1"), ("3", "l2"), ("2", "n2"), ("1", "l3"), ("1", None)),
        positions={"n1": 0, "n2": 1, "l1": 0, "l2": 1, "l3": 2},
    ),
    Scenario(
        "a window never takes a group it does not serve",
        windows={"2": ("natural",), "9": ("police",)},
        tickets=(Issue("p1", "police", 0), Issue("n1", "natural", 5)),
        calls=(("2", "n1"), ("2", None), ("9", "p1"), ("9", None)),
        positions={"p1": 0, "n1": 0},
    ),
    Scenario(
        "an elderly visitor of another group on a shared window",
        windows={"1": ("natural", "legal")},
        tickets=(
            Issue("n1", "natural", 0),
            Issue("n2", "natural", 10),
            Issue("l1", "legal", 25, "elderly"),  # effective minute 5
            Issue("n3", "natural", 12),
        ),
        calls=(("1", "n1"), ("1", "l1"), ("1", "n2"), ("1", "n3")),
        positions={"n1": 0, "n2": 1, "n3": 2, "l1": 0},
    ),
    Scenario(
        "fifo: arrival order, the elderly credit ignored",
        windows={"1": ("natural",)},
        tickets=(
            Issue("a", "natural", 0),
            Issue("old", "natural", 5, "elderly"),
            Issue("b", "natural", 1),
            Issue("strict", "natural", 9, "disabled"),
        ),
        calls=(("1", "a"), ("1", "b"), ("1", "old"), ("1", "strict"), ("1", None)),
        positions={"a": 0, "b": 1, "old": 2, "strict": 3},
        credits={"elderly": 20.0, "disabled": math.inf},
        rule="fifo",
    ),
    Scenario(
        "a work profile: the window serves its first group while anyone waits there",
        windows={"1": ("legal", "natural"), "2": ("natural",)},
        tickets=(
            Issue("n1", "natural", 0),
            Issue("l1", "legal", 5),
            Issue("n2", "natural", 6),
            Issue("l2", "legal", 7),
        ),
        calls=(("1", "l1"), ("1", "l2"), ("1", "n1"), ("2", "n2"), ("1", None)),
        positions={"n1": 0, "n2": 1, "l1": 0, "l2": 1},
        orders={"1": "groups"},
        reasons={"l1": ("order", 1), "l2": ("order", 2), "n1": ("place", 0)},
    ),
    Scenario(
        "a work profile and a place window share a group",
        windows={"1": ("police", "natural"), "2": ("natural", "police")},
        tickets=(
            Issue("p1", "police", 10),
            Issue("n1", "natural", 0),
            Issue("n2", "natural", 2),
            Issue("p2", "police", 30, "elderly"),  # effective minute 10, after p1
        ),
        calls=(("2", "n1"), ("1", "p1"), ("2", "n2"), ("2", "p2"), ("1", None)),
        positions={"n1": 0, "n2": 1, "p1": 0, "p2": 1},
        orders={"1": "groups"},
    ),
    Scenario(
        "ratio 2:1: two normal, then one priority, each side in arrival order",
        windows={"1": ("natural",)},
        tickets=(
            Issue("n1", "natural", 0),
            Issue("p1", "natural", 1, "elderly"),
            Issue("n2", "natural", 1),
            Issue("n3", "natural", 2),
            Issue("n4", "natural", 3),
            Issue("p2", "natural", 5, "disabled"),
        ),
        calls=(("1", "n1"), ("1", "n2"), ("1", "p1"), ("1", "n3"), ("1", "n4"), ("1", "p2")),
        positions={"n1": 0, "n2": 1, "p1": 2, "n3": 3, "n4": 4, "p2": 5},
        rule="ratio",
        reasons={"n1": ("place", 0), "n2": ("ratio", 1), "p1": ("place", 0)},
    ),
    Scenario(
        "ratio: a normal's turn goes to the normal side, however late it came",
        windows={"1": ("natural",)},
        tickets=(
            Issue("p1", "natural", 0, "elderly"),
            Issue("p2", "natural", 1, "elderly"),
            Issue("n1", "natural", 9),
        ),
        calls=(("1", "n1"), ("1", "p1"), ("1", "p2"), ("1", None)),
        positions={"n1": 0, "p1": 1, "p2": 2},
        rule="ratio",
        reasons={"n1": ("ratio", 2)},
    ),
    Scenario(
        "ratio 1:2 with an empty side skipped",
        windows={"1": ("natural",)},
        tickets=(
            Issue("n1", "natural", 0),
            Issue("n2", "natural", 1),
            Issue("n3", "natural", 2),
            Issue("p1", "natural", 3, "elderly"),
        ),
        calls=(("1", "n1"), ("1", "p1"), ("1", "n2"), ("1", "n3")),
        positions={"n1": 0, "p1": 1, "n2": 2, "n3": 3},
        rule="ratio",
        ratio=(1, 2),
    ),
    Scenario(
        "ratio on a shared window: the earlier arrival of what each group gives",
        windows={"1": ("natural", "legal")},
        tickets=(
            Issue("n1", "natural", 0),
            Issue("l1", "legal", 2),
            Issue("p1", "natural", 5, "elderly"),
        ),
        calls=(("1", "n1"), ("1", "l1"), ("1", "p1"), ("1", None)),
        positions={"n1": 0, "p1": 1, "l1": 0},
        rule="ratio",
    ),
)
