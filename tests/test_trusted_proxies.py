"""`QMS_TRUSTED_PROXIES`: whose X-Forwarded-For counts as the client's
address (for the per-address limit) and whose X-Forwarded-Proto as TLS."""

from __future__ import annotations

from pathlib import Path

import pytest

from qms.settings import SettingsError, trusted_proxies
from queue_core.keys import HallKeys
from queue_core.redis_client import RedisClient
from tests.conftest import delete_hall
from tests.live import live_server
from tests.support import Clock, make_config

pytestmark = pytest.mark.redis

LIMITS = "[limits]\npublic_per_minute = 2\n"


async def test_a_forwarded_address_counts_only_from_a_trusted_proxy(
    redis_url: str, redis: RedisClient, tmp_path: Path
) -> None:
    config = make_config(tmp_path, extra=LIMITS)
    base = f"/api/v1/halls/{config.id}"
    forwarded = [
        {"X-Forwarded-For": f"198.51.100.{i}", "X-Forwarded-Proto": "https"} for i in range(3)
    ]
    # By default nobody is trusted, loopback included: three "clients" behind
    # a local hop are one address, and the third request is over the limit.
    async with live_server([config], redis_url, clock=Clock()) as live:
        answers = [await live.api.get(f"{base}/services", headers=h) for h in forwarded]
        assert [a.status_code for a in answers] == [200, 200, 429]
        assert all("strict-transport-security" not in a.headers for a in answers)
    await delete_hall(redis, HallKeys(config.id))
    # Trusted, the proxy's word decides: three addresses, and TLS at the proxy.
    async with live_server(
        [config], redis_url, clock=Clock(), trusted_proxies=("127.0.0.1",)
    ) as live:
        answers = [await live.api.get(f"{base}/services", headers=h) for h in forwarded]
        assert [a.status_code for a in answers] == [200, 200, 200]
        assert all("strict-transport-security" in a.headers for a in answers)
        # ... and one of those addresses is limited on its own.
        again = [await live.api.get(f"{base}/services", headers=forwarded[0]) for _ in range(2)]
        assert [a.status_code for a in again] == [200, 429]
    await delete_hall(redis, HallKeys(config.id))


def test_the_setting_takes_addresses_networks_or_a_star() -> None:
    assert trusted_proxies("") == ()
    assert trusted_proxies(" 10.0.0.5, 10.1.0.0/16 ,::1") == ("10.0.0.5", "10.1.0.0/16", "::1")
    assert trusted_proxies("*") == ("*",)
    with pytest.raises(SettingsError, match="QMS_TRUSTED_PROXIES"):
        trusted_proxies("proxy.local")
