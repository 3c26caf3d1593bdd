"""Screen presence: which screens are connected, as TTL keys in Redis.

A replica refreshes the presence of each named screen it serves every few
seconds; a key that expires means the screen is gone, whichever replica
it was on. The `screens` sorted set remembers screens seen lately, so a
dashboard can name the screen that went offline rather than only count
the ones still there.

Both are bounded (`PresenceCaps`): at most so many screens per hall and per
credential are remembered; a new screen beyond a cap is not recorded (it
still gets its frames), while those already remembered keep being
refreshed. Only the dashboard and the gauges read presence, never a public
endpoint.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from queue_core.keys import HallKeys
from queue_core.models import ScreenPage, ScreenPresence
from queue_core.redis_client import RedisClient, guarded
from queue_core.scripts import Scripts

__all__ = ["PresenceCaps", "PresenceStore", "presence_body"]

FORGET_AFTER_MS = 7 * 24 * 3600 * 1000
"""A screen not seen for a week leaves the `screens` set."""

_BATCH = 500


@dataclass(frozen=True, slots=True)
class PresenceCaps:
    """How many named screens presence remembers (over the last week)."""

    per_hall: int = 1000
    """`QMS_SCREENS_PER_HALL`: a hall of 200 windows has about 200 strips,
    200 consoles and a few hall screens and dashboards."""
    per_credential: int = 500
    """`QMS_SCREENS_PER_CREDENTIAL`: one display token often runs every
    screen and strip of a hall."""

    def __post_init__(self) -> None:
        if self.per_hall < 1 or self.per_credential < 1:
            raise ValueError("presence caps must be >= 1")


def presence_body(p: ScreenPresence) -> dict[str, Any]:
    return {
        "screen": p.screen,
        "page": p.page.value,
        "window": p.window,
        "replica": p.replica,
        "connected_ms": p.connected_ms,
        "last_seen_ms": p.last_seen_ms,
        "owner": p.owner,
    }


def _presence(doc: dict[str, Any]) -> ScreenPresence:
    return ScreenPresence(
        screen=str(doc["screen"]),
        page=ScreenPage(doc["page"]),
        window=doc.get("window"),
        replica=str(doc["replica"]),
        connected_ms=int(doc["connected_ms"]),
        last_seen_ms=int(doc["last_seen_ms"]),
        owner=str(doc.get("owner", "")),
    )


class PresenceStore:
    """Presence of one hall's screens."""

    def __init__(
        self,
        redis: RedisClient,
        scripts: Scripts,
        hall: str,
        *,
        ttl_s: int,
        caps: PresenceCaps | None = None,
    ) -> None:
        if ttl_s < 1:
            raise ValueError("ttl_s must be >= 1")
        self.keys = HallKeys(hall)
        self.ttl_s = ttl_s
        self.caps = caps or PresenceCaps()
        self._redis = redis
        self._scripts = scripts

    async def record(self, screens: Sequence[ScreenPresence], now_ms: int) -> int:
        """Mark `screens` present for another `ttl_s` seconds: those already
        remembered, and new ones while their hall and their owner (credential)
        are under the caps. Returns how many were recorded."""
        recorded = 0
        for start in range(0, len(screens), _BATCH):
            batch = screens[start : start + _BATCH]
            keys = [self.keys.screens]
            args: list[str | int] = [
                now_ms,
                self.ttl_s,
                FORGET_AFTER_MS,
                self.caps.per_hall,
                self.caps.per_credential,
            ]
            for p in batch:
                keys += [self.keys.screen(p.screen), self.keys.screens_of(p.owner)]
                doc = presence_body(p) | {"last_seen_ms": now_ms}
                args += [p.screen, json.dumps(doc, ensure_ascii=False)]
            reply: Any = await guarded(self._scripts["presence"](keys=keys, args=args))
            recorded += int(reply[0])
        return recorded

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
