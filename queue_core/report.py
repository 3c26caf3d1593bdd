"""The daily report of a hall, computed from archived tickets: pure functions.

`daily_report` groups one local day's archived tickets of a hall four ways —
the whole hall, per service, per window, per clerk credential — and gives
each group the same measures; `render_csv` turns the report into the CSV
that the CLI writes and the dashboard offers for download, and
`render_audit_csv` does the same for a day's audit trail. No I/O here: the
caller reads `Archive.day(hall, day)` (or `Archive.audit_day`) and passes
the rows in.

Definitions (also in docs/reports.md):

- issued: tickets of the day in the group; served / no_show / cancelled /
  expired: of those, how they ended (served = completed).
- wait: issue → call, in minutes, over tickets that were called (served and
  no-show). A transferred ticket keeps its issue time and is archived with
  its last call, so its wait runs to the call at its final service.
- p90 wait: nearest rank — the smallest wait that at least 90 % of waits
  do not exceed, i.e. sorted waits[ceil(0.9·n) − 1]; always an observed wait.
- service time: call → finish, in minutes, over served tickets.
- rated / satisfied_share: tickets with a rating, and the share of those
  rated very_satisfied or satisfied (好评率); counts per score as well.
- calls by reason: tickets whose last call had each reason (place, credit,
  appointment, ratio, order, out_of_turn, resume: `queue_core.reasons`).
- breaches: tickets whose service has a target (minutes) and that waited
  longer than it before being called — or before ending uncalled (cancelled,
  expired), since giving up after a long wait is a breach too.

Tickets never called have neither window nor clerk: those fall into a row
with an empty key, so every section adds up to the hall row.

`hall_report` takes the targets (`target_minutes` per service) and the
display names (hall, services, windows, clerks' `name`) from the hall config.
A ticket's `clerk` is the credential's audit label: its `name` when it has
one (the key and the label are then the same), else role and a keyed short
id (no label). Rows archived before labels held a credential id derived
from the token's plain hash: the caller relabels those
(`queue_core.auth.Credentials.relabel`, as `qms.reporting` does) before
they come here, so no report shows one.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from queue_core.archive import ArchivedAudit, ArchivedTicket, audit_id_key
from queue_core.config import HallConfig
from queue_core.models import Rating, TicketStatus
from queue_core.reasons import CODES as REASON_CODES

__all__ = [
    "AUDIT_CSV_COLUMNS",
    "CSV_COLUMNS",
    "DailyReport",
    "Dimension",
    "ReportLine",
    "config_labels",
    "config_targets",
    "daily_report",
    "hall_report",
    "p90",
    "render_audit_csv",
    "render_csv",
]

_MS_PER_MIN = 60_000
_GOOD = frozenset({Rating.VERY_SATISFIED.value, Rating.SATISFIED.value})


class Dimension(StrEnum):
    """What a report line groups by, in the order sections appear."""

    HALL = "hall"
    SERVICE = "service"
    WINDOW = "window"
    CLERK = "clerk"


@dataclass(frozen=True, slots=True)
class ReportLine:
    """The measures of one group of a day's tickets (minutes; None = no data)."""

    dimension: Dimension
    key: str
    """Service id, window id, the clerk's label, or the hall id; "" = not
    attributed."""
    label: str
    issued: int
    served: int
    no_show: int
    cancelled: int
    expired: int
    mean_wait_min: float | None
    p90_wait_min: float | None
    mean_service_min: float | None
    breaches: int
    target_min: float | None
    """The service's target wait, on service lines only."""
    rated: int
    satisfied_share: float | None
    ratings: tuple[int, ...]
    """Counts per `Rating`, best first."""
    calls_by_reason: tuple[int, ...] = ()
    """Tickets whose last call had each reason, in `queue_core.reasons.CODES`
    order (tickets archived before reasons were kept count in none)."""


