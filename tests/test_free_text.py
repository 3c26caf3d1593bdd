"""Free text in request bodies (issue 18, security review item 4).

A lone UTF-16 surrogate in a rating's reason (`"\\ud800 hi"`, valid JSON
that Python parses) reached redis-py's encoder and came back as a 500. Every
string field of every body is now well-formed Unicode without control
characters and of bounded length, or the request is a 422 in the contract's
shape that changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from queue_core.keys import HallKeys
from queue_core.redis_client import RedisClient
from queue_core.validation import MAX_FIELD_CHARS, MAX_REASON_CHARS, well_formed
from tests.conftest import ApiKit, api_client, delete_hall
from tests.support import TOKENS, Clock, make_config, notify_toml
from tests.test_http_api import hall_state

pytestmark = pytest.mark.redis

SURROGATE = "\ud800 hi"
NUL = "a\x00b"
LONG = "x" * (MAX_FIELD_CHARS + 1)

Body = Callable[[str], dict[str, Any]]


def ticket(**extra: Any) -> dict[str, Any]:
    return {"service": "social-security"} | extra


# (what, method, path, who, the body with the value in the field, the codes
# for a surrogate, a NUL and an over-long value). `{ticket}` is a completed
# ticket; window 1 has a called ticket.
FIELDS: list[tuple[str, str, str, str, Body, tuple[str, str, str]]] = [
    ("tickets.service", "POST", "/tickets", "kiosk", lambda x: {"service": x},
     ("invalid_field", "invalid_field", "invalid_field")),
    ("tickets.priority", "POST", "/tickets", "kiosk", lambda x: ticket(priority=x),
     ("invalid_field", "invalid_field", "invalid_field")),
    ("tickets.id_number", "POST", "/tickets", "kiosk", lambda x: ticket(id_number=x),
     ("invalid_field", "bad_id_number", "bad_id_number")),
    ("tickets.notify.phone", "POST", "/tickets", "kiosk", lambda x: ticket(notify={"phone": x}),
     ("invalid_field", "invalid_phone", "invalid_phone")),
    ("tickets.notify.channel", "POST", "/tickets", "kiosk",
     lambda x: ticket(notify={"channel": x}),
     ("invalid_field", "invalid_notify", "invalid_notify")),
    ("remote.service", "POST", "/remote/tickets", "",
     lambda x: {"service": x, "phone": "13800138000"},
     ("invalid_field", "invalid_field", "invalid_field")),
    ("remote.phone", "POST", "/remote/tickets", "", lambda x: ticket(phone=x),
     ("invalid_field", "invalid_field", "invalid_field")),
    ("remote.notify.phone", "POST", "/remote/tickets", "",
     lambda x: ticket(phone="13800138000", notify={"phone": x}),
     ("invalid_field", "invalid_phone", "invalid_phone")),
    ("appointments.service", "POST", "/appointments", "kiosk",
     lambda x: {"service": x, "start": "2026-11-21T10:00"},
     ("invalid_field", "invalid_field", "invalid_field")),
    ("appointments.start", "POST", "/appointments", "kiosk",
     lambda x: {"service": "social-security", "start": x},
     ("invalid_field", "invalid_field", "invalid_field")),
    ("call.number", "POST", "/windows/1/call", "clerk", lambda x: {"number": x},
     ("invalid_field", "invalid_field", "invalid_field")),
    ("resume.number", "POST", "/windows/1/resume", "clerk", lambda x: {"number": x},
     ("invalid_field", "invalid_field", "invalid_field")),
    ("transfer.service", "POST", "/windows/1/transfer", "clerk", lambda x: {"service": x},
     ("invalid_field", "invalid_field", "invalid_field")),
    ("rating.score", "POST", "/tickets/{ticket}/rating", "", lambda x: {"score": x},
     ("invalid_field", "invalid_field", "invalid_field")),
    ("rating.reason", "POST", "/tickets/{ticket}/rating", "",
     lambda x: {"score": "satisfied", "reason": x},
     ("invalid_field", "invalid_field", "invalid_field")),
    ("snooze.minutes", "POST", "/tickets/{ticket}/snooze", "", lambda x: {"minutes": x},
     ("invalid_field", "bad_minutes", "bad_minutes")),
    ("a key", "POST", "/tickets", "kiosk", lambda x: ticket(**{x: 1}),
     ("invalid_field", "unknown_field", "unknown_field")),
    ("deep inside", "POST", "/tickets", "kiosk", lambda x: ticket(notify={"phone": [[x]]}),
     ("invalid_field", "invalid_phone", "invalid_phone")),
]  # fmt: skip


def test_every_body_field_of_every_operation_is_in_the_table() -> None:
    """A body field added to an operation must be added here too."""
    from dispatcher.operations import OPERATIONS as WINDOW_OPERATIONS
    from ticketing.operations import OPERATIONS as TICKET_OPERATIONS

    with_body = {op.path for op in TICKET_OPERATIONS + WINDOW_OPERATIONS if op.takes_body}
    tried = {path.replace("/1/", "/{window}/") for _, _, path, *_ in FIELDS}
    assert with_body <= tried, sorted(with_body - tried)


@pytest.fixture
async def kit(redis_url: str, redis: RedisClient, tmp_path: Path) -> AsyncIterator[ApiKit]:
    """A hall with remote tickets (phone asked) and notifications on."""
    config = make_config(
        tmp_path,
        remote="enabled = true\nrequire_phone = true",
        extra=notify_toml("http://127.0.0.1:9/hook") + "\n[calling]\nmax_snooze_minutes = 30",
    )
    keys = HallKeys(config.id)
    async with api_client([config], redis_url, Clock()) as client:
        yield ApiKit(client, config, Clock(), redis, keys)
    await delete_hall(redis, keys)


def assert_refused(r: httpx.Response, code: str) -> None:
    """A 422 in the contract's error shape (with any details beside it)."""
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == code and error["message"], error
    assert "\\ud800" not in r.text and "\x00" not in r.text  # the value is not echoed


