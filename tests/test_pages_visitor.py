"""The visitor's phone pages in a real headless Chromium at 390×844 against a
live server: a ticket followed from the queue to its window (timed), the
好差评 rating once and only once, cancel, final states in words; remote 取号
with its guards (double tap, per-client limit, phone rules, disabled hall).

Screenshots land in each test's tmp_path and in /tmp/qms-screens/visitor-*."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from queue_core.redis_client import RedisClient

pytest.importorskip("playwright.async_api", reason="playwright is not installed")

from playwright.async_api import (
    Browser,
    Page,
    Request,
    Route,
    ViewportSize,
)

from queue_core.config import HallConfig
from queue_core.keys import HallKeys
from tests.browser import BROWSER_MARKS, keep_for_review, until
from tests.conftest import delete_hall
from tests.live import LiveServer, live_server, post
from tests.support import Clock, make_config, prior_estimates

pytestmark = BROWSER_MARKS

KIOSK = "kiosk-token"
CLERK1 = "clerk-1-token"
CLERK2 = "clerk-2-token"
ADMIN = "admin-token"
PHONE: ViewportSize = {"width": 390, "height": 844}
REMOTE = "enabled = true\nper_client_per_hour = 2\ndaily_cap = 3"
PHONE_REMOTE = "enabled = true\nrequire_phone = true\nper_client_per_hour = 50"

VIEW = "document.body.dataset.view"


# ---------------------------------------------------------------- fixtures


@dataclass
class Halls:
    plain: HallConfig
    """The test hall, no remote tickets."""
    remote: HallConfig
    """Remote tickets: 2 per client per hour, 3 per service per day."""
    phone: HallConfig
    """Remote tickets that need a mobile number."""


@pytest.fixture
async def halls(tmp_path: Path, redis: RedisClient) -> AsyncIterator[Halls]:
    made = Halls(
        make_config(tmp_path),
        make_config(tmp_path, remote=REMOTE),
        make_config(tmp_path, remote=PHONE_REMOTE),
    )
    yield made
    for config in (made.plain, made.remote, made.phone):
        await delete_hall(redis, HallKeys(config.id))


@pytest.fixture
async def live(halls: Halls, redis_url: str) -> AsyncIterator[LiveServer]:
    async with live_server([halls.plain, halls.remote, halls.phone], redis_url) as server:
        yield server


async def phone_page(browser: Browser, errors: list[str]) -> Page:
    context = await browser.new_context(
        viewport=PHONE, locale="zh-CN", is_mobile=True, has_touch=True
    )
    page = await context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # Record vibrations (headless Chromium has no motor to ask).
    await page.add_init_script(
        "navigator.vibrate = (p) => { (window.qmsVibrations ||= []).push(p); return true; };"
    )
    return page


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A fresh phone (empty storage) at 390×844; fails the test on any
    uncaught script error."""
    errors: list[str] = []
    page = await phone_page(browser, errors)
    yield page
    await page.context.close()
    assert errors == []


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


def remote_url(live: LiveServer, hall: str) -> str:
    return f"{live.http}/halls/{hall}/remote"


async def text(page: Page, selector: str) -> str:
    return re.sub(r"\s+", " ", await page.inner_text(selector)).strip()


