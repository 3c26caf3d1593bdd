"""The demo's simulated hall drives the real store: tickets flow through windows."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from dispatcher.monitor import HallMonitor
from dispatcher.simulator import HallSimulator
from queue_core.auth import Credentials
from queue_core.operations import Hall
from queue_core.presence import PresenceStore
from queue_core.scripts import Scripts
from tests.conftest import HallFactory, stream_events

pytestmark = pytest.mark.redis


async def test_simulated_hall_issues_calls_and_finishes_tickets(hall_factory: HallFactory) -> None:
    kit = await hall_factory()
    presence = PresenceStore(kit.redis, Scripts.register(kit.redis), kit.config.id, ttl_s=45)
    monitor = HallMonitor(kit.store, presence)
    hall = Hall(kit.config, kit.store, Credentials(kit.config.credentials), monitor)
    simulator = HallSimulator(speed=3000, seed=7)
    task = asyncio.create_task(simulator.run({kit.config.id: hall}))
    try:
        # Poll the event log (no fixed sleep): wait until tickets were called and finished.
        for _ in range(2000):
            types = {fields["type"] for _, fields in await stream_events(kit.redis, kit.keys)}
            if {"issued", "called", "completed"} <= types:
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # A read of the hall the simulator started may outlive it; it must end
        # before the test's Redis client is closed, or it opens a connection
        # nobody closes (a ResourceWarning at the end of the session).
        await monitor.aclose()
    assert {"window", "issued", "called", "completed"} <= types
