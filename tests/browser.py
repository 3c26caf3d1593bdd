"""What the page tests share: Debian's Chromium driven by Playwright (no
browser download), their marks, waiting on a page, and keeping screenshots
for a person to look at. The `browser` fixture itself is in conftest.py."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page, ViewportSize

CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None
)
NO_CHROMIUM = "no chromium binary (apt-get install chromium)"

BROWSER_MARKS = [
    pytest.mark.redis,
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM),
]

SCREENS = Path("/tmp/qms-screens")
"""Every screenshot is copied here too, to be looked at after a run."""


async def until(page: Page, expression: str, arg: Any = None, ms: float = 10_000) -> None:
    """Wait up to `ms` until the JS `expression` (which may use `arg`) is true.
    Wrapped in a function: Playwright evaluates a bare string with eval,
    which the pages' Content-Security-Policy forbids."""
    await page.wait_for_function(f"(arg) => ({expression})", arg=arg, timeout=ms)


def keep_for_review(path: Path) -> None:
    SCREENS.mkdir(exist_ok=True)
    shutil.copy(path, SCREENS / path.name)


@contextlib.asynccontextmanager
async def fresh_page(browser: Browser, viewport: ViewportSize) -> AsyncIterator[Page]:
    """A page in a fresh browser profile (empty storage), in Chinese, at
    `viewport`; fails the test on any uncaught script error."""
    context = await browser.new_context(viewport=viewport, locale="zh-CN")
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    await context.close()
    assert errors == []
