"""The test gateway: `loadtests.webhook_receiver` with the test halls' key,
and a wait for a hall's outbox to be settled."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from loadtests.webhook_receiver import WebhookReceiver
from queue_core.keys import HallKeys
from queue_core.redis_client import RedisClient
from tests.support import NOTIFY_SECRET


@dataclass
class Receiver(WebhookReceiver):
    secret: bytes = NOTIFY_SECRET


async def outbox_drained(redis: RedisClient, hall: str, timeout_s: float = 10.0) -> None:
    """Until every delivery of `hall` is settled (a sender settles each just
    after its gateway answered), failing after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while await redis.xlen(HallKeys(hall).outbox):
        assert time.monotonic() < deadline, f"the outbox of {hall} is not drained"
        await asyncio.sleep(0.02)
