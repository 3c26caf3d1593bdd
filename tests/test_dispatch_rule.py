"""Every scenario of `tests/dispatch_scenarios.py`, played through the pure
rule (`dispatcher.dispatch`) and through the real scripts on Redis: both
must call what the table says, report the positions it says, and list each
window's next tickets in the order the rule would call them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pytest

from dispatcher.dispatch import in_dispatch_order, take, take_order
from queue_core.config import load_hall_config
from queue_core.keys import HallKeys
from queue_core.models import WindowStatus
from queue_core.policy import effective_ms
from queue_core.redis_client import RedisClient
from queue_core.scripts import Scripts
from queue_core.store import HallStore
from tests.conftest import delete_hall
from tests.dispatch_scenarios import GROUPS, PREFIX_OF, SCENARIOS, SERVICE_OF, Scenario
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


def waiting_of(scenario: Scenario) -> list[Waiting]:
    made = []
    for n, t in enumerate(scenario.tickets):
        issued = round(t.minute * MINUTE_MS)
        credit = scenario.credits.get(t.priority, 0.0)
        made.append(Waiting(f"{issued:015d}:{n:06d}", t.group, effective_ms(issued, credit),
                            issued, t.label))  # fmt: skip
    return made


def pure_queues(scenario: Scenario) -> dict[str, list[Waiting]]:
    queues: dict[str, list[Waiting]] = {}
    for w in in_dispatch_order(waiting_of(scenario)):
        queues.setdefault(w.group, []).append(w)
    return queues


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_the_pure_rule_plays_the_table(scenario: Scenario) -> None:
    queues = pure_queues(scenario)
    positions = {w.label: i for q in queues.values() for i, w in enumerate(q)}
    assert positions == dict(scenario.positions)
    for window, expected in scenario.calls:
        groups = scenario.windows[window]
        heads = {g: queues[g][0] for g in groups if queues.get(g)}
        called = take(groups, heads)
        assert (called.label if called else None) == expected, f"window {window}"
        if called is not None:
            queues[called.group].pop(0)


def hall_toml(hall: str, scenario: Scenario) -> str:
    credits = "\n".join(
        f"{cls} = {'inf' if math.isinf(m) else m}" for cls, m in scenario.credits.items()
    )
    text = f'[hall]\nid = "{hall}"\nname = "调度场景"\ntimezone = "Asia/Shanghai"\n\n'
    text += f"[priority]\n{credits}\n"
    served = {g for groups in scenario.windows.values() for g in groups}
    for g in (g for g in GROUPS if g in served):
        text += f'\n[[group]]\nid = "{g}"\nname = "{g}"\n'
        text += f'\n[[service]]\nid = "{SERVICE_OF[g]}"\nname = "{g}"\ngroup = "{g}"\n'
        text += f'prefix = "{PREFIX_OF[g]}"\nexpected_minutes = 10\n'
    for w, groups in scenario.windows.items():
        text += f'\n[[window]]\nid = "{w}"\nname = "{w}号窗口"\n'
        text += "groups = [" + ", ".join(f'"{g}"' for g in groups) + "]\n"
    return text


@pytest.mark.redis
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
async def test_the_scripts_play_the_table(
    scenario: Scenario, redis: RedisClient, tmp_path: Path
) -> None:
    hall = new_hall_id()
    path = tmp_path / f"{hall}.toml"
    path.write_text(hall_toml(hall, scenario), encoding="utf-8")
    clock = Clock()
    store = HallStore(redis, Scripts.register(redis), load_hall_config(path), clock=clock)
    try:
        labels: dict[str, str] = {}
        # Issued in time order, as a kiosk would; the table lists them as it likes.
        for t in sorted(scenario.tickets, key=lambda t: t.minute):
            clock.now = START_S + t.minute * 60
            issued = await store.issue(SERVICE_OF[t.group], t.priority)
            labels[issued.value.ticket.id] = t.label
        clock.now = START_S + max(t.minute for t in scenario.tickets) * 60 + 1
        positions = {labels[tid]: (await store.ticket(tid)).position for tid in labels}
        assert positions == dict(scenario.positions)

        # Each window's list of who comes next is the order the rule calls them in.
        queues = pure_queues(scenario)
        for window, groups in scenario.windows.items():
            view = await store.window_view(window)
            listed = [labels[t.id] for t in view.waiting]
            assert listed == [w.label for w in take_order(groups, queues)], f"window {window}"

        for window in scenario.windows:
            await store.set_window(window, WindowStatus.OPEN)
        for window, expected in scenario.calls:
            called = (await store.call_next(window)).value
            assert (labels[called.ticket.id] if called else None) == expected, f"window {window}"
    finally:
        await delete_hall(redis, HallKeys(hall))
