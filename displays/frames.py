"""What the gateway sends: snapshots, events and heartbeats, each encoded
at most once per format however many sockets it goes to."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from displays.codec import Format, encode

__all__ = ["Frame", "FrameKind", "event_frame", "heartbeat_frame", "snapshot_frame"]


class FrameKind(StrEnum):
    SNAPSHOT = "snapshot"
    EVENT = "event"
    HEARTBEAT = "heartbeat"


class Frame:
    """One document to send, with its encodings cached.

    The hub builds one `Frame` per event and hands the same object to every
    socket of the hall: 5,000 screens cost one JSON encoding, not 5,000.
    """

    __slots__ = ("_encoded", "document", "kind", "seq")

    def __init__(self, kind: FrameKind, seq: int, document: dict[str, Any]) -> None:
        self.kind = kind
        self.seq = seq
        self.document = document
        self._encoded: dict[Format, str | bytes] = {}

    def encoded(self, fmt: Format) -> str | bytes:
        data = self._encoded.get(fmt)
        if data is None:
            data = self._encoded[fmt] = encode(self.document, fmt)
        return data

    def __repr__(self) -> str:
        return f"Frame({self.kind.value}, seq={self.seq})"


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
