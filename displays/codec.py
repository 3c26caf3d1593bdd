"""Frame encodings: JSON text frames (the default) or msgpack binary frames.

Both carry the same document; the encoding is chosen per socket with
`?format=` and never changes on a socket. Pure functions, no I/O.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

import msgpack

__all__ = ["Format", "decode", "encode"]


class Format(StrEnum):
    JSON = "json"
    """UTF-8 text frames, CJK left readable."""
    MSGPACK = "msgpack"
    """Binary frames: smaller, for programs rather than browsers."""


def encode(document: dict[str, Any], fmt: Format) -> str | bytes:
    """`str` for a text frame (JSON), `bytes` for a binary frame (msgpack)."""
    if fmt is Format.MSGPACK:
        return msgpack.packb(document, use_bin_type=True)  # type: ignore[no-any-return]
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def decode(data: str | bytes) -> dict[str, Any]:
    """The document in a frame: text is JSON, binary is msgpack."""
    doc = msgpack.unpackb(data, raw=False) if isinstance(data, bytes) else json.loads(data)
    if not isinstance(doc, dict):
        raise ValueError("a frame holds a JSON/msgpack object")
    return doc
