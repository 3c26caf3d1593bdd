"""Visitors kept informed, on the pages, in a real headless Chromium against a
live server: the visitor page's 提醒我 (a notification and a buzz when one
is ahead and when called, from the page alone, and in words where the
browser cannot notify), 我需要晚一点 (snooze) and the near-front state; the
kiosk's optional mobile number for a long wait (and 不用了); the remote
page's reminder number.

Notifications are caught by wrapping `window.Notification` before the page's
scripts run (the context grants the permission), vibrations by replacing
`navigator.vibrate`. Screenshots land in each test's tmp_path and in
/tmp/qms-screens/notify-*.png."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("playwright.async_api", reason="playwright is not installed")

from playwright.async_api import Browser, Page, Request, Route

from queue_core.config import HallConfig
from queue_core.keys import HallKeys
from queue_core.redis_client import RedisClient
from tests.browser import BROWSER_MARKS, fresh_page, keep_for_review, until
from tests.conftest import delete_hall
from tests.live import LiveServer, live_server, post
from tests.notify_receiver import Receiver
from tests.support import make_config, notify_toml
from tests.test_pages_kiosk import (
    PORTRAIT,
    SCREEN,
    assert_fits,
    open_kiosk,
    service_button,
    shown_ticket,
)
from tests.test_pages_visitor import PHONE

pytestmark = BROWSER_MARKS

KIOSK = "kiosk-token"
CLERK1 = "clerk-1-token"
CLERK2 = "clerk-2-token"
REMOTE = "enabled = true\nper_client_per_hour = 50"
PHONE_REMOTE = "enabled = true\nrequire_phone = true\nper_client_per_hour = 50"
MOBILE = "13912345678"

VIEW = "document.body.dataset.view"
NOTES = "(window.qmsNotes ?? []).length"

# Before the page's scripts: every Notification constructed is recorded (and
# still made), every vibration recorded.
RECORD = """
window.qmsNotes = [];
if (window.Notification) {
  const Real = window.Notification;
  window.Notification = class extends Real {
    constructor(title, options = {}) {
      window.qmsNotes.push({ title, body: options.body ?? "", tag: options.tag ?? "" });
      super(title, options);
    }
  };
}
navigator.vibrate = (p) => { (window.qmsVibrations ||= []).push(p); return true; };
"""

# A browser without the API (most in-app browsers, iOS Safari outside a
# home-screen app).
NO_API = RECORD + "delete window.Notification;"

# A visitor who answers the browser's question with "Block".
REFUSES = (
    RECORD
    + """
