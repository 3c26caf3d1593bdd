"""What of the shared Lua (`_dispatch.lua`, `_lib.lua`) one script needs: pure.

Redis runs a script's whole source on every EVALSHA, and each `local
function` of the shared part is a closure made anew on every call. The
shared part grew to some ninety of them, and making them became a sixth of
a call-next's time in Redis. So each script gets only the functions it can
reach: those its body names, those they name, and so on; everything else of
the shared part (its comments, its `local` values, its loops) is kept as it
is. Reaching is by name, after strings and comments are set aside, so it
errs only on the side of keeping a function.

The shared files are written in one style this relies on: a function starts
with `local function <name>(` at the start of a line and ends with the first
line that is exactly `end`; the comment lines right above it go with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

_FUNCTION: Final = re.compile(r"^local function (\w+)\(", re.M)
_STRING: Final = re.compile(r"'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\"")
_COMMENT: Final = re.compile(r"--[^\n]*")
_NAME: Final = re.compile(r"[A-Za-z_]\w*")


@dataclass(frozen=True, slots=True)
class _Chunk:
    text: str
    function: str | None
    """The name it defines; None for the rest of the shared part."""


def _chunks(shared: str) -> list[_Chunk]:
    lines = shared.splitlines(keepends=True)
    chunks: list[_Chunk] = []
    pending: list[str] = []  # other lines since the last function
    i = 0
    while i < len(lines):
        match = _FUNCTION.match(lines[i])
        if match is None:
            pending.append(lines[i])
            i += 1
            continue
        # The comment block right above the function goes with it.
        start = len(pending)
        while start > 0 and pending[start - 1].startswith("--"):
            start -= 1
        chunks.append(_Chunk("".join(pending[:start]), None))
        body = pending[start:]
        pending = []
        while i < len(lines):
            body.append(lines[i])
            i += 1
            if body[-1].rstrip("\n") == "end":
                break
        else:
            raise ValueError(f"function {match.group(1)} has no closing `end` at a line's start")
        chunks.append(_Chunk("".join(body), match.group(1)))
    chunks.append(_Chunk("".join(pending), None))
    return [c for c in chunks if c.text]


def names_in(code: str) -> set[str]:
    """The names `code` mentions outside strings and comments."""
    return set(_NAME.findall(_COMMENT.sub("", _STRING.sub("''", code))))


def needed(shared: str, body: str) -> str:
    """`shared` with only the functions `body` can reach."""
    chunks = _chunks(shared)
    defined = {c.function: c for c in chunks if c.function is not None}
    keep: set[str] = set()
    todo = names_in(body)
    for c in chunks:
        if c.function is None:
            todo |= names_in(c.text)
    while todo:
        name = todo.pop()
        if name in defined and name not in keep:
            keep.add(name)
            todo |= names_in(defined[name].text)
    return "".join(c.text for c in chunks if c.function is None or c.function in keep)
