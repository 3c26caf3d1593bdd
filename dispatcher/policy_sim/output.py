"""How `qms simulate` shows its results: the JSON of the contract, a table
for a terminal, and a self-contained HTML report (inline SVG histograms of
each class's waits, no script, nothing fetched). Pure: text in, text out.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from dispatcher.policy_sim.stats import RuleOutcome

COLOURS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2")
"""One per rule, in the order the rules were played."""


@dataclass(frozen=True, slots=True)
class Report:
    """One simulation: the day played and what each rule gave."""

    hall: str
    """The hall's id and name."""
    day: date
    source: str
    """Where the day came from, in a phrase ("3,000 generated visitors, seed 1")."""
    windows: str
    """The windows that served, in a phrase."""
    outcomes: Mapping[str, RuleOutcome]
    """By rule, in the order played."""
    seconds: Mapping[str, float] = field(default_factory=dict)
    """How long each rule took to play (wall clock)."""


def to_json(report: Report) -> dict[str, Any]:
    """The contract's shape: waits in minutes, utilisation from 0 to 1."""
    return {
        "rules": {
            rule: {
                "classes": {
                    c: {
                        "mean": round(w.mean, 2),
                        "p50": round(w.p50, 2),
                        "p90": round(w.p90, 2),
                        "max": round(w.max, 2),
                        "count": w.count,
                    }
                    for c, w in o.classes.items()
                },
                "max_overtaken_minutes": round(o.max_overtaken_minutes, 2),
                "utilisation": {
                    "min": round(o.utilisation[0], 3),
                    "max": round(o.utilisation[1], 3),
                },
            }
            for rule, o in report.outcomes.items()
        }
    }


def render_table(report: Report) -> str:
    """The results for a terminal: one block per rule."""
    lines = [
        f"hall {report.hall}, {report.day.isoformat()}: {report.source}; {report.windows}",
        "waits in minutes from the ticket (or check-in) to its first call",
    ]
    for rule, o in report.outcomes.items():
        low, high = o.utilisation
        lines += [
            "",
            f"{rule}: a normal ticket overtaken by at most {o.max_overtaken_minutes:.1f} min; "
            f"windows busy {low:.0%} to {high:.0%} of their open time",
            f"  {'class':<14}{'count':>7}{'mean':>9}{'p50':>9}{'p90':>9}{'max':>9}",
        ]
        for c, w in o.classes.items():
            lines.append(
                f"  {c:<14}{w.count:>7}{w.mean:>9.1f}{w.p50:>9.1f}{w.p90:>9.1f}{w.max:>9.1f}"
            )
        lines.extend(f"  {note}" for note in notes(o))
    return "\n".join(lines) + "\n"


def notes(o: RuleOutcome) -> list[str]:
    """What the figures leave out or count differently, as sentences."""
    out = []
    if o.unserved:
        out.append(
            f"{o.unserved} tickets were still waiting when the day ended: "
            "their waits count up to the day's end"
        )
    if o.no_shows:
        out.append(f"{o.no_shows} no-shows are called but not counted as waits")
    if o.turned_away:
        out.append(f"{o.turned_away} visitors came while the kiosk did not issue")
    return out


def render_html(report: Report) -> str:
    """A self-contained page: the summary table and one histogram (inline
    SVG) per priority class, each rule a colour."""
    rules = list(report.outcomes)
    classes: list[str] = []
    for o in report.outcomes.values():
        classes += [c for c in o.classes if c not in classes]
    e = html.escape
    rows = []
    for rule, o in report.outcomes.items():
        low, high = o.utilisation
        for i, (c, w) in enumerate(o.classes.items()):
            head = f'<th rowspan="{len(o.classes)}">{e(rule)}</th>' if i == 0 else ""
            tail = (
                f'<td rowspan="{len(o.classes)}">{o.max_overtaken_minutes:.1f}</td>'
                f'<td rowspan="{len(o.classes)}">{low:.0%} – {high:.0%}</td>'
                if i == 0
                else ""
            )
            rows.append(
                f'<tr>{head}<td class="c">{e(c)}</td><td>{w.count}</td><td>{w.mean:.1f}</td>'
                f"<td>{w.p50:.1f}</td><td>{w.p90:.1f}</td><td>{w.max:.1f}</td>{tail}</tr>"
            )
    legend = " ".join(
        f'<span class="key"><i style="background:{COLOURS[i % len(COLOURS)]}"></i>{e(r)}</span>'
        for i, r in enumerate(rules)
    )
    figures = "\n".join(
        f"<figure><figcaption>{e(c)}</figcaption>\n"
        f"{histogram_svg({r: o.waits.get(c, ()) for r, o in report.outcomes.items()})}\n"
        "</figure>"
        for c in classes
    )
    all_notes = "".join(
        f"<li>{e(rule)}: {e(n)}</li>" for rule, o in report.outcomes.items() for n in notes(o)
    )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>qms simulate: {e(report.hall)}, {report.day.isoformat()}</title>