async def shoot(page: Page, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"visitor-{name}.png"
    await page.screenshot(path=str(path))
    keep_for_review(path)


async def waiting_total(live: LiveServer, hall: str, service: str) -> int:
    # /snapshot, not the public /services: that one may be a second old.
    r = await live.api.get(
        f"/api/v1/halls/{hall}/snapshot", headers={"Authorization": f"Bearer {ADMIN}"}
    )
    assert r.status_code == 200, r.text
    counts = {s["id"]: s["waiting"] for s in r.json()["services"]}
    return int(counts[service])


# ------------------------------------------------------------ visitor page


async def test_a_ticket_from_the_queue_to_its_window_and_its_rating(
    live: LiveServer, halls: Halls, page: Page, browser: Browser, tmp_path: Path
) -> None:
    hall = halls.plain.id
    await post(live, hall, "/windows/2/open", CLERK2)
    ahead = await issue(live, hall)
    mine = await issue(live, hall)
    response = await page.goto(ticket_url(live, hall, mine["id"]))
    assert response is not None and response.status == 200
    await until(page, f"{VIEW} === 'waiting'")
    assert await text(page, "#number") == mine["number"]
    assert await text(page, "#service") == "社保医保"
    assert await text(page, "#ahead") == "1 人"
    # One ahead, one window open: the learned estimate, from the config until visits are seen.
    table = prior_estimates(halls.plain, {"natural": ["social-security"] * 2}, [("2", None, 0)])
    est = table.at("natural", 1)
    assert est is not None
    assert await text(page, "#eta") == f"约 {round(est.central / 60)} 分钟"
    lo, hi = round(est.p10 / 60), round(est.p90 / 60)
    assert await text(page, "#eta-range") == f"多数在 {lo}–{hi} 分钟之间"
    assert await page.is_hidden("#called")
    await shoot(page, tmp_path, "waiting")

    first = await post(live, hall, "/windows/2/call-next", CLERK2)
    assert first["number"] == ahead["number"]
    await until(page, "document.getElementById('ahead').textContent === arg", "0 人")
    assert "下一位就是您" in await text(page, "#status-line")

    await post(live, hall, "/windows/1/open", CLERK1)
    started = time.perf_counter()
    called = await post(live, hall, "/windows/1/call-next", CLERK1)
    answered = time.perf_counter()
    await until(page, "document.getElementById('window-name').textContent === arg", "1号窗口")
    shown = time.perf_counter()
    after_ms = (shown - answered) * 1000
    print(
        f"call-next to visitor page: {after_ms:.0f} ms after the POST returned"
        f" ({(shown - started) * 1000:.0f} ms from sending it)"
    )
    assert called["number"] == mine["number"]
    assert after_ms <= 1000
    assert await text(page, "#called") == "请到 1号窗口 办理"
    assert await page.is_hidden("#waiting") and await page.is_hidden("#cancel-area")
    assert await page.evaluate("window.qmsVibrations ?? []") == [[300, 150, 300]]
    await shoot(page, tmp_path, "called")

    # A second phone (or tab) holding the same link, before anyone rates.
    other_errors: list[str] = []
    other = await phone_page(browser, other_errors)
    await post(live, hall, "/windows/1/complete", CLERK1)
    await until(page, f"{VIEW} === 'completed'")
    await page.wait_for_selector("#rating-form", state="visible")
    await other.goto(ticket_url(live, hall, mine["id"]))
    await other.wait_for_selector("#rating-form", state="visible")
    assert await text(page, "#final-title") == "办理完成"
    legend = await text(page, "#rating-form legend")
    assert legend == "请为本次服务评价"
    labels = [await text(page, f".score-{s}") for s in ("very_satisfied", "very_dissatisfied")]
    assert labels == ["非常满意", "非常不满意"]

    # Sending without a choice is caught on the page.
    await page.click("#rating-submit")
    assert await text(page, "#rating-error") == "请先选择一个评价。"
    await page.click(".score-satisfied")
    await page.fill("#reason", "窗口人员很耐心")
    assert await text(page, "#reason-count") == "7 / 200"
    await shoot(page, tmp_path, "rating-form")
    await page.click("#rating-submit")
    await page.wait_for_selector("#rated", state="visible")
    assert await text(page, "#rated-title") == "感谢您的评价"
    assert await text(page, "#rated-score") == "您的评价：满意"
    assert await text(page, "#rated-reason") == "窗口人员很耐心"
    assert await page.is_hidden("#rating-form")
    await shoot(page, tmp_path, "rated")
    rating = await get(live, hall, f"/tickets/{mine['id']}/rating")
    assert rating["score"] == "satisfied" and rating["reason"] == "窗口人员很耐心"

    # The other phone still shows its form; its attempt is refused, and it
    # shows the rating that stands.
    await other.click(".score-very_dissatisfied")
    await other.click("#rating-submit")
    await other.wait_for_selector("#rated", state="visible")
    assert await text(other, "#rated-title") == "这次服务已经评价过了"
    assert await text(other, "#rated-score") == "您的评价：满意"
    await shoot(other, tmp_path, "already-rated")
    await other.context.close()
    assert other_errors == []
    again = await live.api.post(
        f"/api/v1/halls/{hall}/tickets/{mine['id']}/rating", json={"score": "dissatisfied"}
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_rated"
    assert (await get(live, hall, f"/tickets/{mine['id']}/rating"))["score"] == "satisfied"

    # Opened again later: the rating and thanks, no form.
    await page.reload()
    await page.wait_for_selector("#rated", state="visible")
    assert await page.is_hidden("#rating-form")
    assert await text(page, "#rated-score") == "您的评价：满意"


async def test_cancel_while_waiting(
    live: LiveServer, halls: Halls, page: Page, tmp_path: Path
) -> None:
    hall = halls.plain.id
    ticket = await issue(live, hall, "business-licence")
    await page.goto(ticket_url(live, hall, ticket["id"]))
    await until(page, f"{VIEW} === 'waiting'")
    assert await text(page, "#eta") == "暂无窗口开放"

    # Second thoughts: nothing happens.
    await page.click("#cancel")
    await page.wait_for_selector("#confirm", state="visible")
    assert (
        await text(page, "#confirm-text")
        == f"确定取消 {ticket['number']} 号吗？取消后需要重新取号。"
    )
    await shoot(page, tmp_path, "cancel-confirm")
    await page.click("#confirm-no")
    await page.wait_for_selector("#confirm", state="hidden")
    assert (await get(live, hall, f"/tickets/{ticket['id']}"))["status"] == "waiting"

    await page.click("#cancel")
    await page.click("#confirm-yes")
    await until(page, f"{VIEW} === 'cancelled'")
    assert await text(page, "#final-title") == "这个号已取消"
    assert await page.is_hidden("#cancel-area")
    assert (await get(live, hall, f"/tickets/{ticket['id']}"))["status"] == "cancelled"
    await shoot(page, tmp_path, "cancelled")


async def test_cancel_after_being_called_is_refused_in_words(
    live: LiveServer, halls: Halls, page: Page, tmp_path: Path
) -> None:
    hall = halls.plain.id
    ticket = await issue(live, hall)
    url = ticket_url(live, hall, ticket["id"])
    await page.goto(url)
    await until(page, f"{VIEW} === 'waiting'")
    # The page's last look said "waiting" and it has not looked since: hold
    # its polls at that answer while the clerk calls the ticket.
    stale = json.dumps(await get(live, hall, f"/tickets/{ticket['id']}"))

    async def hold(route: Route, request: Request) -> None:
        if request.method == "GET":
            await route.fulfill(status=200, content_type="application/json", body=stale)
        else:
            await route.continue_()

    await page.route(url.replace("/halls/", "/api/v1/halls/"), hold)
    await post(live, hall, "/windows/1/open", CLERK1)
    await post(live, hall, "/windows/1/call-next", CLERK1)
    await page.click("#cancel")
    await page.click("#confirm-yes")
    await page.wait_for_selector("#cancel-error", state="visible")
    words = "您的号已被叫到，不能再取消，请前往窗口办理。"
    assert await text(page, "#cancel-error") == words
    await page.unroute(url.replace("/halls/", "/api/v1/halls/"))
    await until(page, f"{VIEW} === 'called'")
    assert await text(page, "#notice") == words
    assert await text(page, "#window-name") == "1号窗口"
    await shoot(page, tmp_path, "cancel-refused")


async def test_transfer_and_no_show_in_words(
    live: LiveServer, halls: Halls, page: Page, tmp_path: Path
) -> None:
    hall = halls.plain.id
    ticket = await issue(live, hall)
    await post(live, hall, "/windows/1/open", CLERK1)
    await page.goto(ticket_url(live, hall, ticket["id"]))
    await until(page, f"{VIEW} === 'waiting'")
    await post(live, hall, "/windows/1/call-next", CLERK1)
    await until(page, f"{VIEW} === 'called'")
    await post(live, hall, "/windows/1/transfer", CLERK1, service="business-licence")
    await until(page, f"{VIEW} === 'waiting'")
    assert await text(page, "#notice") == "您已被转到「营业执照」，号码不变，请继续等候。"
    assert await text(page, "#service") == "营业执照"
    assert await text(page, "#number") == ticket["number"]

    await page.click("#lang")
    assert await page.evaluate("document.documentElement.lang") == "en"
    assert await text(page, "#notice") == (
        "You have been moved to “营业执照”. Same number: please keep waiting."
    )
    assert await text(page, "#lang") == "中文"

    await post(live, hall, "/windows/1/call-next", CLERK1)
    await until(page, f"{VIEW} === 'called'")
    assert await text(page, "#called") == "Please go to 1号窗口"
    await shoot(page, tmp_path, "called-english")
    await post(live, hall, "/windows/1/no-show", CLERK1)
    await until(page, f"{VIEW} === 'no_show'")
    assert await text(page, "#final-title") == "Your number was missed"
    await page.click("#lang")
    assert await text(page, "#final-title") == "您已过号"
    assert await page.evaluate("document.documentElement.lang") == "zh-CN"


async def test_unknown_ticket_and_unknown_hall(
    live: LiveServer, halls: Halls, page: Page, tmp_path: Path
) -> None:
    hall = halls.plain.id
    for ticket_id in ("A" * 22, "not-a-ticket"):
        response = await page.goto(ticket_url(live, hall, ticket_id))
        assert response is not None and response.status == 404
        await until(page, f"{VIEW} === 'missing'")
        assert await text(page, "#missing h1") == "没有找到这个号"
        assert await page.is_hidden("#ticket")
    await shoot(page, tmp_path, "not-found")
    for path in ("/halls/nowhere/tickets/" + "A" * 22, "/halls/nowhere/remote"):
        response = await page.goto(f"{live.http}{path}")
        assert response is not None and response.status == 404
        assert "没有这个大厅" in await text(page, "body")
    await shoot(page, tmp_path, "unknown-hall")


# ------------------------------------------------------------- remote page


async def test_remote_tickets_double_tap_and_the_hourly_limit(
    live: LiveServer, halls: Halls, page: Page, tmp_path: Path
) -> None:
    hall = halls.remote.id
    await issue(live, hall, "household")  # someone at the kiosk
    posts: list[Request] = []
    page.on(
        "request",
        lambda r: posts.append(r) if r.method == "POST" and "/remote/tickets" in r.url else None,
    )
    await page.goto(remote_url(live, hall))
    await until(page, f"{VIEW} === 'offer'")
    groups = await page.locator(".group-name").all_inner_texts()
    assert groups == ["自然人综合窗口", "法人综合窗口", "公安专区"]
    household = page.locator('[data-service="household"]')
    assert (
        re.sub(r"\s+", " ", await household.inner_text())
        == "户籍办理 等候 1 人 · 暂无窗口开放 取号"
    )
    assert await page.is_hidden("#phone-area") and await page.is_hidden("#mine")
    await shoot(page, tmp_path, "remote-services")

    await household.click()
    await page.wait_for_url(re.compile(r"/tickets/[A-Za-z0-9_-]{22}$"))
    await until(page, f"{VIEW} === 'waiting'")
    assert await text(page, "#number") == "D002"
    first_id = page.url.rsplit("/", 1)[1]

    # Back on the remote page: it offers the ticket taken before.
    await page.goto(remote_url(live, hall))
    await page.wait_for_selector("#mine", state="visible")
    assert await text(page, "#mine-text") == "您已取号：D002（户籍办理）"
    assert await page.get_attribute("#mine-link", "href") == f"/halls/{hall}/tickets/{first_id}"
    await shoot(page, tmp_path, "remote-mine")

    # A double tap: one request, one ticket.
    await page.dblclick('[data-service="social-security"]')
    await page.wait_for_url(re.compile(r"/tickets/[A-Za-z0-9_-]{22}$"))
    await until(page, f"{VIEW} === 'waiting'")
    assert await text(page, "#number") == "A001"
    assert await waiting_total(live, hall, "social-security") == 1
    assert len(posts) == 2
    keys = [await r.header_value("idempotency-key") for r in posts]
    assert all(k and k.startswith("remote-") for k in keys) and keys[0] != keys[1]

    # The third ticket this hour from this address is refused, in words.
    await page.goto(remote_url(live, hall))
    await until(page, f"{VIEW} === 'offer'")
    await page.click('[data-service="business-licence"]')
    await page.wait_for_selector("#take-error", state="visible")
    assert await text(page, "#take-error") == (
        "取号太频繁了：同一网络每小时取号次数有限，请稍后再试，或到大厅取号机取号。"
    )
    assert page.url == remote_url(live, hall)
    assert await waiting_total(live, hall, "business-licence") == 0
    await shoot(page, tmp_path, "remote-rate-limited")


async def test_remote_refusals_shown_from_the_catalogue(
    live: LiveServer, halls: Halls, page: Page
) -> None:
    # The daily cap (3) cannot be reached from one address (2 an hour):
    # the server's answers are played to the page instead.
    hall = halls.remote.id
    answers = [
        ("remote_quota_exhausted", 409, "今天这个事项的网上取号已经取完，请到大厅取号机取号。"),
        ("something_new", 409, "取号未成功：A sentence from the server."),
    ]
    await page.goto(remote_url(live, hall))
    await until(page, f"{VIEW} === 'offer'")

    def refusal(status: int, body: str) -> Callable[[Route], Awaitable[None]]:
        async def refuse(route: Route) -> None:
            await route.fulfill(status=status, content_type="application/json", body=body)

        return refuse

    for code, status, words in answers:
        body = json.dumps({"error": {"code": code, "message": "A sentence from the server."}})
        await page.route("**/remote/tickets", refusal(status, body))
        await page.click('[data-service="household"]')
        await until(page, "document.getElementById('take-error').textContent === arg", words)
        await page.unroute("**/remote/tickets")


async def test_remote_tickets_with_a_phone_number(
    live: LiveServer, halls: Halls, page: Page, tmp_path: Path
) -> None:
    hall = halls.phone.id
    posts: list[Request] = []
    page.on(
        "request",
        lambda r: posts.append(r) if r.method == "POST" and "/remote/tickets" in r.url else None,
    )
    await page.goto(remote_url(live, hall))
    await page.wait_for_selector("#phone-area", state="visible")
    assert await text(page, "label[for=phone]") == "手机号码"

    await page.click('[data-service="household"]')
    assert await text(page, "#phone-error") == "请填写手机号码。"
    assert await page.evaluate("document.activeElement.id") == "phone"
    await page.fill("#phone", "12345678901")
    await page.click('[data-service="household"]')
    bad = "手机号码格式不正确，请输入 11 位手机号，例如 13800138000。"
    assert await text(page, "#phone-error") == bad
    assert await page.get_attribute("#phone", "aria-invalid") == "true"
    await shoot(page, tmp_path, "remote-bad-phone")
    assert posts == []  # caught on the phone, nothing sent

    await page.fill("#phone", "138 0013 8000")
    await page.click('[data-service="household"]')
    await page.wait_for_url(re.compile(r"/tickets/"))
    assert json.loads(posts[0].post_data or "{}") == {
        "service": "household",
        "phone": "13800138000",
    }

    await page.goto(remote_url(live, hall))
    await page.wait_for_selector("#phone-area", state="visible")
    await page.fill("#phone", "+86 138-0013-8000")
    await page.click('[data-service="social-security"]')
    await page.wait_for_selector("#phone-error", state="visible")
    assert (
        await text(page, "#phone-error") == "这个手机号已有一个未办理的号，请先办理或取消那个号。"
    )
    assert await waiting_total(live, hall, "social-security") == 0
    await shoot(page, tmp_path, "remote-phone-has-ticket")


async def test_remote_disabled(live: LiveServer, halls: Halls, page: Page, tmp_path: Path) -> None:
    await page.goto(remote_url(live, halls.plain.id))
    await until(page, f"{VIEW} === 'disabled'")
    assert await text(page, "#disabled h2") == "本大厅暂未开放网上取号"
    assert await page.locator(".service-button").count() == 0
    await shoot(page, tmp_path, "remote-disabled")


# ------------------------------------------------------------ a hall's day

MANAGER = "manager-token"


async def missed(live: LiveServer, hall: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two tickets; the first called at window 1 and marked a no-show."""
    first = await issue(live, hall)
    second = await issue(live, hall)
    await post(live, hall, "/windows/1/open", CLERK1)
    await post(live, hall, "/windows/1/call-next", CLERK1)
    await post(live, hall, "/windows/1/no-show", CLERK1)
    return first, second


async def test_a_missed_ticket_comes_back_from_the_phone(
    live: LiveServer, halls: Halls, page: Page, tmp_path: Path
) -> None:
    hall = halls.plain.id
    ticket, _ = await missed(live, hall)
    until_at = (await get(live, hall, f"/tickets/{ticket['id']}"))["rejoin_until"]
    await page.goto(ticket_url(live, hall, ticket["id"]))
    await until(page, f"{VIEW} === 'no_show'")
    assert await text(page, "#final-title") == "您已过号"
    assert await text(page, "#final-body") == (
        "叫号时您不在窗口。回到大厅后可以重新排队一次，号码不变。"
    )
    assert await page.is_visible("#rejoin")
    assert await text(page, "#rejoin") == "我回来了"
    # The hall's 10 minutes, as the hall's clock reads the end of them.
    assert (
        await text(page, "#rejoin-hint") == f"请在 {until_at[11:16]} 前回到大厅后点击，重新排队。"
    )
    await shoot(page, tmp_path, "no-show-rejoin")

    await page.click("#rejoin")
    await until(page, f"{VIEW} === 'waiting'")
    assert await text(page, "#notice") == "您已重新排队，号码不变，请留意叫号。"
    assert await text(page, "#number") == ticket["number"]
    assert await text(page, "#ahead") == "1 人"  # placed as if taken now: behind the second
    stored = await get(live, hall, f"/tickets/{ticket['id']}")
    assert stored["status"] == "waiting" and stored["rejoin_until"] is None
    await shoot(page, tmp_path, "rejoined")

    # Missed a second time: once only, so no offer and the old advice.
    await post(live, hall, "/windows/1/call", CLERK1, number=ticket["number"])
    await until(page, f"{VIEW} === 'called'")
    await post(live, hall, "/windows/1/no-show", CLERK1)
    await until(page, f"{VIEW} === 'no_show'")
    assert await page.is_hidden("#rejoin-area")
    assert await text(page, "#final-body") == "叫号时您不在窗口。请到咨询台说明情况。"


async def test_a_refused_rejoin_withdraws_the_offer(
    live: LiveServer, halls: Halls, page: Page
) -> None:
    hall = halls.plain.id
    ticket, _ = await missed(live, hall)
    await page.goto(ticket_url(live, hall, ticket["id"]))
    await until(page, f"{VIEW} === 'no_show'")
    assert await page.is_visible("#rejoin")
    # Meanwhile (the page polls a missed ticket every 30 s): back in line at
    # the kiosk, called again, missed again.
    await post(live, hall, f"/tickets/{ticket['id']}/rejoin", KIOSK)
    await post(live, hall, "/windows/1/call", CLERK1, number=ticket["number"])
    await post(live, hall, "/windows/1/no-show", CLERK1)
    await page.click("#rejoin")
    await page.wait_for_selector("#rejoin-error", state="visible")
    assert await text(page, "#rejoin-error") == (
        "已超过可以回来排队的时间，或已经回来过一次；如需办理请重新取号。"
    )
    assert await page.is_hidden("#rejoin")
    assert await page.evaluate(VIEW) == "no_show"


async def test_the_offer_goes_when_its_time_is_up(
    live: LiveServer, halls: Halls, page: Page
) -> None:
    hall = halls.plain.id
    ticket, _ = await missed(live, hall)
    api_url = ticket_url(live, hall, ticket["id"]).replace("/halls/", "/api/v1/halls/")
    soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()

    async def ending_soon(route: Route) -> None:
        response = await route.fetch()
        body = await response.json()
        body["rejoin_until"] = soon
        await route.fulfill(response=response, json=body)

    await page.route(api_url, ending_soon)
    await page.goto(ticket_url(live, hall, ticket["id"]))
    await until(page, f"{VIEW} === 'no_show'")
    assert await page.is_visible("#rejoin")
    # No poll is due for 30 s: the page takes the offer down by itself.
    await page.wait_for_selector("#rejoin-area", state="hidden", timeout=10_000)
    assert await text(page, "#final-body") == "叫号时您不在窗口。请到咨询台说明情况。"


async def test_parked_then_resumed_and_an_expired_ticket(
    live: LiveServer, halls: Halls, page: Page, tmp_path: Path
) -> None:
    hall = halls.plain.id
    ticket = await issue(live, hall)
    await post(live, hall, "/windows/1/open", CLERK1)
    await post(live, hall, "/windows/1/call-next", CLERK1)
    await page.goto(ticket_url(live, hall, ticket["id"]))
    await until(page, f"{VIEW} === 'called'")
    await post(live, hall, "/windows/1/park", CLERK1)
    await until(page, f"{VIEW} === 'parked'")
    assert await text(page, "#status-line") == "已暂挂，工作人员会再次叫您"
    assert await text(page, "#parked") == (
        "请在 1号窗口 附近等候 工作人员会再次叫您，叫到时本页会提醒。"
    )
    assert await page.is_hidden("#cancel-area") and await page.is_hidden("#final")
    await shoot(page, tmp_path, "parked")
    await post(live, hall, "/windows/2/open", CLERK2)
    await post(live, hall, "/windows/2/resume", CLERK2, number=ticket["number"])
    await until(page, f"{VIEW} === 'called'")
    assert await text(page, "#called") == "请到 2号窗口 办理"
    # Called again: the phone buzzes (it was opened already called: no buzz then).
    assert await page.evaluate("window.qmsVibrations ?? []") == [[300, 150, 300]]

    # The manager closes the hall: what still waits expires.
    other = await issue(live, hall, "business-licence")
    await page.goto(ticket_url(live, hall, other["id"]))
    await until(page, f"{VIEW} === 'waiting'")
    await post(live, hall, "/close", MANAGER)
    await until(page, f"{VIEW} === 'expired'")
    assert await text(page, "#final-title") == "本号已过期"
    assert await text(page, "#status-line") == "已过期"
    assert await page.is_hidden("#rejoin-area")
    # ... and says in words when the hall takes tickets again (a hall open
    # all day, closed by its manager: at midnight)
    await until(page, "!document.getElementById('final-hours').hidden")
    assert await text(page, "#final-hours") == "今日已停止取号，明天 00:00 开始取号。"
    await shoot(page, tmp_path, "expired")


HOURS = """
[hours]
mon = ["08:30-12:00", "13:30-17:30"]
sun = ["08:30-12:00"]
"""


async def test_remote_outside_the_hours_and_when_the_hall_closes(
    tmp_path: Path, redis: RedisClient, redis_url: str, halls: Halls, page: Page
) -> None:
    # The tests' clock: Saturday 09:00, outside the hours; Sunday 08:30 next.
    config = make_config(tmp_path, remote=REMOTE, extra=HOURS)
    try:
        async with live_server([config, halls.remote], redis_url, clock=Clock()) as live:
            await page.goto(remote_url(live, config.id))
            await until(page, f"{VIEW} === 'closed'")
            assert await text(page, "#closed h2") == "现在不能取号"
            assert await text(page, "#closed-message") == "今日已停止取号，明天 08:30 开始取号。"
            assert await page.is_hidden("#offer")
            assert await page.locator(".service-button").count() == 0
            await shoot(page, tmp_path, "remote-closed")
            await page.click("#lang")
            assert await text(page, "#closed-message") == (
                "The hall is not issuing tickets now; it opens tomorrow at 08:30."
            )
            await page.click("#lang")

            # An open hall closed by its manager while the page shows its
            # services: the refused tap shows the closed hall at once.
            await page.goto(remote_url(live, halls.remote.id))
            await until(page, f"{VIEW} === 'offer'")
            await post(live, halls.remote.id, "/close", MANAGER)
            await page.click('.service-button[data-service="social-security"]')
            await until(page, f"{VIEW} === 'closed'")
            assert (await text(page, "#closed-message")).startswith("今日已停止取号，")
            assert await page.is_hidden("#take-error")
            assert await waiting_total(live, halls.remote.id, "social-security") == 0
    finally:
        await delete_hall(redis, HallKeys(config.id))
