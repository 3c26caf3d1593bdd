"""The webhook's signature: an HMAC-SHA256 of the exact body bytes, so the
gateway knows a delivery came from qms and was not changed on the way."""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

HEADER: Final = "X-QMS-Signature"
PREFIX: Final = "sha256="


def sign(secret: bytes, body: bytes) -> str:
    """The header's value for `body`: `sha256=<hex>`."""
    return PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, header: str | None) -> bool:
    """Whether `header` signs `body` under `secret` (in constant time)."""
    return header is not None and hmac.compare_digest(sign(secret, body), header)
