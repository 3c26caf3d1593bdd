"""Each script gets only the shared Lua it reaches (`queue_core.lua_prelude`),
and nothing it calls is left out: every name a script calls is a function
it defines, a Lua or Redis built-in, or a method."""

from __future__ import annotations

import re

import pytest

from queue_core import scripts
from queue_core.lua_prelude import names_in, needed

SHARED = """\
-- header comment naming unused_helper
local K = KEYS[1]

-- What a used helper does.
local function used_helper(x)
  return inner(x) .. 'unused_elsewhere'
end

local function inner(x)
  return x
end

-- Documents the unused one.
local function unused_helper()
  return used_helper(1)
end

local function used_at_top_level()
  return 1
end
local TOP = used_at_top_level()
"""


def test_only_what_the_body_reaches_is_kept() -> None:
    kept = needed(SHARED, "return used_helper(K) -- not unused_helper")
    assert "local function used_helper" in kept
    assert "local function inner" in kept  # reached through used_helper
    assert "local function used_at_top_level" in kept  # named by the shared part itself
    assert "unused_helper()" not in kept and "Documents the unused one" not in kept
    assert "local K = KEYS[1]" in kept and "-- What a used helper does." in kept


def test_names_in_strings_and_comments_do_not_count() -> None:
    assert names_in("x('inner') -- used_helper\nreturn y") == {"x", "return", "y"}


def test_a_function_without_its_end_is_refused() -> None:
    with pytest.raises(ValueError, match="closing"):
        needed("local function broken()\n  return 1\n", "broken()")


LUA_BUILTINS = {
    "assert", "error", "ipairs", "next", "pairs", "pcall", "select", "setmetatable", "tonumber",
    "tostring", "type", "unpack", "function", "if", "while", "for", "return", "and", "or",
    "not", "local", "elseif", "until",
}  # fmt: skip
CALL = re.compile(r"(?<![.:\w])([A-Za-z_]\w*)\s*\(")


@pytest.mark.parametrize("name", scripts.MUTATING + scripts.STANDALONE)
def test_every_call_of_a_script_is_defined(name: str) -> None:
    source = scripts.source(name)
    code = re.sub(r"--[^\n]*", "", re.sub(r"'(?:[^'\\\n]|\\.)*'", "''", source))
    defined = set(re.findall(r"\blocal function (\w+)", code))
    defined |= set(re.findall(r"\bfunction \w+\.(\w+)", code))
    called = set(CALL.findall(code)) - LUA_BUILTINS
    assert called <= defined, f"{name} calls undefined {sorted(called - defined)}"
