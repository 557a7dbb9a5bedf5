"""The operator dashboard in a real browser: Debian's Chromium (Playwright) against the real stack
in-process (Kafka broker, Faust, Qdrant Edge, uvicorn on port 0, a tiny DINOv3) playing a video
with known cuts. Checks what an operator sees: live tiles, scene changes on the timeline, an
event's frames, click-to-segment with its threshold, search by picture, the watchlist, and adding
streams through the form (including a refused one). Screenshots go to test-artifacts/dashboard/."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import av
import pytest

from dinostream.core.embedded_broker import EmbeddedBroker
from dinostream.core.settings import Settings
from dinostream.service import Service

if TYPE_CHECKING:
    from playwright.async_api import ConsoleMessage, Page

from playwright.async_api import async_playwright, expect  # noqa: E402  (the test extra installs it)

from tests.records import unique_kafka

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"
SLOW = 60_000  # ms: what the stack must do first (load the model, play to the next cut)
QUICK = 15_000  # ms: a reaction to a click


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[str]:
    """Run the stack until the block ends; yields the dashboard's URL."""
    stop = asyncio.Event()
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(Service(settings).run(stop, ready.set_result))
    await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if not ready.done():
        task.result()  # raises why it could not start
        raise AssertionError("the stack ended before it was ready")
    try:
        yield ready.result()
    finally:
        stop.set()
        await task


def still_frame(video: Path, at_s: float, out: Path) -> Path:
    """Save the first frame at or after `at_s` seconds of `video` as a PNG (the query picture)."""
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            if frame.time is not None and frame.time >= at_s:
                frame.to_image().save(out)
                return out
    raise AssertionError(f"{video} has no frame at {at_s} s")


CANVAS_INK = """(canvas) => {
  const d = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let n = 0;
  for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
  return n / (canvas.width * canvas.height);
}"""


async def shot(page: Page, name: str) -> None:
    """A full-page screenshot from the top (a sticky header otherwise lands mid-page)."""
    await page.evaluate("window.scrollTo(0, 0)")
    await page.screenshot(path=ARTIFACTS / name, full_page=True)


async def selected_cells(page: Page) -> int:
    text = await page.locator("#segment-info").inner_text()
    return int(text.split(" · ")[1].split(" of ")[0])


