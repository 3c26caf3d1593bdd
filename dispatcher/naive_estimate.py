"""The simple wait estimate: pure arithmetic on the hall's config.

`(position + 0.5) x mean expected service time of the group / open windows
serving the group`. The half accounts for the person already at a window,
who is on average half-way through. No open window means no estimate.
"""

from __future__ import annotations

from collections.abc import Collection

from queue_core.config import HallConfig


def mean_service_seconds(config: HallConfig, group: str) -> float:
    minutes = [s.expected_minutes for s in config.services if s.group == group]
    return 60.0 * sum(minutes) / len(minutes) if minutes else 0.0


def open_windows_serving(config: HallConfig, group: str, open_windows: Collection[str]) -> int:
    return sum(1 for w in config.windows if group in w.groups and w.id in open_windows)


def eta_seconds(
    config: HallConfig, group: str, position: int, open_windows: Collection[str]
) -> int | None:
    """Seconds until a ticket `position` places from the head of `group` is called."""
    serving = open_windows_serving(config, group, open_windows)
    if serving == 0:
        return None
    return round((position + 0.5) * mean_service_seconds(config, group) / serving)
