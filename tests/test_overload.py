"""A bounded number of requests in flight per process (API.md, "Overload,
abuse and bad input"): the excess is answered at once with 503
`overloaded` and `Retry-After`, never queued; health checks and scrapes
are never refused.

Slots are held by requests whose bodies the test streams: the app reads a
body only after it admitted the request, and the body's last chunk waits
on an `asyncio.Event` the test sets. No sleeps, no clocks.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from starlette.applications import Starlette

from loadtests.failover import Attempt, Stream, Target, audit, open_windows, serving, write_hall
from loadtests.overload import LeanClient, Mix, unacknowledged
from loadtests.redis_procs import single_redis
from qms.app import create_app
from qms.overload import RETRY_AFTER_S, InFlightLimit
from qms.settings import Settings, SettingsError
from queue_core.keys import HallKeys
from queue_core.redis_client import RedisClient
from tests.conftest import app_client, delete_hall
from tests.support import TOKENS, make_config

pytestmark = pytest.mark.redis

LIMIT = 2
EXCESS = 7
DEADLOCK_GUARD_S = 30  # only so a regression (a queue) fails instead of hanging


def _limiter(app: Starlette) -> InFlightLimit:
    """The app's own `InFlightLimit` (Starlette builds its stack on first use)."""
    layer = app.middleware_stack
    while layer is not None and not isinstance(layer, InFlightLimit):
        layer = getattr(layer, "app", None)
    assert isinstance(layer, InFlightLimit)
    return layer


def _refused() -> float:
    value = REGISTRY.get_sample_value("qms_requests_refused_total", {"reason": "overloaded"})
    return value or 0.0


async def test_the_excess_is_refused_at_once_and_the_slots_come_back(
    redis_url: str, redis: RedisClient, tmp_path: Path
) -> None:
    config = make_config(tmp_path)
    base = f"/api/v1/halls/{config.id}"
    kiosk = {"Authorization": f"Bearer {TOKENS['kiosk']}"}
    app = create_app([config], redis_url, metrics_interval_s=3600, max_in_flight=LIMIT)
    admitted = asyncio.Semaphore(0)
    release = asyncio.Event()

    async def held_body() -> AsyncIterator[bytes]:
        # Asked for only once the request is in: its slot is taken.
        admitted.release()
        await release.wait()
        yield json.dumps({"service": "social-security"}).encode()

    refused_before = _refused()
    try:
        async with app_client(app) as client, asyncio.timeout(DEADLOCK_GUARD_S):
            holders = [
                asyncio.create_task(
                    client.post(f"{base}/tickets", headers=kiosk, content=held_body())
                )
                for _ in range(LIMIT)
            ]
            for _ in range(LIMIT):
                await admitted.acquire()
            limiter = _limiter(app)
            assert limiter.in_flight == LIMIT

            # Every kind of request past the bound: refused at once, while the
            # holders still hold their slots (a queued one would never finish).
            excess = await asyncio.gather(
                *(
                    client.post(f"{base}/tickets", headers=kiosk, json={"service": "household"})
                    if i % 2
                    else client.get(f"{base}/services")
                    for i in range(EXCESS)
                )
            )
            for response in excess:
                assert response.status_code == 503
                assert response.headers["retry-after"] == str(RETRY_AFTER_S)
                assert response.json() == {
                    "error": {
                        "code": "overloaded",
                        "message": "The server is busy; try again in a moment.",
                    }
                }
            assert _refused() - refused_before == EXCESS

            # Probes and scrapes get through a full process, and take no slot.
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/readyz")).status_code == 200
            scrape = await client.get("/metrics")
            assert scrape.status_code == 200
            assert f"qms_requests_in_flight {LIMIT}.0" in scrape.text
            assert limiter.in_flight == LIMIT

            release.set()
            held = await asyncio.gather(*holders)
            assert [r.status_code for r in held] == [201] * LIMIT
            assert limiter.in_flight == 0

            # Free again: the next request is served.
            after = await client.post(
                f"{base}/tickets", headers=kiosk, json={"service": "household"}
            )
            assert after.status_code == 201
            assert limiter.in_flight == 0
            # Nothing refused was issued: two held + one after.
            numbers = sorted(r.json()["number"] for r in [*held, after])
            assert numbers == ["A001", "A002", "D001"]
    finally:
        await delete_hall(redis, HallKeys(config.id))


async def test_a_failing_request_gives_its_slot_back(
    redis_url: str, redis: RedisClient, tmp_path: Path
) -> None:
    config = make_config(tmp_path)
    app = create_app([config], redis_url, metrics_interval_s=3600, max_in_flight=1)
    try:
        async with app_client(app) as client:
            for _ in range(3):
                bad = await client.post(f"/api/v1/halls/{config.id}/tickets", content=b"{")
                assert bad.status_code == 401
                assert (await client.get("/no/such/page")).status_code == 404
            assert _limiter(app).in_flight == 0
    finally:
        await delete_hall(redis, HallKeys(config.id))


def test_a_limit_below_one_is_refused() -> None:
    async def app(scope: object, receive: object, send: object) -> None:  # never called
        raise AssertionError

    with pytest.raises(ValueError, match="at least 1"):
        InFlightLimit(app, 0)


def test_the_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QMS_MAX_IN_FLIGHT", "7")
    assert Settings.from_env(configs=()).max_in_flight == 7
    monkeypatch.setenv("QMS_MAX_IN_FLIGHT", "0")
    with pytest.raises(SettingsError, match="QMS_MAX_IN_FLIGHT"):
        Settings.from_env(configs=())
    monkeypatch.delenv("QMS_MAX_IN_FLIGHT")
    assert Settings.from_env(configs=()).max_in_flight == 128


