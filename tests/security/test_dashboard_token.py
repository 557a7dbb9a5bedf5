"""The dashboard page where tokens are required, in Chromium (Playwright) against the app on uvicorn:
it asks for a token once, keeps it for the tab (sessionStorage), shows thumbnails through it
(an <img> cannot send the header) and goes live on the websocket."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from playwright.async_api import async_playwright, expect

from tests.security.gateway import TOKENS, Gateway, token_settings
from tests.serving import serve

CHROMIUM = "/usr/bin/chromium"
QUICK = 15_000  # ms


@pytest.mark.integration
async def test_the_page_asks_for_a_token_once_and_keeps_it_for_the_tab(tmp_path: Path) -> None:
    problems: list[str] = []
    async with (
        asyncio.timeout(90),
        Gateway(tmp_path, token_settings()) as gw,
        serve(gw.app) as base,
        async_playwright() as p,
    ):
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = await browser.new_page()
            page.on("pageerror", lambda e: problems.append(f"uncaught: {e}"))
            await page.goto(base)
            dialog = page.locator("#token-dialog")
            await expect(dialog).to_be_visible(timeout=QUICK)
            await page.fill("#token-input", "not-the-token")
            await page.click("#token-ok")
            await expect(dialog).to_be_visible(timeout=QUICK)  # refused: asked again, saying why
            await expect(page.locator("#token-why")).to_contain_text("token", timeout=QUICK)
            await page.fill("#token-input", TOKENS["viewer"])
            await page.click("#token-ok")
            await expect(dialog).to_be_hidden(timeout=QUICK)
            await expect(page.locator("#connection-text")).to_have_text("live", timeout=QUICK)
            thumb = page.locator('.tile[data-stream="cam1"] img')
            await expect(thumb).to_have_attribute("src", re.compile(r"^blob:"), timeout=QUICK)  # fetched with it
            handle = await thumb.element_handle()  # loaded (a blob decodes asynchronously too)
            await page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=handle, timeout=QUICK)
            assert await page.evaluate("sessionStorage.getItem('dinostream-token')") == TOKENS["viewer"]
            await page.reload()  # the same tab: no second question
            await expect(page.locator("#connection-text")).to_have_text("live", timeout=QUICK)
            await expect(dialog).to_be_hidden()
        finally:
            await browser.close()
    assert problems == []
