"""Loads the Lua scripts shipped beside this module.

Scripts that change state get `_dispatch.lua` (the dispatch rule) and
`_lib.lua` (their shared KEYS/ARGV layout and helpers) prepended, and the
reading scripts that place waiting tickets get `_dispatch.lua` (each only
the functions it reaches); Redis has no script includes, and one source per
operation keeps each EVALSHA a single atomic step.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files

from redis.commands.core import AsyncScript

from queue_core.lua_prelude import needed
from queue_core.redis_client import RedisClient, register_script

_LUA = files("queue_core") / "lua"
_LIB = "_lib.lua"
_DISPATCH = "_dispatch.lua"

MUTATING = (
    "issue",
    "checkin",
    "appointment",
    "call_next",
    "call_number",
    "recall",
    "finish",
    "transfer",
    "cancel",
    "window_state",
    "rate",
    "remote_issue",
    "park",
    "resume",
    "rejoin",
    "snooze",
    "hall_close",
    "hall_open",
    "day_boundary",
)
# Reading scripts that place waiting tickets by the dispatch rule: they get
# `_dispatch.lua` prepended (the changing ones get it before `_lib.lua`).
PLACING = ("ticket", "window_view", "hall_state")
# Scripts that stand alone: they read, or write what is not hall state (presence).
STANDALONE = (
    "snapshot", "ticket", "presence", "window_view", "hall_state", "note_estimate", "parked",
    "outbox_take", "outbox_settle", "rate_limit",
)  # fmt: skip


def source(name: str) -> str:
    """The full source Redis runs for a script: its body after the shared
    part it needs (`lua_prelude.needed`)."""
    body = (_LUA / f"{name}.lua").read_text(encoding="utf-8")
    if name in MUTATING:
        return needed(_read(_DISPATCH) + "\n" + _read(_LIB), body) + "\n" + body
    if name in PLACING:
        return needed(_read(_DISPATCH), body) + "\n" + body
    return body


def _read(name: str) -> str:
    return (_LUA / name).read_text(encoding="utf-8")


@dataclass(frozen=True, slots=True)
class Scripts:
    """One registered script per operation (EVALSHA, reloaded on NOSCRIPT)."""

    by_name: dict[str, AsyncScript]

    @classmethod
    def register(cls, redis: RedisClient) -> Scripts:
        names = MUTATING + STANDALONE
        return cls({n: register_script(redis, source(n)) for n in names})

    def __getitem__(self, name: str) -> AsyncScript:
        return self.by_name[name]
