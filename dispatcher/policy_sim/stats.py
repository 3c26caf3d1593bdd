"""What a played day says (pure): per-class waits, the largest overtaking
a normal ticket suffered, and how busy each window was.

- A wait runs from the ticket's issue (an appointment: its check-in) to its
  first call, in minutes. A ticket still waiting when the day ended counts
  with its wait until then (a lower bound: it was never called); a
  no-show's wait is left out (nobody was there).
- The overtaking a normal ticket suffered: the minutes between its issue
  and the latest issue of a ticket called before it by a window that serves
  its group (a window that could have called it instead). Under arrival
  order it is 0 up to ties; a time credit c bounds it by c.
- A window's utilisation: the time it spent on visits (a no-show's call
  included) while open, over the time it was open.

Percentiles are nearest-rank: p90 is a wait that 90% of the class did not exceed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from queue_core.calendar import MINUTE_MS
from queue_core.config import Window
from queue_core.models import NORMAL


@dataclass(frozen=True, slots=True)
class Visit:
    """One ticket of a played day as the scripts dealt with it (epoch ms)."""

    priority: str
    """Its class as issued (an appointment checked in too late is normal)."""
    group: str
    issued_ms: int
    called_ms: int | None
    """Its first call; None: still waiting when the day ended."""
    call: int | None
    """Its place in the hall's sequence of calls, 0 first."""
    window: str | None
    no_show: bool = False


@dataclass(frozen=True, slots=True)
class PlayedDay:
    """What happened: every visit, each window's busy spans, when the windows were open."""

    visits: tuple[Visit, ...]
    """In issue order."""
    windows: tuple[Window, ...]
    busy: Mapping[str, tuple[tuple[int, int], ...]]
    """Per window, (called, done) of each of its visits."""
    open: tuple[tuple[int, int], ...]
    """When the windows were open to call (a hall open all day: until its last visit ended)."""
    end_ms: int
    """The day's end: a ticket never called waited until then."""
    turned_away: int = 0
    """Visitors the kiosk refused (an archived ticket outside today's hours)."""


@dataclass(frozen=True, slots=True)
class Waits:
    """One class's waits, in minutes."""

    mean: float
    p50: float
    p90: float
    max: float
    count: int


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    """What one rule gave on the day."""

    classes: Mapping[str, Waits]
    """Normal first, then the other classes by name."""
    max_overtaken_minutes: float
    utilisation: tuple[float, float]
    """The least and the most busy window's utilisation (0 to 1)."""
    waits: Mapping[str, tuple[float, ...]]
    """Every wait of each class, in minutes (for histograms)."""
    unserved: int = 0
    """Tickets still waiting when the day ended (their waits count up to then)."""
    no_shows: int = 0
    turned_away: int = 0


def outcome(played: PlayedDay) -> RuleOutcome:
    by_class = class_waits(played.visits, played.end_ms)
    per_window = utilisation(played.busy, played.open)
    return RuleOutcome(
        classes={c: summary(w) for c, w in by_class.items()},
        max_overtaken_minutes=max_overtaking(played.visits, played.windows),
        utilisation=(min(per_window.values()), max(per_window.values())),
        waits={c: tuple(w) for c, w in by_class.items()},
        unserved=sum(v.called_ms is None for v in played.visits),
        no_shows=sum(v.no_show for v in played.visits),
        turned_away=played.turned_away,
    )


def class_waits(visits: Iterable[Visit], end_ms: int) -> dict[str, list[float]]:
    """Each class's waits in minutes, in issue order: normal first, then by name."""
    waits: dict[str, list[float]] = {NORMAL: []}
    for v in visits:
        if v.no_show:
            continue
        until = end_ms if v.called_ms is None else v.called_ms
        waits.setdefault(v.priority, []).append(max(0, until - v.issued_ms) / MINUTE_MS)
    if not waits[NORMAL]:
        del waits[NORMAL]
    return {c: waits[c] for c in sorted(waits, key=lambda c: (c != NORMAL, c))}


def summary(waits: Sequence[float]) -> Waits:
    """Mean, nearest-rank p50 and p90, and max of some waits (all 0 for none)."""
    if not waits:
        return Waits(0.0, 0.0, 0.0, 0.0, 0)
    ordered = sorted(waits)
    return Waits(
        mean=sum(ordered) / len(ordered),
        p50=percentile(ordered, 50),
        p90=percentile(ordered, 90),
        max=ordered[-1],
        count=len(ordered),
    )


def percentile(ordered: Sequence[float], p: float) -> float:
    """The nearest-rank `p`th percentile of values sorted ascending (not empty)."""
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def max_overtaking(visits: Iterable[Visit], windows: Iterable[Window]) -> float:
    """The largest overtaking a normal ticket suffered, in minutes (0 for none).

    Calls are taken in the order they happened; for each group we keep the
    latest issue among the tickets called so far by windows serving it. A
    ticket never called suffered every call of the day."""
    groups_of = {w.id: w.groups for w in windows}
    visits = list(visits)
    called = sorted((v for v in visits if v.call is not None), key=lambda v: v.call or 0)
    latest: dict[str, int] = {}
    worst = 0
    for v in called:
        if v.priority == NORMAL and not v.no_show and v.group in latest:
            worst = max(worst, latest[v.group] - v.issued_ms)
        for g in groups_of[v.window or ""]:
            latest[g] = max(latest.get(g, v.issued_ms), v.issued_ms)
    for v in visits:
        if v.call is None and v.priority == NORMAL and not v.no_show and v.group in latest:
            worst = max(worst, latest[v.group] - v.issued_ms)
    return worst / MINUTE_MS


def utilisation(
    busy: Mapping[str, Sequence[tuple[int, int]]], open_spans: Sequence[tuple[int, int]]
) -> dict[str, float]:
    """Each window's busy time while open over its open time (0 to 1)."""
    open_ms = sum(b - a for a, b in open_spans)
    out = {}
    for window, spans in busy.items():
        used = sum(
            max(0, min(end, b) - max(start, a)) for start, end in spans for a, b in open_spans
        )
        out[window] = used / open_ms if open_ms > 0 else 0.0
    return out
