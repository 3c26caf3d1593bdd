"""The kiosk's "刷身份证 / 输入身份证号" path (issue 16) in a real headless
Chromium against a live server whose hall allows one active ticket per
person: a card reader types the number and Enter, the ticket is elderly by
the holder's age, a second ticket for the same person is refused naming the
number held, typing mistakes are caught before anything is sent, and the
identity number is gone from the page once the request is answered.

Screenshots land in each test's tmp_path and in /tmp/qms-screens/kiosk-id-*.png."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("playwright.async_api", reason="playwright is not installed")

from playwright.async_api import Browser, Page, Request, Route

from queue_core.config import HallConfig, load_hall_config
from queue_core.identity import check_character
from queue_core.keys import HallKeys
from queue_core.redis_client import RedisClient
from tests.browser import BROWSER_MARKS, fresh_page, until
from tests.conftest import delete_hall
from tests.live import LiveServer, live_server
from tests.support import write_hall
from tests.test_pages_kiosk import (
    PORTRAIT,
    SCREEN,
    api,
    assert_fits,
    open_kiosk,
    service_button,
    shoot,
    shown_ticket,
)

pytestmark = BROWSER_MARKS

KEY = b"test-only-identity-digest-key-0123456789"
OLD = "11010519491231002X"  # 76 on the test server's day
YOUNG_17 = "11010519900101002"
YOUNG = YOUNG_17 + check_character(YOUNG_17)  # 36


@pytest.fixture
async def hall_config(tmp_path: Path, redis: RedisClient) -> AsyncIterator[HallConfig]:
    config = load_hall_config(write_hall(tmp_path, extra="[issuing]\none_active_per_person = true"))
    yield config
    await delete_hall(redis, HallKeys(config.id))


@pytest.fixture
async def live(hall_config: HallConfig, redis_url: str) -> AsyncIterator[LiveServer]:
    async with live_server([hall_config], redis_url, id_digest_key=KEY) as server:
        yield server


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    async with fresh_page(browser, PORTRAIT) as page:
        yield page


def ticket_posts(page: Page) -> list[dict[str, Any]]:
    """The bodies of the page's POST /tickets requests, as they are sent."""
    bodies: list[dict[str, Any]] = []

    def seen(request: Request) -> None:
        if request.method == "POST" and request.url.endswith("/tickets"):
            bodies.append(json.loads(request.post_data or "{}"))

    page.on("request", seen)
    return bodies


async def assert_forgotten(page: Page, *numbers: str) -> None:
    """No identity number in the document (text, attributes, field values) or
    in what the page exposes."""
    found = await page.evaluate(
        """(numbers) => {
            const values = Array.from(document.querySelectorAll('input'), (i) => i.value);
            const all = document.documentElement.outerHTML + values.join(' ')
                + JSON.stringify(window.qmsKiosk) + JSON.stringify({...localStorage})
                + JSON.stringify({...sessionStorage});
            return numbers.filter((n) => all.toUpperCase().includes(n.slice(0, 17)));
        }""",
        list(numbers),
    )
    assert found == []