@dataclass(frozen=True, slots=True)
class DailyReport:
    hall: str
    day: str
    lines: tuple[ReportLine, ...]

    def section(self, dimension: Dimension) -> tuple[ReportLine, ...]:
        return tuple(line for line in self.lines if line.dimension is dimension)


def p90(values: Sequence[float]) -> float | None:
    """The nearest-rank 90th percentile: sorted(values)[ceil(0.9·n) − 1]."""
    if not values:
        return None
    return sorted(values)[math.ceil(0.9 * len(values)) - 1]


def config_labels(config: HallConfig) -> dict[Dimension, dict[str, str]]:
    """Display names for report keys, from the hall config: hall, services,
    windows, and clerks' credentials that have a `name` (keyed by the name,
    the label tickets carry)."""
    return {
        Dimension.HALL: {config.id: config.name},
        Dimension.SERVICE: {s.id: s.name for s in config.services},
        Dimension.WINDOW: {w.id: w.name for w in config.windows},
        Dimension.CLERK: {c.name: c.name for c in config.credentials if c.name},
    }


def config_targets(config: HallConfig) -> dict[str, float]:
    """Each service's target wait in minutes (`target_minutes`), where it has one."""
    return {s.id: s.target_minutes for s in config.services if s.target_minutes is not None}


def hall_report(tickets: Iterable[ArchivedTicket], config: HallConfig, day: str) -> DailyReport:
    """`daily_report` of a configured hall: targets and labels from its config."""
    return daily_report(
        tickets, config.id, day, targets=config_targets(config), labels=config_labels(config)
    )


def daily_report(
    tickets: Iterable[ArchivedTicket],
    hall: str,
    day: str,
    *,
    targets: Mapping[str, float] | None = None,
    labels: Mapping[Dimension, Mapping[str, str]] | None = None,
) -> DailyReport:
    """The report of one hall's local day (YYYY-MM-DD).

    `tickets` may hold other halls and days: only (hall, day)'s are used.
    `targets` maps a service id to its target wait in minutes (services
    without one count no breaches); `labels` gives display names per
    dimension and key (see `config_labels`).
    """
    rows = [t for t in tickets if t.hall == hall and t.day == day]
    targets = targets or {}
    labels = labels or {}
    keyers: dict[Dimension, Callable[[ArchivedTicket], str]] = {
        Dimension.HALL: lambda t: t.hall,
        Dimension.SERVICE: lambda t: t.service,
        Dimension.WINDOW: lambda t: t.window or "",
        Dimension.CLERK: lambda t: t.clerk or "",
    }
    lines: list[ReportLine] = []
    for dimension, keyer in keyers.items():
        groups: dict[str, list[ArchivedTicket]] = {}
        for t in rows:
            groups.setdefault(keyer(t), []).append(t)
        if dimension is Dimension.HALL:
            groups.setdefault(hall, [])  # a day with no tickets still has its hall line
        names = labels.get(dimension, {})
        for key in sorted(groups, key=_natural):
            target = targets.get(key) if dimension is Dimension.SERVICE else None
            lines.append(_line(dimension, key, names.get(key, ""), groups[key], targets, target))
    return DailyReport(hall, day, tuple(lines))


def _line(
    dimension: Dimension,
    key: str,
    label: str,
    group: Sequence[ArchivedTicket],
    targets: Mapping[str, float],
    target: float | None,
) -> ReportLine:
    def count(status: TicketStatus) -> int:
        return sum(1 for t in group if t.status is status)

    waits = [(t.called_ms - t.issued_ms) / _MS_PER_MIN for t in group if t.called_ms is not None]
    services = [
        (t.finished_ms - t.called_ms) / _MS_PER_MIN
        for t in group
        if t.status is TicketStatus.COMPLETED
        and t.called_ms is not None
        and t.finished_ms is not None
    ]
    scores = [t.rating for t in group if t.rating in _SCORE_INDEX]
    ratings = [0] * len(_SCORE_INDEX)
    for score in scores:
        ratings[_SCORE_INDEX[score]] += 1
    return ReportLine(
        dimension=dimension,
        key=key,
        label=label,
        issued=len(group),
        served=count(TicketStatus.COMPLETED),
        no_show=count(TicketStatus.NO_SHOW),
        cancelled=count(TicketStatus.CANCELLED),
        expired=count(TicketStatus.EXPIRED),
        mean_wait_min=_mean(waits),
        p90_wait_min=p90(waits),
        mean_service_min=_mean(services),
        breaches=sum(1 for t in group if _breached(t, targets)),
        target_min=target,
        rated=len(scores),
        satisfied_share=sum(1 for s in scores if s in _GOOD) / len(scores) if scores else None,
        ratings=tuple(ratings),
        calls_by_reason=tuple(
            sum(1 for t in group if t.call_reason == code) for code in REASON_CODES
        ),
    )