let answer = "default";
Object.defineProperty(window.Notification, "permission", { get: () => answer });
window.Notification.requestPermission = () => {
  window.qmsAsked = (window.qmsAsked ?? 0) + 1;
  answer = "denied";
  return Promise.resolve(answer);
};
"""
)


# Chrome on Android: no constructor, notifications only through a service
# worker's registration (recorded here).
ANDROID = """
window.qmsShown = [];
window.Notification = class extends window.Notification {
  constructor() {
    throw new TypeError("Illegal constructor");
  }
};
const show = ServiceWorkerRegistration.prototype.showNotification;
ServiceWorkerRegistration.prototype.showNotification = function (title, options) {
  window.qmsShown.push({ title, body: options.body, url: options.data.url });
  return show.call(this, title, options);
};
"""


def notify_section(url: str, ask_minutes: float) -> str:
    return f'[notify]\nurl = "{url}"\nahead = [3, 1]\nkiosk_ask_minutes = {ask_minutes}\n'


# ---------------------------------------------------------------- fixtures


@dataclass
class Halls:
    plain: HallConfig
    """No gateway; remote tickets; snoozing up to 30 minutes (the default)."""
    gw: HallConfig
    """A gateway; the kiosk asks from a 15-minute wait; remote tickets."""
    always: HallConfig
    """A gateway; the kiosk always asks; remote tickets need a mobile number."""


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


@pytest.fixture
async def halls(tmp_path: Path, redis: RedisClient, receiver: Receiver) -> AsyncIterator[Halls]:
    made = Halls(
        make_config(tmp_path, remote=REMOTE),
        make_config(tmp_path, remote=REMOTE, extra=notify_toml(receiver.url)),
        make_config(tmp_path, remote=PHONE_REMOTE, extra=notify_section(receiver.url, 0)),
    )
    yield made
    for config in (made.plain, made.gw, made.always):
        await delete_hall(redis, HallKeys(config.id))


@pytest.fixture
async def live(halls: Halls, redis_url: str) -> AsyncIterator[LiveServer]:
    async with live_server([halls.plain, halls.gw, halls.always], redis_url) as server:
        yield server


async def phone(browser: Browser, init: str, *, grant: bool) -> tuple[Page, list[str]]:
    """A fresh phone (empty storage) at 390×844 with `init` run before the
    page's scripts; the notification permission granted when `grant`."""
    context = await browser.new_context(
        viewport=PHONE,
        locale="zh-CN",
        is_mobile=True,
        has_touch=True,
        permissions=["notifications"] if grant else [],
    )
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.add_init_script(init)
    return page, errors


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A phone that allows notifications; fails the test on any script error."""
    page, errors = await phone(browser, RECORD, grant=True)
    yield page
    await page.context.close()
    assert errors == []


@pytest.fixture
async def kiosk(browser: Browser) -> AsyncIterator[Page]:
    async with fresh_page(browser, PORTRAIT) as page:
        yield page


# ----------------------------------------------------------------- helpers


async def get(live: LiveServer, hall: str, path: str) -> Any:
    r = await live.api.get(f"/api/v1/halls/{hall}{path}")
    assert r.status_code == 200, r.text
    return r.json()


async def issue(live: LiveServer, hall: str, service: str = "social-security") -> dict[str, Any]:
    ticket = await post(live, hall, "/tickets", KIOSK, service=service)
    assert isinstance(ticket, dict)
    return ticket


def ticket_url(live: LiveServer, hall: str, ticket_id: str) -> str:
    return f"{live.http}/halls/{hall}/tickets/{ticket_id}"


async def text(page: Page, selector: str) -> str:
    return re.sub(r"\s+", " ", await page.inner_text(selector)).strip()


async def shoot(page: Page, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"notify-{name}.png"
    await page.screenshot(path=str(path))
    keep_for_review(path)


def posts_to(page: Page, path_end: str) -> list[dict[str, Any]]:
    """The bodies of the page's POSTs to a URL ending in `path_end`, as sent."""
    bodies: list[dict[str, Any]] = []

    def seen(request: Request) -> None:
        if request.method == "POST" and request.url.endswith(path_end):
            bodies.append(json.loads(request.post_data or "{}"))

    page.on("request", seen)
    return bodies


async def notify_entry(redis: RedisClient, hall: str, ticket_id: str) -> Any:
    """Where the hall's gateway is to reach a ticket's visitor (None: nowhere)."""
    raw = await redis.hget(HallKeys(hall).notify, ticket_id)
    return None if raw is None else json.loads(raw)


async def assert_no_number(page: Page, *numbers: str) -> None:
    """No mobile number (as typed or grouped) in the document, its fields,
    what the page exposes or its storage."""
    found = await page.evaluate(
        """(numbers) => {
            const values = Array.from(document.querySelectorAll('input'), (i) => i.value);
            const all = (document.documentElement.outerHTML + values.join(' ')
                + JSON.stringify(window.qmsKiosk ?? null) + JSON.stringify({...localStorage})
                + JSON.stringify({...sessionStorage})).replace(/\\s/g, '');
            return numbers.filter((n) => all.includes(n));
        }""",
        list(numbers),
    )
    assert found == []


# ------------------------------------------------------------- 提醒我


