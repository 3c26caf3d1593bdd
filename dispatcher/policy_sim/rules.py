"""The dispatch rules `qms simulate` compares, each as a hall config: the
same scripts then serve the day under each (pure, no I/O).

- `credit`: the hall's own credits, as configured;
- `strict`: every priority class's credit infinite (strict priority, arrival
  order within a class);
- `fifo`: every credit 0, arrival order (an appointment checked in within
  its grace still counts from its slot start: the check-in rule, not a credit);
- `ratio`: `[dispatch] rule = "ratio"`, recognised but not in this build.
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


class RuleUnavailable(ValueError):
    """A rule `qms simulate` knows that this build's hall config cannot express."""


def config_for_rule(config: HallConfig, rule: str) -> HallConfig:
    """`config` as it would be under `rule`: the credits replaced (and, once
    the config has it, the hall's `[dispatch] rule`)."""
    if rule == "credit":
        return _with_dispatch_rule(config, "credit")
    if rule == "strict":
        credits = {c: 0.0 if c == NORMAL else math.inf for c in config.priority}
        return dataclasses.replace(_with_dispatch_rule(config, "credit"), priority=credits)
    if rule == "fifo":
        credits = dict.fromkeys(config.priority, 0.0)
        return dataclasses.replace(_with_dispatch_rule(config, "credit"), priority=credits)
    if rule == "ratio":
        return _with_dispatch_rule(config, "ratio")
    raise UnknownRule(f"unknown rule {rule!r}: use {', '.join(RULES)}")


def available_rules(config: HallConfig) -> tuple[str, ...]:
    """The rules of `RULES` this build can play for `config`, in order."""
    playable = []
    for rule in RULES:
        try:
            config_for_rule(config, rule)
        except RuleUnavailable:
            continue
        playable.append(rule)
    return tuple(playable)


def _with_dispatch_rule(config: HallConfig, rule: str) -> HallConfig:
    """`config` with its `[dispatch] rule` set to `rule`.

    The hook for `[dispatch] rule` (credit | fifo | ratio): this build's
    `HallConfig` has no such field, so only the credit rule exists. Once it
    has `dispatch: DispatchRules`, the body becomes
        return dataclasses.replace(config, dispatch=dataclasses.replace(config.dispatch, rule=rule))
    (with `RuleUnavailable` for a name not in `queue_core.config.RULES`), and
    `ratio` is played like any other rule."""
    if rule == "credit":
        return config
    raise RuleUnavailable(f"{rule} is not available in this build")


def with_windows(config: HallConfig, count: int) -> HallConfig:
    """`config` with `count` windows "1".."count", each serving every group
    (and no credentials: nobody logs in to a simulated hall)."""
    if count < 1:
        raise ValueError(f"a hall needs at least one window, not {count}")
    groups = tuple(g.id for g in config.groups)
    windows = tuple(Window(str(i), f"{i}号窗口", groups) for i in range(1, count + 1))
    return dataclasses.replace(config, windows=windows, credentials=())
