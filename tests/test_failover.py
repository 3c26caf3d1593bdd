"""Beyond one machine: qms while Redis hangs, dies, restarts or fails over.

Every test runs real redis-server processes (the bundled binary, also as
Sentinels) and, but for the first, `qms serve` as a process of its own.
The contract: while Redis is unreachable or has no primary every API answer
is a 503 (fast, never a hang), `/readyz` is 503, screens stay open, and all
of it recovers by itself; with `QMS_REDIS_MIN_REPLICAS=1` no acknowledged
change is lost in a failover. How fast is measured by `loadtests.failover`
(docs/operations.md#failover), not asserted here: a request counts as hung
when it gets no answer within the client's timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.protocol import State

from loadtests.failover import (
    CLIENT_TIMEOUT_S,
    Findings,
    Stream,
    Target,
    audit,
    failover_topology,
    open_windows,
    serving,
    timeline,
    write_hall,
)
from loadtests.http_bench import ADMIN_TOKEN
from loadtests.redis_procs import Node, sentinel_deployment, single_redis
from tests.live import live_server, post
from tests.support import TOKENS, make_config

pytestmark = [pytest.mark.slow, pytest.mark.redis]

HUNG_CLIENT_TIMEOUT_S = 3.0
"""Longer than the 1 s the contract allows, shorter than the 5 s a command
used to wait for a reply (and again for a pooled connection)."""
DISPLAY = "display-token"


def http_client(base_url: str = "", timeout_s: float = CLIENT_TIMEOUT_S) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=500, max_keepalive_connections=500)
    return httpx.AsyncClient(base_url=base_url, timeout=timeout_s, trust_env=False, limits=limits)


async def until(condition: Callable[[], Any], timeout_s: float, what: str) -> None:
    """Poll `condition` until it holds, failing after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s:g} s"
        await asyncio.sleep(0.05)


async def answer_until(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    ok: int,
    timeout_s: float = 30.0,
    send: Callable[[], Awaitable[httpx.Response]] | None = None,
    **kw: Any,
) -> httpx.Response:
    """The request (or `send()`), repeated with the same headers and
    Idempotency-Key while it is answered 503, until it is answered `ok`."""
    deadline = time.monotonic() + timeout_s
    while True:
        r = await (send() if send is not None else client.request(method, url, **kw))
        if r.status_code != 503:
            assert r.status_code == ok, r.text
            return r
        assert time.monotonic() < deadline, f"{url} still 503 after {timeout_s:g} s: {r.text}"
        await asyncio.sleep(0.05)


def stream_first_success(stream: Stream, t: float) -> float:
    """Seconds from `t` to the first successful answer to a request sent after it."""
    return min(a.end for a in stream.attempts if a.ok and a.start >= t) - t


def assert_clean(f: Findings) -> None:
    assert f.unanswered == 0, f"{f.unanswered} requests got no answer within the client timeout"
    assert f.not_error_shape == 0
    assert f.unexpected == {}, f.unexpected
    assert f.tickets_lost == [], f"acknowledged tickets lost: {f.tickets_lost}"
    assert f.numbers_issued_twice == [], f"numbers issued twice: {f.numbers_issued_twice}"
    assert f.tickets_called_twice == [], f"tickets called twice: {f.tickets_called_twice}"
    assert f.calls_lost == [], f"acknowledged calls lost: {f.calls_lost}"
    assert f.tickets_skipped == [], f"waiting tickets skipped: {f.tickets_skipped}"


# ------------------------------------------------------------------ screens