async def test_remind_me_tells_when_one_is_ahead_and_when_called(
    live: LiveServer, halls: Halls, page: Page, tmp_path: Path
) -> None:
    hall = halls.plain.id  # no gateway: the page alone
    await issue(live, hall)
    await issue(live, hall)
    mine = await issue(live, hall)
    url = ticket_url(live, hall, mine["id"])
    await page.goto(url)
    await until(page, f"{VIEW} === 'waiting'")
    assert await text(page, "#ahead") == "2 人"
    switch = page.locator("#remind")
    assert await switch.get_attribute("role") == "switch"
    assert await switch.get_attribute("aria-checked") == "false"
    assert await text(page, "#remind") == "提醒我"
    assert await text(page, "#remind-state") == (
        "开启后，前面只剩 1 人和叫到您时，手机会弹出通知并振动。"
    )
    assert await page.is_hidden("#near")

    await switch.click()
    assert await switch.get_attribute("aria-checked") == "true"
    assert await text(page, "#remind-state") == (
        "已开启：前面只剩 1 人和叫到您时，手机会弹出通知并振动。请不要关闭本页。"
    )
    key = f"qms.remind.{hall}.{mine['id']}"
    saved = json.loads(await page.evaluate(f"localStorage.getItem('{key}')"))
    assert saved["on"] is True
    assert await page.evaluate(NOTES) == 0
    await shoot(page, tmp_path, "remind-on")

    # One ahead: told once, with a buzz, and the page turns amber.
    await post(live, hall, "/windows/1/open", CLERK1)
    await post(live, hall, "/windows/1/call-next", CLERK1)
    await until(page, f"{NOTES} === 1")
    [note] = await page.evaluate("window.qmsNotes")
    assert note["title"] == f"{mine['number']} 号：前面还有 1 人"
    assert note["body"] == "马上到您了，请到等候区，留意叫号。"
    assert await page.evaluate("window.qmsVibrations") == [[200, 100, 200]]
    assert await text(page, "#near") == "马上到您了 请到等候区，留意叫号。"
    assert await text(page, "#status-line") == "前面只剩 1 人"
    assert await page.evaluate("document.body.classList.contains('is-near')")
    assert (await page.title()).startswith("【马上到您了】")
    await until(page, "window.qmsVisitor.reminded.every((r) => r.shown)")
    await shoot(page, tmp_path, "remind-near")

    # Opened again: the switch is remembered, and nothing is told twice.
    await page.reload()
    await until(page, f"{VIEW} === 'waiting' && window.qmsVisitor.polls >= 2")
    assert await switch.get_attribute("aria-checked") == "true"
    assert await page.evaluate(NOTES) == 0
    # Next in line: still the same approach, not told again.
    await post(live, hall, "/windows/1/call-next", CLERK1)
    await until(page, "document.getElementById('ahead').textContent === '0 人'")
    assert await text(page, "#status-line") == "下一位就是您，请到窗口附近等候"
    assert await page.is_visible("#near")
    assert await page.evaluate(NOTES) == 0

    # Called: told, buzzed once.
    await post(live, hall, "/windows/1/call-next", CLERK1)
    await until(page, f"{NOTES} === 1")
    [note] = await page.evaluate("window.qmsNotes")
    assert note["title"] == f"{mine['number']} 号：请到1号窗口办理"
    assert await page.evaluate("window.qmsVibrations") == [[300, 150, 300]]
    assert await page.title() == "【请到1号窗口】测试政务服务中心"
    assert await page.is_hidden("#remind-area") and await page.is_hidden("#near")
    # Done: the switch is forgotten with the ticket.
    await post(live, hall, "/windows/1/complete", CLERK1)
    await until(page, f"{VIEW} === 'completed'")
    assert await page.evaluate(f"localStorage.getItem('{key}')") is None


@pytest.mark.parametrize("browser_kind", ["no_api", "refused"])
async def test_remind_me_where_the_browser_cannot_notify(
    live: LiveServer, halls: Halls, browser: Browser, browser_kind: str, tmp_path: Path
) -> None:
    hall = halls.plain.id
    init = NO_API if browser_kind == "no_api" else REFUSES
    page, errors = await phone(browser, init, grant=False)
    try:
        await issue(live, hall)
        await issue(live, hall)
        mine = await issue(live, hall)
        await page.goto(ticket_url(live, hall, mine["id"]))
        await until(page, f"{VIEW} === 'waiting'")
        if browser_kind == "no_api":
            # Said before it is turned on: what the switch can still do.
            assert await text(page, "#remind-state") == (
                "这个浏览器现在不能为本页弹出通知。开启后，本页开着时，"
                "前面只剩 1 人和叫到您时会醒目提示，手机支持时还会振动。"
            )
        await page.click("#remind")
        await until(
            page, "document.getElementById('remind').getAttribute('aria-checked') === 'true'"
        )
        expected = {
            "no_api": "这个浏览器不能弹出通知。请不要关闭本页：快到您和叫到您时，"
            "本页会醒目提示，手机支持时还会振动。",
            "refused": "浏览器没有允许本页发通知（可在浏览器的网站设置中打开）。"
            "请不要关闭本页：快到您和叫到您时，本页会醒目提示，手机支持时还会振动。",
        }[browser_kind]
        await until(page, "document.getElementById('remind-state').textContent === arg", expected)
        if browser_kind == "refused":
            assert await page.evaluate("window.qmsAsked") == 1
        await shoot(page, tmp_path, f"remind-{browser_kind}")

        # Still told on the page and with a buzz.
        await post(live, hall, "/windows/1/open", CLERK1)
        await post(live, hall, "/windows/1/call-next", CLERK1)
        await until(page, "window.qmsVisitor.reminded.length === 1")
        assert await page.evaluate("window.qmsVisitor.reminded") == [
            {"kind": "near", "shown": False}
        ]
        assert await page.evaluate("window.qmsVibrations") == [[200, 100, 200]]
        assert await page.is_visible("#near")
        assert await page.evaluate(NOTES) == 0
    finally:
        await page.context.close()
    assert errors == []