_SCORE_INDEX = {r.value: i for i, r in enumerate(Rating)}


def _breached(t: ArchivedTicket, targets: Mapping[str, float]) -> bool:
    target = targets.get(t.service)
    end = t.called_ms if t.called_ms is not None else t.finished_ms
    if target is None or end is None:
        return False
    return end - t.issued_ms > target * _MS_PER_MIN


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _natural(key: str) -> tuple[bool, list[str | int]]:
    """Window "2" before "10"; the unattributed "" last."""
    parts: list[str | int] = [int(p) if i % 2 else p for i, p in enumerate(re.split(r"(\d+)", key))]
    return (key == "", parts)


CSV_COLUMNS: tuple[str, ...] = (
    "hall",
    "day",
    "dimension",
    "key",
    "label",
    "issued",
    "served",
    "no_show",
    "cancelled",
    "expired",
    "mean_wait_min",
    "p90_wait_min",
    "mean_service_min",
    "breaches",
    "target_min",
    "rated",
    "satisfied_share",
    *(r.value for r in Rating),
    *(f"calls_{code}" for code in REASON_CODES),
)
"""English snake_case headers: stable names for scripts and imports; the
Chinese names of services and windows are in `label`."""


def render_csv(report: DailyReport) -> bytes:
    """The report as CSV: UTF-8 with a BOM (so Excel reads Chinese labels
    right), CRLF line ends, one line per report line, minutes to 0.1,
    shares to 0.001, an empty cell where there is no data."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for line in report.lines:
        writer.writerow(
            [
                report.hall,
                report.day,
                line.dimension.value,
                line.key,
                line.label,
                line.issued,
                line.served,
                line.no_show,
                line.cancelled,
                line.expired,
                _fixed(line.mean_wait_min, 1),
                _fixed(line.p90_wait_min, 1),
                _fixed(line.mean_service_min, 1),
                line.breaches,
                "" if line.target_min is None else f"{line.target_min:g}",
                line.rated,
                _fixed(line.satisfied_share, 3),
                *line.ratings,
                *line.calls_by_reason,
            ]
        )
    return out.getvalue().encode("utf-8-sig")


def _fixed(value: float | None, places: int) -> str:
    return "" if value is None else f"{value:.{places}f}"


AUDIT_CSV_COLUMNS: tuple[str, ...] = (
    "at",
    "actor",
    "role",
    "action",
    "window",
    "number",
    "client",
)


def render_audit_csv(entries: Iterable[ArchivedAudit], tz: ZoneInfo) -> bytes:
    """A day's audit trail as CSV, the conventions of `render_csv` (UTF-8
    with a BOM, CRLF, a header row): one line per entry in id order, `at`
    in ISO 8601 with the hall's offset to the millisecond (as `GET /audit`
    gives it), an empty cell for no window or number."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(AUDIT_CSV_COLUMNS)
    for e in sorted(entries, key=lambda a: audit_id_key(a.id)):
        at = datetime.fromtimestamp(e.at_ms / 1000, tz).isoformat(timespec="milliseconds")
        writer.writerow([at, e.actor, e.role, e.action, e.window or "", e.number or "", e.client])
    return out.getvalue().encode("utf-8-sig")
