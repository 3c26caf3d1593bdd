"""Notifications across a restart of qms, on real processes: deliveries
failing at the gateway are in Redis when qms is killed (SIGKILL), and the
next qms, a new process, delivers them once the gateway is back."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from loadtests.failover import serving
from loadtests.serve_process import ServeProcess
from queue_core.keys import HallKeys
from queue_core.redis_client import RedisClient
from tests.conftest import delete_hall
from tests.notify_receiver import Receiver, outbox_drained
from tests.support import NOTIFY_SECRET, TOKENS, notify_toml, write_hall

pytestmark = [pytest.mark.slow, pytest.mark.redis]

KIOSK = {"Authorization": f"Bearer {TOKENS['kiosk']}"}
ADMIN = {"Authorization": f"Bearer {TOKENS['admin']}"}
ENV = {"QMS_NOTIFY_SECRET": NOTIFY_SECRET.decode()}


@contextlib.asynccontextmanager
async def qms(tmp_path: Path, config: Path, redis_url: str) -> AsyncIterator[ServeProcess]:
    """`qms serve` as its own process; started off the event loop, so the
    receiver in this loop answers while qms starts."""
    cm = serving(tmp_path, config, redis_url, env=ENV)
    server = await asyncio.to_thread(cm.__enter__)
    try:
        yield server
    finally:
        await asyncio.to_thread(cm.__exit__, None, None, None)


async def test_deliveries_pending_at_a_kill_are_sent_by_the_next_qms(
    tmp_path: Path, redis_url: str, redis: RedisClient
) -> None:
    receiver = Receiver(status=503)
    await receiver.start()
    hall = f"nt{uuid.uuid4().hex[:8]}"
    config = write_hall(tmp_path, hall, extra=notify_toml(receiver.url))
    try:
        async with qms(tmp_path, config, redis_url) as first:
            api = f"http://127.0.0.1:{first.port}/api/v1/halls/{hall}"
            async with httpx.AsyncClient(timeout=5) as client:
                for _ in range(3):
                    r = await client.post(
                        f"{api}/tickets",
                        json={"service": "social-security", "notify": {"phone": "13912345678"}},
                        headers=KIOSK,
                    )
                    assert r.status_code == 201, r.text
                for op in ("open", "call-next"):
                    r = await client.post(f"{api}/windows/2/{op}", headers=ADMIN)
                    assert r.status_code == 200, r.text
            # Both deliveries (A001 called, A003 one ahead) tried and failed, at least twice.
            async with asyncio.timeout(20):
                while len(receiver.received) < 4:
                    receiver.arrived.clear()
                    await receiver.arrived.wait()
            first.proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(first.proc.wait, 10)
        assert await redis.xlen(HallKeys(hall).outbox) == 2
        attempted = {r.body["id"] for r in receiver.received}

        receiver.status = 200
        async with qms(tmp_path, config, redis_url):
            bodies = await receiver.wait_for(2, timeout_s=30)
            assert sorted((b["number"], b["kind"]) for b in bodies) == [
                ("A001", "called"),
                ("A003", "ahead"),
            ]
            assert {b["id"] for b in bodies} == attempted  # the same deliveries, same ids
            await outbox_drained(redis, hall)
    finally:
        await receiver.stop()
        await delete_hall(redis, HallKeys(hall))
