"""What the gateway sends: snapshots, events and heartbeats, each encoded
and framed at most once per format however many sockets it goes to."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from websockets.frames import Frame as WireFrame
from websockets.frames import Opcode

from displays.codec import Format, encode

__all__ = [
    "EventBatch",
    "Frame",
    "FrameKind",
    "event_frame",
    "heartbeat_frame",
    "snapshot_frame",
]


class FrameKind(StrEnum):
    SNAPSHOT = "snapshot"
    EVENT = "event"
    HEARTBEAT = "heartbeat"


class Frame:
    """One document to send, with its encodings cached.

    The hub builds one `Frame` per event and hands the same object to every
    socket of the hall: 5,000 screens cost one JSON encoding, not 5,000.
    """

    __slots__ = ("_encoded", "_wire", "document", "kind", "seq")

    def __init__(self, kind: FrameKind, seq: int, document: dict[str, Any]) -> None:
        self.kind = kind
        self.seq = seq
        self.document = document
        self._encoded: dict[Format, str | bytes] = {}
        self._wire: dict[Format, bytes] = {}

    def encoded(self, fmt: Format) -> str | bytes:
        data = self._encoded.get(fmt)
        if data is None:
            data = self._encoded[fmt] = encode(self.document, fmt)
        return data

    def wire(self, fmt: Format) -> bytes:
        """The whole WebSocket frame a server sends (unmasked, no extension):
        a text frame for JSON, a binary one for msgpack. The same bytes go to
        every socket of that format."""
        data = self._wire.get(fmt)
        if data is None:
            payload = self.encoded(fmt)
            frame = (
                WireFrame(Opcode.TEXT, payload.encode())
                if isinstance(payload, str)
                else WireFrame(Opcode.BINARY, payload)
            )
            data = self._wire[fmt] = frame.serialize(mask=False)
        return data

    def __repr__(self) -> str:
        return f"Frame({self.kind.value}, seq={self.seq})"


class EventBatch:
    """Consecutive event frames read together (a call-next's `completed`
    and `called`), written to a screen as one write: one system call per
    screen per batch rather than per event."""

    __slots__ = ("_wire", "first_seq", "frames")

    def __init__(self, frames: list[Frame]) -> None:
        assert frames and all(f.kind is FrameKind.EVENT for f in frames)
        self.frames = frames
        self.first_seq = frames[0].seq
        self._wire: dict[Format, bytes] = {}

    def wire(self, fmt: Format) -> bytes:
        """Every frame's `Frame.wire` bytes, in order, joined once per format."""
        data = self._wire.get(fmt)
        if data is None:
            data = self._wire[fmt] = b"".join(f.wire(fmt) for f in self.frames)
        return data


def snapshot_frame(snapshot: dict[str, Any]) -> Frame:
    """`snapshot` is the `/snapshot` body; the frame adds `"type": "snapshot"`."""
    return Frame(FrameKind.SNAPSHOT, int(snapshot["seq"]), {"type": "snapshot", **snapshot})


def event_frame(event: dict[str, Any]) -> Frame:
    """`event` is a `wire.event_body`, its `type` the event's own."""
    return Frame(FrameKind.EVENT, int(event["seq"]), event)


def heartbeat_frame(seq: int, at: str) -> Frame:
    """Sent when the hall is quiet, so a browser (which cannot see WebSocket
    pings) knows its socket is alive; `seq` is the hall's latest event number,
    so a screen that is behind it knows it missed something."""
    return Frame(FrameKind.HEARTBEAT, seq, {"type": "heartbeat", "seq": seq, "at": at})