<style>
body {{ font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: .25em .6em; text-align: right; }}
th, td.c {{ text-align: left; }}
figure {{ margin: 1.5em 0; }}
figcaption {{ font-weight: 600; }}
.key {{ margin-right: 1.2em; }}
.key i {{ display: inline-block; width: .9em; height: .9em; margin-right: .3em; }}
svg text {{ font: 11px system-ui, sans-serif; fill: #444; }}
</style>
</head>
<body>
<h1>Dispatch rules on one day: {e(report.hall)}</h1>
<p>{report.day.isoformat()}: {e(report.source)}; {e(report.windows)}.
Waits in minutes from the ticket (or an appointment's check-in) to its first call.</p>
<table>
<tr><th>rule</th><th>class</th><th>count</th><th>mean</th><th>p50</th><th>p90</th><th>max</th>
<th>max overtaking of a normal ticket</th><th>window utilisation</th></tr>
{"".join(rows)}
</table>
<ul>{all_notes}</ul>
<h2>Waits by priority class</h2>
<p>Share of the class's tickets by wait (minutes). {legend}</p>
{figures}
</body>
</html>
"""


def histogram_svg(waits: Mapping[str, Sequence[float]], width: int = 720, height: int = 220) -> str:
    """Side-by-side bars of each rule's waits: the share of its tickets
    (a class's) per bin of minutes."""
    top = max((max(w) for w in waits.values() if w), default=0.0)
    step = nice_step(top / 20) if top > 0 else 1.0
    bins = max(1, math.ceil(top / step + 1e-9)) if top > 0 else 1
    shares: dict[str, list[float]] = {}
    for rule, values in waits.items():
        counts = [0] * bins
        for v in values:
            counts[min(bins - 1, int(v // step))] += 1
        shares[rule] = [n / len(values) if values else 0.0 for n in counts]
    highest = max((max(s) for s in shares.values()), default=0.0) or 1.0
    left, bottom, right, top_pad = 40, 30, 10, 10
    plot_w, plot_h = width - left - right, height - bottom - top_pad
    slot = plot_w / bins
    bar = slot * 0.8 / max(1, len(shares))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img">',
        f'<line x1="{left}" y1="{top_pad + plot_h}" x2="{width - right}" '
        f'y2="{top_pad + plot_h}" stroke="#888"/>',
        f'<text x="{left - 4}" y="{top_pad + 8}" text-anchor="end">{highest:.0%}</text>',
        f'<text x="{left - 4}" y="{top_pad + plot_h}" text-anchor="end">0</text>',
    ]
    for i, (rule, values) in enumerate(shares.items()):
        colour = COLOURS[i % len(COLOURS)]
        for b, share in enumerate(values):
            if share <= 0:
                continue
            h = share / highest * plot_h
            x = left + b * slot + slot * 0.1 + i * bar
            parts.append(
                f'<rect x="{x:.1f}" y="{top_pad + plot_h - h:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{html.escape(rule)}: '
                f"{share:.1%} waited {b * step:g}–{(b + 1) * step:g} min</title></rect>"
            )
    labels = max(1, bins // 10)
    for b in range(0, bins + 1, labels):
        x = left + b * slot
        parts.append(
            f'<text x="{x:.1f}" y="{height - bottom + 16}" text-anchor="middle">{b * step:g}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts)


def nice_step(raw: float) -> float:
    """The smallest of 1, 2, 5 × 10^k minutes at or above `raw`."""
    if raw <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if m * power >= raw:
            return float(m * power)
    return float(10 * power)