async def test_remind_me_through_a_service_worker(
    live: LiveServer, halls: Halls, browser: Browser
) -> None:
    hall = halls.plain.id
    page, errors = await phone(browser, ANDROID, grant=True)
    try:
        await issue(live, hall)
        mine = await issue(live, hall)
        url = ticket_url(live, hall, mine["id"])
        await page.goto(url)
        await until(page, f"{VIEW} === 'waiting'")
        await page.click("#remind")
        await post(live, hall, "/windows/1/open", CLERK1)
        await post(live, hall, "/windows/1/call-next", CLERK1)
        await post(live, hall, "/windows/1/call-next", CLERK1)
        await until(page, "window.qmsVisitor.reminded.length === 1")
        await until(page, "window.qmsVisitor.reminded[0].shown")
        assert await page.evaluate("window.qmsShown") == [
            {
                "title": f"{mine['number']} 号：请到1号窗口办理",
                "body": "已叫到您的号。",
                "url": url,
            }
        ]
    finally:
        await page.context.close()
    assert errors == []


# ---------------------------------------------------------- 我需要晚一点


async def test_snooze_moves_the_place_and_is_offered_once(
    live: LiveServer, halls: Halls, page: Page, browser: Browser, tmp_path: Path
) -> None:
    hall = halls.plain.id
    mine = await issue(live, hall)
    for _ in range(3):
        await issue(live, hall)
    url = ticket_url(live, hall, mine["id"])
    await page.goto(url)
    await until(page, f"{VIEW} === 'waiting'")
    # At the front: the near-front state.
    assert await text(page, "#near") == "马上到您了 请到等候区，留意叫号。"
    assert await text(page, "#snooze") == "我需要晚一点"

    # A second phone holding the link, whose last look was before the snooze.
    other, other_errors = await phone(browser, RECORD, grant=False)
    stale = json.dumps(await get(live, hall, f"/tickets/{mine['id']}"))
    api_url = url.replace("/halls/", "/api/v1/halls/")

    async def hold(route: Route, request: Request) -> None:
        if request.method == "GET":
            await route.fulfill(status=200, content_type="application/json", body=stale)
        else:
            await route.continue_()

    await other.route(api_url, hold)
    await other.goto(url)
    await until(other, f"{VIEW} === 'waiting'")

    await page.click("#snooze")
    await page.wait_for_selector("#snooze-dialog", state="visible")
    choices = await page.locator("#snooze-choices label").all_inner_texts()
    assert [c.strip() for c in choices] == [f"{m} 分钟" for m in (5, 10, 15, 20, 25, 30)]
    assert await text(page, "#snooze-yes") == "顺延 5 分钟"
    await page.click("#snooze-choices label:has-text('10 分钟')")
    assert await text(page, "#snooze-yes") == "顺延 10 分钟"
    await shoot(page, tmp_path, "snooze-dialog")
    await page.click("#snooze-yes")

    # The new place at once, from the answer; the offer gone.
    await page.wait_for_selector("#snoozed", state="visible")
    stored = await get(live, hall, f"/tickets/{mine['id']}")
    assert stored["position"] == 3 and stored["snoozed_until"] is not None
    assert await text(page, "#ahead") == "3 人"
    until_at = stored["snoozed_until"][11:16]
    assert await text(page, "#snoozed-title") == f"已为您顺延至 {until_at}"
    assert await page.is_hidden("#snooze-area")
    assert await page.is_hidden("#near")
    assert await text(page, "#status-line") == "排队中，请留意叫号"
    await shoot(page, tmp_path, "snoozed")
    await page.reload()
    await page.wait_for_selector("#snoozed", state="visible")
    assert await page.is_hidden("#snooze-area")

    # The stale phone's attempt is refused in words, then it catches up.
    await other.click("#snooze")
    await other.click("#snooze-yes")
    await other.wait_for_selector("#snooze-error", state="visible")
    assert await text(other, "#snooze-error") == "这个号已经顺延过一次，不能再顺延。"
    await other.unroute(api_url)
    await other.wait_for_selector("#snoozed", state="visible")
    assert await other.is_hidden("#snooze-area")
    await other.context.close()
    assert other_errors == []


