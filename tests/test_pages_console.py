"""The clerk console in a real headless Chromium against a live server: sign
in, open the window, see the queue in dispatch order, call, transfer,
no-show, recall, complete, call out of turn, keyboard shortcuts, refusals in
words, and changes made elsewhere arriving within a second.

Screenshots land in each test's tmp_path and in /tmp/qms-screens/."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("playwright.async_api", reason="playwright is not installed")

from playwright.async_api import Browser, Page, ViewportSize

from displays.gateway import GatewaySettings
from displays.hub import HubSettings
from queue_core.config import HallConfig
from tests.browser import BROWSER_MARKS, fresh_page, keep_for_review, until
from tests.live import LiveServer, live_server, post

pytestmark = BROWSER_MARKS

KIOSK = "kiosk-token"
CLERK1 = "clerk-1-token"
CLERK2 = "clerk-2-token"
FAST = GatewaySettings(hub=HubSettings(heartbeat_s=1.0))
SMALL: ViewportSize = {"width": 1366, "height": 768}
HD: ViewportSize = {"width": 1920, "height": 1080}

SIGNED_IN = "document.body.dataset.signedIn === 'true'"
LIVE = "document.getElementById('conn').dataset.state === 'live'"
CURRENT = "document.getElementById('current').dataset.number"
STATUS = "document.getElementById('window-status').dataset.status"
MESSAGE = "document.getElementById('message')"
WAITING = "Array.from(document.querySelectorAll('#waiting-body tr'), (r) => r.dataset.number)"


# ---------------------------------------------------------------- fixtures


@pytest.fixture
async def live(hall_config: HallConfig, redis_url: str) -> AsyncIterator[LiveServer]:
    async with live_server([hall_config], redis_url, gateway_settings=FAST) as server:
        yield server


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    async with fresh_page(browser, SMALL) as page:
        yield page


# ----------------------------------------------------------------- helpers


async def issue(
    live: LiveServer, hall: str, service: str = "social-security", priority: str = "normal"
) -> dict[str, Any]:
    ticket: dict[str, Any] = await post(
        live, hall, "/tickets", KIOSK, service=service, priority=priority
    )
    return ticket


async def ticket(live: LiveServer, hall: str, ticket_id: str) -> dict[str, Any]:
    r = await live.api.get(f"/api/v1/halls/{hall}/tickets/{ticket_id}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def console_url(live: LiveServer, hall: str, window: str = "1", token: str | None = CLERK1) -> str:
    url = f"{live.http}/halls/{hall}/windows/{window}"
    return f"{url}?token={token}" if token else url


async def signed_in(page: Page, live: LiveServer, hall: str, window: str = "1") -> None:
    """Open the console with the clerk's token and wait until its link is live
    (so events from now on reach it)."""
    await page.goto(console_url(live, hall, window))
    await until(page, SIGNED_IN, ms=10_000)
    await until(page, LIVE, ms=10_000)


async def message(page: Page, kind: str, text: str, ms: float = 10_000) -> None:
    await until(
        page,
        f"{MESSAGE}.dataset.kind === arg[0] && {MESSAGE}.textContent.includes(arg[1])",
        [kind, text],
        ms=ms,
    )


async def waiting_list(page: Page) -> list[str]:
    numbers: list[str] = await page.evaluate(f"() => {WAITING}")
    return numbers


async def until_waiting(page: Page, numbers: list[str], ms: float = 10_000) -> None:
    await until(page, f"JSON.stringify({WAITING}) === JSON.stringify(arg)", numbers, ms=ms)


async def shoot(page: Page, tmp_path: Path, name: str) -> None:
    """The page at both desk sizes, as `console-<name>-<w>x<h>.png`."""
    for size in (SMALL, HD):
        await page.set_viewport_size(size)
        path = tmp_path / f"console-{name}-{size['width']}x{size['height']}.png"
        await page.screenshot(path=str(path))
        keep_for_review(path)
    await page.set_viewport_size(SMALL)


# ------------------------------------------------------------------- pages


async def test_unknown_window_or_hall_is_a_404_page(
    live: LiveServer, hall_config: HallConfig
) -> None:
    for path in (f"/halls/{hall_config.id}/windows/77", "/halls/nowhere/windows/1"):
        r = await live.api.get(path)
        assert r.status_code == 404
        assert "text/html" in r.headers["content-type"]
        assert "没有这个" in r.text
    r = await live.api.get(f"/halls/{hall_config.id}/windows/1")
    assert r.status_code == 200
    assert "1号窗口" in r.text and "测试政务服务中心" in r.text
    assert "script-src 'self'" in r.headers["content-security-policy"]


# ----------------------------------------------------------------- sign-in


async def test_the_token_in_the_url_is_kept_and_dropped(
    live: LiveServer, hall_config: HallConfig, page: Page
) -> None:
    hall = hall_config.id
    await signed_in(page, live, hall)
    assert "token" not in page.url
    kept = await page.evaluate(f"() => localStorage.getItem('qms.token.{hall}.console.1')")
    assert kept == CLERK1
    # Reloaded without the token: still signed in.
    await page.reload()
    await until(page, SIGNED_IN, ms=10_000)
    assert await page.locator("#token-form").is_hidden()
    # Signing out forgets it and asks again.
    await page.click("#sign-out")
    await until(page, "!document.getElementById('token-form').hidden")
    assert await page.evaluate(f"() => localStorage.getItem('qms.token.{hall}.console.1')") is None


async def test_without_a_token_the_console_asks_for_one(
    live: LiveServer, hall_config: HallConfig, page: Page, tmp_path: Path
) -> None:
    hall = hall_config.id
    await page.goto(console_url(live, hall, token=None))
    await until(page, "!document.getElementById('token-form').hidden")
    assert await page.locator("#desk").is_hidden()
    assert await page.evaluate("() => document.activeElement.id") == "token-input"
    await shoot(page, tmp_path, "signin")

    await page.fill("#token-input", "wrong-token")
    await page.press("#token-input", "Enter")
    await until(page, "document.getElementById('token-error').textContent.includes('令牌无效')")
    await page.fill("#token-input", CLERK1)
    await page.click("#token-form button[type=submit]")
    await until(page, SIGNED_IN, ms=10_000)
    assert await page.locator("#token-form").is_hidden()


async def test_another_clerks_window_is_refused_in_words(
    live: LiveServer, hall_config: HallConfig, page: Page
) -> None:
    hall = hall_config.id
    # clerk-2 works windows 2 and 3, not 1.
    await page.goto(console_url(live, hall, "1", CLERK2))
    error = page.locator("#token-error")
    await error.wait_for(state="visible")
    assert "不能操作1号窗口" in await error.inner_text()
    assert "不是本窗口的办事员" in await error.inner_text()
    assert await page.locator("#desk").is_hidden()
    # A display's token is valid but is not a clerk's.
    await page.goto(console_url(live, hall, "1", "display-token"))
    await until(
        page, "document.getElementById('token-error').textContent.includes('不是办事员令牌')"
    )


# -------------------------------------------------------------- the desk


async def test_the_queue_in_dispatch_order_then_call_next(
    live: LiveServer, hall_config: HallConfig, page: Page, tmp_path: Path
) -> None:
    hall = hall_config.id
    await signed_in(page, live, hall)
    assert await page.evaluate(f"() => {STATUS}") == "closed"
    await page.click("#act-open")
    await until(page, f"{STATUS} === 'open'")
    await message(page, "ok", "窗口已开放")

    a1 = await issue(live, hall, "social-security")
    c1 = await issue(live, hall, "business-licence")  # legal: window 1 serves it too
    await issue(live, hall, "household")  # police: not window 1's
    a2 = await issue(live, hall, "housing-fund", "elderly")  # 20-minute credit: first
    expected = [a2["number"], a1["number"], c1["number"]]
    await until_waiting(page, expected)
    api_order = await live.api.get(
        f"/api/v1/halls/{hall}/windows/1", headers={"Authorization": f"Bearer {CLERK1}"}
    )
    assert [t["number"] for t in api_order.json()["waiting"]] == expected

    first = page.locator("#waiting-body tr").first
    assert await first.evaluate("(r) => r.classList.contains('marked')")
    assert await first.locator(".badge").inner_text() == "老年人"
    assert "下一位" in await first.locator(".order").inner_text()
    second = page.locator("#waiting-body tr").nth(1)
    assert await second.locator(".badge").inner_text() == "普通"
    assert not await second.evaluate("(r) => r.classList.contains('marked')")
    assert "3" in await page.inner_text("#waiting-total")

    await page.click("#act-call-next")
    await until(page, f"{CURRENT} === arg", a2["number"])
    await message(page, "ok", f"已呼叫 {a2['number']} 号")
    await until_waiting(page, [a1["number"], c1["number"]])
    assert "公积金" in await page.inner_text("#current-service")
    assert await page.inner_text("#current-priority") == "老年人"
    # Why: the credit took it ahead of A001 and C001, issued before it.
    assert await page.inner_text("#current-reason") == "长者优先：先于 2 位更早取号的群众"
    await page.click("[data-lang=en]")
    await until(
        page,
        "document.getElementById('current-reason').textContent === arg",
        "Elderly priority: ahead of 2 earlier tickets",
    )
    await page.click("[data-lang=zh]")
    assert "取号" in await page.inner_text("#current-waited")
    assert (await ticket(live, hall, a2["id"]))["window"] == "1"
    # The time at the window runs by itself, once a second.
    await until(page, "document.getElementById('current-elapsed').textContent === '00:01'")

    # A fuller queue for the picture: a disabled visitor goes to the front.
    d = await issue(live, hall, "social-security", "disabled")
    c2 = await issue(live, hall, "business-licence")
    a4 = await issue(live, hall, "housing-fund")
    await until_waiting(page, [d["number"], a1["number"], c1["number"], c2["number"], a4["number"]])
    assert await page.locator("#waiting-body tr").first.locator(".badge").inner_text() == "残疾人"
    await shoot(page, tmp_path, "serving")


async def test_transfer_from_the_console_keeps_the_number(
    live: LiveServer, hall_config: HallConfig, page: Page, tmp_path: Path
) -> None:
    hall = hall_config.id
    await post(live, hall, "/windows/1/open", CLERK1)
    a1 = await issue(live, hall, "social-security")
    await issue(live, hall, "social-security")
    await signed_in(page, live, hall)
    await page.click("#act-call-next")
    await until(page, f"{CURRENT} === arg", a1["number"])

    await page.click("#act-transfer")
    dialog = page.locator("#transfer-dialog")
    await dialog.wait_for(state="visible")
    options = await page.eval_on_selector_all(
        "#transfer-service option", "(os) => os.map((o) => o.value)"
    )
    # Every other service of the hall, not the ticket's own.
    assert options == ["housing-fund", "business-licence", "household"]
    await page.select_option("#transfer-service", "household")
    await shoot(page, tmp_path, "transfer")
    await page.click("#transfer-confirm")
    await dialog.wait_for(state="hidden")
    await message(page, "ok", f"{a1['number']} 号已转到「户籍办理」")
    await until(page, f"{CURRENT} === ''")

    moved = await ticket(live, hall, a1["id"])
    assert moved["status"] == "waiting"
    assert moved["service"] == "household" and moved["group"] == "police"
    assert moved["number"] == a1["number"]
    # Not window 1's group any more: gone from its list.
    assert a1["number"] not in await waiting_list(page)

    # The T key opens the dialog too; Escape leaves it without a transfer.
    await page.click("#act-call-next")
    await until(page, f"{CURRENT} !== ''")
    await page.keyboard.press("t")
    await dialog.wait_for(state="visible")
    await page.keyboard.press("Escape")
    await dialog.wait_for(state="hidden")
    assert await page.evaluate(f"() => {CURRENT}") != ""


async def test_no_show_recall_and_complete(
    live: LiveServer, hall_config: HallConfig, page: Page
) -> None:
    hall = hall_config.id
    await post(live, hall, "/windows/1/open", CLERK1)
    a1 = await issue(live, hall)
    a2 = await issue(live, hall)
    await signed_in(page, live, hall)

    await page.click("#act-call-next")
    await until(page, f"{CURRENT} === arg", a1["number"])
    await page.click("#act-no-show")
    await message(page, "ok", f"{a1['number']} 号已过号")
    await until(page, f"{CURRENT} === ''")
    assert (await ticket(live, hall, a1["id"]))["status"] == "no_show"

    await page.click("#act-call-next")
    await until(page, f"{CURRENT} === arg", a2["number"])
    await page.click("#act-recall")
    await message(page, "ok", f"已重呼 {a2['number']} 号")
    assert await page.evaluate(f"() => {CURRENT}") == a2["number"]

    await page.click("#act-complete")
    await message(page, "ok", f"{a2['number']} 号已办结")
    await until(page, f"{CURRENT} === ''")
    assert (await ticket(live, hall, a2["id"]))["status"] == "completed"

    # Nothing at the window now: the refusals in words. (A second click on
    # complete at once would be the same intent, replayed: see the
    # double-click test.)
    await page.click("#act-recall")
    await message(page, "error", "当前没有正在办理的号")
    await page.evaluate(f"() => {{ {MESSAGE}.dataset.kind = '' }}")
    await page.click("#act-no-show")
    await message(page, "error", "当前没有正在办理的号")


async def test_call_a_number_out_of_turn(
    live: LiveServer, hall_config: HallConfig, page: Page
) -> None:
    hall = hall_config.id
    await post(live, hall, "/windows/1/open", CLERK1)
    a1 = await issue(live, hall)
    a2 = await issue(live, hall)
    d1 = await issue(live, hall, "household")  # police: not window 1's
    await signed_in(page, live, hall)
    await until_waiting(page, [a1["number"], a2["number"]])

    await page.fill("#call-number", a2["number"].lower())
    await page.press("#call-number", "Enter")
    await until(page, f"{CURRENT} === arg", a2["number"])
    await message(page, "ok", f"已特呼 {a2['number']} 号")
    assert await page.input_value("#call-number") == ""
    await until_waiting(page, [a1["number"]])

    await page.fill("#call-number", "A999")
    await page.click("#act-call")
    await message(page, "error", "没有这个号码在等候：A999")
    await page.fill("#call-number", d1["number"])
    await page.click("#act-call")
    await message(page, "error", f"{d1['number']} 号的业务不归本窗口办理")
    await page.fill("#call-number", "12")
    await page.click("#act-call")
    await message(page, "error", "号码格式不对")
    assert await page.evaluate(f"() => {CURRENT}") == a2["number"]


async def test_keyboard_shortcuts(live: LiveServer, hall_config: HallConfig, page: Page) -> None:
    hall = hall_config.id
    await post(live, hall, "/windows/1/open", CLERK1)
    numbers = [(await issue(live, hall))["number"] for _ in range(3)]
    await signed_in(page, live, hall)
    await until_waiting(page, numbers)
    # The big button shows its keys.
    assert "N" in await page.inner_text("#act-call-next")

    await page.locator("body").press("n")
    await until(page, f"{CURRENT} === arg", numbers[0])
    # Not while typing: an N typed into the number field stays there.
    await page.fill("#call-number", "")
    await page.type("#call-number", "n")
    assert await page.input_value("#call-number") == "n"
    assert await page.evaluate(f"() => {CURRENT}") == numbers[0]
    await page.fill("#call-number", "")

    await page.evaluate("() => document.activeElement.blur()")
    await page.keyboard.press("r")
    await message(page, "ok", f"已重呼 {numbers[0]} 号")
    await page.keyboard.press("Space")
    await until(page, f"{CURRENT} === arg", numbers[1])
    await page.keyboard.press("c")
    await message(page, "ok", f"{numbers[1]} 号已办结")
    await until(page, f"{CURRENT} === ''")
    await page.keyboard.press("n")
    await until(page, f"{CURRENT} === arg", numbers[2])
    await page.keyboard.press("s")
    await message(page, "ok", f"{numbers[2]} 号已过号")
    # F goes to the number field, for a call out of turn without the mouse.
    await page.keyboard.press("f")
    assert await page.evaluate("() => document.activeElement.id") == "call-number"
    assert await page.input_value("#call-number") == ""


async def test_a_double_click_calls_one_person(
    live: LiveServer, hall_config: HallConfig, page: Page
) -> None:
    hall = hall_config.id
    await post(live, hall, "/windows/1/open", CLERK1)
    a1 = await issue(live, hall)
    a2 = await issue(live, hall)
    await signed_in(page, live, hall)
    await until_waiting(page, [a1["number"], a2["number"]])
    await page.dblclick("#act-call-next")
    await until(page, f"{CURRENT} === arg", a1["number"])
    await until_waiting(page, [a2["number"]])
    assert (await ticket(live, hall, a2["id"]))["status"] == "waiting"


async def test_refusals_are_said_in_words(
    live: LiveServer, hall_config: HallConfig, page: Page, tmp_path: Path
) -> None:
    hall = hall_config.id
    await signed_in(page, live, hall)
    # Closed (windows start closed): call-next is refused.
    await page.click("#act-call-next")
    await message(page, "error", "窗口未开放：请先开窗再叫号")
    await shoot(page, tmp_path, "error")
    text = await page.inner_text("#message")
    assert "window_not_open" not in text

    await page.click("#act-open")
    await until(page, f"{STATUS} === 'open'")
    await page.click("#act-call-next")
    await message(page, "info", "没有人在等候")

    await page.click("#act-pause")
    await until(page, f"{STATUS} === 'paused'")
    assert await page.inner_text("#window-status") == "暂停服务"
    await page.click("#act-call-next")
    await message(page, "error", "窗口未开放")

    # English: the same refusal in the other language, switched in place.
    await page.click("[data-lang=en]")
    await until(page, "document.documentElement.lang === 'en'")
    await message(page, "error", "The window is not open")
    assert await page.inner_text("#window-status") == "Paused"
    assert "Call next" in await page.inner_text("#act-call-next")
    await shoot(page, tmp_path, "english")


async def test_changes_made_elsewhere_arrive_within_a_second(
    live: LiveServer, hall_config: HallConfig, page: Page
) -> None:
    hall = hall_config.id
    await post(live, hall, "/windows/1/open", CLERK1)
    await post(live, hall, "/windows/2/open", CLERK2)
    await signed_in(page, live, hall)
    await until_waiting(page, [])

    started = time.perf_counter()
    a1 = await issue(live, hall)
    await until_waiting(page, [a1["number"]], ms=1000)
    issued_ms = (time.perf_counter() - started) * 1000

    # Window 2 (natural too) takes it: it leaves window 1's list.
    started = time.perf_counter()
    await post(live, hall, "/windows/2/call-next", CLERK2)
    await until_waiting(page, [], ms=1000)
    called_ms = (time.perf_counter() - started) * 1000

    # A manager pauses window 1 from elsewhere: the console follows.
    started = time.perf_counter()
    await post(live, hall, "/windows/1/pause", "manager-token")
    await until(page, f"{STATUS} === 'paused'", ms=1000)
    paused_ms = (time.perf_counter() - started) * 1000
    print(
        f"console follows: issue {issued_ms:.0f} ms, call elsewhere {called_ms:.0f} ms,"
        f" pause elsewhere {paused_ms:.0f} ms"
    )
    assert max(issued_ms, called_ms, paused_ms) < 1000


# ------------------------------------------------------------ a hall's day

CLERK9 = "clerk-9-token"
PARKED = "Array.from(document.querySelectorAll('#parked-body tr'), (r) => r.dataset.number)"


async def test_recalls_left_and_the_limit(
    live: LiveServer, hall_config: HallConfig, page: Page, tmp_path: Path
) -> None:
    hall = hall_config.id
    await post(live, hall, "/windows/1/open", CLERK1)
    a1 = await issue(live, hall)
    await signed_in(page, live, hall)
    assert await page.locator("#recalls-left").is_hidden()  # nobody at the window
    await page.click("#act-call-next")
    await until(page, f"{CURRENT} === arg", a1["number"])
    # The test hall allows three announcements after the first call.
    assert await page.inner_text("#recalls-left") == "还可重呼 3 次"
    await page.click("#act-recall")
    await message(page, "ok", f"已重呼 {a1['number']} 号")
    await until(
        page, "document.getElementById('recalls-left').textContent === arg", "还可重呼 2 次"
    )
    # Two more from elsewhere (an admin's desk): the console follows.
    for _ in range(2):
        await post(live, hall, "/windows/1/recall", "admin-token")
    await until(page, "document.getElementById('act-recall').disabled")
    assert await page.inner_text("#recalls-left") == "已达上限，请过号"
    assert await page.evaluate("document.getElementById('act-no-show').dataset.suggest") == "true"
    await shoot(page, tmp_path, "recall-limit")
    # The key does not send what the server would refuse; it says why.
    await page.keyboard.press("r")
    await message(page, "error", f"{a1['number']} 号已重呼 3 次，达到上限：请按过号")
    assert (await ticket(live, hall, a1["id"]))["recalls"] == 3
    await page.click("#act-no-show")
    await message(page, "ok", f"{a1['number']} 号已过号")
    await until(page, "!document.getElementById('act-recall').disabled")
    assert await page.locator("#recalls-left").is_hidden()


async def test_park_then_resume_from_the_parked_list(
    live: LiveServer, hall_config: HallConfig, page: Page, tmp_path: Path
) -> None:
    hall = hall_config.id
    await post(live, hall, "/windows/1/open", CLERK1)
    await post(live, hall, "/windows/9/open", CLERK9)
    a1 = await issue(live, hall)
    a2 = await issue(live, hall)
    d1 = await issue(live, hall, "household")
    await signed_in(page, live, hall)
    assert await page.locator("#parked").is_hidden()

    await page.click("#act-call-next")
    await until(page, f"{CURRENT} === arg", a1["number"])
    await page.keyboard.press("p")
    await message(page, "ok", f"{a1['number']} 号已暂挂")
    await until(page, f"{CURRENT} === ''")
    await until(page, f"JSON.stringify({PARKED}) === JSON.stringify(arg)", [a1["number"]])
    assert (await ticket(live, hall, a1["id"]))["status"] == "parked"
    row = page.locator(f'#parked-body tr[data-number="{a1["number"]}"]')
    assert await row.locator(".service").inner_text() == "社保医保"
    assert (await row.locator(".issued").inner_text()).startswith("1号窗口 · ")

    # Parked at another window, of a group this one does not serve: listed,
    # with no button to call it here.
    await post(live, hall, "/windows/9/call-next", CLERK9)
    await post(live, hall, "/windows/9/park", CLERK9)
    await until(
        page, f"JSON.stringify({PARKED}) === JSON.stringify(arg)", [a1["number"], d1["number"]]
    )
    other = page.locator(f'#parked-body tr[data-number="{d1["number"]}"]')
    assert await other.locator("button").count() == 0
    assert await page.inner_text("#parked-total") == "2 人"
    await shoot(page, tmp_path, "parked")

    # Back with the paper: 恢复叫号 calls it at this window.
    await row.locator("button.resume").click()
    await message(page, "ok", f"已恢复叫号 {a1['number']} 号")
    await until(page, f"{CURRENT} === arg", a1["number"])
    await until(page, f"JSON.stringify({PARKED}) === JSON.stringify(arg)", [d1["number"]])
    resumed = await ticket(live, hall, a1["id"])
    assert resumed["status"] == "called" and resumed["window"] == "1"
    # Resumed at its own window elsewhere: gone from the list here too.
    await post(live, hall, "/windows/9/resume", CLERK9, number=d1["number"])
    await until(page, "document.getElementById('parked').hidden")
    assert await waiting_list(page) == [a2["number"]]
