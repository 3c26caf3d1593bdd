"""The gateway's pure parts: codec, frames, event bodies, handshake
validation and a subscriber's queue (no Redis, no sockets)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from displays.codec import Format, decode, encode
from displays.frames import (
    EventBatch,
    Frame,
    FrameKind,
    event_frame,
    heartbeat_frame,
    snapshot_frame,
)
from displays.gateway import auth_message_token, parse_request
from displays.hub import SLOW_SCREEN, Subscriber
from queue_core.auth import Credentials
from queue_core.config import HallConfig
from queue_core.errors import Forbidden, Invalid, NotFound, Unauthorized
from queue_core.event_log import parse_event
from queue_core.models import EventType, Role, ScreenPage, ScreenPresence, WindowStatus
from queue_core.operations import Hall
from queue_core.wire import event_body
from tests.support import make_config


@pytest.fixture
def config(tmp_path: Path) -> HallConfig:
    return make_config(tmp_path)


def presence() -> ScreenPresence:
    return ScreenPresence("s1", ScreenPage.DISPLAY, None, "r1", 0, 0)


# ----------------------------------------------------------------- codec


@pytest.mark.parametrize("fmt", list(Format))
def test_codec_round_trips_cjk_and_nulls(fmt: Format) -> None:
    doc = {"type": "called", "number": "A023", "window": "综合5号窗口", "service": None, "n": 3}
    data = encode(doc, fmt)
    assert isinstance(data, bytes if fmt is Format.MSGPACK else str)
    assert decode(data) == doc


def test_json_frames_keep_cjk_readable() -> None:
    assert encode({"w": "窗口"}, Format.JSON) == '{"w":"窗口"}'


def test_decode_refuses_a_frame_that_is_not_an_object() -> None:
    with pytest.raises(ValueError, match="object"):
        decode("[1, 2]")


# ---------------------------------------------------------------- frames


def test_a_frame_is_encoded_once_per_format() -> None:
    f = event_frame({"type": "issued", "seq": 7})
    first = f.encoded(Format.JSON)
    assert f.encoded(Format.JSON) is first
    assert decode(f.encoded(Format.MSGPACK)) == {"type": "issued", "seq": 7}
    assert f.kind is FrameKind.EVENT and f.seq == 7


def test_snapshot_and_heartbeat_frames_carry_their_type_and_seq() -> None:
    snap = snapshot_frame({"seq": 4, "windows": []})
    assert snap.document == {"type": "snapshot", "seq": 4, "windows": []}
    assert snap.kind is FrameKind.SNAPSHOT and snap.seq == 4
    beat = heartbeat_frame(9, "2026-11-21T09:00:00.000+08:00")
    assert beat.document == {"type": "heartbeat", "seq": 9, "at": "2026-11-21T09:00:00.000+08:00"}


# ---------------------------------------------------------------- events


def test_parse_event_reads_a_stream_entry() -> None:
    e = parse_event(
        "42-0",
        {
            "type": "called",
            "at": "1795222800123",
            "number": "A001",
            "window": "1",
            "service": "social-security",
            "waiting": '{"natural":2,"legal":0}',
        },
    )
    assert (e.seq, e.type, e.at_ms, e.number, e.window) == (
        42,
        EventType.CALLED,
        1795222800123,
        "A001",
        "1",
    )
    assert e.waiting == {"natural": 2, "legal": 0} and e.status is None


def test_event_body_matches_the_contract(config: HallConfig) -> None:
    e = parse_event(
        "3-0",
        {"type": "issued", "at": "1795222800123", "number": "A001", "window": "",
         "service": "social-security", "waiting": '{"natural":1}'},
    )  # fmt: skip
    assert event_body(e, config) == {
        "type": "issued",
        "seq": 3,
        "at": "2026-11-21T09:00:00.123+08:00",
        "number": "A001",
        "window": None,
        "service": "social-security",
        # Every group of the hall, even one the event did not mention.
        "waiting": {"natural": 1, "legal": 0, "police": 0},
    }


def test_window_event_body_has_a_status_and_no_ticket(config: HallConfig) -> None:
    e = parse_event(
        "5-0",
        {"type": "window", "at": "1795222800000", "number": "", "window": "2",
         "service": "", "waiting": "{}", "status": "paused"},
    )  # fmt: skip
    body = event_body(e, config)
    assert e.status is WindowStatus.PAUSED
    assert body["status"] == "paused" and body["window"] == "2"
    assert body["number"] is None and body["service"] is None


# ------------------------------------------------------------- handshake


def halls(config: HallConfig) -> dict[str, Hall]:
    # Neither the store nor the monitor is touched by parse_request.
    return {config.id: Hall(config, None, Credentials(config.credentials), None)}  # type: ignore[arg-type]


def test_handshake_with_a_display_token_and_options(config: HallConfig) -> None:
    req = parse_request(
        halls(config),
        config.id,
        {"token": "display-token", "format": "msgpack", "since": "12", "screen": "hall-1",
         "page": "strip", "window": "2"},
        None,
    )  # fmt: skip
    assert req.fmt is Format.MSGPACK and req.since == 12
    assert (req.screen, req.page, req.window) == ("hall-1", ScreenPage.STRIP, "2")
    assert req.credential is not None and req.credential.role is Role.DISPLAY


def test_a_clerk_console_may_follow_the_hall(config: HallConfig) -> None:
    assert parse_request(halls(config), config.id, {}, "clerk-1-token").since is None


def test_handshake_defaults(config: HallConfig) -> None:
    req = parse_request(halls(config), config.id, {}, "manager-token")
    assert req.fmt is Format.JSON and req.since is None
    # No screen name: an anonymous socket, which presence does not record.
    assert req.screen is None and req.page is ScreenPage.OTHER and req.window is None


def test_auth_by_message_takes_no_credential_from_the_handshake(config: HallConfig) -> None:
    query = {"auth": "message", "token": "display-token", "page": "display", "screen": "s"}
    req = parse_request(halls(config), config.id, query, "display-token")
    assert req.credential is None  # the first message brings it, nothing else
    assert (req.screen, req.page) == ("s", ScreenPage.DISPLAY)


@pytest.mark.parametrize(
    ("text", "data", "token"),
    [
        ('{"type": "auth", "token": "t1"}', None, "t1"),
        (None, b'{"type": "auth", "token": "t2"}', "t2"),
        ('{"type": "auth", "token": "令牌"}', None, "令牌"),
    ],
)
def test_the_auth_message_gives_its_token(text: str | None, data: bytes | None, token: str) -> None:
    assert auth_message_token(text, data) == token


@pytest.mark.parametrize(
    ("text", "data"),
    [
        (None, None),
        ("", None),
        ("display-token", None),
        ('{"token": "t"}', None),
        ('{"type": "hello", "token": "t"}', None),
        ('{"type": "auth", "token": ""}', None),
        ('{"type": "auth", "token": 7}', None),
        ('["auth", "t"]', None),
        (None, b"\xff\xfe"),
    ],
)
def test_anything_else_first_is_unauthorized(text: str | None, data: bytes | None) -> None:
    with pytest.raises(Unauthorized):
        auth_message_token(text, data)


@pytest.mark.parametrize(
    ("hall", "query", "bearer", "error", "code"),
    [
        ("nope", {"token": "display-token"}, None, NotFound, "hall_not_found"),
        (None, {}, None, Unauthorized, "unauthorized"),
        (None, {"token": "wrong"}, None, Unauthorized, "unauthorized"),
        (None, {"token": "kiosk-token"}, None, Forbidden, "forbidden"),
        (None, {"token": "display-token", "format": "JSON"}, None, Invalid, "invalid_format"),
        (None, {"token": "display-token", "since": "1e3"}, None, Invalid, "invalid_since"),
        (None, {"token": "display-token", "since": "٣"}, None, Invalid, "invalid_since"),
        (None, {"token": "display-token", "since": "9" * 19}, None, Invalid, "invalid_since"),
        (None, {"token": "display-token", "screen": "x" * 65}, None, Invalid, "invalid_screen"),
        (None, {"token": "display-token", "page": "tv"}, None, Invalid, "invalid_page"),
        (None, {"token": "display-token", "window": "99"}, None, NotFound, "window_not_found"),
        (None, {"token": "display-token", "auth": "header"}, None, Invalid, "invalid_auth"),
        (None, {"auth": "message", "window": "99"}, None, NotFound, "window_not_found"),
        (None, {"auth": "message", "screen": "a b"}, None, Invalid, "invalid_screen"),
    ],
)
def test_bad_handshakes(
    config: HallConfig,
    hall: str | None,
    query: dict[str, str],
    bearer: str | None,
    error: type[Exception],
    code: str,
) -> None:
    with pytest.raises(error) as raised:
        parse_request(halls(config), hall or config.id, query, bearer)
    assert getattr(raised.value, "code", None) == code


# ------------------------------------------------------------ subscriber


async def test_a_full_queue_stops_the_subscriber_as_too_slow() -> None:
    sub = Subscriber(Format.JSON, presence(), queue_frames=2)
    for seq in (1, 2):
        sub.offer(event_frame({"type": "issued", "seq": seq}))
    assert sub.stop_code is None
    sub.offer(event_frame({"type": "issued", "seq": 3}))
    assert sub.stop_code == SLOW_SCREEN
    await asyncio.wait_for(sub.stopped(), 1)
    # A stopped subscriber takes nothing more: its memory stays bounded.
    sub.offer(event_frame({"type": "issued", "seq": 4}))
    assert sub.pending == 2


def test_the_first_stop_wins() -> None:
    sub = Subscriber(Format.JSON, presence(), queue_frames=2)
    sub.stop(1001, "shutdown")
    sub.stop(SLOW_SCREEN, "slow")
    assert (sub.stop_code, sub.stop_reason) == (1001, "shutdown")


def test_events_covered_by_the_first_frames_are_not_sent_twice() -> None:
    sub = Subscriber(Format.JSON, presence(), queue_frames=8)
    sub.floor = 5
    assert not sub.should_send(event_frame({"type": "issued", "seq": 5}))
    assert sub.should_send(event_frame({"type": "issued", "seq": 6}))
    # A heartbeat queued while it joined is older than its first frames.
    assert not sub.should_send(heartbeat_frame(3, "t"))
    assert sub.should_send(heartbeat_frame(5, "t"))
    # A resync snapshot resets the floor, even backwards (Redis lost data).
    assert sub.should_send(snapshot_frame({"seq": 2}))
    assert sub.floor == 2
    assert sub.should_send(event_frame({"type": "issued", "seq": 3}))


async def test_frames_are_written_in_order_and_an_idle_screen_holds_no_task() -> None:
    sub = Subscriber(Format.JSON, presence(), queue_frames=8)
    written: list[int] = []
    done = asyncio.Event()

    async def sink(frame: Frame) -> None:
        written.append(frame.seq)
        if frame.seq == 3:
            done.set()

    sub.offer(event_frame({"type": "issued", "seq": 1}))  # queued before start
    sub.start(sink)
    sub.offer(event_frame({"type": "issued", "seq": 2}))
    sub.offer(event_frame({"type": "issued", "seq": 3}))
    await asyncio.wait_for(done.wait(), 1)
    await asyncio.sleep(0)  # let the drainer return
    assert written == [1, 2, 3]
    assert not sub.draining and sub.pending == 0
    sub.offer(event_frame({"type": "issued", "seq": 4}))
    assert sub.draining
    await sub.aclose()
    assert not sub.draining


async def test_a_screen_that_stops_reading_is_stopped_once_its_queue_is_full() -> None:
    sub = Subscriber(Format.JSON, presence(), queue_frames=3)
    blocked = asyncio.Event()

    async def stuck(frame: Frame) -> None:
        blocked.set()
        await asyncio.Event().wait()  # the socket's buffers are full

    sub.start(stuck)
    sub.offer(event_frame({"type": "issued", "seq": 1}))
    await asyncio.wait_for(blocked.wait(), 1)
    for seq in (2, 3, 4):
        sub.offer(event_frame({"type": "issued", "seq": seq}))
    assert sub.stop_code is None and sub.pending == 3
    sub.offer(event_frame({"type": "issued", "seq": 5}))
    assert sub.stop_code == SLOW_SCREEN
    await sub.aclose()
    assert sub.pending == 0 and not sub.draining


async def test_a_failed_write_marks_the_subscriber_lost() -> None:
    sub = Subscriber(Format.JSON, presence(), queue_frames=3)
    gone = ConnectionResetError("peer went away")

    async def broken(frame: Frame) -> None:
        raise gone

    sub.start(broken)
    sub.offer(event_frame({"type": "issued", "seq": 1}))
    await asyncio.wait_for(sub.stopped(), 1)
    assert sub.lost is gone and sub.stop_code is None
    sub.offer(event_frame({"type": "issued", "seq": 2}))
    assert sub.pending == 0  # nothing more is queued for a lost screen


def test_a_frame_is_built_once_per_format_as_a_server_websocket_frame() -> None:
    frame = event_frame({"type": "called", "seq": 7, "window": "综合5号窗口"})
    text = frame.wire(Format.JSON)
    assert text is frame.wire(Format.JSON)  # cached: the same bytes for every socket
    payload = frame.encoded(Format.JSON)
    assert isinstance(payload, str)
    # FIN + text opcode, unmasked, 7-bit length: what a browser decodes.
    assert text[0] == 0x81 and text[1] == len(payload.encode()) and text[2:] == payload.encode()
    binary = frame.wire(Format.MSGPACK)
    assert binary[0] == 0x82 and decode(binary[2:]) == frame.document
    big = event_frame({"type": "snapshot", "seq": 1, "pad": "x" * 70_000})
    data = big.wire(Format.JSON)
    assert data[1] == 127 and int.from_bytes(data[2:10], "big") == len(data) - 10


async def test_frames_go_straight_to_an_open_socket_and_queue_while_it_is_paused() -> None:
    sub = Subscriber(Format.JSON, presence(), queue_frames=8)
    sub.floor = 1
    direct: list[bytes] = []
    queued: list[int] = []
    writable = True
    sent = asyncio.Event()

    def write(data: bytes) -> bool:
        if writable:
            direct.append(data)
        return writable

    async def sink(frame: Frame) -> None:
        queued.append(frame.seq)
        if frame.seq == 5:
            sent.set()

    sub.start(sink, write)
    sub.offer(event_frame({"type": "issued", "seq": 1}))  # covered by its first frames
    first = event_frame({"type": "issued", "seq": 2})
    sub.offer(first)
    assert direct == [first.wire(Format.JSON)] and not sub.draining  # no task, no queue
    writable = False  # the transport is above its high-water mark
    sub.offer(event_frame({"type": "issued", "seq": 3}))
    assert sub.pending == 1 and sub.draining
    writable = True
    # A frame behind a queued one waits its turn, even if the socket could take it.
    sub.offer(event_frame({"type": "issued", "seq": 4}))
    sub.offer(event_frame({"type": "issued", "seq": 5}))
    await asyncio.wait_for(sent.wait(), 1)
    await asyncio.sleep(0)
    assert queued == [3, 4, 5] and len(direct) == 1 and not sub.draining
    sub.offer(event_frame({"type": "issued", "seq": 6}))
    assert len(direct) == 2 and queued == [3, 4, 5]
    await sub.aclose()


async def test_events_read_together_go_out_in_one_write_unless_some_were_covered() -> None:
    sub = Subscriber(Format.JSON, presence(), queue_frames=8)
    writes: list[bytes] = []

    async def sink(frame: Frame) -> None:
        raise AssertionError("an open socket takes batches directly")

    def write(data: bytes) -> bool:
        writes.append(data)
        return True

    sub.floor = 3
    sub.start(sink, write)
    frames = [event_frame({"type": t, "seq": s}) for t, s in (("completed", 4), ("called", 5))]
    batch = EventBatch(frames)
    sub.offer_batch(batch)
    assert writes == [frames[0].wire(Format.JSON) + frames[1].wire(Format.JSON)]
    # A screen whose first frames already covered event 6 gets only event 7.
    writes.clear()
    sub.floor = 6
    later = [event_frame({"type": t, "seq": s}) for t, s in (("completed", 6), ("called", 7))]
    sub.offer_batch(EventBatch(later))
    assert writes == [later[1].wire(Format.JSON)]
    await sub.aclose()