async def test_a_card_reader_gives_an_elderly_ticket_and_a_second_is_refused(
    live: LiveServer, hall_config: HallConfig, page: Page, tmp_path: Path
) -> None:
    hall = hall_config.id
    posts = ticket_posts(page)
    await open_kiosk(page, live, hall)
    await page.click("#go-elderly")
    await until(page, f"{SCREEN} === 'elderly'")
    assert await page.inner_text("#go-idcard .action-title") == "刷身份证 / 输入身份证号"
    await assert_fits(page)
    await shoot(page, tmp_path, "kiosk-id-elderly.png")
    await page.click("#go-idcard")
    await until(page, f"{SCREEN} === 'idcard'")
    field = page.locator("#id-input")
    assert await field.get_attribute("inputmode") == "numeric"
    assert await field.evaluate("(el) => el === document.activeElement")
    keys = await page.locator("#id-keypad button[data-idkey]").all_inner_texts()
    assert sorted(keys) == sorted("0123456789X")
    size = await field.evaluate("(el) => parseFloat(getComputedStyle(el).fontSize)")
    assert size >= 80  # large type
    await assert_fits(page)
    await shoot(page, tmp_path, "kiosk-id-entry.png")

    # The reader types fast, with a lower-case x, then Enter.
    await page.keyboard.type(OLD.lower(), delay=5)
    await page.keyboard.press("Enter")
    await until(page, f"{SCREEN} === 'elderly'")
    assert await page.locator("#id-held").is_visible()
    assert await page.locator("#go-idcard").is_hidden()
    await assert_forgotten(page, OLD)  # held in a variable only, not in the page
    await shoot(page, tmp_path, "kiosk-id-held.png")

    await service_button(page, "household", "elderly").click()
    ticket = await shown_ticket(page)
    assert ticket["priority"] == "elderly"
    assert await page.inner_text("#ticket-priority") == "长者优先"
    # The server decided the class from the birth date: the page asked for none.
    assert posts == [{"service": "household", "id_number": OLD}]
    stored = await api(live, "GET", hall, f"/tickets/{ticket['id']}")
    assert stored["priority"] == "elderly"
    await assert_forgotten(page, OLD)

    # The next visitor: the same card swiped on the elderly screen itself.
    await page.click("#done")
    await until(page, f"{SCREEN} === 'start'")
    await page.click("#go-elderly")
    await until(page, f"{SCREEN} === 'elderly'")
    await page.keyboard.type(OLD, delay=5)
    await page.keyboard.press("Enter")
    await until(page, f"{SCREEN} === 'elderly' && !document.getElementById('id-held').hidden")
    await service_button(page, "social-security", "elderly").click()
    await page.locator("#failure").wait_for(state="visible")
    text = await page.inner_text("#failure-text")
    assert text == f"这个身份证号已经取了 {ticket['number']} 号，请留意叫号；每人同时只能持有一个号"
    assert await page.locator("#failure-retry").is_hidden()
    assert len(posts) == 2 and posts[1]["id_number"] == OLD
    await assert_forgotten(page, OLD)
    assert await page.locator("#id-held").is_hidden()
    await shoot(page, tmp_path, "kiosk-id-held-already.png")


async def test_a_younger_holder_gets_a_normal_ticket(
    live: LiveServer, hall_config: HallConfig, page: Page
) -> None:
    await open_kiosk(page, live, hall_config.id)
    await page.click("#go-elderly")
    await page.click("#go-idcard")
    for c in YOUNG:
        await page.click(f'#id-keypad button[data-idkey="{c}"]')
    await page.click("#id-submit")
    await until(page, f"{SCREEN} === 'elderly'")
    await service_button(page, "household", "elderly").click()
    ticket = await shown_ticket(page)
    assert ticket["priority"] == "normal"
    assert await page.locator("#ticket-priority").is_hidden()
    await assert_forgotten(page, YOUNG)


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("110105194912310021", "身份证号码有误，请核对后重新输入"),
        ("110105491231002", "15 位的旧身份证号码不能使用，请使用 18 位居民身份证号码"),
        ("1101051949", "身份证号码应为 18 位，请核对后重新输入"),
    ],
)
async def test_typing_mistakes_are_told_before_anything_is_sent(
    live: LiveServer, hall_config: HallConfig, page: Page, typed: str, message: str
) -> None:
    posts = ticket_posts(page)
    await open_kiosk(page, live, hall_config.id)
    await page.click("#go-elderly")
    await page.click("#go-idcard")
    await page.keyboard.type(typed)
    await page.keyboard.press("Enter")
    await page.locator("#id-error").wait_for(state="visible")
    assert await page.inner_text("#id-error") == message
    assert await page.input_value("#id-input") == ""
    assert await page.evaluate(SCREEN) == "idcard"
    assert posts == []
    # 返回 goes back to the elderly screen, with no number held.
    await page.click("#id-back")
    await until(page, f"{SCREEN} === 'elderly'")
    assert await page.locator("#id-held").is_hidden()
    await assert_forgotten(page, typed)


async def test_the_servers_422_is_told_in_the_page_language(
    live: LiveServer, hall_config: HallConfig, page: Page
) -> None:
    """A number the server refuses (its day may differ from the kiosk's
    clock) is explained with the server's reason, and forgotten."""
    tickets_path = f"/api/v1/halls/{hall_config.id}/tickets"

    async def refuse(route: Route) -> None:
        error = {"code": "bad_id_number", "message": "…", "reason": "birth_date"}
        await route.fulfill(status=422, json={"error": error})

    await page.route(f"**{tickets_path}", refuse)
    await open_kiosk(page, live, hall_config.id)
    await page.click("#lang")  # English
    await page.click("#go-elderly")
    await page.click("#go-idcard")
    await page.keyboard.type(OLD)
    await page.keyboard.press("Enter")
    await until(page, f"{SCREEN} === 'elderly'")
    assert await page.inner_text("#id-held") == "ID card read; tap what you came for"
    await service_button(page, "household", "elderly").click()
    await page.locator("#failure").wait_for(state="visible")
    expected = "The birth date in this ID number is not right; please check it"
    assert await page.inner_text("#failure-text") == expected
    await assert_forgotten(page, OLD)
