"""`[dispatch] rule` and `[[window]] order`: parsed, defaulted, and every
mistake named under its key."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from queue_core.config import DispatchRules, load_hall_config
from tests.test_config import VALID, edited, problems_of, write

WINDOW_1 = 'name = "1号窗口"\ngroups = ["natural", "legal"]\n'


def test_the_defaults_are_the_credit_rule_and_the_place_order(tmp_path: Path) -> None:
    hall = load_hall_config(write(tmp_path, VALID))
    assert hall.dispatch == DispatchRules("credit")
    assert {w.order for w in hall.windows} == {"place"}


def test_fifo_gives_every_class_no_credit(tmp_path: Path) -> None:
    text = VALID + '\n[dispatch]\nrule = "fifo"\n'
    hall = load_hall_config(write(tmp_path, text))
    assert hall.dispatch.rule == "fifo"
    assert hall.priority  # the configured credits are kept, and not applied
    assert {hall.credit_minutes(c) for c in hall.priority} == {0.0}


def test_credit_keeps_the_configured_credits(tmp_path: Path) -> None:
    hall = load_hall_config(write(tmp_path, VALID + '\n[dispatch]\nrule = "credit"\n'))
    assert any(hall.credit_minutes(c) > 0 or math.isinf(hall.credit_minutes(c))
               for c in hall.priority)  # fmt: skip


def test_ratio_is_read_and_gives_priority_classes_a_side_of_their_own(tmp_path: Path) -> None:
    text = VALID + '\n[dispatch]\nrule = "ratio"\nratio = {normal = 3, priority = 2}\n'
    hall = load_hall_config(write(tmp_path, text))
    assert hall.dispatch == DispatchRules("ratio", 3, 2)
    assert hall.credit_minutes("normal") == 0.0
    assert {hall.credit_minutes(c) for c in hall.priority} == {math.inf}
    plain = load_hall_config(write(tmp_path, VALID + '\n[dispatch]\nrule = "ratio"\n'))
    assert plain.dispatch == DispatchRules("ratio", 2, 1)


def test_a_window_order_is_read(tmp_path: Path) -> None:
    text = edited(WINDOW_1, WINDOW_1 + 'order = "groups"\n')
    hall = load_hall_config(write(tmp_path, text))
    assert hall.window_by_id["1"].order == "groups"
    assert hall.window_by_id["w_2"].order == "place"


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        (VALID + '\n[dispatch]\nrule = "roundrobin"\n', "dispatch.rule",
         'must be "credit" or "fifo" or "ratio", not \'roundrobin\''),
        (VALID + "\n[dispatch]\nrule = 1\n", "dispatch.rule",
         'must be "credit" or "fifo" or "ratio", not an integer'),
        (VALID + "\n[dispatch]\nratio = 2\n", "dispatch.ratio",
         "must be a table {normal = 2, priority = 1}, not an integer"),
        (VALID + "\n[dispatch]\nratio = {normal = 0, priority = 1}\n", "dispatch.ratio.normal",
         "must be 1 or more, not 0"),
        (VALID + "\n[dispatch]\nratio = {normal = 2, priority = 1.5}\n",
         "dispatch.ratio.priority", "must be a whole number, not a float"),
        (VALID + "\n[dispatch]\nratio = {normal = 2, prio = 1}\n", "dispatch.ratio.prio",
         "unknown key; did you mean 'priority'?"),
        (VALID + '\n[dispatch]\nrules = "fifo"\n', "dispatch.rules",
         "unknown key; did you mean 'rule'?"),
        ('dispatch = "fifo"\n' + VALID, "dispatch", "must be a table [dispatch], not a string"),
        (edited(WINDOW_1, WINDOW_1 + 'order = "place-first"\n'), "window[0].order",
         'must be "place" or "groups", not \'place-first\''),
    ],
)  # fmt: skip
def test_each_mistake_is_named(tmp_path: Path, text: str, key: str, message: str) -> None:
    found = [(p.key, p.message) for p in problems_of(tmp_path, text)]
    assert (key, message) in found, found
