"""One settings object, read once at start from the command line and the environment."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from qms.overload import DEFAULT_MAX_IN_FLIGHT
from qms.security import CORS_ORIGINS_ENV, cors_origins
from queue_core.archive import sqlite_path
from queue_core.config import MIN_TOKEN_CHARS, HallConfig
from queue_core.identity import MIN_KEY_BYTES
from queue_core.redis_client import describe_url

Fsync = Literal["always", "everysec"]

DEFAULT_DATA_DIR = Path(".qms-data")


class SettingsError(ValueError):
    """An environment variable qms reads holds something unusable."""


REQUIRE_REDIS_URL_ENV = "QMS_REQUIRE_REDIS_URL"
"""Set (to anything but 0) where qms must never start its embedded Redis:
the container image sets it, so a pod without `QMS_REDIS_URL` refuses to
start instead of serving from a Redis that dies with the pod."""


def _redis_url(env: Mapping[str, str]) -> str | None:
    url = env.get("QMS_REDIS_URL") or None
    if url is None and env.get(REQUIRE_REDIS_URL_ENV, "") not in ("", "0"):
        raise SettingsError(
            f"QMS_REDIS_URL is not set and {REQUIRE_REDIS_URL_ENV}=1 forbids the embedded "
            "Redis: set QMS_REDIS_URL (redis://, redis+sentinel:// or redis+cluster://)"
        )
    return url


ID_DIGEST_KEY_ENV = "QMS_ID_DIGEST_KEY"
"""The key of the HMAC that stands for a resident identity number in Redis
(`[issuing] one_active_per_person`). It lives outside Redis, so a copy of
Redis (a dump, a backup, an archive) cannot be searched for a number."""


def id_digest_key(env: Mapping[str, str]) -> bytes | None:
    """`QMS_ID_DIGEST_KEY` as bytes, None when unset. Never shown in a message."""
    raw = env.get(ID_DIGEST_KEY_ENV, "").strip()
    if not raw:
        return None
    key = raw.encode("utf-8")
    if len(key) < MIN_KEY_BYTES:
        raise SettingsError(
            f"{ID_DIGEST_KEY_ENV} is too short: use at least {MIN_KEY_BYTES} characters "
            "of random text, such as the output of `openssl rand -hex 32`"
        )
    return key


def require_id_digest_key(configs: Iterable[HallConfig], key: bytes | None) -> None:
    """Refuse to serve a hall that allows one active ticket per person
    without the key its digests need. Made up or kept in Redis, the key
    would sit beside the digests it protects, or change with every start
    and let a person hold two tickets."""
    if key is not None:
        return
    for config in configs:
        if config.issuing.one_active_per_person:
            raise SettingsError(
                f"hall {config.id} ({config.source or 'config'}) sets [issuing] "
                f"one_active_per_person = true, which needs {ID_DIGEST_KEY_ENV}: a secret of at "
                f"least {MIN_KEY_BYTES} characters, the same on every replica "
                "(e.g. `openssl rand -hex 32`)"
            )


def notify_secrets(configs: Iterable[HallConfig], env: Mapping[str, str]) -> dict[str, bytes]:
    """The webhook key of each hall with a gateway (`[notify] url`), read
    from the variable its `secret_env` names. A hall without its key is
    refused: an unsigned delivery could be forged by anyone who finds the
    gateway's address. Never shown in a message."""
    secrets: dict[str, bytes] = {}
    for config in configs:
        n = config.notify
        if not n.enabled:
            continue
        key = env.get(n.secret_env, "").strip().encode("utf-8")
        if len(key) < MIN_KEY_BYTES:
            problem = "is not set" if not key else f"is shorter than {MIN_KEY_BYTES} characters"
            raise SettingsError(
                f"hall {config.id} ({config.source or 'config'}) sends notifications to its "
                f"gateway ([notify] url), signed with the key in {n.secret_env}, which {problem}: "
                "set it to the secret the gateway checks (e.g. `openssl rand -hex 32`)"
            )
        secrets[config.id] = key
    return secrets


TRUSTED_PROXIES_ENV = "QMS_TRUSTED_PROXIES"


