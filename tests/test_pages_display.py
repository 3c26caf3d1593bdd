"""The screen pages in a real headless Chromium against a live server: the
hall screen shows and speaks calls, the strip follows its window, the
connection light follows the server, tokens are asked for and kept.

Screenshots land in each test's tmp_path and in /tmp/qms-screens/."""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from queue_core.redis_client import RedisClient

pytest.importorskip("playwright.async_api", reason="playwright is not installed")

from playwright.async_api import (
    Browser,
    Page,
    ViewportSize,
    WebSocketRoute,
)

from displays.gateway import GatewaySettings
from displays.hub import HubSettings
from displays.page_kit import STATIC_PATH
from queue_core.config import HallConfig
from queue_core.keys import HallKeys
from queue_core.scripts import Scripts
from queue_core.store import HallStore
from tests.browser import BROWSER_MARKS, fresh_page, keep_for_review, until
from tests.conftest import delete_hall
from tests.live import LiveServer, live_server, post
from tests.support import START_S, Clock, make_config

pytestmark = BROWSER_MARKS

DISPLAY = "display-token"
KIOSK = "kiosk-token"
CLERK1 = "clerk-1-token"
CLERK2 = "clerk-2-token"
ADMIN = "admin-token"
FAST = GatewaySettings(hub=HubSettings(heartbeat_s=1.0))
HD: ViewportSize = {"width": 1920, "height": 1080}

NEWEST = "document.getElementById('newest-call').dataset.number"
CONN = "document.getElementById('conn').dataset.state"


# ---------------------------------------------------------------- fixtures


@pytest.fixture
async def hall_config(tmp_path: Path, redis: RedisClient) -> AsyncIterator[HallConfig]:
    """The test hall plus w1..w8: twelve windows, a common hall's size."""
    config = make_config(tmp_path, extra_windows=8)
    yield config
    await delete_hall(redis, HallKeys(config.id))


@pytest.fixture
async def live(hall_config: HallConfig, redis_url: str) -> AsyncIterator[LiveServer]:
    async with live_server([hall_config], redis_url, gateway_settings=FAST) as server:
        yield server


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    async with fresh_page(browser, HD) as page:
        yield page


# ----------------------------------------------------------------- helpers


async def issue(live: LiveServer, hall: str, service: str = "social-security") -> str:
    ticket = await post(live, hall, "/tickets", KIOSK, service=service)
    return str(ticket["number"])


def display_url(live: LiveServer, hall: str, query: str = f"token={DISPLAY}") -> str:
    return f"{live.http}/halls/{hall}/display" + (f"?{query}" if query else "")


async def wait_live(page: Page, ms: float = 10_000) -> None:
    await until(page, f"{CONN} === 'live'", ms=ms)


