"""Property-based fuzz of what reaches a real server outside the JSON API
(issue 18, "Bad input"): the screens' WebSocket handshake and first
message, and the pages' paths and query strings.

A real uvicorn (`tests.live`), not Starlette's TestClient: a handshake's
request line is parsed by httptools and the upgrade by websockets, a
refused one is answered by qms's own protocol subclass (`qms.server`) and
logged through its query-stripping filter; the TestClient hands the app a
ready scope and skips all of that. Requests are written byte by byte on a
raw socket, so non-UTF-8 bytes and unencoded characters reach the server as
sent (a client library would quote or refuse them).

Screens: arbitrary query strings (any keys, repeated keys, percent-encoded
junk and lone surrogates, raw bytes, huge values, odd `since`), arbitrary
hall ids in the path and arbitrary first messages (`auth=message`). The
server answers 101 or a 4xx (never a 5xx or a traceback), an accepted
socket either serves the hall or closes with a defined code, nothing is
logged at ERROR, no token reaches a log line, and a refused socket leaves
the hall's keys as they were, and no socket is left in the gateway.

Pages: every page route (and the other non-API paths) with arbitrary path
parts and query strings. Never a 5xx or a traceback, every answer carries
the security headers, and markup sent in a path or query never comes back
unescaped.

Bounded by `QMS_FUZZ_EXAMPLES` like `tests/test_fuzz.py`; the long run of
every fuzz file is `QMS_FUZZ_EXAMPLES=20000 python -m pytest -m fuzz`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote_from_bytes

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode

from displays.gateway import FORBIDDEN, UNAUTHORIZED, GatewaySettings
from displays.page_kit import STATIC_PATH
from queue_core.keys import HallKeys
from queue_core.redis_client import create_redis
from tests.conftest import ApiKit, delete_hall
from tests.fuzz_tally import tally
from tests.live import LiveServer, live_server
from tests.support import TOKENS, Clock, make_config
from tests.test_fuzz import EXAMPLES, FUZZ, JSON, SURROGATES
from tests.test_http_api import HallState, hall_state
from tests.test_screen_auth import Records, capturing

pytestmark = [pytest.mark.redis, pytest.mark.fuzz]

ANSWER_TIMEOUT_S = 5.0
AUTH_TIMEOUT_S = 0.2
"""A socket that sends no first message is closed this soon (the default 10 s
would stall the run)."""


@dataclass
class Served:
    runner: asyncio.Runner
    live: LiveServer
    kit: ApiKit
    log: Records
    tickets: list[str] = field(default_factory=list)
    """Ids of tickets the hall holds (the visitor page and its QR code)."""
    outcomes: dict[str, int] = field(default_factory=dict)

    @property
    def hall(self) -> str:
        return self.kit.config.id


@contextlib.asynccontextmanager
async def _serve(redis_url: str, tmp_path: Path) -> AsyncIterator[tuple[LiveServer, ApiKit]]:
    config = make_config(tmp_path)
    redis = create_redis(redis_url)
    keys = HallKeys(config.id)
    # Presence kept for a day: no key may expire between an example's two
    # readings of the hall (a long run outlasts the default 45 s).
    settings = GatewaySettings(
        auth_timeout_s=AUTH_TIMEOUT_S, presence_interval_s=3600, presence_ttl_s=86_400
    )
    try:
        # INFO: uvicorn logs every handshake then, each through the query filter.
        async with live_server(
            [config], redis_url, gateway_settings=settings, log_level="info"
        ) as live:
            yield live, ApiKit(live.api, config, Clock(), redis, keys)
    finally:
        await delete_hall(redis, keys)
        await redis.aclose()


@pytest.fixture(scope="module")
def served(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with asyncio.Runner() as runner:
        context = _serve(redis_url, tmp_path_factory.mktemp("fuzz-live"))
        live, kit = runner.run(context.__aenter__())
        try:
            # Once the server has started (its logging setup replaces the
            # handlers of uvicorn's loggers, which do not reach the root).
            with capturing() as log:
                served = Served(runner, live, kit, log)
                kiosk = {"Authorization": f"Bearer {TOKENS['kiosk']}"}
                for service in ("social-security", "household"):
                    body = {"service": service}
                    r = runner.run(live.api.post(f"{kit.base}/tickets", headers=kiosk, json=body))
                    assert r.status_code == 201, r.text
                    served.tickets.append(r.json()["id"])
                yield served
        finally:
            runner.run(context.__aexit__(None, None, None))


# ------------------------------------------------------------------ a raw client


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    closed_with: int | None = None
    """After a 101: the server's close code (None: it served the hall)."""
    served: bool = False
    """After a 101: a data frame came (the snapshot)."""