class Screen:
    """A display socket whose every frame is kept, in order."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for message in self.ws:
                self.frames.append(json.loads(message))

    @property
    def open(self) -> bool:
        return self.ws.state is State.OPEN and not self._reader.done()

    def calls(self) -> list[tuple[str, str]]:
        """(number, window) of every `called` event, in the order received."""
        return [(f["number"], f["window"]) for f in self.frames if f["type"] == "called"]

    def events(self) -> list[tuple[int, str, str | None]]:
        return [
            (f["seq"], f["type"], f.get("number"))
            for f in self.frames
            if f["type"] not in ("snapshot", "heartbeat")
        ]

    def last_seq(self) -> int:
        seqs = [f["seq"] for f in self.frames if f["type"] != "heartbeat"]
        return seqs[-1] if seqs else -1

    def assert_in_order(self) -> int:
        """Each event's seq is one more than the frame before (a snapshot, a
        resync, sets where the next must start): nothing missed or repeated.
        The number of snapshots."""
        last: int | None = None
        snapshots = 0
        for f in self.frames:
            if f["type"] == "heartbeat":
                continue
            if f["type"] == "snapshot":
                # A resync may repeat the last seq seen, never go back before it.
                assert last is None or f["seq"] >= last, f"snapshot {f['seq']} after {last}"
                snapshots += 1
            else:
                assert last is not None and f["seq"] == last + 1, (
                    f"event {f['seq']} after {last}: {self.events()}"
                )
            last = f["seq"]
        return snapshots

    async def aclose(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@contextlib.asynccontextmanager
async def screen(ws_base: str, hall: str, token: str = DISPLAY) -> AsyncIterator[Screen]:
    async with connect(f"{ws_base}/ws/halls/{hall}/display?token={token}") as ws:
        s = Screen(ws)
        await until(lambda: s.frames, 10, "the first frame")
        assert s.frames[0]["type"] == "snapshot"
        try:
            yield s
        finally:
            await s.aclose()


# ---------------------------------------------------------- a hung Redis


async def test_while_redis_hangs_every_answer_is_a_fast_503_and_all_recovers(
    tmp_path: Path,
) -> None:
    """A redis-server that stops answering (SIGSTOP: its sockets stay open,
    as with a hung host) is the hard case: nothing fails, everything waits.
    Many more requests than pooled connections, each answered 503 in the
    contract's shape well before the client gives up; the screen stays
    open; once Redis answers again the same keys get their tickets, each
    once, and the screen goes on without a gap."""
    config = make_config(tmp_path)
    hall = config.id
    with single_redis(tmp_path / "redis") as node:
        async with (
            live_server([config], f"redis://127.0.0.1:{node.port}/0") as live,
            screen(live.ws, hall) as display,
            http_client(live.http, HUNG_CLIENT_TIMEOUT_S) as client,
        ):
            base = f"/api/v1/halls/{hall}"
            await post(live, hall, "/windows/2/open", TOKENS["clerk2"])
            first = await post(live, hall, "/tickets", TOKENS["kiosk"], service="social-security")
            await until(lambda: display.last_seq() >= 2, 10, "the screen seeing both events")
            kiosk = {"Authorization": f"Bearer {TOKENS['kiosk']}"}
            clerk = {"Authorization": f"Bearer {TOKENS['clerk2']}"}
            display_auth = {"Authorization": f"Bearer {DISPLAY}"}
            issue_keys = [uuid.uuid4().hex for _ in range(100)]
            call_keys = [uuid.uuid4().hex for _ in range(10)]

            async def issue(key: str) -> httpx.Response:
                body = {"service": "social-security"}
                headers = {**kiosk, "Idempotency-Key": key}
                return await client.post(f"{base}/tickets", json=body, headers=headers)

            async def call(key: str) -> httpx.Response:
                headers = {**clerk, "Idempotency-Key": key}
                return await client.post(f"{base}/windows/2/call-next", headers=headers)

            async def snapshot() -> httpx.Response:
                return await client.get(f"{base}/snapshot", headers=display_auth)

            node.pause()
            try:
                # An unanswered request raises httpx.ReadTimeout here: a hang.
                answers = await asyncio.gather(
                    *map(issue, issue_keys),
                    *map(call, call_keys),
                    *(snapshot() for _ in range(20)),
                    *(client.get(f"{base}/tickets/{first['id']}") for _ in range(20)),
                )
                ready = await client.get("/readyz")
                assert display.open
            finally:
                node.resume()
            # Past QMS_MAX_IN_FLIGHT (128) the rest are refused at once as
            # overload: a fast 503 too.
            codes = set()
            for r in answers:
                assert r.status_code == 503, r.text
                codes.add(r.json()["error"]["code"])
                assert r.json()["error"]["message"]
            assert "redis_unavailable" in codes and codes <= {"redis_unavailable", "overloaded"}
            assert ready.status_code == 503
            assert ready.json()["error"]["code"] == "redis_unavailable"

            # Back by itself. The commands sent while Redis slept may have run
            # once it woke (a 503 after a timeout does not say a change was
            # not made): the same keys now answer with those tickets.
            tickets = []
            for key in issue_keys:
                r = await answer_until(client, "POST", "", 201, send=functools.partial(issue, key))
                tickets.append(r.json())
            assert len({t["id"] for t in tickets}) == len(issue_keys)
            assert len({t["number"] for t in tickets} | {first["number"]}) == len(issue_keys) + 1
            numbers = []
            for key in call_keys:
                r = await answer_until(client, "POST", "", 200, send=functools.partial(call, key))
                numbers.append(r.json()["number"])
            assert len(set(numbers)) == len(call_keys)
            assert (await client.get("/readyz")).status_code == 200

            await until(
                lambda: {n for n, _ in display.calls()} >= set(numbers), 10, "the calls on screen"
            )
            assert display.open
            assert display.assert_in_order() == 1  # no resync was needed
            waiting = (await snapshot()).json()["groups"][0]["waiting"]
            assert waiting == len(issue_keys) + 1 - len(call_keys)


# ------------------------------------------- a Sentinel with no primary


async def test_while_the_sentinels_know_no_primary_every_answer_is_a_503(
    tmp_path: Path,
) -> None:
    """A primary down with no replica to promote: the Sentinel flags it
    down and redis-py finds no primary (`MasterNotFoundError`), which is a
    503 at once; the same primary back, qms follows by itself."""
    config = make_config(tmp_path)
    hall = config.id
    with sentinel_deployment(tmp_path / "redis", replicas=0) as deployment:
        async with (
            live_server([config], deployment.url) as live,
            http_client(live.http, HUNG_CLIENT_TIMEOUT_S) as client,
        ):
            await post(live, hall, "/tickets", TOKENS["kiosk"], service="social-security")
            deployment.primary.kill()

            def flagged_down() -> bool:
                with deployment.sentinel.client() as sentinel:
                    return bool(sentinel.sentinel_master(deployment.service)["is_sdown"])

            await until(flagged_down, 10, "the Sentinel flagging the primary down")
            kiosk = {"Authorization": f"Bearer {TOKENS['kiosk']}"}
            answers = await asyncio.gather(
                *(
                    client.post(
                        f"/api/v1/halls/{hall}/tickets",
                        json={"service": "social-security"},
                        headers=kiosk,
                    )
                    for _ in range(20)
                ),
                client.get("/readyz"),
            )
            for r in answers:
                assert r.status_code == 503, r.text
                assert r.json()["error"]["code"] == "redis_unavailable"

            deployment.extra.append(deployment.primary.restart())
            await answer_until(
                client,
                "POST",
                f"/api/v1/halls/{hall}/tickets",
                201,
                json={"service": "social-security"},
                headers=kiosk,
            )
            assert (await client.get("/readyz")).status_code == 200


# ------------------------------------------------- Sentinel failover, load


async def test_a_sentinel_failover_under_load_loses_no_acknowledged_change(
    tmp_path: Path,
) -> None:
    """Primary + 2 replicas + 3 Sentinels (quorum 2); `qms serve` with
    QMS_REDIS_MIN_REPLICAS=1; five kiosks issuing and three clerks calling,
    retrying with their keys; SIGKILL of the primary mid-stream."""
    hall = f"fo{uuid.uuid4().hex[:8]}"
    config = write_hall(tmp_path, hall)
    with (
        failover_topology(tmp_path / "redis") as deployment,
        serving(tmp_path, config, deployment.url, min_replicas=1) as qms,
    ):
        target = Target(f"http://127.0.0.1:{qms.port}", hall, ("1", "2", "3"))
        await open_windows(target)
        stream = Stream(target, issuers=5)
        runner = asyncio.create_task(stream.run())
        try:
            await stream.wait_for(lambda: len(stream.called) >= 20, 30, "calls before the kill")
            acked_before = len(stream.issued) + len(stream.called)
            deployment.primary.kill()
            killed = stream.now()
            await stream.wait_for(lambda: stream.successes_after(killed) >= 30, 60, "recovery")
        finally:
            stream.stop()
            await runner
        promoted = deployment.primary_port()
        assert promoted is not None and promoted != deployment.primary.port
        findings = await audit(stream)
        assert_clean(findings)
        failed_after_kill = [a for a in stream.attempts if not a.ok and a.start >= killed]
        assert failed_after_kill, "the kill went unnoticed"
        assert set(findings.failures) <= {"redis_unavailable", "not_replicated"}
        assert acked_before > 0 and findings.acknowledged > acked_before
        async with http_client(target.base_url) as client:
            assert (await client.get("/readyz")).status_code == 200


# ------------------------------------------- one Redis, killed and restarted


async def test_redis_killed_and_restarted_under_load_loses_nothing_acknowledged(
    tmp_path: Path,
) -> None:
    """One redis-server with `appendfsync always`, SIGKILLed under a steady
    stream and started again on the same port a moment later."""
    hall = f"fo{uuid.uuid4().hex[:8]}"
    config = write_hall(tmp_path, hall)
    with single_redis(tmp_path / "redis", appendonly=True, fsync="always") as node:
        url = f"redis://127.0.0.1:{node.port}/0"
        restarted: Node | None = None
        with serving(tmp_path, config, url) as qms:
            target = Target(f"http://127.0.0.1:{qms.port}", hall, ("1", "2", "3"))
            await open_windows(target)
            stream = Stream(target, issuers=5)
            runner = asyncio.create_task(stream.run())
            try:
                async with http_client(target.base_url) as client:
                    await stream.wait_for(lambda: len(stream.called) >= 20, 30, "calls")
                    node.kill()
                    killed = stream.now()
                    await stream.wait_for(
                        lambda: any(not a.ok and a.start >= killed for a in stream.attempts),
                        10,
                        "a refused request",
                    )
                    ready = await client.get("/readyz")
                    n_failed = len(stream.attempts)
                    await stream.wait_for(
                        lambda: len(stream.attempts) >= n_failed + 40, 10, "more refusals"
                    )
                    assert stream.successes_after(killed) == 0
                    restarted = node.restart()
                    back = stream.now()
                    await stream.wait_for(
                        lambda: stream.successes_after(back) >= 30, 30, "recovery"
                    )
                    assert (await client.get("/readyz")).status_code == 200
                stream.stop()
                await runner
                findings = await audit(stream)
            finally:
                stream.stop()
                await runner
                if restarted is not None:
                    restarted.kill()
            assert ready.status_code == 503
            assert ready.json()["error"]["code"] == "redis_unavailable"
            down = [a for a in stream.attempts if killed <= a.start and a.end <= back]
            assert down and all(a.status == 503 for a in down), {a.code for a in down}
            assert {a.code for a in down} == {"redis_unavailable"}
            assert_clean(findings)
            # The figures docs/reliability.md quotes (`pytest -s -k killed_and_restarted`).
            t = timeline(stream, killed)
            print(
                f"\nredis killed and restarted: down {back - killed:.2f} s, "
                f"{t.failed_requests} refused "
                f"(slowest {findings.slowest_failure_s * 1000:.0f} ms), "
                f"first success {stream_first_success(stream, back):.2f} s after the restart, "
                f"{findings.acknowledged} acknowledged of {findings.attempts} requests, "
                f"lost {len(findings.tickets_lost)}, numbers twice "
                f"{len(findings.numbers_issued_twice)}, called twice "
                f"{len(findings.tickets_called_twice)}"
            )


# ------------------------------------------- two qms replicas, one Redis


async def test_a_screen_on_one_replica_sees_every_call_made_through_the_other(
    tmp_path: Path,
) -> None:
    hall = f"fo{uuid.uuid4().hex[:8]}"
    config = write_hall(tmp_path, hall)
    with (
        single_redis(tmp_path / "redis", fsync="everysec") as node,
        serving(tmp_path, config, f"redis://127.0.0.1:{node.port}/0", name="a") as a,
        serving(tmp_path, config, f"redis://127.0.0.1:{node.port}/0", name="b") as b,
    ):
        replicas = [f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"]
        targets = [Target(f"http://{r}", hall, ("1", "2", "3", "4")) for r in replicas]
        await open_windows(targets[0])
        kiosk = {"Authorization": f"Bearer {targets[0].kiosk_token}"}
        admin = {"Authorization": f"Bearer {targets[0].clerk_token}"}
        async with (
            screen(f"ws://{replicas[0]}", hall, ADMIN_TOKEN) as on_a,
            screen(f"ws://{replicas[1]}", hall, ADMIN_TOKEN) as on_b,
            http_client() as client,
        ):
            for i in range(12):
                t = targets[i % 2]
                r = await client.post(
                    f"{t.api}/tickets", json={"service": t.service}, headers=kiosk
                )
                assert r.status_code == 201, r.text
            made: list[tuple[str, str]] = []
            for i in range(12):
                t = targets[i % 2]  # A, B, A, B … each call through the other replica
                w = t.windows[i % 4]
                r = await client.post(f"{t.api}/windows/{w}/call-next", headers=admin)
                assert r.status_code == 200, r.text
                made.append((r.json()["number"], w))
            r = await client.get(f"{targets[1].api}/snapshot", headers=admin)
            final = r.json()["seq"]
            await until(
                lambda: on_a.last_seq() >= final and on_b.last_seq() >= final, 10, "all events"
            )
            for s in (on_a, on_b):
                s.assert_in_order()
                assert s.calls() == made  # every call, in order, once
            assert on_a.events() == on_b.events()


# ------------------------------------------ a screen through a failover


async def test_a_screen_resyncs_through_a_sentinel_failover(tmp_path: Path) -> None:
    """The gateway's blocking reader loses its primary (SIGKILL), finds the
    promoted replica through the Sentinels by itself, and the screen it
    feeds carries on: every call before and after, none twice, no gap
    that a resync (a snapshot) does not cover."""
    hall = f"fo{uuid.uuid4().hex[:8]}"
    config = write_hall(tmp_path, hall)
    with (
        failover_topology(tmp_path / "redis") as deployment,
        serving(tmp_path, config, deployment.url, min_replicas=1) as qms,
    ):
        target = Target(f"http://127.0.0.1:{qms.port}", hall, ("1", "2"))
        await open_windows(target)
        kiosk = {"Authorization": f"Bearer {target.kiosk_token}"}
        admin = {"Authorization": f"Bearer {target.clerk_token}"}
        async with (
            screen(f"ws://127.0.0.1:{qms.port}", hall, ADMIN_TOKEN) as display,
            http_client() as client,
        ):

            async def call(window: str) -> tuple[str, str]:
                headers = {**admin, "Idempotency-Key": uuid.uuid4().hex}
                url = f"{target.api}/windows/{window}/call-next"
                r = await answer_until(client, "POST", url, 200, 60, headers=headers)
                return r.json()["number"], window

            for _ in range(10):
                headers = {**kiosk, "Idempotency-Key": uuid.uuid4().hex}
                body = {"service": target.service}
                await answer_until(
                    client, "POST", f"{target.api}/tickets", 201, json=body, headers=headers
                )
            before = [await call(w) for w in ("1", "2", "1")]
            await until(lambda: display.calls() == before, 10, "the calls before the kill")

            deployment.primary.kill()
            frames_before = len(display.frames)
            first_after = await call("2")

            def resynced() -> list[dict[str, Any]]:
                return [f for f in display.frames[frames_before:] if f["type"] == "snapshot"]

            # The reader finds the new primary by itself and resyncs the screen
            # with a snapshot: the call made before that is in the snapshot.
            await until(resynced, 30, "the screen's resync after the failover")
            resync = resynced()[0]
            in_snapshot = [(c["number"], c["window"]) for c in resync["recent_calls"]]
            assert first_after in display.calls() or first_after in in_snapshot
            after = [await call(w) for w in ("1", "2")]
            await until(lambda: display.calls()[-2:] == after, 30, "the calls after the resync")
            assert display.open
            assert deployment.primary_port() != deployment.primary.port
            calls = display.calls()
            assert len(set(calls)) == len(calls), calls  # none twice
            assert calls[: len(before)] == before
            assert not set(after) & set(in_snapshot)
            assert display.assert_in_order() >= 2  # the first snapshot, then a resync
