"""One settings object, read once at start from the command line and the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Fsync = Literal["always", "everysec"]


class SettingsError(ValueError):
    """An environment variable qms reads holds something unusable."""


def _number(name: str, default: str, kind: type[int] | type[float], minimum: float) -> Any:
    raw = os.environ.get(name, default)
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if not value >= minimum:  # also refuses NaN
        raise SettingsError(f"{name}={raw!r} must be at least {minimum:g}")
    return value


@dataclass(frozen=True, slots=True)
class Settings:
    configs: tuple[Path, ...]
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path(".qms-data")
    fsync: Fsync = "always"
    redis_url: str | None = None
    """`QMS_REDIS_URL`; None starts the embedded redis-server."""
    redis_max_connections: int = 64
    stream_maxlen: int = 10_000
    metrics_interval_s: float = 5.0
    access_log: bool = False
    """`QMS_ACCESS_LOG=1`: one log line per request (costs ~10% of a core at load)."""
    ws_queue_frames: int = 256
    """`QMS_WS_QUEUE`: frames a screen may fall behind before it is dropped (1013)."""
    ws_heartbeat_s: float = 10.0
    """`QMS_WS_HEARTBEAT`: seconds of quiet before a heartbeat frame."""

    @classmethod
    def from_env(cls, **cli: object) -> Settings:
        env = os.environ
        return cls(
            redis_url=env.get("QMS_REDIS_URL") or None,
            redis_max_connections=_number("QMS_REDIS_MAX_CONNECTIONS", "64", int, 1),
            stream_maxlen=_number("QMS_STREAM_MAXLEN", "10000", int, 100),
            metrics_interval_s=_number("QMS_METRICS_INTERVAL", "5", float, 0.1),
            access_log=env.get("QMS_ACCESS_LOG", "") not in ("", "0"),
            ws_queue_frames=_number("QMS_WS_QUEUE", "256", int, 1),
            ws_heartbeat_s=_number("QMS_WS_HEARTBEAT", "10", float, 0.1),
            **cli,  # type: ignore[arg-type]
        )
