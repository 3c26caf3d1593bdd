"""Several halls in one process, production-style credentials, Redis-derived gauges."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from queue_core.config import load_hall_config
from queue_core.keys import HallKeys
from queue_core.redis_client import RedisClient
from tests.conftest import api_client, delete_hall
from tests.support import TOKENS, make_config, new_hall_id, write_hall

pytestmark = pytest.mark.redis


def hall_with_hashed_kiosk_token(directory: Path, token: str) -> Path:
    path = write_hall(directory, new_hall_id())
    digest = hashlib.sha256(token.encode()).hexdigest()
    text = path.read_text(encoding="utf-8").replace(
        'role = "kiosk"\ntoken = "kiosk-token"', f'role = "kiosk"\ntoken_sha256 = "{digest}"'
    )
    path.write_text(text, encoding="utf-8")
    return path


async def test_two_halls_in_one_process_keep_apart(
    redis_url: str, redis: RedisClient, tmp_path: Path
) -> None:
    a = make_config(tmp_path)
    b = load_hall_config(hall_with_hashed_kiosk_token(tmp_path, "b-kiosk-secret"))
    try:
        async with api_client([a, b], redis_url) as client:
            kiosk_a = {"Authorization": f"Bearer {TOKENS['kiosk']}"}
            kiosk_b = {"Authorization": "Bearer b-kiosk-secret"}
            body = {"service": "social-security"}
            first_a = await client.post(f"/api/v1/halls/{a.id}/tickets", json=body, headers=kiosk_a)
            first_b = await client.post(f"/api/v1/halls/{b.id}/tickets", json=body, headers=kiosk_b)
            # each hall counts its own numbers
            assert first_a.status_code == first_b.status_code == 201
            assert first_a.json()["number"] == first_b.json()["number"] == "A001"
            # hall B keeps only the digest of its kiosk token, and it still works;
            # hall A's plain token means nothing at hall B, and the other way round
            wrong = await client.post(f"/api/v1/halls/{b.id}/tickets", json=body, headers=kiosk_a)
            assert wrong.status_code == 401
            wrong = await client.post(f"/api/v1/halls/{a.id}/tickets", json=body, headers=kiosk_b)
            assert wrong.status_code == 401
            # a ticket id is only found in its own hall
            tid = first_a.json()["id"]
            assert (await client.get(f"/api/v1/halls/{a.id}/tickets/{tid}")).status_code == 200
            assert (await client.get(f"/api/v1/halls/{b.id}/tickets/{tid}")).status_code == 404
    finally:
        await delete_hall(redis, HallKeys(a.id))
        await delete_hall(redis, HallKeys(b.id))


def gauge(name: str, labels: dict[str, str]) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def test_waiting_and_window_gauges_follow_redis(
    redis_url: str, redis: RedisClient, tmp_path: Path
) -> None:
    config = make_config(tmp_path)
    hall = config.id
    admin = {"Authorization": f"Bearer {TOKENS['admin']}"}
    kiosk = {"Authorization": f"Bearer {TOKENS['kiosk']}"}
    base = f"/api/v1/halls/{hall}"
    try:
        async with api_client([config], redis_url, metrics_interval_s=0.02) as client:
            for service in ["social-security", "social-security", "business-licence"]:
                r = await client.post(f"{base}/tickets", json={"service": service}, headers=kiosk)
                assert r.status_code == 201
            assert (await client.post(f"{base}/windows/2/open", headers=admin)).status_code == 200
            assert (await client.post(f"{base}/windows/3/pause", headers=admin)).status_code == 200

            expected = {
                ("qms_waiting_tickets", "group", "natural"): 2.0,
                ("qms_waiting_tickets", "group", "legal"): 1.0,
                ("qms_waiting_tickets", "group", "police"): 0.0,
                ("qms_windows", "status", "open"): 1.0,
                ("qms_windows", "status", "paused"): 1.0,
                ("qms_windows", "status", "closed"): 2.0,
            }

            def seen() -> dict[tuple[str, str, str], float | None]:
                return {k: gauge(k[0], {"hall": hall, k[1]: k[2]}) for k in expected}

            # The gauges are refreshed by the app's periodic task, not by a
            # scrape: wait (bounded) for a refresh that saw the writes above.
            for _ in range(500):
                if seen() == expected:
                    break
                await asyncio.sleep(0.01)
            assert seen() == expected
            assert gauge("qms_redis_up", {"hall": hall}) == 1.0
    finally:
        await delete_hall(redis, HallKeys(hall))
