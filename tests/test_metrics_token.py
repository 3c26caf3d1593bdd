"""`/metrics` behind `QMS_METRICS_TOKEN` when it is set, open when not."""

from __future__ import annotations

from pathlib import Path

import pytest

from qms.settings import SettingsError, metrics_token
from queue_core.keys import HallKeys
from queue_core.redis_client import RedisClient
from tests.conftest import asgi_client, delete_hall, served_app
from tests.support import Clock, make_config

pytestmark = pytest.mark.redis

TOKEN = "scrape-me-please-0123"


async def test_metrics_need_the_token_when_one_is_set(
    redis_url: str, redis: RedisClient, tmp_path: Path
) -> None:
    config = make_config(tmp_path)
    async with (
        served_app([config], redis_url, Clock(), metrics_token=TOKEN) as app,
        asgi_client(app) as client,
    ):
        for given in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": TOKEN}):
            refused = await client.get("/metrics", headers=given)
            assert refused.status_code == 401
            assert refused.json()["error"]["code"] == "unauthorized"
            assert refused.headers["www-authenticate"] == "Bearer"
            assert "qms_" not in refused.text
        scraped = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert scraped.status_code == 200
        assert "qms_build_info" in scraped.text
        # Health and readiness stay open for probes.
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 200
    await delete_hall(redis, HallKeys(config.id))


async def test_metrics_are_open_without_a_token(
    redis_url: str, redis: RedisClient, tmp_path: Path
) -> None:
    config = make_config(tmp_path)
    async with served_app([config], redis_url, Clock()) as app, asgi_client(app) as client:
        assert (await client.get("/metrics")).status_code == 200
    await delete_hall(redis, HallKeys(config.id))


def test_the_setting_is_read_and_a_short_token_refused_without_showing_it() -> None:
    assert metrics_token({}) is None
    assert metrics_token({"QMS_METRICS_TOKEN": ""}) is None
    assert metrics_token({"QMS_METRICS_TOKEN": TOKEN}) == TOKEN
    with pytest.raises(SettingsError) as refused:
        metrics_token({"QMS_METRICS_TOKEN": "short"})
    assert "short" not in str(refused.value).replace("too short", "")
