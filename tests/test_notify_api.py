"""Notifications and snooze over HTTP: `notify` on POST /tickets and remote
tickets, POST /tickets/{id}/snooze, what GET /services tells a kiosk, and
the app's own sender, woken by the change, reaching a real receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from qms.app import create_app
from qms.cli import main
from qms.settings import SettingsError, notify_secrets
from queue_core.config import HallConfig, load_hall_config
from queue_core.keys import HallKeys
from queue_core.redis_client import RedisClient
from tests.conftest import ApiKit, api_client, delete_hall, stream_events
from tests.notify_receiver import Receiver, outbox_drained
from tests.support import TOKENS, Clock, make_config, notify_toml, write_hall

KIOSK = {"Authorization": f"Bearer {TOKENS['kiosk']}"}
ADMIN = {"Authorization": f"Bearer {TOKENS['admin']}"}


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


@pytest.fixture
async def gw(
    redis_url: str, redis: RedisClient, tmp_path: Path, receiver: Receiver
) -> AsyncIterator[ApiKit]:
    """A hall with a gateway (the receiver) served by the whole app."""
    config: HallConfig = make_config(
        tmp_path,
        remote="enabled = true\nper_client_per_hour = 50",
        extra=notify_toml(receiver.url),
    )
    clock = Clock()
    keys = HallKeys(config.id)
    async with api_client([config], redis_url, clock, notify_sweep_s=0.2) as client:
        yield ApiKit(client, config, clock, redis, keys)
    await delete_hall(redis, keys)


async def issue(kit: ApiKit, **body: object) -> httpx.Response:
    return await kit.client.post(
        f"{kit.base}/tickets", json={"service": "social-security", **body}, headers=KIOSK
    )


@pytest.mark.redis
async def test_notify_is_taken_checked_and_never_echoed(gw: ApiKit, api: ApiKit) -> None:
    r = await issue(gw, notify={"phone": "+86 139-1234-5678"})
    assert r.status_code == 201, r.text
    assert r.json()["notify"] is True and "5678" not in r.text
    assert (await issue(gw)).json()["notify"] is False
    for bad, code in [
        ({"phone": "12345"}, "invalid_phone"),
        ({"phone": 13912345678}, "invalid_phone"),
        ({"email": "a@b.c"}, "invalid_notify"),
        ({"phone": "13912345678", "channel": "x"}, "invalid_notify"),
        ({"channel": "has space"}, "invalid_notify"),
        ("13912345678", "invalid_notify"),
    ]:
        r = await issue(gw, notify=bad)
        assert (r.status_code, r.json()["error"]["code"]) == (422, code), bad
        assert "13912345678" not in r.text
    services = (await gw.client.get(f"{gw.base}/services")).json()
    assert services["notify"] == {"enabled": True, "kiosk_ask_minutes": 15.0}

    # A hall without a gateway says so, and takes nothing.
    r = await issue(api, notify={"phone": "13912345678"})
    assert (r.status_code, r.json()["error"]["code"]) == (422, "notify_not_offered")
    services = (await api.client.get(f"{api.base}/services")).json()
    assert services["notify"]["enabled"] is False and services["snooze_max_minutes"] == 30.0


@pytest.mark.redis
async def test_a_remote_ticket_may_ask_too(gw: ApiKit, receiver: Receiver) -> None:
    r = await gw.client.post(
        f"{gw.base}/remote/tickets",
        json={
            "service": "social-security",
            "notify": {"channel": "wx:o6_bmjrPTlm6_2sgVt7hMZOPfL2M"},
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["notify"] is True
    assert (await gw.client.post(f"{gw.base}/windows/2/open", headers=ADMIN)).status_code == 200
    assert (
        await gw.client.post(f"{gw.base}/windows/2/call-next", headers=ADMIN)
    ).status_code == 200
    [body] = await receiver.wait_for(1)
    assert (body["kind"], body["via"], body["window_name"]) == ("called", "channel", "2号窗口")


@pytest.mark.redis
async def test_the_apps_sender_tells_at_once(gw: ApiKit, receiver: Receiver) -> None:
    for _ in range(3):
        assert (await issue(gw, notify={"phone": "13912345678"})).status_code == 201
    await gw.client.post(f"{gw.base}/windows/2/open", headers=ADMIN)
    await gw.client.post(f"{gw.base}/windows/2/call-next", headers=ADMIN)
    bodies = await receiver.wait_for(2)
    assert sorted((b["number"], b["kind"], b["ahead"]) for b in bodies) == [
        ("A001", "called", 0),
        ("A003", "ahead", 1),
    ]
    # The gateway answered; the sender settles each delivery just after.
    await outbox_drained(gw.redis, gw.config.id)
    text = (await gw.client.get("/metrics")).text
    sent = {
        s.labels["kind"]: s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "qms_notifications_total"
        and s.labels.get("hall") == gw.config.id
        and s.labels.get("result") == "sent"
    }
    assert sent == {"called": 1.0, "ahead": 1.0}


@pytest.mark.redis
async def test_snooze_over_http(gw: ApiKit) -> None:
    first = (await issue(gw)).json()
    await issue(gw)
    url = f"{gw.base}/tickets/{first['id']}/snooze"
    refused = [
        ({}, "missing_field"), ({"minutes": "10"}, "bad_minutes"),
        ({"minutes": True}, "bad_minutes"), ({"minutes": 4}, "bad_minutes"),
        ({"minutes": 31}, "bad_minutes"),
        ({"minutes": 10, "x": 1}, "unknown_field"),
    ]  # fmt: skip
    for body, code in refused:
        r = await gw.client.post(url, json=body)
        assert (r.status_code, r.json()["error"]["code"]) == (422, code), body
    r = await gw.client.post(url, json={"minutes": 10})
    assert r.status_code == 200, r.text
    ticket = r.json()
    assert ticket["position"] == 1 and ticket["snoozed_until"] == "2026-11-21T09:10:00+08:00"
    again = await gw.client.post(url, json={"minutes": 10})
    assert (again.status_code, again.json()["error"]["code"]) == (409, "already_snoozed")
    missing = await gw.client.post(f"{gw.base}/tickets/{'x' * 22}/snooze", json={"minutes": 10})
    assert missing.status_code == 404
    events = [f for _, f in await stream_events(gw.redis, gw.keys) if f["type"] == "snoozed"]
    assert [(e["number"], e["minutes"]) for e in events] == [("A001", "10")]


def test_serve_refuses_a_gateway_without_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("QMS_NOTIFY_SECRET", "too-short")
    monkeypatch.delenv("QMS_REDIS_URL", raising=False)
    path = write_hall(tmp_path, extra=notify_toml("https://gw.example/qms"))
    data_dir = tmp_path / "data"
    code = main(["serve", "--config", str(path), "--port", "0", "--data-dir", str(data_dir)])
    err = capsys.readouterr().err
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert "QMS_NOTIFY_SECRET" in err and "shorter than 32" in err and "too-short" not in err
    assert "Traceback" not in err and not data_dir.exists()

    monkeypatch.delenv("QMS_NOTIFY_SECRET")
    config = load_hall_config(path)
    with pytest.raises(SettingsError, match="is not set"):
        notify_secrets([config], {})
    assert notify_secrets([config], {"QMS_NOTIFY_SECRET": "k" * 32}) == {config.id: b"k" * 32}
    with pytest.raises(SettingsError, match="no webhook key"):
        create_app([config], "redis://127.0.0.1:1/0")
