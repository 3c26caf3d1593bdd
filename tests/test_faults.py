"""Faults of Redis itself, on a redis-server of the test's own: out of
memory under `noeviction`, and turned into a read-only replica by mistake.
What Redis refuses is a clear 503 in the contract's error shape (never a
500) and changes nothing, and everything recovers by itself once Redis
accepts writes again."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from loadtests.redis_procs import Node, single_redis
from queue_core.redis_client import refusal_of
from tests.conftest import api_client
from tests.support import TOKENS, make_config

KIOSK = {"Authorization": f"Bearer {TOKENS['kiosk']}"}
ADMIN = {"Authorization": f"Bearer {TOKENS['admin']}"}


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("Error running script (call to f_1): @user_script:1: @user_script: 1: -OOM command "
         "not allowed when used memory > 'maxmemory'.", "redis_full"),
        ("OOM command not allowed when used memory > 'maxmemory'.", "redis_full"),
        ("Error running script ...: -READONLY You can't write against a read only replica.",
         "redis_read_only"),
        ("MISCONF Errors writing to the AOF file: No space left on device", "redis_disk"),
        ("WRONGTYPE Operation against a key holding the wrong kind of value", None),
        ("NOSCRIPT No matching script.", None),
    ],
)  # fmt: skip
def test_which_redis_errors_mean_not_now(message: str, code: str | None) -> None:
    refusal = refusal_of(message)
    assert (refusal[0] if refusal else None) == code


def keys_of(node: Node) -> dict[object, object]:
    c = node.client()
    return {k: c.dump(k) for k in c.keys("*")}


def assert_refused(r: httpx.Response, code: str) -> None:
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"] == "1"
    body = r.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    assert "Traceback" not in r.text


@pytest.mark.slow
@pytest.mark.redis
async def test_out_of_memory_refuses_new_tickets_while_calls_drain_the_queue(
    tmp_path: Path,
) -> None:
    """Under `noeviction` Redis refuses a script whose first write would
    grow memory (an issue) and lets one through that starts by freeing
    (a call takes a ticket out of its queue): the hall keeps serving."""
    config = make_config(tmp_path)
    base = f"/api/v1/halls/{config.id}"
    with single_redis(tmp_path / "redis", fsync="everysec") as node:
        async with api_client([config], f"redis://127.0.0.1:{node.port}/0") as client:
            for _ in range(2):
                r = await client.post(
                    f"{base}/tickets", json={"service": "social-security"}, headers=KIOSK
                )
                assert r.status_code == 201, r.text
            await client.post(f"{base}/windows/2/open", headers=ADMIN)
            node.ask("CONFIG", "SET", "maxmemory-policy", "noeviction")
            node.ask("CONFIG", "SET", "maxmemory", "1")
            before = keys_of(node)
            r = await client.post(
                f"{base}/tickets", json={"service": "social-security"}, headers=KIOSK
            )
            assert_refused(r, "redis_full")
            assert keys_of(node) == before
            r = await client.post(f"{base}/windows/2/call-next", headers=ADMIN)
            assert r.status_code == 200 and r.json()["number"] == "A001"

            node.ask("CONFIG", "SET", "maxmemory", "0")
            r = await client.post(
                f"{base}/tickets", json={"service": "social-security"}, headers=KIOSK
            )
            assert r.status_code == 201 and r.json()["number"] == "A003"


@pytest.mark.slow
@pytest.mark.redis
async def test_a_read_only_replica_refuses_every_change_clearly_and_recovery(
    tmp_path: Path,
) -> None:
    config = make_config(tmp_path)
    base = f"/api/v1/halls/{config.id}"
    with single_redis(tmp_path / "redis", fsync="everysec") as node:
        async with api_client([config], f"redis://127.0.0.1:{node.port}/0") as client:
            r = await client.post(
                f"{base}/tickets", json={"service": "social-security"}, headers=KIOSK
            )
            ticket = r.json()
            await client.post(f"{base}/windows/2/open", headers=ADMIN)
            node.ask("REPLICAOF", "127.0.0.1", "1")  # a primary that is not there
            before = keys_of(node)
            for r in (
                await client.post(
                    f"{base}/tickets", json={"service": "social-security"}, headers=KIOSK
                ),
                await client.post(f"{base}/windows/2/call-next", headers=ADMIN),
                await client.post(f"{base}/tickets/{ticket['id']}/cancel"),
            ):
                assert_refused(r, "redis_read_only")
            assert keys_of(node) == before
            r = await client.get(f"{base}/tickets/{ticket['id']}")  # reads still answer
            assert r.status_code == 200 and r.json()["status"] == "waiting"

            node.ask("REPLICAOF", "NO", "ONE")
            r = await client.post(f"{base}/windows/2/call-next", headers=ADMIN)
            assert r.status_code == 200 and r.json()["number"] == ticket["number"]