# ------------------------------------------- fifty clients past a small bound

OVERLOAD_BOUND = 4
"""`QMS_MAX_IN_FLIGHT` for fifty clients that send without pause: most of
their requests find the process full."""
FAST_REFUSAL_S = 1.0
"""The contract's "at once", with a margin for a busy CI machine: a refusal
takes no Redis call and no queue (~1 ms here)."""


@pytest.mark.slow
async def test_fifty_clients_past_the_bound_are_refused_fast_retried_and_nothing_is_lost(
    tmp_path: Path,
) -> None:
    """`qms serve` with `QMS_MAX_IN_FLIGHT=4`, ten kiosks, ten clerks and
    thirty visitors (`loadtests.overload`'s mix) sending without pause, each
    retrying a 503 with its Idempotency-Key after `Retry-After`. Refusals
    come at once, each refused request is answered in the end, and the
    audit is clean: no number twice, no ticket called twice, no waiting
    ticket skipped, no acknowledged ticket lost, no ticket nobody was
    given. Then every acknowledged key is sent again, still under overload,
    as a client whose answer was lost would: each gets its first answer."""
    hall = f"ov{uuid.uuid4().hex[:8]}"
    config = write_hall(tmp_path, hall)
    mix = Mix.of(50)
    env = {"QMS_MAX_IN_FLIGHT": str(OVERLOAD_BOUND)}
    with (
        single_redis(tmp_path / "redis", fsync="everysec") as node,
        serving(tmp_path, config, f"redis://127.0.0.1:{node.port}/0", env=env) as qms,
    ):
        target = Target(f"http://127.0.0.1:{qms.port}", hall, mix.windows)
        await open_windows(target)
        # The load driver's own client (`tests/test_slow_redis.py` drives httpx).
        stream = Stream(
            target,
            issuers=mix.kiosks,
            visitors=mix.visitors,
            pause_s=0.0,
            finish=True,
            client=LeanClient.to(target),
        )
        async with stream.running(DEADLOCK_GUARD_S):
            await stream.wait_for(
                lambda: len(_overloaded(stream)) >= 50 and len(stream.called) >= 30,
                DEADLOCK_GUARD_S,
                "refusals and calls",
            )
        replays = await _answer_again(stream)
        findings = await audit(stream)
        accounted = await unacknowledged(stream)

    refusals = _overloaded(stream)
    assert max(a.seconds for a in refusals) < FAST_REFUSAL_S
    assert {a.op for a in refusals} == {"issue", "call", "poll"}
    by_key: dict[str, list[Attempt]] = {}
    for a in stream.attempts:
        if a.key:
            by_key.setdefault(a.key, []).append(a)
    for a in refusals:
        if a.op == "poll":
            continue
        # Retried after Retry-After, until acknowledged (the stream finishes
        # every request it began).
        later = [b for b in by_key[a.key] if b.start > a.start]
        assert later and later[0].start - a.end >= RETRY_AFTER_S - 0.05
        assert a.key in stream.issued or a.key in stream.called
    assert findings.unanswered == 0
    assert findings.unexpected == {}, findings.unexpected
    assert set(findings.failures) == {"overloaded"}
    assert findings.numbers_issued_twice == []
    assert findings.tickets_called_twice == []
    assert findings.tickets_skipped == []
    assert findings.tickets_lost == []
    assert findings.calls_lost == []
    assert accounted["called_not_acknowledged"] == []
    assert accounted["waiting_not_acknowledged"] == 0
    assert replays["issue"] == len(stream.issued) and replays["call"] == len(stream.called)


def _overloaded(stream: Stream) -> list[Attempt]:
    return [a for a in stream.attempts if a.code == "overloaded"]


async def _answer_again(stream: Stream) -> Counter[str]:
    """Send every acknowledged issue and call-next again with its key
    (retrying 503s) and check the answer is the first; how many were."""
    t = stream.target
    issue = {"Authorization": f"Bearer {t.kiosk_token}"}
    clerk = {"Authorization": f"Bearer {t.clerk_token}"}
    same: Counter[str] = Counter()
    gate = asyncio.Semaphore(8)

    async def again(url: str, headers: dict[str, str], key: str, body: Any) -> httpx.Response:
        async with gate:
            while True:
                r = await client.post(url, headers={**headers, "Idempotency-Key": key}, json=body)
                if r.status_code != 503:
                    return r
                await asyncio.sleep(float(r.headers.get("retry-after", "0.1")))

    async def issue_again(key: str, first: dict[str, Any]) -> None:
        r = await again(f"{t.api}/tickets", issue, key, {"service": t.service})
        assert r.status_code == 201, r.text
        assert (r.json()["id"], r.json()["number"]) == (first["id"], first["number"])
        same["issue"] += 1

    async def call_again(key: str, window: str, first: dict[str, Any] | None) -> None:
        r = await again(f"{t.api}/windows/{window}/call-next", clerk, key, None)
        assert r.status_code == (204 if first is None else 200), r.text
        if first is not None:
            assert r.json()["number"] == first["number"]
        same["call"] += 1

    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
        await asyncio.gather(
            *(issue_again(k, v) for k, v in stream.issued.items()),
            *(call_again(k, w, v) for k, (w, v) in stream.called.items()),
        )
    return same
