"""The kiosk (取号机) in a real headless Chromium at its 1080×1920 portrait
size against a live server: a ticket in normal and in elderly mode, one
ticket however often a button is tapped or a request retried, appointment
check-in on the keypad, the printed slip and its QR code, the token form.

Screenshots land in each test's tmp_path and in /tmp/qms-screens/kiosk-*.png."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import segno

from queue_core.redis_client import RedisClient

pytest.importorskip("playwright.async_api", reason="playwright is not installed")

from playwright.async_api import (
    Browser,
    Page,
    Route,
    ViewportSize,
)

from displays.kiosk_page import PUBLIC_URL_ENV, qr_svg
from queue_core.config import HallConfig, load_hall_config
from queue_core.keys import HallKeys
from tests.browser import BROWSER_MARKS, fresh_page, keep_for_review, until
from tests.conftest import delete_hall
from tests.live import LiveServer, live_server
from tests.support import Clock, capped_config, prior_estimates, write_hall

pytestmark = BROWSER_MARKS

KIOSK = "kiosk-token"
CLERK2 = "clerk-2-token"
DISPLAY = "display-token"
PORTRAIT: ViewportSize = {"width": 1080, "height": 1920}
MM_PER_PT = 25.4 / 72

NUMBER = "document.getElementById('ticket-number').dataset.number"
SCREEN = "document.body.dataset.screen"


# ---------------------------------------------------------------- fixtures


@pytest.fixture
async def live(hall_config: HallConfig, redis_url: str) -> AsyncIterator[LiveServer]:
    async with live_server([hall_config], redis_url) as server:
        yield server


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    async with fresh_page(browser, PORTRAIT) as page:
        yield page


# ----------------------------------------------------------------- helpers


async def api(
    live: LiveServer, method: str, hall: str, path: str, token: str | None = None, **body: Any
) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = await live.api.request(
        method, f"/api/v1/halls/{hall}{path}", json=body or None, headers=headers
    )
    assert r.status_code < 300, r.text
    return r.json() if r.content else None


async def waiting(live: LiveServer, hall: str, service: str) -> int:
    # From the snapshot: GET /services may be up to a second old.
    services = (await api(live, "GET", hall, "/snapshot", DISPLAY))["services"]
    return int(next(s["waiting"] for s in services if s["id"] == service))


def kiosk_url(live: LiveServer, hall: str, query: str = f"token={KIOSK}") -> str:
    return f"{live.http}/halls/{hall}/kiosk" + (f"?{query}" if query else "")


async def open_kiosk(
    page: Page, live: LiveServer, hall: str, query: str = f"token={KIOSK}"
) -> None:
    """The kiosk on its start screen with the first poll of /services drawn."""
    await page.goto(kiosk_url(live, hall, query))
    await until(page, "window.qmsKiosk && window.qmsKiosk.services !== null")
    await page.locator("#token-form").wait_for(state="hidden")


def service_button(page: Page, service: str, screen: str = "start") -> Any:
    return page.locator(f'#screen-{screen} button.service[data-service="{service}"]')


async def shown_ticket(page: Page) -> dict[str, Any]:
    await until(page, f"{SCREEN} === 'ticket' && {NUMBER} !== ''")
    ticket = await page.evaluate("window.qmsKiosk.ticket")
    assert isinstance(ticket, dict)
    return ticket


async def shoot(page: Page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    await page.screenshot(path=str(path))
    keep_for_review(path)
    return path


async def assert_fits(page: Page) -> None:
    """Everything visible on the current screen lies within the 1080×1920 glass
    and within its own box (a squeezed flex item overflows rather than moves).
    Half a line of slack: the CJK face's ascent and descent stick out of a
    tight line box without anything being cut."""
    bad = await page.evaluate(
        """() => Array.from(document.querySelectorAll('#app, #app *'))
            .filter((el) => el.checkVisibility() && el.getClientRects().length)
            .filter((el) => {
              const r = el.getBoundingClientRect();
              const style = getComputedStyle(el);
              const scrolls = ['auto', 'scroll'].includes(style.overflowY);
              const slack = parseFloat(style.fontSize) / 2;
              return r.bottom > innerHeight + 0.5 || r.right > innerWidth + 0.5
                || (!scrolls && el.scrollHeight > el.clientHeight + slack && el.clientHeight > 0);
            })
            .map((el) => `${el.id || el.className} ${el.scrollHeight}>${el.clientHeight}`)"""
    )
    assert bad == []


def text_of(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip()


# ------------------------------------------------------------------- tests


async def test_a_ticket_in_normal_mode(
    live: LiveServer, hall_config: HallConfig, page: Page, tmp_path: Path
) -> None:
    hall = hall_config.id
    await api(live, "POST", hall, "/windows/2/open", CLERK2)
    await api(live, "POST", hall, "/tickets", KIOSK, service="housing-fund")
    await page.clock.install()
    await open_kiosk(page, live, hall)
    # The token is kept, and gone from the address bar.
    assert page.url == kiosk_url(live, hall, "")
    assert await page.evaluate(f"localStorage.getItem('qms.token.{hall}.kiosk')") == KIOSK

    # Services as the hall groups them, each with its count and estimate.
    groups = await page.locator("#screen-start .group h3 .group-name").all_inner_texts()
    assert groups == ["自然人综合窗口", "法人综合窗口", "公安专区"]
    natural = page.locator('#screen-start .group[data-group="natural"]')
    assert await natural.locator(".group-waiting").inner_text() == "等候 1 人"
    social = service_button(page, "social-security")
    # A ticket taken now: after the housing-fund visitor, at the one open window.
    est = prior_estimates(hall_config, {"natural": ["housing-fund"]}, [("2", None, 0)]).at(
        "natural", 1
    )
    assert est is not None
    expected = f"社保医保 等候 0 人 约 {max(1, round(est.central / 60))} 分钟"
    assert text_of(await social.inner_text()) == expected
    licence = service_button(page, "business-licence")
    assert text_of(await licence.inner_text()) == "营业执照 等候 0 人 等候时间待定"
    await assert_fits(page)
    await shoot(page, tmp_path, "kiosk-start.png")

    await social.click()
    ticket = await shown_ticket(page)
    assert ticket["number"] == "A002"
    assert await page.inner_text("#ticket-number") == "A002"
    assert await page.inner_text("#ticket-service") == "社保医保"
    assert await page.inner_text("#ticket-ahead") == "您前面还有 1 人"
    assert await page.locator("#ticket-priority").is_hidden()
    stored = await api(live, "GET", hall, f"/tickets/{ticket['id']}")
    assert stored["priority"] == "normal" and stored["service"] == "social-security"
    # The QR code of the visitor page has loaded.
    await until(page, "document.getElementById('ticket-qr').naturalWidth > 0")
    await assert_fits(page)
    await shoot(page, tmp_path, "kiosk-ticket.png")

    # The poll follows: the next visitor sees the new count.
    await until(
        page,
        "document.querySelector('[data-group=natural] .group-waiting').textContent === '等候 2 人'",
        ms=8000,
    )

    # Back on the start screen by itself after about 20 s.
    await page.clock.run_for(21_000)
    await until(page, f"{SCREEN} === 'start'")
    assert await page.evaluate("window.qmsKiosk.ticket") is None


async def test_a_tap_returns_to_start_but_not_the_second_of_a_double_tap(
    live: LiveServer, hall_config: HallConfig, page: Page
) -> None:
    await page.clock.install()
    await open_kiosk(page, live, hall_config.id)
    await service_button(page, "household").click()
    await shown_ticket(page)
    # A tap right after the ticket appears is the late half of a double tap.
    await page.mouse.click(540, 1700)
    assert await page.evaluate(SCREEN) == "ticket"
    await page.clock.run_for(2_000)
    await page.mouse.click(540, 1700)
    await until(page, f"{SCREEN} === 'start'")


async def test_english_and_back_to_chinese_for_the_next_visitor(
    live: LiveServer, hall_config: HallConfig, page: Page
) -> None:
    await open_kiosk(page, live, hall_config.id)
    await page.click("#lang")
    assert await page.inner_text("#screen-start .prompt") == "Choose a service"
    assert await page.evaluate("document.documentElement.lang") == "en"
    assert await page.inner_text("#lang") == "中文"
    # Hall names stay as the hall spells them.
    assert (await service_button(page, "household").inner_text()).startswith("户籍办理")
    await service_button(page, "household").click()
    await shown_ticket(page)
    assert await page.inner_text("#ticket-ahead") == "You are next"
    await page.click("#done")
    await until(page, f"{SCREEN} === 'start'")
    assert await page.inner_text("#screen-start .prompt") == "请选择办理事项"
    assert await page.evaluate("document.documentElement.lang") == "zh-CN"


async def test_a_ticket_in_elderly_mode_has_elderly_priority(
    live: LiveServer, hall_config: HallConfig, page: Page, tmp_path: Path
) -> None:
    hall = hall_config.id
    await open_kiosk(page, live, hall)
    await page.click("#go-elderly")
    await until(page, f"{SCREEN} === 'elderly'")
    names = await page.locator("#screen-elderly .service-name").all_inner_texts()
    assert names == ["社保医保", "公积金", "营业执照", "户籍办理"]
    # Large type: a service name at least 80 px tall, buttons for a whole hand.
    size = await page.evaluate(
        "parseFloat(getComputedStyle(document.querySelector("
        "'#screen-elderly .service-name')).fontSize)"
    )
    assert size >= 80
    box = await service_button(page, "household", "elderly").bounding_box()
    assert box is not None and box["height"] >= 180 and box["width"] >= 900
    await assert_fits(page)
    await shoot(page, tmp_path, "kiosk-elderly.png")

    await service_button(page, "household", "elderly").click()
    ticket = await shown_ticket(page)
    assert ticket["priority"] == "elderly"
    stored = await api(live, "GET", hall, f"/tickets/{ticket['id']}")
    assert stored["priority"] == "elderly" and stored["service"] == "household"
    assert await page.inner_text("#ticket-priority") == "长者优先"
    await assert_fits(page)
    await shoot(page, tmp_path, "kiosk-elderly-ticket.png")


async def test_no_elderly_mode_where_the_hall_has_no_elderly_priority(
    live: LiveServer, hall_config: HallConfig, page: Page
) -> None:
    services_path = f"/api/v1/halls/{hall_config.id}/services"

    async def without_elderly(route: Route) -> None:
        response = await route.fetch()
        body = await response.json()
        body["priorities"] = ["disabled", "normal"]
        await route.fulfill(response=response, json=body)

    await page.route(f"**{services_path}", without_elderly)
    await open_kiosk(page, live, hall_config.id)
    assert await page.locator("#go-elderly").is_hidden()
    assert await page.locator("#go-checkin").is_visible()


async def test_a_double_tap_gives_one_ticket(
    live: LiveServer, hall_config: HallConfig, page: Page
) -> None:
    hall = hall_config.id
    await open_kiosk(page, live, hall)
    button = service_button(page, "business-licence")
    box = await button.bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    # Two taps as fast as a mouse can give them (no waiting for the button).
    await page.mouse.click(x, y, click_count=2, delay=0)
    await shown_ticket(page)
    assert await waiting(live, hall, "business-licence") == 1
    assert len(await page.evaluate("window.qmsKiosk.requests")) == 1

    # Two clicks in the same task, before any answer can come back.
    await page.click("#done")
    await until(page, f"{SCREEN} === 'start'")
    await page.evaluate(
        "(() => { const b = document.querySelector("
        "'#screen-start button.service[data-service=business-licence]');"
        " b.click(); b.click(); b.click(); })()"
    )
    await shown_ticket(page)
    assert await waiting(live, hall, "business-licence") == 2
    assert len(await page.evaluate("window.qmsKiosk.requests")) == 2


async def test_a_lost_answer_is_retried_with_the_same_key(
    live: LiveServer, hall_config: HallConfig, page: Page
) -> None:
    hall = hall_config.id
    tickets_path = f"/api/v1/halls/{hall}/tickets"
    seen: list[dict[str, Any]] = []

    async def lose_the_first_answer(route: Route) -> None:
        keys = [k for k in (await route.request.all_headers()).items() if k[0] == "idempotency-key"]
        seen.append({"key": keys[0][1] if keys else None})
        if len(seen) == 1:
            # The server issues the ticket; its answer never reaches the kiosk.
            response = await route.fetch()
            seen[0]["answer"] = await response.json()
            await route.abort("connectionreset")
        else:
            await route.continue_()

    await page.route(f"**{tickets_path}", lose_the_first_answer)
    await open_kiosk(page, live, hall)
    await service_button(page, "household").click()
    ticket = await shown_ticket(page)
    assert len(seen) == 2
    assert seen[0]["key"] is not None and seen[0]["key"] == seen[1]["key"]
    assert ticket["id"] == seen[0]["answer"]["id"] and ticket["number"] == "D001"
    assert await waiting(live, hall, "household") == 1


async def test_no_answer_at_all_offers_a_retry_of_the_same_request(
    live: LiveServer, hall_config: HallConfig, page: Page, tmp_path: Path
) -> None:
    hall = hall_config.id
    tickets_path = f"/api/v1/halls/{hall}/tickets"
    keys: list[str] = []
    down = True

    async def flaky(route: Route) -> None:
        keys.append(await route.request.header_value("idempotency-key") or "")
        if down:
            # Done on the server, every answer lost: the worst case for duplicates.
            await route.fetch()
            await route.abort("internetdisconnected")
        else:
            await route.continue_()

    await page.route(f"**{tickets_path}", flaky)
    await open_kiosk(page, live, hall)
    await service_button(page, "social-security").click()
    await page.locator("#failure").wait_for(state="visible", timeout=10_000)
    assert await page.inner_text("#failure-text") == "网络连接失败，请稍后重试或联系工作人员"
    await shoot(page, tmp_path, "kiosk-failure.png")
    down = False
    await page.click("#failure-retry")
    ticket = await shown_ticket(page)
    assert len(keys) == 5 and len(set(keys)) == 1  # 1 + 3 automatic + 1 by hand
    assert ticket["number"] == "A001"
    assert await waiting(live, hall, "social-security") == 1


async def test_check_in_by_code(
    live: LiveServer, hall_config: HallConfig, page: Page, tmp_path: Path
) -> None:
    hall = hall_config.id
    booked = await api(
        live,
        "POST",
        hall,
        "/appointments",
        KIOSK,
        service="business-licence",
        start=datetime.now(UTC).isoformat(),
    )
    code = booked["code"]
    await open_kiosk(page, live, hall)
    await page.click("#go-checkin")
    await until(page, f"{SCREEN} === 'checkin'")
    keys = await page.locator("#keypad button").all_inner_texts()
    assert "".join(keys) == "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
    assert await page.locator("#checkin-submit").is_disabled()

    # A code that matches no appointment: said in words, and it can be fixed.
    wrong = "22222222" if code != "22222222" else "33333333"
    for c in wrong:
        await page.click(f'#keypad button[data-key="{c}"]')
    assert await page.locator("#keypad button").first.is_disabled()  # eight is all
    await page.click("#checkin-submit")
    error = page.locator("#checkin-error")
    await error.wait_for(state="visible")
    assert await error.inner_text() == "没有找到这个预约码，请核对后重新输入"
    assert await page.evaluate(SCREEN) == "checkin"

    await page.click("#key-clear")
    assert await error.is_hidden()
    for c in code[:5]:
        await page.click(f'#keypad button[data-key="{c}"]')
    assert await page.evaluate("document.getElementById('code').dataset.code") == code[:5]
    await assert_fits(page)
    await shoot(page, tmp_path, "kiosk-checkin.png")
    # The rest as a code scanner would type it, lowercase and all.
    await page.keyboard.type(code[5:].lower())
    await page.click("#checkin-submit")
    ticket = await shown_ticket(page)
    assert ticket["number"] == "C001" and ticket["priority"] == "appointment"
    assert await page.inner_text(".ticket-done") == "签到成功"
    assert await page.inner_text("#ticket-priority") == "预约优先"

    # The same code twice: refused, in words.
    await page.click("#done")
    await page.click("#go-checkin")
    await page.keyboard.type(code)
    await page.keyboard.press("Enter")
    await error.wait_for(state="visible")
    assert await error.inner_text() == "这个预约已经签到过了，请留意叫号"
    assert await waiting(live, hall, "business-licence") == 1


async def test_the_qr_code_encodes_the_visitor_page(
    live: LiveServer, hall_config: HallConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    hall = hall_config.id
    ticket = await api(live, "POST", hall, "/tickets", KIOSK, service="household")
    path = f"/halls/{hall}/tickets/{ticket['id']}/qr.svg"
    r = await live.api.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/svg+xml"
    assert r.headers["cache-control"] == "no-store"
    url = f"{live.http}/halls/{hall}/tickets/{ticket['id']}"
    assert r.text.startswith("<svg") and f"<title>{url}</title>" in r.text
    assert svg_matrix(r.text) == qr_matrix(url)

    # Behind a proxy, the address phones reach is configured.
    monkeypatch.setenv(PUBLIC_URL_ENV, "https://qms.example.gov.cn/queue/")
    public = f"https://qms.example.gov.cn/queue/halls/{hall}/tickets/{ticket['id']}"
    r = await live.api.get(path)
    assert f"<title>{public}</title>" in r.text
    assert svg_matrix(r.text) == qr_matrix(public)

    # Drawn only for a ticket the hall holds (drawing costs ~10 ms of CPU),
    # once for each address asked for again.
    made_up = "A" * 22
    drawn = qr_svg.cache_info().misses
    assert (await live.api.get(f"/halls/{hall}/tickets/{made_up}/qr.svg")).status_code == 404
    assert qr_svg.cache_info().misses == drawn
    hits = qr_svg.cache_info().hits
    assert (await live.api.get(path)).status_code == 200
    assert qr_svg.cache_info().hits == hits + 1
    for bad in ["A" * 21, "A" * 23, "A" * 21 + ".", "A" * 21 + "%20"]:
        r = await live.api.get(f"/halls/{hall}/tickets/{bad}/qr.svg")
        assert r.status_code == 404, bad
    r = await live.api.get(f"/halls/no-such-hall/tickets/{made_up}/qr.svg")
    assert r.status_code == 404


def qr_matrix(url: str) -> list[list[bool]]:
    return [[bool(m) for m in row] for row in segno.make(url, error="m", micro=False).matrix]


def svg_matrix(svg: str) -> list[list[bool]]:
    """The dark modules drawn by the SVG: segno draws each run of dark modules
    of a row as a horizontal stroke through its middle ("M x y+.5 h n" and
    relative "m dx dy" moves), inside a four-module quiet zone."""
    size = int(re.search(r'viewBox="0 0 (\d+) \1"', svg).group(1))  # type: ignore[union-attr]
    path = re.search(r'<path stroke="#000" d="([^"]+)"', svg).group(1)  # type: ignore[union-attr]
    grid = [[False] * size for _ in range(size)]
    x = y = 0.0
    for op, a, b in re.findall(r"([MmHh])(-?[\d.]+)(?:\s(-?[\d.]+))?", path):
        if op == "M":
            x, y = float(a), float(b)
        elif op == "m":
            x, y = x + float(a), y + float(b)
        else:
            run = int(float(a))
            for i in range(run):
                grid[int(y)][int(x) + i] = True
            x += run
    border = 4
    modules = [row[border : size - border] for row in grid[border : size - border]]
    # Sanity independent of segno: finder patterns in three corners.
    n = len(modules)
    for top, left in [(0, 0), (0, n - 7), (n - 7, 0)]:
        edges = [modules[top][left + i] and modules[top + 6][left + i] for i in range(7)]
        assert all(edges) and not modules[top + 1][left + 1] and modules[top + 3][left + 3]
    return modules


async def test_the_slip_prints_alone_at_receipt_width(
    live: LiveServer, hall_config: HallConfig, page: Page, tmp_path: Path
) -> None:
    hall = hall_config.id
    await open_kiosk(page, live, hall)
    await service_button(page, "social-security").click()
    ticket = await shown_ticket(page)
    await until(
        page,
        "document.getElementById('r-qr').complete"
        " && document.getElementById('r-qr').naturalWidth > 0",
    )
    receipt = page.locator("#receipt")
    assert await receipt.is_hidden()  # not on the screen

    await page.emulate_media(media="print")
    assert await receipt.is_visible()
    assert await page.locator("#app").is_hidden()
    lines = [text_of(t) for t in await receipt.locator("p:visible").all_inner_texts()]
    issued = datetime.fromisoformat(ticket["issued_at"]).strftime("%Y/%m/%d %H:%M")
    assert lines == [
        "测试政务服务中心",
        "您的号码",
        "A001",
        "社保医保",
        "您是下一位",
        f"取号时间 {issued}",
        "扫码查看排队进度，请留意叫号",
    ]
    box = await receipt.bounding_box()
    assert box is not None and abs(box["width"] - 80 / 25.4 * 96) < 1  # 80 mm at 96 px/in
    number_px = await page.evaluate(
        "parseFloat(getComputedStyle(document.getElementById('r-number')).fontSize)"
    )
    assert number_px >= 40 / 72 * 96 - 0.01  # 40 pt, the largest thing on the slip
    path = tmp_path / "kiosk-receipt.png"
    await receipt.screenshot(path=str(path))
    keep_for_review(path)

    # The printer gets one 80 mm page.
    pdf = await page.pdf(prefer_css_page_size=True, print_background=True)
    assert pdf_pages(pdf) == [(80, 140)]
    # Back to no emulation: under emulated screen media pdf() would print the screen.
    await page.emulate_media(media="null")

    # A kiosk with a 58 mm printer boots with ?paper=58.
    await open_kiosk(page, live, hall, "paper=58")
    await service_button(page, "social-security").click()
    await shown_ticket(page)
    await until(page, "document.getElementById('r-qr').naturalWidth > 0")
    assert pdf_pages(await page.pdf(prefer_css_page_size=True)) == [(58, 115)]
    await page.emulate_media(media="print")
    box = await receipt.bounding_box()
    assert box is not None and abs(box["width"] - 58 / 25.4 * 96) < 1
    path = tmp_path / "kiosk-receipt-58.png"
    await receipt.screenshot(path=str(path))
    keep_for_review(path)


def pdf_pages(pdf: bytes) -> list[tuple[int, int]]:
    """Each page's size in whole millimetres, from its MediaBox."""
    boxes = re.findall(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", pdf)
    return [(round(float(w) * MM_PER_PT), round(float(h) * MM_PER_PT)) for w, h in boxes]


async def test_without_a_token_the_kiosk_asks_for_one(
    live: LiveServer, hall_config: HallConfig, page: Page, tmp_path: Path
) -> None:
    hall = hall_config.id
    await page.goto(kiosk_url(live, hall, ""))
    form = page.locator("#token-form")
    await form.wait_for(state="visible")
    assert await page.evaluate("document.getElementById('app').inert") is True
    assert await page.evaluate("document.activeElement.id") == "token-input"
    await shoot(page, tmp_path, "kiosk-token.png")

    error = page.locator("#token-error")
    for wrong in ["not-a-token", DISPLAY]:  # unknown (401), another role's (403)
        await page.fill("#token-input", wrong)
        await page.click("#token-form button")
        await until(
            page,
            "document.getElementById('token-error').textContent === arg",
            "令牌无效，请重新输入",
        )
        assert await form.is_visible()
    await page.fill("#token-input", KIOSK)
    await page.click("#token-form button")
    await form.wait_for(state="hidden")
    assert await error.is_hidden()
    assert await page.evaluate("document.getElementById('app').inert") is False
    # Kept: the next boot goes straight to the start screen.
    await open_kiosk(page, live, hall, "")
    await service_button(page, "household").click()
    assert (await shown_ticket(page))["number"] == "D001"


async def test_a_token_revoked_later_is_asked_for_again(
    live: LiveServer, hall_config: HallConfig, page: Page
) -> None:
    hall = hall_config.id
    await open_kiosk(page, live, hall)
    # As if the hall's config changed the kiosk's token while it ran.
    await page.route(
        f"**/api/v1/halls/{hall}/tickets",
        lambda route: route.continue_(
            headers={**route.request.headers, "authorization": "Bearer old"}
        ),
    )
    await service_button(page, "household").click()
    await page.locator("#token-form").wait_for(state="visible")
    assert await page.inner_text("#token-error") == "取号机令牌已失效，请联系工作人员"
    assert await page.evaluate(f"localStorage.getItem('qms.token.{hall}.kiosk')") is None
    assert await waiting(live, hall, "household") == 0


async def test_an_unknown_hall_is_a_404_page(live: LiveServer, page: Page) -> None:
    response = await page.goto(f"{live.http}/halls/no-such-hall/kiosk?token={KIOSK}")
    assert response is not None and response.status == 404
    assert "没有这个大厅" in await page.inner_text("main")


async def test_names_cannot_break_out_of_the_page(
    tmp_path: Path, redis: RedisClient, redis_url: str, browser: Browser
) -> None:
    path = write_hall(tmp_path)
    text = path.read_text(encoding="utf-8").replace(
        'name = "户籍办理"', 'name = "户籍</script><script>alert(1)</script>"'
    )
    path.write_text(text, encoding="utf-8")
    config = load_hall_config(path)
    try:
        async with live_server([config], redis_url) as live:
            r = await live.api.get(f"/halls/{config.id}/kiosk")
            assert r.status_code == 200
            assert "<script>alert(1)" not in r.text
            embedded = re.search(
                r'<script type="application/json" id="qms-config">(.*?)</script>', r.text, re.S
            )
            assert embedded is not None
            names = [s["name"] for s in json.loads(embedded.group(1))["services"]]
            assert "户籍</script><script>alert(1)</script>" in names
    finally:
        await delete_hall(redis, HallKeys(config.id))


# ------------------------------------------------------------ a hall's day

# Weekdays and Sunday morning: the tests' Saturday 09:00 is outside them,
# and the next opening is tomorrow (Sunday) at 08:30.
HOURS = """
[hours]
mon = ["08:30-12:00", "13:30-17:30"]
tue = ["08:30-12:00", "13:30-17:30"]
wed = ["08:30-12:00", "13:30-17:30"]
thu = ["08:30-12:00", "13:30-17:30"]
fri = ["08:30-12:00", "13:30-17:30"]
sun = ["08:30-12:00"]
"""
MANAGER = "manager-token"
CLERK1 = "clerk-1-token"


async def test_outside_the_hours_the_kiosk_says_when_it_issues_again(
    tmp_path: Path, redis: RedisClient, redis_url: str, page: Page
) -> None:
    config = load_hall_config(write_hall(tmp_path, extra=HOURS))
    clock = Clock()
    try:
        async with live_server([config], redis_url, clock=clock) as live:
            await page.clock.install()
            await open_kiosk(page, live, config.id)
            closed = page.locator("#closed")
            await closed.wait_for(state="visible")
            assert (
                await page.inner_text("#closed-message") == "今日已停止取号，明天 08:30 开始取号。"
            )
            assert await page.inner_text("#closed .closed-title") == "暂停取号"
            # Nothing to tap that the server would refuse.
            assert await page.locator("#groups").is_hidden()
            assert await page.locator("#screen-start button.service:visible").count() == 0
            for button in ["#go-elderly", "#go-checkin", "#go-rejoin"]:
                assert await page.locator(button).is_hidden(), button
            assert await page.evaluate("window.qmsKiosk.closed") is True
            await assert_fits(page)
            await shoot(page, tmp_path, "kiosk-closed.png")
            await page.click("#lang")
            assert await page.inner_text("#closed-message") == (
                "The hall is not issuing tickets now; it opens tomorrow at 08:30."
            )
            await page.click("#lang")

            # Sunday 08:30: the next poll brings the services back.
            clock.advance(minutes=23 * 60 + 30)
            await page.clock.run_for(5_000)
            await until(page, "window.qmsKiosk.closed === false")
            assert await closed.is_hidden()
            await service_button(page, "household").click()
            assert (await shown_ticket(page))["number"] == "D001"
    finally:
        await delete_hall(redis, HallKeys(config.id))


async def test_a_refused_issue_closes_the_kiosk_at_once(
    live: LiveServer, hall_config: HallConfig, page: Page, tmp_path: Path
) -> None:
    hall = hall_config.id
    await open_kiosk(page, live, hall)
    assert await page.locator("#closed").is_hidden()
    # The manager closes the hall; the kiosk has not polled since.
    await api(live, "POST", hall, "/close", MANAGER)
    await service_button(page, "household").click()
    await page.locator("#closed").wait_for(state="visible")
    assert await page.inner_text("#closed-message") == "今日已停止取号，明天 00:00 开始取号。"
    assert await page.locator("#failure").is_hidden()
    assert await page.evaluate(SCREEN) == "start"
    assert await waiting(live, hall, "household") == 0
    # Open again: the next poll offers the services.
    await api(live, "POST", hall, "/open", MANAGER)
    await until(page, "window.qmsKiosk.closed === false", ms=8_000)
    assert await service_button(page, "household").is_visible()


async def test_a_missed_ticket_scanned_at_the_kiosk_queues_again(
    live: LiveServer, hall_config: HallConfig, page: Page, tmp_path: Path
) -> None:
    hall = hall_config.id
    missed = await api(live, "POST", hall, "/tickets", KIOSK, service="social-security")
    await api(live, "POST", hall, "/tickets", KIOSK, service="social-security")
    await api(live, "POST", hall, "/windows/1/open", CLERK1)
    await api(live, "POST", hall, "/windows/1/call-next", CLERK1)
    await api(live, "POST", hall, "/windows/1/no-show", CLERK1)

    await open_kiosk(page, live, hall)
    rejoin = page.locator("#go-rejoin")
    assert await rejoin.inner_text() == "我回来了\n过号后扫码排队"
    await rejoin.click()
    await until(page, f"{SCREEN} === 'rejoin'")
    assert await page.evaluate("document.activeElement.id") == "rejoin-input"
    assert await page.inner_text("#rejoin-rule") == (
        "叫号时不在窗口（过号）的，10 分钟内可以回来重新排队一次，号码不变。"
    )
    error = page.locator("#rejoin-error")

    # Not a ticket's code; another hall's ticket: said in words.
    await page.keyboard.type("hello")
    await page.keyboard.press("Enter")
    await error.wait_for(state="visible")
    assert await error.inner_text() == "没有识别出号票二维码，请再扫一次"
    await page.keyboard.type(f"{live.http}/halls/another-hall/tickets/{missed['id']}")
    await page.keyboard.press("Enter")
    await until(
        page,
        "document.getElementById('rejoin-error').textContent === arg",
        "这张号票不是本大厅的，请到取号的大厅办理",
    )
    await assert_fits(page)
    await shoot(page, tmp_path, "kiosk-rejoin.png")

    # The scanner types the printed URL wherever the focus is, then Enter.
    await page.click("#screen-rejoin .prompt")
    await page.keyboard.type(f"{live.http}/halls/{hall}/tickets/{missed['id']}")
    await page.keyboard.press("Enter")
    ticket = await shown_ticket(page)
    assert ticket["number"] == "A001" and ticket["status"] == "waiting"
    assert ticket["kind"] == "rejoin"
    assert await page.inner_text(".ticket-done") == "已重新排队，号码不变"
    assert await page.inner_text("#ticket-ahead") == "您前面还有 1 人"
    stored = await api(live, "GET", hall, f"/tickets/{missed['id']}")
    assert stored["status"] == "waiting" and stored["position"] == 1
    await shoot(page, tmp_path, "kiosk-rejoined.png")

    # Once only: the same ticket again (a bare id this time) is told why not.
    await page.click("#done")
    await page.click("#go-rejoin")
    await page.keyboard.type(missed["id"])
    await page.keyboard.press("Enter")
    await error.wait_for(state="visible")
    assert await error.inner_text() == "A001 号正在排队，不用重新排队，请留意叫号"
    assert await page.evaluate(SCREEN) == "rejoin"


async def test_a_service_whose_numbers_are_all_taken_cannot_be_pressed(
    redis_url: str, redis: RedisClient, tmp_path: Path, page: Page
) -> None:
    """`daily_cap`: a kiosk that has not polled since the last number went
    says so on the press, and shows the service as taken on both screens."""
    config = capped_config(tmp_path, 2)
    hall = config.id
    try:
        async with live_server([config], redis_url) as live:
            await open_kiosk(page, live, hall)
            button = service_button(page, "housing-fund")
            assert await button.is_enabled()
            for _ in range(2):
                await api(live, "POST", hall, "/tickets", KIOSK, service="housing-fund")
            await button.click()
            await page.locator("#failure").wait_for(state="visible")
            assert "今天的号已经取完" in await page.inner_text("#failure")
            assert await waiting(live, hall, "housing-fund") == 2
            await page.locator("#screen-start").wait_for(state="visible", timeout=30_000)
            assert await button.is_disabled()
            assert text_of(await button.inner_text()).endswith("今日已取完")
            assert await service_button(page, "housing-fund", "elderly").is_disabled()
            assert await service_button(page, "social-security").is_enabled()
            await shoot(page, tmp_path, "kiosk-service-full.png")
    finally:
        await delete_hall(redis, HallKeys(hall))
