"""Screen presence: which screens are connected, as TTL keys in Redis.

A replica refreshes the presence of each screen it serves every few
seconds; a key that expires means the screen is gone, whichever replica
it was on. The `screens` sorted set remembers screens seen lately, so a
dashboard can name the screen that went offline rather than only count
the ones still there.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from queue_core.keys import HallKeys
from queue_core.models import ScreenPage, ScreenPresence
from queue_core.redis_client import RedisClient, guarded
from queue_core.scripts import Scripts

__all__ = ["PresenceStore", "presence_body"]

FORGET_AFTER_MS = 7 * 24 * 3600 * 1000
"""A screen not seen for a week leaves the `screens` set."""

_BATCH = 500


def presence_body(p: ScreenPresence) -> dict[str, Any]:
    return {
        "screen": p.screen,
        "page": p.page.value,
        "window": p.window,
        "replica": p.replica,
        "connected_ms": p.connected_ms,
        "last_seen_ms": p.last_seen_ms,
    }


def _presence(doc: dict[str, Any]) -> ScreenPresence:
    return ScreenPresence(
        screen=str(doc["screen"]),
        page=ScreenPage(doc["page"]),
        window=doc.get("window"),
        replica=str(doc["replica"]),
        connected_ms=int(doc["connected_ms"]),
        last_seen_ms=int(doc["last_seen_ms"]),
    )


class PresenceStore:
    """Presence of one hall's screens."""

    def __init__(self, redis: RedisClient, scripts: Scripts, hall: str, *, ttl_s: int) -> None:
        if ttl_s < 1:
            raise ValueError("ttl_s must be >= 1")
        self.keys = HallKeys(hall)
        self.ttl_s = ttl_s
        self._redis = redis
        self._scripts = scripts

    async def record(self, screens: Sequence[ScreenPresence], now_ms: int) -> None:
        """Mark `screens` present for another `ttl_s` seconds."""
        for start in range(0, len(screens), _BATCH):
            batch = screens[start : start + _BATCH]
            keys = [self.keys.screens, *(self.keys.screen(p.screen) for p in batch)]
            args: list[str | int] = [now_ms, self.ttl_s, FORGET_AFTER_MS]
            for p in batch:
                doc = presence_body(p) | {"last_seen_ms": now_ms}
                args += [p.screen, json.dumps(doc, ensure_ascii=False)]
            await guarded(self._scripts["presence"](keys=keys, args=args))

    async def online(self) -> list[ScreenPresence]:
        """Screens whose presence has not expired, by screen id."""
        ids: Any = await guarded(self._redis.zrange(self.keys.screens, 0, -1))
        if not ids:
            return []
        docs = await guarded(self._redis.mget([self.keys.screen(i) for i in ids]))
        return sorted((_presence(json.loads(d)) for d in docs if d), key=lambda p: p.screen)

    async def last_seen(self) -> dict[str, int]:
        """Every screen seen in the last week -> when it was last seen (epoch ms)."""
        pairs: Any = await guarded(self._redis.zrange(self.keys.screens, 0, -1, withscores=True))
        return {str(i): int(score) for i, score in pairs}