async def shoot(page: Page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    await page.screenshot(path=str(path))
    keep_for_review(path)
    return path


def spoken(number: str) -> str:
    digits = "零一二三四五六七八九"
    letters = re.match(r"\D*", number)
    assert letters is not None
    prefix = letters.group()
    return prefix + " " + "".join(digits[int(d)] for d in number[len(prefix) :])


# ------------------------------------------------------------------- tests


async def test_a_call_is_on_screen_within_a_second(
    live: LiveServer, hall_config: HallConfig, page: Page, tmp_path: Path
) -> None:
    hall = hall_config.id
    await post(live, hall, "/windows/1/open", CLERK1)
    number = await issue(live, hall)
    await page.goto(display_url(live, hall))
    await wait_live(page)

    started = time.perf_counter()
    called = await post(live, hall, "/windows/1/call-next", CLERK1)
    answered = time.perf_counter()
    await until(page, f"{NEWEST} === arg", number, ms=1000)
    elapsed_ms = (time.perf_counter() - started) * 1000
    after_ms = (time.perf_counter() - answered) * 1000
    print(f"call-next to screen: {elapsed_ms:.0f} ms from the request, {after_ms:.0f} ms after")

    assert called["number"] == number
    assert elapsed_ms < 1000
    text = await page.inner_text("#newest-call")
    assert re.sub(r"\s+", " ", text).strip() == f"请 {number} 号 到 1号窗口"
    cell = page.locator('#window-grid [data-window="1"] .number')
    assert await cell.inner_text() == number


async def test_calls_are_announced_in_order_never_overlapping(
    live: LiveServer, hall_config: HallConfig, page: Page, tmp_path: Path
) -> None:
    hall = hall_config.id
    await post(live, hall, "/windows/1/open", CLERK1)
    await post(live, hall, "/windows/2/open", CLERK2)
    numbers = [await issue(live, hall) for _ in range(3)]
    await page.goto(display_url(live, hall))
    await wait_live(page)

    await post(live, hall, "/windows/1/call-next", CLERK1)
    first = f"请 {spoken(numbers[0])} 号，到 1号窗口 办理"
    await until(page, "window.qmsAnnouncer.log.includes(arg)", first)
    await post(live, hall, "/windows/1/recall", CLERK1)
    await until(page, "window.qmsAnnouncer.log.at(-1) === arg", f"再次呼叫，{first}")
    # Two windows call at once: both are spoken, in the order called.
    await post(live, hall, "/windows/1/call-next", CLERK1)
    await post(live, hall, "/windows/2/call-next", CLERK2)
    await until(
        page,
        "window.qmsAnnouncer.spoken.length === 4"
        " && window.qmsAnnouncer.history.every(h => h.end !== null)",
        ms=20_000,
    )
    log = await page.evaluate("window.qmsAnnouncer.log")
    assert log == [
        first,
        f"再次呼叫，{first}",
        f"请 {spoken(numbers[1])} 号，到 1号窗口 办理",
        f"请 {spoken(numbers[2])} 号，到 2号窗口 办理",
    ]
    assert await page.evaluate("window.qmsAnnouncer.spoken") == log
    history = await page.evaluate("window.qmsAnnouncer.history")
    for before, after in itertools.pairwise(history):
        assert after["start"] >= before["end"]
    # Headless Chromium has no voices: operators must see that.
    await page.wait_for_selector("#voice-warning", state="visible", timeout=5000)
    await shoot(page, tmp_path, "display-no-voice.png")


async def test_spoken_numbers_are_read_digit_by_digit(live: LiveServer, page: Page) -> None:
    await page.goto(f"{live.http}/halls/no-such-hall/display")  # a page: its CSP loads our scripts
    read = await page.evaluate(
        """async (path) => {
          const m = await import(path);
          return [m.spokenNumber("A023"), m.spokenNumber("B1005"),
                  m.callText("D100", "综合5号窗口"), m.callText("A001", "1号窗口", true)];
        }""",
        f"{STATIC_PATH}/announcer.js",
    )
    assert read == [
        "A 零二三",
        "B 一零零五",
        "请 D 一零零 号，到 综合5号窗口 办理",
        "再次呼叫，请 A 零零一 号，到 1号窗口 办理",
    ]


async def test_hall_state_follows_events(live: LiveServer, page: Page) -> None:
    """The pages' model of the hall (state.js), event by event."""
    await page.goto(f"{live.http}/halls/no-such-hall/display")  # a page: its CSP loads our scripts
    seen = await page.evaluate(
        """async (path) => {
          const { HallState } = await import(path);
          const s = new HallState({
            windows: [{ id: "1", name: "1号窗口" }, { id: "2", name: "2号" }],
          });
          s.reset({
            windows: [{ id: "1", status: "open", ticket: { number: "A001" } }],
            groups: [{ id: "natural", waiting: 2 }],
            recent_calls: [{ number: "A001", window: "1", at: "2026-11-21T09:00:00+08:00" }],
          });
          const at = "2026-11-21T09:01:00.000+08:00";
          const ev = (type, number, window, extra = {}) =>
            ({ type, number, window, at, waiting: { natural: 1 }, ...extra });
          const out = [];
          const look = () =>
            [...s.windows].map(([id, w]) => `${id}:${w.status}:${w.number}`).join(" ");
          out.push(look());
          out.push(JSON.stringify(s.apply(ev("called", "A002", "1"))), look());
          out.push(JSON.stringify(s.apply(ev("window", null, "1", { status: "paused" }))), look());
          s.apply(ev("window", null, "1", { status: "open" }));
          s.apply(ev("recalled", "A002", "1"));
          out.push(s.recent.map((c) => c.number).join(","));
          s.apply(ev("transferred", "A002", "1"));
          out.push(look());
          s.apply(ev("called", "A003", "1"));
          s.apply(ev("window", null, "1", { status: "closed" }));
          out.push(look(), JSON.stringify(s.waiting), s.windowName("2"));
          return out;
        }""",
        f"{STATIC_PATH}/state.js",
    )
    call = {"number": "A002", "window": "1", "at": "2026-11-21T09:01:00.000+08:00"}
    assert seen == [
        "1:open:A001 2:closed:null",
        json.dumps({**call, "recall": False}, separators=(",", ":")),
        "1:open:A002 2:closed:null",
        "null",
        "1:paused:A002 2:closed:null",
        "A002,A002,A001",
        "1:open:null 2:closed:null",
        "1:closed:null 2:closed:null",
        '{"natural":1}',
        "2号",
    ]


async def test_light_goes_red_without_the_server_and_the_screen_resumes(
    hall_config: HallConfig, redis_url: str, redis: RedisClient, page: Page, tmp_path: Path
) -> None:
    hall = hall_config.id
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    async with live_server([hall_config], redis_url, gateway_settings=FAST) as first:
        port = first.port
        await post(first, hall, "/windows/1/open", CLERK1)
        await page.goto(display_url(first, hall))
        await wait_live(page)
        dot = await page.eval_on_selector("#conn .dot", "e => getComputedStyle(e).backgroundColor")
        assert dot == "rgb(34, 197, 94)"

    await until(page, f"{CONN} === 'down'", ms=5000)
    dot = await page.eval_on_selector("#conn .dot", "e => getComputedStyle(e).backgroundColor")
    assert dot == "rgb(255, 59, 48)"
    await shoot(page, tmp_path, "display-disconnected.png")

    # A call made while the screen is cut off is not lost: it comes with `since`.
    store = HallStore(redis, Scripts.register(redis), hall_config)
    missed = (await store.issue("social-security")).value.ticket.number
    await store.call_next("1")

    async with live_server([hall_config], redis_url, port=port, gateway_settings=FAST) as second:
        await wait_live(page, ms=15_000)
        await until(page, f"{NEWEST} === arg", missed)
        assert "since=" in sockets[-1]
        number = await issue(second, hall)
        await post(second, hall, "/windows/1/call-next", CLERK1)
        await until(page, f"{NEWEST} === arg", number)
    # The token goes in each socket's first message, never in its URL.
    assert all("token" not in url and "auth=message" in url for url in sockets)
    assert all("page=display" in url for url in sockets)


class Tap:
    """Every socket of a page passes through here, and the test may mute one
    (a link that died without closing) or slip a frame into it."""

    def __init__(self) -> None:
        self.sockets: list[WebSocketRoute] = []
        self.muted: set[int] = set()

    def __call__(self, ws: WebSocketRoute) -> None:
        index = len(self.sockets)
        self.sockets.append(ws)
        server = ws.connect_to_server()

        def forward(message: str | bytes) -> None:
            if index not in self.muted:
                ws.send(message)

        server.on_message(forward)


async def tapped_display(page: Page, live: LiveServer, hall: str) -> Tap:
    tap = Tap()
    await page.route_web_socket(re.compile(r"/ws/halls/"), tap)
    await page.goto(display_url(live, hall))
    await until(page, "window.qmsLink.lastSeq !== null")
    return tap


async def test_a_silent_link_is_dropped_and_resumed(
    live: LiveServer, hall_config: HallConfig, page: Page
) -> None:
    hall = hall_config.id
    await post(live, hall, "/windows/1/open", CLERK1)
    tap = await tapped_display(page, live, hall)
    seq = await page.evaluate("window.qmsLink.lastSeq")
    tap.muted.add(0)
    # Heartbeats every second: 2.5 s of silence and the page gives up on it.
    await until(page, f"{CONN} === 'down'", ms=5000)
    await wait_live(page, ms=5000)
    assert len(tap.sockets) == 2
    assert f"since={seq}" in tap.sockets[1].url
    number = await issue(live, hall)
    await post(live, hall, "/windows/1/call-next", CLERK1)
    await until(page, f"{NEWEST} === arg", number)


async def test_a_gap_in_events_makes_the_page_catch_up(
    live: LiveServer, hall_config: HallConfig, page: Page
) -> None:
    hall = hall_config.id
    await post(live, hall, "/windows/1/open", CLERK1)
    tap = await tapped_display(page, live, hall)
    seq = await page.evaluate("window.qmsLink.lastSeq")
    # Events the page never gets, then a heartbeat that says they happened.
    tap.muted.add(0)
    number = await issue(live, hall)
    await post(live, hall, "/windows/1/call-next", CLERK1)
    tap.sockets[0].send(json.dumps({"type": "heartbeat", "seq": seq + 2, "at": "2026-11-21"}))
    await until(page, f"{NEWEST} === arg", number)
    assert len(tap.sockets) == 2
    assert f"since={seq}" in tap.sockets[1].url
    assert await page.evaluate("window.qmsLink.lastSeq") == seq + 2


async def test_the_token_leaves_the_address_bar_and_is_kept(
    live: LiveServer, hall_config: HallConfig, page: Page
) -> None:
    hall = hall_config.id
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    await page.goto(display_url(live, hall, f"token={DISPLAY}&screen=hall-a.1"))
    await wait_live(page)
    assert "token" not in page.url
    assert page.url.endswith("?screen=hall-a.1")
    assert "screen=hall-a.1" in sockets[-1] and "page=display" in sockets[-1]
    assert DISPLAY not in sockets[-1]
    # A reload (the hall PC restarting) needs no token in the URL any more.
    await page.goto(display_url(live, hall, ""))
    await wait_live(page)
    assert await page.is_hidden("#token-form")
    assert "screen=hall-a.1" in sockets[-1]


async def test_without_a_token_the_page_asks_for_one(
    live: LiveServer, hall_config: HallConfig, page: Page, tmp_path: Path
) -> None:
    await page.goto(display_url(live, hall_config.id, ""))
    await page.wait_for_selector("#token-form", state="visible", timeout=10_000)
    assert await page.is_hidden("#token-error")
    assert await page.evaluate(CONN) == "token"
    await shoot(page, tmp_path, "display-token-form.png")
    await page.fill("#token-input", DISPLAY)
    await page.press("#token-input", "Enter")
    await wait_live(page)
    assert await page.is_hidden("#token-form")


async def test_a_wrong_token_is_asked_again(
    live: LiveServer, hall_config: HallConfig, page: Page, tmp_path: Path
) -> None:
    hall = hall_config.id
    await page.goto(display_url(live, hall, "token=not-a-token"))
    await page.wait_for_selector("#token-error", state="visible", timeout=10_000)
    assert await page.is_visible("#token-form")
    assert "token" not in page.url
    await shoot(page, tmp_path, "display-token-rejected.png")
    # A kiosk token is a real credential, but not one a screen may use.
    await page.fill("#token-input", KIOSK)
    await page.click("#token-form button")
    await page.wait_for_selector("#token-error", state="visible", timeout=10_000)
    await page.fill("#token-input", DISPLAY)
    await page.click("#token-form button")
    await wait_live(page)
    # Kept: the next load goes straight in.
    await page.reload()
    await wait_live(page)


async def test_the_strip_follows_its_window(
    live: LiveServer, hall_config: HallConfig, browser: Browser, tmp_path: Path
) -> None:
    hall = hall_config.id
    await post(live, hall, "/windows/1/open", CLERK1)
    number = await issue(live, hall)
    await post(live, hall, "/windows/1/call-next", CLERK1)
    context = await browser.new_context(viewport={"width": 1280, "height": 200})
    page = await context.new_page()
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    try:
        await page.goto(f"{live.http}/halls/{hall}/windows/1/strip")
        await page.wait_for_selector("#token-form", state="visible", timeout=10_000)
        await shoot(page, tmp_path, "strip-token-form.png")
        await page.fill("#token-input", DISPLAY)
        await page.press("#token-input", "Enter")
        await wait_live(page)
        number_el = "document.getElementById('strip-number')"
        await until(page, f"{number_el}.dataset.number === arg", number)
        assert await page.inner_text(".strip-name") == "1号窗口"
        assert "page=strip" in sockets[-1] and "window=1" in sockets[-1]
        await shoot(page, tmp_path, "strip-number.png")

        # Another window's call leaves this strip alone.
        await post(live, hall, "/windows/2/open", CLERK2)
        await issue(live, hall)
        await post(live, hall, "/windows/2/call-next", CLERK2)
        await post(live, hall, "/windows/1/pause", CLERK1)
        await until(page, f"{number_el}.textContent === '暂停服务'")
        await shoot(page, tmp_path, "strip-paused.png")
        await post(live, hall, "/windows/1/open", CLERK1)
        await until(page, f"{number_el}.textContent === arg", number)
        await post(live, hall, "/windows/1/close", CLERK1)
        await until(page, f"{number_el}.textContent === '窗口关闭'")
        overflow = await page.evaluate(f"{number_el}.scrollWidth > {number_el}.clientWidth")
        assert not overflow
    finally:
        await context.close()


async def test_a_busy_hall_on_screen(
    live: LiveServer, hall_config: HallConfig, page: Page, tmp_path: Path
) -> None:
    """Several windows open, one paused, a few calls: the screenshot to look at."""
    hall = hall_config.id
    await post(live, hall, "/windows/1/open", CLERK1)
    await post(live, hall, "/windows/2/open", CLERK2)
    await post(live, hall, "/windows/3/open", CLERK2)
    await post(live, hall, "/windows/9/open", "clerk-9-token")
    for w in ("w1", "w2", "w3", "w5"):
        await post(live, hall, f"/windows/{w}/open", ADMIN)
    for service in ["social-security"] * 9 + ["business-licence"] * 3 + ["household"] * 4:
        await issue(live, hall, service)
    await page.goto(display_url(live, hall))
    await wait_live(page)
    for w, token in [("w1", ADMIN), ("w2", ADMIN), ("3", CLERK2), ("9", "clerk-9-token")]:
        await post(live, hall, f"/windows/{w}/call-next", token)
    await post(live, hall, "/windows/w5/call-next", ADMIN)
    await post(live, hall, "/windows/w5/pause", ADMIN)
    await post(live, hall, "/windows/2/call-next", CLERK2)
    last = await post(live, hall, "/windows/1/call-next", CLERK1)
    await until(page, f"{NEWEST} === arg", last["number"])
    await until(page, "document.querySelectorAll('#recent-list li').length === 6")
    assert await page.inner_text('[data-window="w5"] .number') == "暂停"
    assert await page.inner_text('[data-window="w4"] .number') == "—"
    waiting = await page.inner_text('#waiting-list [data-group="natural"] .count')
    assert waiting == "4"
    await assert_nothing_overflows(page)
    await shoot(page, tmp_path, "display-busy.png")


async def test_sixty_windows_still_fit(
    tmp_path: Path, redis_url: str, redis: RedisClient, page: Page
) -> None:
    config = make_config(tmp_path, extra_windows=56)
    try:
        async with live_server([config], redis_url, gateway_settings=FAST) as server:
            for i in range(1, 57, 3):
                await post(server, config.id, f"/windows/w{i}/open", ADMIN)
            for _ in range(12):
                await issue(server, config.id)
            await page.goto(display_url(server, config.id))
            await wait_live(page)
            for i in range(1, 37, 3):
                await post(server, config.id, f"/windows/w{i}/call-next", ADMIN)
            await until(page, "document.querySelector('[data-window=w34]').dataset.number !== ''")
            assert await page.locator("#window-grid .cell").count() == 60
            await assert_nothing_overflows(page)
            await shoot(page, tmp_path, "display-60-windows.png")
    finally:
        await delete_hall(redis, HallKeys(config.id))


async def assert_nothing_overflows(page: Page) -> None:
    """Every name and number whole and on screen, and no scrolling."""
    clipped = await page.evaluate(
        """() => [...document.querySelectorAll(
              '#window-grid .cell .number, #window-grid .cell .name, #newest-call,'
              + '#recent-list li, #waiting-list li, .hall-name, .clock')]
            .filter(e => {
              const box = e.getBoundingClientRect();
              return e.scrollWidth > e.clientWidth + 1
                || box.right > innerWidth || box.bottom > innerHeight;
            })
            .map(e => e.textContent)"""
    )
    assert clipped == []
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= HD["width"]


async def test_blocked_audio_offers_a_button_once(
    live: LiveServer, hall_config: HallConfig, page: Page, tmp_path: Path
) -> None:
    # Chromium as Playwright launches it keeps the desktop autoplay rule:
    # an AudioContext made without a user gesture stays suspended.
    await page.goto(display_url(live, hall_config.id))
    await wait_live(page)
    await page.wait_for_selector("#sound-enable", state="visible", timeout=10_000)
    await shoot(page, tmp_path, "display-enable-sound.png")
    await page.click("#sound-enable")
    await page.wait_for_selector("#sound-enable", state="hidden", timeout=10_000)
    assert await page.evaluate("localStorage.getItem('qms.sound')") == "on"
    # The button hides at the click; the audio context resumes a moment later.
    await until(page, "window.qmsAnnouncer.blocked === false")


async def test_unknown_hall_or_window_is_a_404_page(
    live: LiveServer, hall_config: HallConfig
) -> None:
    async with live.client() as client:
        for path in (
            "/halls/nowhere/display",
            "/halls/nowhere/windows/1/strip",
            f"/halls/{hall_config.id}/windows/99/strip",
        ):
            r = await client.get(path)
            assert r.status_code == 404, path
            assert r.headers["content-type"].startswith("text/html")
            assert "404" in r.text and "Traceback" not in r.text
        ok = await client.get(f"/halls/{hall_config.id}/windows/w3/strip")
    assert ok.status_code == 200
    assert "综合3号窗口" in ok.text
    assert ok.headers["cache-control"] == "no-store"


async def test_names_cannot_break_out_of_the_page(
    tmp_path: Path, redis_url: str, redis: RedisClient
) -> None:
    evil = '</script><script>alert("x")</script>&<b>'
    config = dataclasses.replace(make_config(tmp_path), name=evil)
    try:
        async with (
            live_server([config], redis_url) as server,
            httpx.AsyncClient(base_url=server.http) as client,
        ):
            r = await client.get(f"/halls/{config.id}/display")
    finally:
        await delete_hall(redis, HallKeys(config.id))
    assert r.status_code == 200
    assert "<script>alert" not in r.text
    found = re.search(r'<script type="application/json" id="qms-config">(.*?)</script>', r.text)
    assert found is not None
    embedded = json.loads(found.group(1))
    assert embedded["hall"]["name"] == evil
    assert embedded["windows"][0] == {"id": "1", "name": "1号窗口"}
    assert embedded["ws_path"] == f"/ws/halls/{config.id}/display"
    assert embedded["heartbeat_s"] == 10.0


# ------------------------------------------------------------ a hall's day

MANAGER = "manager-token"
HALL_BANNER = "document.getElementById('hall-closed')"


async def test_the_screen_shows_the_hall_closed_and_open_without_a_reload(
    live: LiveServer, hall_config: HallConfig, page: Page, tmp_path: Path
) -> None:
    hall = hall_config.id
    await post(live, hall, "/windows/1/open", CLERK1)
    number = await issue(live, hall)
    await issue(live, hall)  # still waiting when the hall closes: it expires
    await page.goto(display_url(live, hall))
    await wait_live(page)
    await post(live, hall, "/windows/1/call-next", CLERK1)
    await until(page, f"{NEWEST} === arg", number)
    assert await page.evaluate("document.body.dataset.hall") == "open"
    assert await page.locator("#hall-closed").is_hidden()
    await page.evaluate("window.sameLoad = true")
    spoken_before = await page.evaluate("window.qmsAnnouncer.log.length")

    await post(live, hall, "/close", MANAGER)
    # The event closes the screen at once; a read adds the next opening.
    await until(page, f"!{HALL_BANNER}.hidden && {HALL_BANNER}.dataset.opensAt !== ''")
    assert await page.locator("#newest-call").is_hidden()
    assert await page.inner_text("#hall-closed-title") == "今日服务已结束 Closed for today"
    assert await page.inner_text("#hall-next") == "下次开放 明天 00:00 opens tomorrow 00:00"
    # The ticket at the window is done, windows closed; nothing more is said.
    await until(
        page,
        "document.querySelector('#window-grid [data-window=\"1\"]').dataset.status === 'closed'",
    )
    assert await page.evaluate("window.qmsAnnouncer.log.length") == spoken_before
    assert await page.evaluate("window.sameLoad") is True
    await assert_nothing_overflows(page)
    await shoot(page, tmp_path, "display-closed.png")

    await post(live, hall, "/open", MANAGER)
    await until(page, f"{HALL_BANNER}.hidden")
    assert await page.evaluate("document.body.dataset.hall") == "open"
    assert await page.locator("#newest-call").is_visible()
    assert await page.evaluate("window.sameLoad") is True
    assert await page.evaluate("window.qmsAnnouncer.log.length") == spoken_before


HOURS = """
[hours]
mon = ["08:30-12:00", "13:30-17:30"]
sun = ["08:30-12:00"]
"""


async def test_outside_the_hours_the_screen_says_when_the_hall_opens(
    tmp_path: Path, redis: RedisClient, redis_url: str, page: Page
) -> None:
    config = make_config(tmp_path, extra=HOURS)
    # The screen's clock agrees with the server's: Saturday 09:00.
    await page.clock.install(time=START_S)
    try:
        async with live_server([config], redis_url, clock=Clock(), gateway_settings=FAST) as live:
            await page.goto(display_url(live, config.id))
            await wait_live(page)
            await until(page, f"!{HALL_BANNER}.hidden")
            assert await page.inner_text("#hall-closed-title") == "今日服务已结束 Closed for today"
            assert await page.inner_text("#hall-next") == "下次开放 明天 08:30 opens tomorrow 08:30"
    finally:
        await delete_hall(redis, HallKeys(config.id))


async def test_when_the_screen_calls_the_hall_closed(live: LiveServer, page: Page) -> None:
    """state.js: past the kiosk's last issue the screen still calls; outside
    the spans, or closed by a manager, it is closed; events say it first."""
    await page.goto(f"{live.http}/halls/no-such-hall/display")  # a page: its CSP loads our scripts
    seen = await page.evaluate(
        """async (path) => {
          const { HallState } = await import(path);
          const s = new HallState({ windows: [{ id: "1", name: "1号窗口" }] });
          const snap = (hall) => ({ seq: 5, hall, windows: [], groups: [], recent_calls: [] });
          const out = [];
          const opens = "2026-11-22T08:30:00+08:00";
          s.reset(snap({ open: true, in_span: true, closed_by_manager: false, opens_at: null }));
          out.push(s.hallClosed);
          s.reset(snap({ open: false, in_span: true, closed_by_manager: false, opens_at: opens }));
          out.push(s.hallClosed);
          s.reset(snap({ open: false, in_span: true, closed_by_manager: true, opens_at: opens }));
          out.push(s.hallClosed, s.opensAt);
          s.reset(snap({ open: false, in_span: false, closed_by_manager: false, opens_at: opens }));
          out.push(s.hallClosed);
          s.apply({ type: "hall", seq: 6, status: "open", number: null, window: null });
          out.push(s.hallClosed, s.opensAt);
          s.apply({ type: "hall", seq: 7, status: "closed", number: null, window: null });
          out.push(s.hallClosed);
          s.reset({ seq: 8, windows: [{ id: "1", status: "open", ticket: { number: "A001" } }],
                    groups: [], recent_calls: [] });
          s.apply({ type: "parked", seq: 9, number: "A001", window: "1" });
          out.push(s.hallClosed, s.windows.get("1").number);
          return out;
        }""",
        f"{STATIC_PATH}/state.js",
    )
    assert seen == [
        False,
        False,
        True,
        "2026-11-22T08:30:00+08:00",
        True,
        False,
        None,
        True,
        False,
        None,
    ]
