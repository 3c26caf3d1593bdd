"""Every scenario of `tests/dispatch_scenarios.py`, played through the pure
rule (`dispatcher.dispatch`) and through the real scripts on Redis: both
must call what the table says, report the positions it says, and list each
window's next tickets in the order the rule would call them."""

from __future__ import annotations

import math
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from dispatcher.dispatch import (
    Policy,
    call_reason,
    earlier_waiting,
    group_sequence,
    in_dispatch_order,
    take,
    take_order,
)
from queue_core.config import load_hall_config
from queue_core.keys import HallKeys
from queue_core.models import WindowStatus
from queue_core.policy import effective_ms
from queue_core.redis_client import RedisClient
from queue_core.scripts import Scripts
from queue_core.store import HallStore
from tests.conftest import delete_hall
from tests.dispatch_scenarios import GROUPS, PREFIX_OF, SCENARIOS, SERVICE_OF, Issue, Scenario
from tests.support import START_S, Clock, new_hall_id

MINUTE_MS = 60_000


@dataclass(frozen=True, slots=True)
class Waiting:
    """A scenario ticket as the pure rule sees it; `id` sorts in issue order,
    as the queue member does on Redis (issue time, then the hall's counter)."""

    id: str
    group: str
    effective: float
    issued: float
    label: str
    priority: str


def waiting_of(scenario: Scenario) -> list[Waiting]:
    made = []
    for n, t in enumerate(scenario.tickets):
        issued = round(t.minute * MINUTE_MS)
        credit = scenario.credit(t.priority)
        made.append(Waiting(f"{issued:015d}:{n:06d}", t.group, effective_ms(issued, credit),
                            issued, t.label, t.priority))  # fmt: skip
    return made


def policy(scenario: Scenario) -> Policy:
    return Policy(scenario.rule, *scenario.ratio)


def pure_queues(scenario: Scenario) -> dict[str, list[Waiting]]:
    """Each group's tickets in the order its windows call them (every
    group's turn starts at 0)."""
    queues: dict[str, list[Waiting]] = {}
    for w in in_dispatch_order(waiting_of(scenario)):
        queues.setdefault(w.group, []).append(w)
    return {g: group_sequence(q, policy(scenario)) for g, q in queues.items()}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_the_pure_rule_plays_the_table(scenario: Scenario) -> None:
    queues = pure_queues(scenario)
    positions = {w.label: i for q in queues.values() for i, w in enumerate(q)}
    assert positions == dict(scenario.positions)
    for window, expected in scenario.calls:
        groups = scenario.windows[window]
        heads = {g: queues[g][0] for g in groups if queues.get(g)}
        called = take(groups, heads, scenario.order(window), scenario.rule)
        assert (called.label if called else None) == expected, f"window {window}"
        if called is not None:
            waiting = [t for g in groups for t in queues.get(g, ())]
            ahead = earlier_waiting(called, waiting)
            if called.label in scenario.reasons:
                reason = (call_reason(called, ahead, scenario.rule), ahead)
                assert reason == scenario.reasons[called.label], called.label
            queues[called.group].pop(0)


def hall_toml(hall: str, scenario: Scenario) -> str:
    credits = "\n".join(
        f"{cls} = {'inf' if math.isinf(m) else m}" for cls, m in scenario.credits.items()
    )
    text = f'[hall]\nid = "{hall}"\nname = "调度场景"\ntimezone = "Asia/Shanghai"\n\n'
    text += f'[priority]\n{credits}\n\n[dispatch]\nrule = "{scenario.rule}"\n'
    text += f"ratio = {{ normal = {scenario.ratio[0]}, priority = {scenario.ratio[1]} }}\n"
    served = {g for groups in scenario.windows.values() for g in groups}
    for g in (g for g in GROUPS if g in served):
        text += f'\n[[group]]\nid = "{g}"\nname = "{g}"\n'
        text += f'\n[[service]]\nid = "{SERVICE_OF[g]}"\nname = "{g}"\ngroup = "{g}"\n'
        text += f'prefix = "{PREFIX_OF[g]}"\nexpected_minutes = 10\n'
    for w, groups in scenario.windows.items():
        text += f'\n[[window]]\nid = "{w}"\nname = "{w}号窗口"\n'
        text += "groups = [" + ", ".join(f'"{g}"' for g in groups) + "]\n"
        text += f'order = "{scenario.order(w)}"\n'
    return text