@pytest.mark.integration
async def test_dashboard_in_chromium(
    tmp_path: Path, tiny_model_dir: Path, cut_video: tuple[Path, list[float]], broker: EmbeddedBroker
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    video, cuts = cut_video
    media = tmp_path / "media"
    media.mkdir()
    shutil.copy(video, media / "clip.mp4")
    outside = tmp_path / "outside.mp4"
    shutil.copy(video, outside)
    query = still_frame(video, cuts[0] + 1.0, tmp_path / "query.png")
    tag = uuid.uuid4().hex[:8]
    settings = Settings.model_validate(
        {
            "data_dir": tmp_path / "data",
            "sources": [str(video)],  # stream "cuts", played at its own pace
            "model": {"model": str(tiny_model_dir), "device": "cpu"},
            "ingest": {"media_roots": [media], "realtime": True},
            "kafka": unique_kafka(
                bootstrap=broker.bootstrap,
                partitions=1,
                idempotent=False,  # the embedded broker's storage has no InitProducerId
            ).model_dump(),
            "analytics": {"app_id": f"dash-{tag}"},
            "http": {"host": "127.0.0.1", "port": 0},
        }
    )
    problems: list[str] = []  # console errors and uncaught exceptions, as the page reports them

    async with asyncio.timeout(150), running(settings) as url, async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        try:
            page = await browser.new_page(viewport={"width": 1440, "height": 1100})

            def on_console(m: ConsoleMessage) -> None:
                if m.type == "error":
                    problems.append(f"console: {m.text} ({m.location.get('url')})")

            page.on("console", on_console)
            page.on("pageerror", lambda e: problems.append(f"uncaught: {e}"))
            await page.goto(url)

            # A live tile with its picture and health, then a scene change on the timeline.
            tile = page.locator('.tile[data-stream="cuts"]')
            await expect(tile).to_have_class(re.compile(r"\bhas-thumb\b"), timeout=SLOW)
            await expect(tile.locator(".tile-state")).to_have_text("live", timeout=QUICK)
            await expect(tile.locator(".tile-stats")).to_contain_text("frames")
            await expect(page.locator("#connection")).to_have_class("conn conn-live")
            cut = page.locator('.tl-row[data-stream="cuts"] .tl-bar[data-type="scene_change"]').first
            await expect(cut).to_be_visible(timeout=SLOW)
            await expect(page.locator('#event-feed .event[data-type="scene_change"]').first).to_be_visible()
            await shot(page, "01-live.png")
            assert problems == [], problems

            # The event's before/after frames.
            await cut.click()
            await expect(page.locator("#inspector-title")).to_have_text("scene change · cuts")
            await expect(page.locator("#inspector-stages .stage.loaded")).to_have_count(2, timeout=QUICK)
            await shot(page, "02-scene-change.png")

            # A click on the live frame: the similarity heatmap and the mask, which follows the slider.
            await tile.locator(".tile-thumb").click()
            canvas = page.locator("#inspector-stages .stage.loaded canvas")
            await expect(canvas).to_have_count(1, timeout=QUICK)
            await canvas.click(position={"x": 120, "y": 90})
            await expect(page.locator("#segment-controls")).to_be_visible(timeout=QUICK)
            await expect(canvas).to_have_attribute("data-drawn", "similarity")
            assert await canvas.evaluate(CANVAS_INK) > 0.5, "the heatmap covers the frame"
            await page.locator("#segment-threshold").fill("1")
            assert await selected_cells(page) == 1, "at threshold 1 only the clicked patch is selected"
            await page.locator("#segment-threshold").fill("-0.2")
            assert await selected_cells(page) > 1, "a lower threshold grows the selection"
            await page.locator("#segment-threshold").fill("0.3")
            await shot(page, "03-click-to-segment.png")

            # The clicked selection goes on the watchlist, and comes off it.
            await page.locator("#watchlist-click-label").fill("first shot")
            await page.locator("#watchlist-from-click").click()
            item = page.locator("#watchlist-list .wl-item", has_text="first shot")
            await expect(item).to_be_visible(timeout=QUICK)

            # Search by an uploaded picture: moments with thumbnails.
            await page.locator("#search-image").set_input_files(query)
            await page.locator("#search-submit").click()
            results = page.locator("#search-results .result")
            await expect(results.first).to_be_visible(timeout=QUICK)
            await expect(page.locator("#search-status")).to_contain_text("like the picture")
            # The thumbnail loads (a broken one completes with no width and fails here after QUICK).
            thumb = await results.first.locator("img").element_handle()
            await page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=thumb, timeout=QUICK)
            await shot(page, "04-search.png")

            await item.locator("button").click()
            await expect(item).to_have_count(0, timeout=QUICK)

            # Adding a stream through the form: its tile appears; a refused URL shows why.
            await page.locator("#stream-url").fill("clip.mp4")
            await page.locator("#stream-id").fill("clip")
            await page.locator("#stream-add").click()
            await expect(page.locator('.tile[data-stream="clip"]')).to_be_visible(timeout=QUICK)
            await expect(page.locator("#stream-form-status")).to_contain_text("Added clip", timeout=QUICK)
            await page.locator("#stream-url").fill(str(outside))
            await page.locator("#stream-add").click()
            status = page.locator("#stream-form-status")
            await expect(status).to_contain_text("outside the media roots", timeout=QUICK)
            await expect(status).to_have_class("status error")
            await shot(page, "05-streams.png")

            # The refused add answers 422: the browser logs that response, nothing else may be logged.
            unexpected = [m for m in problems if "status of 422" not in m]
            assert unexpected == [], unexpected
        finally:
            await browser.close()
