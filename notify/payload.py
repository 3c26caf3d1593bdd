"""The body qms posts to a hall's gateway for one delivery: pure."""

from __future__ import annotations

import json
from typing import Any

from queue_core.config import HallConfig
from queue_core.outbox import Delivery
from queue_core.wire import iso_ms


def delivery_body(hall: HallConfig, d: Delivery) -> dict[str, Any]:
    """The contract's fields, with the names a message shows (the hall's,
    the service's and the window's, as the config spells them)."""
    service = hall.service_by_id.get(d.service)
    window = hall.window_by_id.get(d.window) if d.window else None
    return {
        "id": f"{hall.id}-{d.id}",
        "hall": hall.id,
        "hall_name": hall.name,
        "number": d.number,
        "service": d.service,
        "service_name": service.name if service else d.service,
        "kind": d.kind,
        "ahead": d.ahead,
        "window": d.window,
        "window_name": (window.name if window else d.window) if d.window else None,
        "to": d.to,
        "via": d.via,
        "at": iso_ms(d.at_ms, hall.timezone),
    }


def encode(body: dict[str, Any]) -> bytes:
    """The exact bytes that are signed and sent."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