@asynccontextmanager
async def played(
    redis: RedisClient, tmp_path: Path, scenario: Scenario
) -> AsyncIterator[tuple[HallStore, dict[str, str], dict[str, int | None]]]:
    """A hall of the scenario on Redis with its tickets issued in time order,
    as kiosks would issue them: its store, the label of each ticket id, and
    each label's position once all wait. Its keys are deleted afterwards."""
    hall = new_hall_id()
    path = tmp_path / f"{hall}.toml"
    path.write_text(hall_toml(hall, scenario), encoding="utf-8")
    clock = Clock()
    store = HallStore(redis, Scripts.register(redis), load_hall_config(path), clock=clock)
    try:
        labels: dict[str, str] = {}
        for t in sorted(scenario.tickets, key=lambda t: t.minute):
            clock.now = START_S + t.minute * 60
            labels[(await store.issue(SERVICE_OF[t.group], t.priority)).value.ticket.id] = t.label
        clock.now = START_S + max(t.minute for t in scenario.tickets) * 60 + 1
        positions = {labels[tid]: (await store.ticket(tid)).position for tid in labels}
        yield store, labels, positions
    finally:
        await delete_hall(redis, HallKeys(hall))


@pytest.mark.redis
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
async def test_the_scripts_play_the_table(
    scenario: Scenario, redis: RedisClient, tmp_path: Path
) -> None:
    async with played(redis, tmp_path, scenario) as (store, labels, positions):
        assert positions == dict(scenario.positions)

        # Each window's list of who comes next is the order the rule calls them in.
        queues = pure_queues(scenario)
        for window, groups in scenario.windows.items():
            view = await store.window_view(window)
            listed = [labels[t.id] for t in view.waiting]
            next_up = take_order(groups, queues, scenario.order(window), scenario.rule)
            assert listed == [w.label for w in next_up], f"window {window}"

        for window in scenario.windows:
            await store.set_window(window, WindowStatus.OPEN)
        for window, expected in scenario.calls:
            called = (await store.call_next(window)).value
            assert (labels[called.ticket.id] if called else None) == expected, f"window {window}"
            wanted = scenario.reasons.get(expected or "")
            if called is not None and wanted is not None:
                why = called.ticket.why
                assert why is not None
                assert (why.code, why.ahead_of) == wanted, expected


def random_scenario(seed: int) -> Scenario:
    """Random tickets, classes, windows, window orders and rule; the calls
    and positions left for the test to derive and check."""
    rng = random.Random(seed)
    windows: dict[str, tuple[str, ...]] = {}
    for w in range(1, rng.randint(1, 4) + 1):
        groups = rng.sample(GROUPS, rng.randint(1, len(GROUPS)))
        windows[str(w)] = tuple(groups)
    served = sorted({g for gs in windows.values() for g in gs})
    credits = {"elderly": rng.choice([5.0, 20.0, 60.0]), "disabled": rng.choice([20.0, math.inf])}
    tickets = tuple(
        Issue(f"t{i}", rng.choice(served), rng.randint(0, 30),
              rng.choices(["normal", "elderly", "disabled"], [6, 3, 1])[0])
        for i in range(rng.randint(1, 25))
    )  # fmt: skip
    return Scenario(
        f"random {seed}",
        windows=windows,
        tickets=tickets,
        calls=(),
        positions={},
        credits=credits,
        rule=rng.choice(["credit", "fifo", "ratio"]),
        ratio=(rng.randint(1, 3), rng.randint(1, 2)),
        orders={w: rng.choice(["place", "groups"]) for w in windows},
    )


@pytest.mark.redis
@pytest.mark.parametrize("seed", range(60))
async def test_the_nth_in_position_is_called_nth(
    seed: int, redis: RedisClient, tmp_path: Path
) -> None:
    """On random halls, rules and tickets, windows called at random: each
    group's tickets are called in the order of the positions announced when
    they were all waiting, and every call is the one the pure rule makes."""
    scenario = random_scenario(seed)
    rng = random.Random(seed + 1000)
    async with played(redis, tmp_path, scenario) as (store, labels, position):
        for window in scenario.windows:
            await store.set_window(window, WindowStatus.OPEN)

        queues = pure_queues(scenario)
        called: dict[str, list[str]] = {g: [] for g in GROUPS}
        open_windows = list(scenario.windows)
        while open_windows:
            window = rng.choice(open_windows)
            groups = scenario.windows[window]
            heads = {g: queues[g][0] for g in groups if queues.get(g)}
            expected = take(groups, heads, scenario.order(window), scenario.rule)
            got = (await store.call_next(window)).value
            assert (labels[got.ticket.id] if got else None) == (
                expected.label if expected else None
            )
            if expected is None:
                open_windows.remove(window)
                continue
            # The reason the scripts give is the pure rule's.
            ahead = earlier_waiting(expected, [t for g in groups for t in queues.get(g, ())])
            assert got is not None and got.ticket.why is not None
            assert (got.ticket.why.code, got.ticket.why.ahead_of) == (
                call_reason(expected, ahead, scenario.rule),
                ahead,
            )
            queues[expected.group].pop(0)
            called[expected.group].append(expected.label)

        for group, labels_called in called.items():
            assert [position[label] for label in labels_called] == list(
                range(len(labels_called))
            ), group
        assert sum(len(c) for c in called.values()) == len(scenario.tickets)
