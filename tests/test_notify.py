"""Notifications: the outbox written by the scripts that move the queue, the
thresholds (once each, even for a ticket that moves back), and the sender
posting to a real HTTP receiver that fails, is slow, is down and comes back,
with retries on the store's clock, dead letters, and two senders sharing
one outbox without ever posting one delivery at the same time."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY

from notify.payload import delivery_body, encode
from notify.retry import RetryPolicy, Verdict, verdict
from notify.sender import LEASE_S, HallOutbox, Sender
from notify.signature import sign, verify
from queue_core.config import ConfigError, load_hall_config
from queue_core.errors import Conflict, Invalid, NotFound
from queue_core.models import Actor, Notify, TicketStatus, WindowStatus
from queue_core.outbox import Delivery, Outbox
from queue_core.redis_client import RedisClient
from queue_core.scripts import Scripts
from tests.conftest import HallFactory, HallKit, stream_events
from tests.notify_receiver import Receiver
from tests.support import NOTIFY_SECRET, notify_toml, write_hall

PHONE = "13800138000"
CLERK = Actor("clerk-2", "clerk", "10.0.0.5")


# ------------------------------------------------------------------ pure


def test_a_signature_checks_the_exact_body() -> None:
    body = encode({"id": "h-1-0", "number": "A001", "hall_name": "大冶"})
    header = sign(NOTIFY_SECRET, body)
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert verify(NOTIFY_SECRET, body, header)
    assert not verify(NOTIFY_SECRET, body + b" ", header)
    assert not verify(b"another-secret-of-enough-length!", body, header)
    assert not verify(NOTIFY_SECRET, body, None)


@pytest.mark.parametrize(
    ("status", "expected"),
    [(200, Verdict.SENT), (204, Verdict.SENT), (None, Verdict.RETRY), (500, Verdict.RETRY),
     (503, Verdict.RETRY), (429, Verdict.RETRY), (408, Verdict.RETRY), (400, Verdict.REJECTED),
     (401, Verdict.REJECTED), (404, Verdict.REJECTED), (301, Verdict.REJECTED)],
)  # fmt: skip
def test_what_an_answer_means(status: int | None, expected: Verdict) -> None:
    assert verdict(status) is expected


def test_backoff_grows_with_jitter_and_gives_up_after_the_hour() -> None:
    policy = RetryPolicy()
    lows = [policy.delay_s(n, lambda: 0.0) for n in range(1, 12)]
    highs = [policy.delay_s(n, lambda: 0.999999) for n in range(1, 12)]
    assert lows[:4] == [1.0, 2.0, 4.0, 8.0] and highs[0] == pytest.approx(2.0)
    assert max(highs) <= policy.cap_s and lows[-1] == policy.cap_s / 2
    rng = random.Random(7)
    spread = {round(policy.delay_s(5, rng.random), 3) for _ in range(50)}
    assert len(spread) > 40  # jitter: a backlog's retries do not come back together
    created = 1_000_000
    assert policy.next_attempt_ms(created, created + 3_000_000, 20, lambda: 0.5) is not None
    assert policy.next_attempt_ms(created, created + 3_590_000, 20, lambda: 0.5) is None


def test_the_config_section(tmp_path: Path) -> None:
    good = load_hall_config(
        write_hall(tmp_path, extra=notify_toml("https://gw.example/qms", "[1, 5, 0]"))
    )
    assert good.notify.enabled and good.notify.ahead == (5, 1, 0)
    assert good.notify.secret_env == "QMS_NOTIFY_SECRET" and good.notify.kiosk_ask_minutes == 15
    assert not load_hall_config(write_hall(tmp_path)).notify.enabled
    bad = (
        '[notify]\nurl = "ftp://x"\nsecret_env = "lower"\nahead = [5, 5, -1, "2"]\n'
        "[calling]\nmax_snooze_minutes = 45\n"
    )
    with pytest.raises(ConfigError) as info:
        load_hall_config(write_hall(tmp_path, extra=bad))
    keys = {p.key for p in info.value.problems}
    assert {"notify.url", "notify.secret_env", "notify.ahead[1]", "notify.ahead[2]",
            "notify.ahead[3]", "calling.max_snooze_minutes"} <= keys  # fmt: skip


def test_the_body_names_what_a_message_shows(tmp_path: Path) -> None:
    config = load_hall_config(write_hall(tmp_path, extra=notify_toml("http://gw.example/")))
    d = Delivery("1765000000000-0", "tid", "called", 0, "A007", "social-security", "2",
                 PHONE, "phone", 1_795_222_800_000, 0, "called")  # fmt: skip
    body = delivery_body(config, d)
    assert body == {
        "id": f"{config.id}-1765000000000-0", "hall": config.id, "hall_name": "测试政务服务中心",
        "number": "A007", "service": "social-security", "service_name": "社保医保",
        "kind": "called", "ahead": 0, "window": "2", "window_name": "2号窗口", "to": PHONE,
        "via": "phone", "at": "2026-11-21T09:00:00.000+08:00",
    }  # fmt: skip
    assert "tid" not in encode(body).decode()  # the ticket id is the visitor's credential


# ----------------------------------------------------------- the outbox


async def notify_hall(hall_factory: HallFactory, url: str = "http://127.0.0.1:9/hook") -> HallKit:
    return await hall_factory(extra=notify_toml(url))


async def outbox_entries(kit: HallKit) -> list[dict[str, str]]:
    raw = await kit.redis.xrange(kit.keys.outbox) or []
    return [{_s(k): _s(v) for k, v in (f or {}).items()} for _, f in raw]


def _s(v: object) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def told(entries: list[dict[str, str]]) -> list[tuple[str, str, int]]:
    return [(e["number"], e["kind"], int(e["ahead"])) for e in entries]


@pytest.mark.redis
async def test_each_threshold_once_then_the_call(hall_factory: HallFactory) -> None:
    kit = await notify_hall(hall_factory)
    ids = []
    for _ in range(6):
        view = (await kit.store.issue("social-security", notify=Notify(PHONE, "phone"))).value
        ids.append(view.ticket.id)
        assert view.ticket.notify
    assert await outbox_entries(kit) == []  # nothing is sent at issue
    await kit.store.set_window("2", WindowStatus.OPEN, actor=CLERK)
    for _ in range(6):
        await kit.store.call_next("2", actor=CLERK)
    # [3, 1]: told at 3 ahead, at 1 ahead, then called; never twice, never
    # for what the kiosk showed (A001, A002 within 1; A003, A004 within 3).
    assert told(await outbox_entries(kit)) == [
        ("A001", "called", 0), ("A003", "ahead", 1), ("A005", "ahead", 3),
        ("A002", "called", 0), ("A004", "ahead", 1), ("A006", "ahead", 3),
        ("A003", "called", 0), ("A005", "ahead", 1),
        ("A004", "called", 0), ("A006", "ahead", 1),
        ("A005", "called", 0),
        ("A006", "called", 0),
    ]  # fmt: skip
    # Where to reach them never left the notify hash and the outbox.
    for _, fields in await stream_events(kit.redis, kit.keys):
        assert PHONE not in json.dumps(fields)
    tickets = await kit.redis.hgetall(kit.keys.tickets)
    assert PHONE not in json.dumps({_s(k): _s(v) for k, v in tickets.items()})


@pytest.mark.redis
async def test_a_ticket_moved_back_is_not_told_twice(hall_factory: HallFactory) -> None:
    """Snoozed back past a threshold it was told of, then near again: told
    nothing new; transferred after its call: not told again when called."""
    kit = await notify_hall(hall_factory)
    for _ in range(3):
        await kit.store.issue("social-security")
    mine = await kit.store.issue("social-security", notify=Notify("wx-openid_1", "channel"))
    tid = mine.value.ticket.id
    await kit.store.issue("social-security")
    await kit.store.set_window("2", WindowStatus.OPEN, actor=CLERK)
    await kit.store.call_next("2", actor=CLERK)  # A001; A004 2 ahead (told of 3 at issue)
    await kit.store.call_next("2", actor=CLERK)  # A002; A004 1 ahead: told
    assert told(await outbox_entries(kit)) == [("A004", "ahead", 1)]

    snoozed = (await kit.store.snooze(tid, 10)).value
    assert snoozed.position == 2 and snoozed.ticket.snoozed_until_ms is not None
    kit.clock.advance(minutes=1)
    await kit.store.call_next("2", actor=CLERK)  # A003
    await kit.store.call_next("2", actor=CLERK)  # A005, let past
    assert (await kit.store.ticket(tid)).position == 0
    called = (await kit.store.call_next("2", actor=CLERK)).value
    assert called is not None and called.ticket.id == tid
    await kit.store.transfer("2", "housing-fund", actor=CLERK)
    await kit.store.call_next("2", actor=CLERK)
    assert told(await outbox_entries(kit)) == [("A004", "ahead", 1), ("A004", "called", 0)]
    entries = await outbox_entries(kit)
    assert {e["to"] for e in entries} == {"wx-openid_1"} and entries[0]["via"] == "channel"
    events = [f["type"] for _, f in await stream_events(kit.redis, kit.keys)]
    assert events.count("snoozed") == 1


@pytest.mark.redis
async def test_snooze_bounds_and_once(hall_factory: HallFactory) -> None:
    kit = await notify_hall(hall_factory)
    first = (await kit.store.issue("social-security")).value.ticket.id
    second = (await kit.store.issue("social-security")).value.ticket.id
    for minutes in (4.9, 30.5, 0):
        with pytest.raises(Invalid) as bad:
            await kit.store.snooze(first, minutes)
        assert bad.value.code == "bad_minutes"
    moved = (await kit.store.snooze(first, 5)).value
    assert moved.position == 1  # issued in the same minute, the other now goes first
    with pytest.raises(Conflict) as twice:
        await kit.store.snooze(first, 5)
    assert twice.value.code == "already_snoozed"
    with pytest.raises(NotFound):
        await kit.store.snooze("no-such-ticket-id-at-all", 5)
    await kit.store.cancel(second)
    with pytest.raises(Conflict) as gone:
        await kit.store.snooze(second, 5)
    assert gone.value.code == "ticket_not_waiting"
    no_snooze = await hall_factory(extra="[calling]\nmax_snooze_minutes = 0\n")
    tid = (await no_snooze.store.issue("social-security")).value.ticket.id
    with pytest.raises(Conflict) as off:
        await no_snooze.store.snooze(tid, 5)
    assert off.value.code == "snooze_not_offered"


@pytest.mark.redis
async def test_notify_needs_a_gateway_and_is_forgotten_when_the_ticket_ends(
    hall_factory: HallFactory,
) -> None:
    plain = await hall_factory()
    with pytest.raises(Invalid) as info:
        await plain.store.issue("social-security", notify=Notify(PHONE, "phone"))
    assert info.value.code == "notify_not_offered"
    assert await plain.redis.hlen(plain.keys.tickets) == 0

    kit = await notify_hall(hall_factory)
    a = (await kit.store.issue("social-security", notify=Notify(PHONE, "phone"))).value.ticket
    b = (await kit.store.issue("social-security", notify=Notify(PHONE, "phone"))).value.ticket
    assert await kit.redis.hlen(kit.keys.notify) == 2
    await kit.store.cancel(a.id)
    await kit.store.set_window("2", WindowStatus.OPEN, actor=CLERK)
    await kit.store.call_next("2", actor=CLERK)
    await kit.store.complete("2", actor=CLERK)
    assert (await kit.store.ticket(b.id)).ticket.status is TicketStatus.COMPLETED
    assert await kit.redis.hlen(kit.keys.notify) == 0


# ------------------------------------------------------------ the sender


class Clocked:
    """The sender and the store on one clock the test moves."""

    def __init__(self, kit: HallKit) -> None:
        self.kit = kit

    def __call__(self) -> float:
        return self.kit.clock.now


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


def make_sender(
    kit: HallKit, redis: RedisClient, consumer: str = "test-a", timeout_s: float = 2.0
) -> Sender:
    outbox = Outbox(redis, Scripts.register(redis), kit.config.id, consumer)
    return Sender(
        {kit.config.id: HallOutbox(kit.config, outbox, NOTIFY_SECRET)},
        httpx.AsyncClient(timeout=timeout_s),
        clock=Clocked(kit),
        rand=lambda: 0.5,
    )


def gauge(name: str, hall: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"hall": hall})


def counted(hall: str, kind: str, result: str) -> float:
    value = REGISTRY.get_sample_value(
        "qms_notifications_total", {"hall": hall, "kind": kind, "result": result}
    )
    return value or 0.0


async def called_with_notify(kit: HallKit, n: int = 1) -> list[str]:
    ids = [
        (await kit.store.issue("social-security", notify=Notify(PHONE, "phone"))).value.ticket.id
        for _ in range(n)
    ]
    await kit.store.set_window("2", WindowStatus.OPEN, actor=CLERK)
    await kit.store.call_next("2", actor=CLERK)
    return ids


@pytest.mark.redis
async def test_a_delivery_reaches_the_gateway_signed(
    hall_factory: HallFactory, receiver: Receiver, redis: RedisClient
) -> None:
    kit = await notify_hall(hall_factory, receiver.url)
    sender = make_sender(kit, redis)
    await called_with_notify(kit)
    assert await sender.drain(kit.config.id) == 1
    [body] = receiver.delivered()
    assert receiver.received[0].delivery_header == body["id"]
    assert (body["number"], body["kind"], body["window"], body["to"]) == (
        "A001",
        "called",
        "2",
        PHONE,
    )
    assert await outbox_entries(kit) == []  # delivered: gone, with the number
    assert await sender.drain(kit.config.id) == 0
    await sender.record_backlog(kit.config.id)
    await sender.http.aclose()


@pytest.mark.redis
async def test_failing_slow_and_down_then_back(
    hall_factory: HallFactory, receiver: Receiver, redis: RedisClient
) -> None:
    kit = await notify_hall(hall_factory, receiver.url)
    hall = kit.config.id
    sender = make_sender(kit, redis, timeout_s=0.3)
    await called_with_notify(kit)
    retries = counted(hall, "called", "retry")

    receiver.status = 503
    assert await sender.drain(hall) == 1
    assert await sender.drain(hall) == 0  # not due yet: 1-2 s on the store's clock
    kit.clock.advance(seconds=90)  # undelivered for a minute and a half, as the gauges say
    await sender.record_backlog(hall)
    assert gauge("qms_notifications_pending", hall) == 1
    assert gauge("qms_notification_oldest_seconds", hall) == pytest.approx(90, abs=1)
    kit.clock.advance(seconds=-88)  # back to 2 s after the failure, where the retries count from
    kit.clock.advance(seconds=2)
    receiver.delay_s, receiver.status = 1.0, 200  # slower than the sender waits
    assert await sender.drain(hall) == 1
    await receiver.stop()  # down: connection refused
    kit.clock.advance(seconds=4)
    assert await sender.drain(hall) == 1
    assert counted(hall, "called", "retry") == retries + 3
    tries = await redis.hgetall(kit.keys.outbox_tries)
    assert [int(t) for t in tries.values()] == [3]

    await receiver.start()
    receiver.delay_s = 0.0
    kit.clock.advance(seconds=8)
    assert await sender.drain(hall) == 1
    await sender.record_backlog(hall)
    assert gauge("qms_notifications_pending", hall) == 0
    assert gauge("qms_notification_oldest_seconds", hall) == 0
    # The slow gateway did take it, after qms stopped waiting: it came twice,
    # with one id, for the gateway to send once.
    bodies = receiver.delivered()
    assert [b["number"] for b in bodies] == ["A001", "A001"]
    assert len({r.body["id"] for r in receiver.received}) == 1
    assert await outbox_entries(kit) == []
    await sender.http.aclose()


@pytest.mark.redis
async def test_given_up_after_the_hour_and_refused_ones_at_once(
    hall_factory: HallFactory, receiver: Receiver, redis: RedisClient
) -> None:
    kit = await notify_hall(hall_factory, receiver.url)
    hall = kit.config.id
    sender = make_sender(kit, redis)
    await called_with_notify(kit, 3)  # A001 called; A003 told it is 1 ahead
    expired = counted(hall, "called", "expired")
    receiver.status = 503
    assert await sender.drain(hall) == 2
    receiver.status = 400  # A002's retry: the gateway now refuses it
    kit.clock.advance(seconds=2)
    assert await sender.drain(hall) == 2  # both due; A001's fails again (400: rejected too)
    dead = await sender.halls[hall].outbox.dead_letters()
    assert sorted(d["why"] for d in dead) == ["rejected 400", "rejected 400"]

    await kit.store.call_next("2", actor=CLERK)  # A002 called: a new delivery
    receiver.status = 503
    assert await sender.drain(hall) == 1
    while await outbox_entries(kit):
        kit.clock.advance(minutes=5)
        await sender.drain(hall)
    dead = await sender.halls[hall].outbox.dead_letters()
    assert dead[0]["why"] == "expired" and dead[0]["number"] == "A002"
    assert int(dead[0]["tries"]) >= 5
    for letter in dead:
        assert "to" not in letter and PHONE not in json.dumps(letter)
        assert "ticket" not in letter
    assert counted(hall, "called", "expired") == expired + 1
    await sender.http.aclose()


@pytest.mark.redis
async def test_an_ended_ticket_gets_nothing_more(
    hall_factory: HallFactory, receiver: Receiver, redis: RedisClient
) -> None:
    kit = await notify_hall(hall_factory, receiver.url)
    hall = kit.config.id
    sender = make_sender(kit, redis)
    ids = [
        (await kit.store.issue("social-security", notify=Notify(PHONE, "phone"))).value.ticket.id
        for _ in range(6)
    ]
    await kit.store.set_window("2", WindowStatus.OPEN, actor=CLERK)
    await kit.store.call_next("2", actor=CLERK)  # A001 called, A003 1 ahead, A005 3 ahead
    await kit.store.complete("2", actor=CLERK)  # A001 done before its message went
    await kit.store.cancel(ids[4])  # A005 cancelled, A006 now 3 ahead
    dropped = counted(hall, "called", "dropped") + counted(hall, "ahead", "dropped")
    assert await sender.drain(hall) == 4
    delivered = [(b["number"], b["kind"]) for b in receiver.delivered()]
    assert sorted(delivered) == [("A003", "ahead"), ("A006", "ahead")]
    assert counted(hall, "called", "dropped") + counted(hall, "ahead", "dropped") == dropped + 2
    await sender.http.aclose()


@pytest.mark.redis
async def test_two_senders_never_post_one_delivery_at_once(
    hall_factory: HallFactory, receiver: Receiver, redis: RedisClient
) -> None:
    """Two replicas' senders drain one busy outbox at the same time against
    a slowish gateway: every delivery arrives exactly once, and no id is
    ever in flight twice."""
    kit = await hall_factory(extra=notify_toml(receiver.url, "[50, 20, 5, 1, 0]"), extra_windows=4)
    hall = kit.config.id
    receiver.delay_s = 0.02
    for i in range(150):
        await kit.store.issue("social-security", notify=Notify(f"1380013{i:04d}", "phone"))
    for w in ("w1", "w2", "w3", "w4"):
        await kit.store.set_window(w, WindowStatus.OPEN, actor=CLERK)
    for _ in range(5):
        for w in ("w1", "w2", "w3", "w4"):
            await kit.store.call_next(w, actor=CLERK)
    a, b = make_sender(kit, redis, "replica-a"), make_sender(kit, redis, "replica-b")
    a.batch = b.batch = 8
    # First the gateway fails everything: new deliveries are shared through
    # the consumer group, then all wait for a retry (taken by due time).
    receiver.status = 503
    await asyncio.gather(a.drain(hall), b.drain(hall))
    assert receiver.overlaps == []
    expected = len(await outbox_entries(kit))
    assert expected > 50
    receiver.received.clear()
    receiver.status = 200
    kit.clock.advance(minutes=10)
    await asyncio.gather(a.drain(hall), b.drain(hall), a.drain(hall), b.drain(hall))
    ids = [r.body["id"] for r in receiver.received]
    assert receiver.overlaps == []
    assert len(ids) == len(set(ids)) == expected
    assert await outbox_entries(kit) == []
    await a.http.aclose()
    await b.http.aclose()


@pytest.mark.redis
async def test_a_sender_that_dies_mid_post_leaves_a_lease_that_runs_out(
    hall_factory: HallFactory, receiver: Receiver, redis: RedisClient
) -> None:
    kit = await notify_hall(hall_factory, receiver.url)
    hall = kit.config.id
    await called_with_notify(kit)
    dead_one = make_sender(kit, redis, "replica-dead")
    taken = await dead_one.halls[hall].outbox.take(round(kit.clock.now * 1000), 15_000, 10)
    assert len(taken) == 1  # ... and then it died before posting or settling
    other = make_sender(kit, redis, "replica-alive")
    assert await other.drain(hall) == 0  # leased
    kit.clock.advance(seconds=LEASE_S + 1)
    assert await other.drain(hall) == 1
    assert [b["id"] for b in receiver.delivered()] == [f"{hall}-{taken[0].id}"]
    await dead_one.http.aclose()
    await other.http.aclose()