def trusted_proxies(raw: str) -> tuple[str, ...]:
    """`QMS_TRUSTED_PROXIES`: comma-separated IP addresses or networks
    (`10.0.0.0/8`), or `*` for every peer (only where nothing but the proxy
    can reach qms)."""
    out = []
    for part in raw.split(","):
        entry = part.strip()
        if not entry:
            continue
        if entry != "*":
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise SettingsError(
                    f"{TRUSTED_PROXIES_ENV}: {entry!r} is not an IP address or network "
                    "(write 10.0.0.5, 10.0.0.0/8 or *)"
                ) from None
        out.append(entry)
    return tuple(out)


METRICS_TOKEN_ENV = "QMS_METRICS_TOKEN"


def metrics_token(env: Mapping[str, str]) -> str | None:
    """`QMS_METRICS_TOKEN`, None when unset or empty. Never shown in a message."""
    token = env.get(METRICS_TOKEN_ENV, "").strip()
    if not token:
        return None
    if len(token) < MIN_TOKEN_CHARS:
        raise SettingsError(
            f"{METRICS_TOKEN_ENV} is too short: use at least {MIN_TOKEN_CHARS} characters"
        )
    return token


def _cors_origins(env: Mapping[str, str]) -> tuple[str, ...]:
    try:
        return cors_origins(env.get(CORS_ORIGINS_ENV, ""))
    except ValueError as exc:
        raise SettingsError(str(exc)) from None


def _number(name: str, default: str, kind: type[int] | type[float], minimum: float) -> Any:
    raw = os.environ.get(name, default)
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if not value >= minimum:  # also refuses NaN
        raise SettingsError(f"{name}={raw!r} must be at least {minimum:g}")
    return value


def default_archive_url(data_dir: Path) -> str:
    """The SQLite archive beside the embedded Redis's data (an absolute
    `data_dir` gives the four slashes of an absolute path)."""
    return f"sqlite:///{data_dir / 'archive.db'}"


def archive_url(raw: str) -> str:
    """`QMS_ARCHIVE_URL` checked without connecting: a SQLite file, or a
    PostgreSQL URL libpq can parse (with psycopg installed to use it)."""
    shown = describe_url(raw)  # never a password on a terminal or in a log
    if shown.startswith("<"):  # describe_url's "<unparseable Redis URL>"
        shown = "<unparsable URL>"
    path = sqlite_path(raw)
    if path is not None:
        if not path or path.endswith("/"):
            raise SettingsError(f"QMS_ARCHIVE_URL={raw!r} names no file: use sqlite:///path/to.db")
        if path == ":memory:":
            # The sweep deletes what it archives from Redis: that must outlive the process.
            raise SettingsError(f"QMS_ARCHIVE_URL={raw!r} would lose the archive at exit")
        return raw
    if not raw.startswith(("postgresql://", "postgres://")):
        raise SettingsError(
            f"QMS_ARCHIVE_URL={shown!r} is not an archive URL: "
            "use sqlite:///path/to.db or postgresql://user@host/db"
        )
    try:
        from psycopg import Error as PsycopgError
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        raise SettingsError(
            "QMS_ARCHIVE_URL names PostgreSQL but psycopg is not installed "
            "(pip install 'qms[postgres]')"
        ) from None
    try:
        params = conninfo_to_dict(raw)
    except PsycopgError as exc:
        # libpq's own sentence, which may quote the URL: show it without its password.
        reason = (str(exc).strip().splitlines() or ["unparsable"])[0]
        reason = reason.replace(f' in URI: "{raw}"', "").replace(raw, shown)
        raise SettingsError(f"QMS_ARCHIVE_URL={shown!r} is not usable: {reason}") from None
    ports = str(params.get("port") or "0").split(",")
    if not all(p.isdigit() for p in ports):
        raise SettingsError(f"QMS_ARCHIVE_URL={shown!r} has a port that is not a number")
    return raw