# ------------------------------------------------------------------ kiosk


async def test_the_kiosk_asks_for_a_number_only_for_a_long_wait(
    live: LiveServer, halls: Halls, kiosk: Page, redis: RedisClient, tmp_path: Path
) -> None:
    hall = halls.gw.id  # asks from 15 minutes
    await post(live, hall, "/windows/2/open", CLERK2)  # natural
    await post(live, hall, "/windows/3/open", CLERK2)  # legal, nobody waiting
    for _ in range(3):
        await issue(live, hall)
    posts = posts_to(kiosk, "/tickets")
    await open_kiosk(kiosk, live, hall)
    services = {s["id"]: s for s in await kiosk.evaluate("window.qmsKiosk.services.services")}
    assert services["social-security"]["eta_seconds"] >= 15 * 60
    assert services["business-licence"]["eta_seconds"] < 15 * 60

    # A short wait: straight to the ticket.
    await service_button(kiosk, "business-licence").click()
    ticket = await shown_ticket(kiosk)
    assert ticket["notify"] is False and posts == [{"service": "business-licence"}]
    await kiosk.click("#done")
    await until(kiosk, f"{SCREEN} === 'start'")

    # A long one: the number step, with its keypad.
    await service_button(kiosk, "social-security").click()
    await until(kiosk, f"{SCREEN} === 'notify'")
    assert await kiosk.inner_text("#screen-notify .prompt") == "留下手机号，快到时短信提醒您"
    wait = await kiosk.inner_text("#notify-wait")
    assert re.fullmatch(r"「社保医保」现在约需等候 \d+ 分钟", wait), wait
    keys = await kiosk.locator("#notify-keypad button[data-phonekey]").all_inner_texts()
    assert sorted(keys) == list("0123456789")
    assert await kiosk.inner_text("#notify-skip") == "不用了，直接取号"
    await assert_fits(kiosk)
    for c in MOBILE[:-1]:
        await kiosk.click(f'#notify-keypad button[data-phonekey="{c}"]')
    assert await kiosk.input_value("#notify-input") == "139 1234 567"
    await kiosk.click("#notify-submit")
    await kiosk.locator("#notify-error").wait_for(state="visible")
    assert await kiosk.inner_text("#notify-error") == "手机号码应为 11 位，请核对后重新输入"
    assert len(posts) == 1  # caught on the kiosk, nothing sent
    await kiosk.click(f'#notify-keypad button[data-phonekey="{MOBILE[-1]}"]')
    assert await kiosk.locator("#notify-error").is_hidden()
    await shoot(kiosk, tmp_path, "kiosk-number")
    await kiosk.click("#notify-submit")
    ticket = await shown_ticket(kiosk)
    assert posts[1] == {"service": "social-security", "notify": {"phone": MOBILE}}
    assert ticket["notify"] is True
    assert (await get(live, hall, f"/tickets/{ticket['id']}"))["notify"] is True
    entry = await notify_entry(redis, hall, ticket["id"])
    assert (entry["to"], entry["via"]) == (MOBILE, "phone")
    assert await kiosk.inner_text("#ticket-notify") == "快到您和叫到您时，会发短信提醒您"
    # Gone from the page once answered; never on the slip.
    await assert_no_number(kiosk, MOBILE)
    assert MOBILE not in await kiosk.inner_text("#receipt")

    # 不用了: the same long wait, issued without a number.
    await kiosk.click("#done")
    await service_button(kiosk, "social-security").click()
    await until(kiosk, f"{SCREEN} === 'notify'")
    assert await kiosk.input_value("#notify-input") == ""
    await kiosk.click("#notify-skip")
    ticket = await shown_ticket(kiosk)
    assert posts[2] == {"service": "social-security"}
    assert ticket["notify"] is False
    assert await kiosk.locator("#ticket-notify").is_hidden()
    assert await notify_entry(redis, hall, ticket["id"]) is None


