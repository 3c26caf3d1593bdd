"""One settings object, read once at start from the command line and the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Fsync = Literal["always", "everysec"]


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

    @classmethod
    def from_env(cls, **cli: object) -> Settings:
        env = os.environ
        return cls(
            redis_url=env.get("QMS_REDIS_URL") or None,
            redis_max_connections=int(env.get("QMS_REDIS_MAX_CONNECTIONS", "64")),
            stream_maxlen=int(env.get("QMS_STREAM_MAXLEN", "10000")),
            metrics_interval_s=float(env.get("QMS_METRICS_INTERVAL", "5")),
            access_log=env.get("QMS_ACCESS_LOG", "") not in ("", "0"),
            **cli,  # type: ignore[arg-type]
        )