@dataclass(frozen=True, slots=True)
class Settings:
    configs: tuple[Path, ...]
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = DEFAULT_DATA_DIR
    fsync: Fsync = "always"
    redis_url: str | None = None
    """`QMS_REDIS_URL`; None starts the embedded redis-server."""
    redis_max_connections: int = 64
    redis_min_replicas: int = 0
    """`QMS_REDIS_MIN_REPLICAS`: replicas that must confirm every state change (WAIT)."""
    redis_wait_ms: int = 500
    """`QMS_REDIS_WAIT_MS`: how long a change waits for them before 503 not_replicated."""
    stream_maxlen: int = 10_000
    metrics_interval_s: float = 5.0
    estimate_max_age_s: float = 2.0
    """`QMS_ESTIMATE_MAX_AGE`: seconds a replica reuses its read of a hall for
    wait estimates; a read of a big hall costs milliseconds (docs/performance.md)."""
    access_log: bool = False
    """`QMS_ACCESS_LOG=1`: one log line per request (costs ~10% of a core at load)."""
    ws_queue_frames: int = 256
    """`QMS_WS_QUEUE`: frames a screen may fall behind before it is dropped (1013)."""
    ws_heartbeat_s: float = 10.0
    """`QMS_WS_HEARTBEAT`: seconds of quiet before a heartbeat frame."""
    screens_per_hall: int = 1000
    """`QMS_SCREENS_PER_HALL`: named screens a hall's presence remembers (a week)."""
    screens_per_credential: int = 500
    """`QMS_SCREENS_PER_CREDENTIAL`: ... of them connected with one credential."""
    archive_url: str = "sqlite:///.qms-data/archive.db"
    """`QMS_ARCHIVE_URL`: where finished tickets go (default: `archive.db` in the data dir)."""
    archive_interval_s: float = 3600.0
    """`QMS_ARCHIVE_INTERVAL`: seconds between sweeps of past days' tickets out of Redis."""
    id_digest_key: bytes | None = None
    """`QMS_ID_DIGEST_KEY`: the key of identity numbers' digests (None: unset)."""
    cors_origins: tuple[str, ...] = ()
    """`QMS_CORS_ORIGINS`: origins whose browser pages may call the API (none)."""
    metrics_token: str | None = None
    """`QMS_METRICS_TOKEN`: the bearer token `/metrics` asks for (None: open)."""
    trusted_proxies: tuple[str, ...] = ()
    """`QMS_TRUSTED_PROXIES`: addresses or networks whose `X-Forwarded-For`
    and `X-Forwarded-Proto` are believed (none)."""
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    """`QMS_MAX_IN_FLIGHT`: HTTP requests served at once; the excess gets 503
    `overloaded` at once (`DEFAULT_MAX_IN_FLIGHT` says why 128)."""

    @classmethod
    def from_env(cls, **cli: object) -> Settings:
        env = os.environ
        data_dir = Path(str(cli.get("data_dir", DEFAULT_DATA_DIR)))
        return cls(
            redis_url=_redis_url(env),
            redis_max_connections=_number("QMS_REDIS_MAX_CONNECTIONS", "64", int, 1),
            redis_min_replicas=_number("QMS_REDIS_MIN_REPLICAS", "0", int, 0),
            redis_wait_ms=_number("QMS_REDIS_WAIT_MS", "500", int, 1),
            stream_maxlen=_number("QMS_STREAM_MAXLEN", "10000", int, 100),
            metrics_interval_s=_number("QMS_METRICS_INTERVAL", "5", float, 0.1),
            estimate_max_age_s=_number("QMS_ESTIMATE_MAX_AGE", "2", float, 0.1),
            access_log=env.get("QMS_ACCESS_LOG", "") not in ("", "0"),
            ws_queue_frames=_number("QMS_WS_QUEUE", "256", int, 1),
            ws_heartbeat_s=_number("QMS_WS_HEARTBEAT", "10", float, 0.1),
            screens_per_hall=_number("QMS_SCREENS_PER_HALL", "1000", int, 1),
            screens_per_credential=_number("QMS_SCREENS_PER_CREDENTIAL", "500", int, 1),
            archive_url=archive_url(env.get("QMS_ARCHIVE_URL") or default_archive_url(data_dir)),
            archive_interval_s=_number("QMS_ARCHIVE_INTERVAL", "3600", float, 1),
            id_digest_key=id_digest_key(env),
            cors_origins=_cors_origins(env),
            metrics_token=metrics_token(env),
            trusted_proxies=trusted_proxies(env.get(TRUSTED_PROXIES_ENV, "")),
            max_in_flight=_number("QMS_MAX_IN_FLIGHT", str(DEFAULT_MAX_IN_FLIGHT), int, 1),
            **cli,  # type: ignore[arg-type]
        )