async def test_a_kiosk_that_always_asks_and_one_that_never_does(
    live: LiveServer, halls: Halls, kiosk: Page, tmp_path: Path
) -> None:
    posts = posts_to(kiosk, "/tickets")
    # kiosk_ask_minutes = 0: asked however short the wait, in elderly mode too.
    await post(live, halls.always.id, "/windows/3/open", CLERK2)
    await open_kiosk(kiosk, live, halls.always.id)
    await kiosk.click("#go-elderly")
    await service_button(kiosk, "business-licence", "elderly").click()
    await until(kiosk, f"{SCREEN} === 'notify'")
    await shoot(kiosk, tmp_path, "kiosk-elderly")
    await assert_fits(kiosk)
    # 返回 goes back where it came from, without a ticket; a keyboard types too.
    await kiosk.keyboard.type("1391234")
    assert await kiosk.input_value("#notify-input") == "139 1234"
    await kiosk.click("#notify-back")
    await until(kiosk, f"{SCREEN} === 'elderly'")
    assert posts == []
    await assert_no_number(kiosk, "1391234")

    # No gateway: never asked, even for an unknown wait.
    await open_kiosk(kiosk, live, halls.plain.id)
    await service_button(kiosk, "social-security").click()
    ticket = await shown_ticket(kiosk)
    assert ticket["notify"] is False and posts == [{"service": "social-security"}]


# ----------------------------------------------------------------- remote


async def test_the_remote_page_offers_a_reminder_number(
    live: LiveServer, halls: Halls, page: Page, redis: RedisClient, tmp_path: Path
) -> None:
    posts = posts_to(page, "/remote/tickets")
    # No gateway: nothing offered.
    await page.goto(f"{live.http}/halls/{halls.plain.id}/remote")
    await until(page, f"{VIEW} === 'offer'")
    assert await page.is_hidden("#notify-area")

    hall = halls.gw.id
    await page.goto(f"{live.http}/halls/{hall}/remote")
    await until(page, f"{VIEW} === 'offer'")
    assert await page.is_visible("#notify-area")
    assert await text(page, "#notify-area .notify-title") == "快到时短信提醒我"
    assert await page.is_hidden("#notify-same-row") and await page.is_hidden("#phone-area")
    await page.fill("#notify-phone", "12345")
    await page.click('[data-service="household"]')
    await page.wait_for_selector("#notify-error", state="visible")
    assert await text(page, "#notify-error") == (
        "提醒用的手机号码格式不正确：请输入 11 位手机号，或者清空不填。"
    )
    assert await page.get_attribute("#notify-phone", "aria-invalid") == "true"
    assert posts == []
    await shoot(page, tmp_path, "remote-bad-number")
    await page.fill("#notify-phone", "139 1234 5678")
    await page.click('[data-service="household"]')
    await page.wait_for_url(re.compile(r"/tickets/[A-Za-z0-9_-]{22}$"))
    assert posts == [{"service": "household", "notify": {"phone": MOBILE}}]
    await until(page, f"{VIEW} === 'waiting'")
    assert await text(page, "#notify-on") == "已登记提醒：快到您和叫到您时，大厅会发消息给您。"
    ticket_id = page.url.rsplit("/", 1)[1]
    assert (await get(live, hall, f"/tickets/{ticket_id}"))["notify"] is True
    assert (await notify_entry(redis, hall, ticket_id))["to"] == MOBILE

    # A hall that asks for the number anyway: one tick uses it.
    hall = halls.always.id
    await page.goto(f"{live.http}/halls/{hall}/remote")
    await until(page, f"{VIEW} === 'offer'")
    assert await page.is_visible("#phone-area") and await page.is_visible("#notify-same-row")
    assert await text(page, "#notify-same-row") == "用上面的手机号接收提醒"
    await page.fill("#phone", "13800138000")
    await page.check("#notify-same")
    assert await page.is_hidden("#notify-own")
    await shoot(page, tmp_path, "remote-same-number")
    await page.click('[data-service="social-security"]')
    await page.wait_for_url(re.compile(r"/tickets/[A-Za-z0-9_-]{22}$"))
    assert posts[1] == {
        "service": "social-security",
        "phone": "13800138000",
        "notify": {"phone": "13800138000"},
    }