async def _head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if value:
            headers[name.strip().lower()] = value.strip()
    return status, headers


async def _frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    first, second = await reader.readexactly(2)
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(await reader.readexactly(2), "big")
    elif length == 127:
        length = int.from_bytes(await reader.readexactly(8), "big")
    return first & 0x0F, await reader.readexactly(length)


def _client_frame(opcode: Opcode, data: bytes) -> bytes:
    return Frame(opcode, data).serialize(mask=True, extensions=[])


async def _exchange(port: int, request: bytes, first: tuple[str, bytes] | None) -> Answer:
    """Send `request`; after a 101 send `first` (a frame kind and its data),
    then read frames until the server closes or serves the hall."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    try:
        writer.write(request)
        await writer.drain()
        status, headers = await _head(reader)
        if status != 101:
            return Answer(status, headers, await reader.read())
        answer = Answer(status, headers, b"")
        if first is not None:
            kind, data = first
            sent = {"text": Opcode.TEXT, "binary": Opcode.BINARY, "close": Opcode.CLOSE}[kind]
            with contextlib.suppress(ConnectionError):
                writer.write(_client_frame(sent, data))
                await writer.drain()
        while True:
            try:
                opcode, payload = await _frame(reader)
            except asyncio.IncompleteReadError:
                return answer  # closed without a close frame: closed_with stays None
            if opcode == Opcode.CLOSE:
                answer.closed_with = int.from_bytes(payload[:2], "big") if payload else 1005
                with contextlib.suppress(OSError):
                    writer.write(_client_frame(Opcode.CLOSE, payload[:2]))
                return answer
            if opcode in (Opcode.TEXT, Opcode.BINARY):
                answer.served = True
                answer.body = payload
                # The server may be closing it already (a frame over its bound).
                with contextlib.suppress(ConnectionError):
                    writer.write(_client_frame(Opcode.CLOSE, (1000).to_bytes(2, "big")))
                    await writer.drain()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _screens_gone(served: Served) -> None:
    """Every socket of the example has left the gateway: none is kept."""
    gateway = served.live.gateway
    await asyncio.wait_for(gateway._idle.wait(), ANSWER_TIMEOUT_S)
    assert gateway.screens(served.hall) == 0


# ------------------------------------------------------------------ strategies

MARKUP_STRINGS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "</script><b>x</b>",
]
MARKUP = st.sampled_from(MARKUP_STRINGS)
# Percent-encoded text (lone surrogates as their UTF-8-ish bytes), bytes
# (non-UTF-8 among them), raw characters no client would send unquoted.
RAW_TEXT = st.one_of(
    st.text(max_size=30).map(lambda s: quote_from_bytes(s.encode("utf-8", "surrogatepass"))),
    SURROGATES.map(lambda s: quote_from_bytes(s.encode("utf-8", "surrogatepass"))),
    st.binary(max_size=20).map(quote_from_bytes),
    st.binary(max_size=6).map(lambda b: b.decode("latin-1")),
    st.sampled_from(["%", "%zz", "%ED%A0%80", "%C0%AF", "%FF%FE", "+", "&", "=", "%00", "#x"]),
    MARKUP.map(lambda s: quote_from_bytes(s.encode(), safe="")),
    MARKUP,
    st.integers(1, 5).map(lambda n: "x" * (4**n * 10)),  # up to 10 KiB
)
SINCE = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.floats().map(repr),
    st.sampled_from(["", "-0", "1e3", " 1", "1 ", "+1", "0x10", "١٢", "9" * 18, "9" * 19]),
)
VALID: dict[str, st.SearchStrategy[str]] = {
    "format": st.sampled_from(["json", "msgpack"]),
    "since": st.integers(0, 40).map(str),
    "screen": st.from_regex(r"[A-Za-z0-9._:-]{1,64}", fullmatch=True),
    "page": st.sampled_from(["display", "strip", "console", "kiosk", "other"]),
    "window": st.sampled_from(["1", "2"]),
}
ODD: dict[str, st.SearchStrategy[str]] = {
    "format": st.sampled_from(["JSON", "xml", "", "json "]),
    "since": SINCE,
    "screen": st.sampled_from(["a" * 65, "a b", "", "é"]),
    "page": st.sampled_from(["tv", "", "Display"]),
    "window": st.sampled_from(["77", "", "0", "１"]),
    "auth": st.sampled_from(["token", "", "Message"]),
    "token": st.sampled_from([*TOKENS.values(), "nope", ""]),
}
KEY = st.one_of(st.sampled_from([*ODD]), RAW_TEXT)


@st.composite
def query_strings(draw: st.DrawFn) -> str:
    """A valid query (the token in the first message, or in `token=` as
    older screens send it), then a few mutations: a pair of any key and any
    value put anywhere (so keys repeat), a known key's value made odd or
    junk, a bare key, a stray `&`."""
    pairs = [(key, draw(value)) for key, value in VALID.items() if draw(st.booleans())]
    auth = draw(st.sampled_from(["message", "message", "message", "token"]))
    pairs.append(("auth", "message") if auth == "message" else ("token", draw(ODD["token"])))
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 2, 4]))):
        action = draw(st.sampled_from(["pair", "odd", "junk"]))
        i = draw(st.integers(0, len(pairs) - 1))
        if action == "pair":
            pairs.insert(i, (draw(KEY), draw(st.one_of(RAW_TEXT, *ODD.values()))))
        elif action == "odd":
            key = draw(st.sampled_from([*ODD]))
            pairs.insert(i, (key, draw(ODD[key])))
        else:
            pairs[i] = (pairs[i][0], draw(RAW_TEXT))
    shapes = st.sampled_from(["{k}={v}"] * 8 + ["{k}", "{k}={v}&", "&{k}={v}", "{k}=={v}"])
    return "&".join(draw(shapes).format(k=k, v=v) for k, v in pairs)


@st.composite
def hall_ids(draw: st.DrawFn, real: str) -> str:
    """Mostly the hall served (to reach the rest), else anything."""
    if draw(st.integers(0, 7)):
        return real
    return draw(
        st.one_of(
            RAW_TEXT.filter(lambda s: s != "" and not {"/", "?", "#"} & set(s)),
            st.sampled_from([real.upper(), real + "%00", "..", "%2F", "%2e%2e", "t" * 300]),
        )
    )


FIRST_TOKEN = st.one_of(
    st.sampled_from([*TOKENS.values(), "nope", ""]),
    SURROGATES,
    JSON,
    st.integers(1, 4).map(lambda n: "t" * 10**n),
)
FIRST_MESSAGE = st.one_of(
    st.sampled_from([*TOKENS.values()]).map(
        lambda t: ("text", json.dumps({"type": "auth", "token": t}).encode())
    ),
    FIRST_TOKEN.map(lambda t: ("text", json.dumps({"type": "auth", "token": t}).encode())),
    FIRST_TOKEN.map(lambda t: ("binary", json.dumps({"type": "auth", "token": t}).encode())),
    JSON.map(lambda doc: ("text", json.dumps(doc).encode())),
    st.binary(max_size=64).map(lambda b: ("binary", b)),
    # Text frames that are not UTF-8 (a lone surrogate as it would be encoded).
    SURROGATES.map(lambda s: ("text", s.encode("utf-8", "surrogatepass"))),
    st.just(("text", b"x" * 20_000)),  # over the server's 16 KiB frame bound
    st.just(("close", (1000).to_bytes(2, "big"))),
    st.none(),  # says nothing: closed when the auth timeout runs out
)

SECRET_TOKENS = [t for t in TOKENS.values() if len(t) > 3]


# An `Authorization` header (the gateway reads a bearer token there too):
# none, a role's token, or junk (latin-1 bytes, as a header may carry).
BEARERS = st.one_of(
    st.none(),
    st.sampled_from([*TOKENS.values()]).map(lambda t: f"Bearer {t}"),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=40),
)


def _handshake(hall: str, query: str, bearer: str | None, port: int) -> bytes:
    target = f"/ws/halls/{hall}/display" + (f"?{query}" if query else "")
    key = base64.b64encode(os.urandom(16)).decode()
    auth = "" if bearer is None else f"Authorization: {bearer}\r\n"
    head = (
        f"Host: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n{auth}Connection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    # The target as UTF-8 (raw bytes kept as drawn), the headers as latin-1.
    line = f"GET {target} HTTP/1.1\r\n".encode("utf-8", "surrogateescape")
    return line + head.encode("latin-1")


# ------------------------------------------------------------------ checks

# What closes an accepted socket: a refused first message, a frame over the
# size bound, a text frame that is not UTF-8, or the client's own close.
CLOSE_CODES = {UNAUTHORIZED, FORBIDDEN, 1009, 1007, 1000, 1002}


async def _one_screen(
    served: Served, hall: str, query: str, bearer: str | None, first: tuple[str, bytes] | None
) -> tuple[Answer, HallState, HallState]:
    before = await hall_state(served.kit)
    answer = await asyncio.wait_for(
        _exchange(served.live.port, _handshake(hall, query, bearer, served.live.port), first),
        ANSWER_TIMEOUT_S,
    )
    await _screens_gone(served)
    return answer, before, await hall_state(served.kit)


def _check_logs(served: Served, where: str) -> None:
    """Nothing at ERROR, no traceback, no token in any line logged since the last check."""
    errors = [r.getMessage() for r in served.log.records if r.levelno >= logging.ERROR]
    lines = served.log.lines()
    served.log.records.clear()
    assert errors == [], f"{where}\nlogged: {lines}"
    for line in lines:
        assert "Traceback" not in line, f"{where}\nlogged: {line}"
        for token in SECRET_TOKENS:
            assert token not in line, f"{where}\na token reached the log: {line}"


def _outcome(answer: Answer) -> str:
    if answer.status != 101:
        return str(answer.status)
    return "served" if answer.served else f"101 then {answer.closed_with}"


def test_screen_handshakes_and_first_messages_answer_within_the_contract(served: Served) -> None:
    served.outcomes.clear()
    served.log.records.clear()

    @FUZZ
    @given(
        hall=hall_ids(served.hall),
        query=query_strings(),
        bearer=BEARERS,
        first=FIRST_MESSAGE,
    )
    def one(hall: str, query: str, bearer: str | None, first: tuple[str, bytes] | None) -> None:
        answer, before, after = served.runner.run(_one_screen(served, hall, query, bearer, first))
        outcome = _outcome(answer)
        served.outcomes[outcome] = served.outcomes.get(outcome, 0) + 1
        tally("screens: handshakes and first messages")
        where = (
            f"hall={hall!r} query={query!r} bearer={bearer!r} first={first!r} -> {outcome}: "
            f"{answer.body[:300]!r}"
        )
        _check_logs(served, where)
        assert answer.status == 101 or 400 <= answer.status < 500, where
        assert b"Traceback" not in answer.body, where
        if answer.status == 101:
            assert answer.served or answer.closed_with in CLOSE_CODES, where
        elif answer.headers.get("content-type", "").startswith("application/json"):
            # The app's own refusal: the contract's error shape and headers.
            error = json.loads(answer.body)["error"]
            assert isinstance(error["code"], str) and isinstance(error["message"], str), where
            assert answer.headers["x-content-type-options"] == "nosniff", where
        # Refused: at the handshake, or its first message (a socket whose
        # token was good in its URL may have joined before a bad frame closed it).
        if answer.status != 101 or answer.closed_with in (UNAUTHORIZED, FORBIDDEN):
            assert after == before, f"a refused screen changed the hall: {where}"

    one()
    print("screen outcomes:", dict(sorted(served.outcomes.items())))
    assert sum(served.outcomes.values()) >= min(EXAMPLES, 100)
    # The fuzz reaches each kind of outcome, not only refusals.
    if EXAMPLES >= 200:
        assert {"served", "404", "422", f"101 then {UNAUTHORIZED}"} <= served.outcomes.keys()


# ------------------------------------------------------------------ pages

PAGES = [
    "/halls/{hall}/display",
    "/halls/{hall}/windows/{window}/strip",
    "/halls/{hall}/windows/{window}",
    "/halls/{hall}/kiosk",
    "/halls/{hall}/remote",
    "/halls/{hall}/dashboard",
    # Twice each: they read the hall (and the QR code draws the Host header).
    *["/halls/{hall}/tickets/{ticket}", "/halls/{hall}/tickets/{ticket}/qr.svg"] * 2,
    STATIC_PATH + "/{file}",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/{any}",
    "/halls/{any}",
]
PATH_PART = st.one_of(
    MARKUP.map(lambda s: quote_from_bytes(s.encode(), safe="")),
    RAW_TEXT.filter(lambda s: s != "" and not {"/", "?", "#"} & set(s)),
)
PAGE_VALUES: dict[str, st.SearchStrategy[str]] = {
    "token": st.sampled_from([*TOKENS.values(), "nope"]),
    "screen": st.one_of(VALID["screen"], ODD["screen"]),
    "lang": st.sampled_from(["zh", "en", ""]),
    "next": MARKUP.map(lambda s: quote_from_bytes(s.encode(), safe="")),
}
# A Host header becomes the QR code's URL (no QMS_PUBLIC_URL here).
HOSTS = st.one_of(
    st.just("127.0.0.1"),
    st.just("qms.hall.lan:8000"),
    MARKUP.map(lambda m: f"a{m}b"),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40),
)


@st.composite
def page_requests(draw: st.DrawFn, hall: str, tickets: list[str]) -> tuple[str, str]:
    """A page's path with its parts filled (mostly plausible, else junk), a
    query string of any pairs, and a Host header."""
    template = draw(st.sampled_from(PAGES))
    parts = {
        "hall": draw(hall_ids(hall)),
        "window": draw(st.one_of(st.sampled_from(["1", "2", "9", "77"]), PATH_PART)),
        "ticket": draw(
            st.one_of(
                st.sampled_from(tickets),
                st.from_regex(r"[A-Za-z0-9_-]{22}", fullmatch=True),
                PATH_PART,
            )
        ),
        "file": draw(
            st.one_of(
                st.sampled_from(
                    ["display.js", "common.css", "nope.js", "..%2F..%2Fpyproject.toml"]
                ),
                PATH_PART,
            )
        ),
        "any": draw(PATH_PART),
    }
    path = template.format(**parts)
    pairs = [(k, draw(v)) for k, v in PAGE_VALUES.items() if draw(st.booleans())]
    for _ in range(draw(st.sampled_from([0, 1, 2, 4]))):
        pairs.insert(draw(st.integers(0, len(pairs))), (draw(KEY), draw(RAW_TEXT)))
    query = "&".join(f"{k}={v}" for k, v in pairs)
    return path + (f"?{query}" if query else ""), draw(HOSTS)


async def _get(port: int, target: str, host: str) -> Answer:
    request = f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    try:
        writer.write(request.encode("utf-8", "surrogateescape"))
        await writer.drain()
        status, headers = await _head(reader)
        return Answer(status, headers, await reader.read())
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def test_pages_answer_any_path_and_query_safely(served: Served) -> None:
    served.outcomes.clear()
    served.log.records.clear()

    @FUZZ
    @given(request=page_requests(served.hall, served.tickets))
    def one(request: tuple[str, str]) -> None:
        target, host = request
        answer = served.runner.run(
            asyncio.wait_for(_get(served.live.port, target, host), ANSWER_TIMEOUT_S)
        )
        tally("pages: paths, query strings and hosts")
        kind = answer.headers.get("content-type", "").split(";")[0]
        outcome = f"{answer.status} {kind}"
        served.outcomes[outcome] = served.outcomes.get(outcome, 0) + 1
        where = f"GET {target!r} Host {host!r} -> {answer.status}: {answer.body[:300]!r}"
        _check_logs(served, where)
        assert answer.status < 500, where
        assert b"Traceback" not in answer.body, where
        headers = answer.headers
        assert headers.get("x-content-type-options") == "nosniff", where
        assert headers.get("referrer-policy") == "no-referrer", where
        assert "frame-ancestors 'none'" in headers.get("content-security-policy", ""), where
        if kind in ("text/html", "image/svg+xml"):
            body = answer.body.decode("utf-8", "replace")
            for markup in MARKUP_STRINGS:
                assert markup not in body, f"markup came back unescaped: {where}"

    one()
    print("page outcomes:", dict(sorted(served.outcomes.items())))
    assert sum(served.outcomes.values()) >= min(EXAMPLES, 100)
    if EXAMPLES >= 200:
        assert {"200 text/html", "404 text/html"} <= served.outcomes.keys()
