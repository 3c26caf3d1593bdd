"""The dispatch rules `qms simulate` compares, each as a hall config: the
same scripts then serve the day under each (pure, no I/O).

- `credit`: `[dispatch] rule = "credit"` with the hall's own credits;
- `strict`: the credit rule with every priority class's credit infinite
  (strict priority, arrival order within a class);
- `fifo`: `[dispatch] rule = "fifo"`: arrival order, every credit ignored
  (a checked-in appointment counts from its check-in);
- `ratio`: `[dispatch] rule = "ratio"` with the hall's ratio (2 normal : 1
  priority unless it says otherwise).
"""

from __future__ import annotations

import dataclasses
import math

from queue_core.config import HallConfig, Window
from queue_core.models import NORMAL

RULES = ("fifo", "strict", "credit", "ratio")
"""Every rule name `qms simulate` knows, in the order it reports them."""


class UnknownRule(ValueError):
    """A rule name that is none of `RULES`."""


def config_for_rule(config: HallConfig, rule: str) -> HallConfig:
    """`config` as it would be under `rule`."""
    if rule == "credit":
        return _with_dispatch_rule(config, "credit")
    if rule == "strict":
        credits = {c: 0.0 if c == NORMAL else math.inf for c in config.priority}
        return dataclasses.replace(_with_dispatch_rule(config, "credit"), priority=credits)
    if rule in ("fifo", "ratio"):
        return _with_dispatch_rule(config, rule)
    raise UnknownRule(f"unknown rule {rule!r}: use {', '.join(RULES)}")


def _with_dispatch_rule(config: HallConfig, rule: str) -> HallConfig:
    """`config` with its `[dispatch] rule` set to `rule` (its ratio kept)."""
    return dataclasses.replace(config, dispatch=dataclasses.replace(config.dispatch, rule=rule))


def with_windows(config: HallConfig, count: int) -> HallConfig:
    """`config` with `count` windows "1".."count", each serving every group
    (and no credentials: nobody logs in to a simulated hall)."""
    if count < 1:
        raise ValueError(f"a hall needs at least one window, not {count}")
    groups = tuple(g.id for g in config.groups)
    windows = tuple(Window(str(i), f"{i}号窗口", groups) for i in range(1, count + 1))
    return dataclasses.replace(config, windows=windows, credentials=())
