"""How many inputs each fuzz test tried in this run, for the summary
pytest prints at the end (`tests/conftest.py`): "N inputs tried"."""

from __future__ import annotations

from collections import Counter

TRIED: Counter[str] = Counter()


def tally(what: str) -> None:
    TRIED[what] += 1