async def post(kit: ApiKit, path: str, who: str, body: dict[str, Any] | None = None) -> Any:
    headers = {"Authorization": f"Bearer {TOKENS[who]}"} if who else {}
    r = await kit.client.post(kit.base + path, headers=headers, json=body)
    assert r.status_code < 300, r.text
    return r.json() if r.content else None


async def completed_ticket(kit: ApiKit) -> str:
    """A completed ticket (to rate), then window 1 holding a called one."""
    tid = str((await post(kit, "/tickets", "kiosk", ticket()))["id"])
    await post(kit, "/windows/1/open", "clerk")
    await post(kit, "/windows/1/call-next", "clerk")
    await post(kit, "/tickets", "kiosk", ticket())
    await post(kit, "/windows/1/call-next", "clerk")  # completes the first
    return tid


@pytest.mark.parametrize(
    ("what", "method", "path", "who", "body", "codes"), FIELDS, ids=[f[0] for f in FIELDS]
)
async def test_bad_text_in_a_field_is_a_422_that_changes_nothing(
    kit: ApiKit,
    what: str,
    method: str,
    path: str,
    who: str,
    body: Body,
    codes: tuple[str, str, str],
) -> None:
    tid = await completed_ticket(kit)
    path = path.replace("{ticket}", tid)
    headers = {"Authorization": f"Bearer {TOKENS[who]}"} if who else {}
    headers["Content-Type"] = "application/json"
    long = "x" * (MAX_REASON_CHARS + 1) if what == "rating.reason" else LONG
    for value, code in zip((SURROGATE, NUL, long), codes, strict=True):
        # json.dumps writes the surrogate as the escape \ud800, as a client would.
        content = json.dumps(body(value))
        before = await hall_state(kit)
        r = await kit.client.request(method, kit.base + path, content=content, headers=headers)
        assert_refused(r, code)
        assert await hall_state(kit) == before, f"{what}: {value[:8]!r} changed the hall"


async def test_the_reviews_rating_is_refused_and_the_visitor_can_still_rate(kit: ApiKit) -> None:
    tid = await completed_ticket(kit)
    path = f"{kit.base}/tickets/{tid}/rating"
    raw = b'{"score": "satisfied", "reason": "\\ud800 hi"}'
    before = await hall_state(kit)
    r = await kit.client.post(path, content=raw, headers={"Content-Type": "application/json"})
    assert_refused(r, "invalid_field")
    assert "reason" in r.json()["error"]["message"]
    assert await hall_state(kit) == before
    # Line breaks in a reason are whitespace: kept as one space.
    r = await kit.client.post(path, json={"score": "satisfied", "reason": "很好\n\t谢谢 👍🏽"})
    assert r.status_code == 201, r.text
    assert r.json()["reason"] == "很好 谢谢 👍🏽"


def test_well_formed_walks_keys_and_values_at_any_depth() -> None:
    well_formed({"a": [1, "ok", {"b": "中文 👍"}], "c": None})
    for bad in ({"\udc00": 1}, {"a": ["x", {"b": "\udbff"}]}, {"a": {"b": ["\ud800"]}}):
        with pytest.raises(Exception, match="not well-formed Unicode"):
            well_formed(bad)
    # Deep bodies are walked without recursion.
    deep: Any = "\ud800"
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(Exception, match=r"\[0\]"):
        well_formed({"a": deep})
