"""The console in a real browser (Debian's Chromium driven by Playwright) against the real
services (in-process, ``run_service``), with telemetry published onto NATS as an agent would:
an operator logs in, sees a live value change, sees an alert appear, acknowledges it, finds
the acknowledgement in the alert's history, and the page's screenshot is not blank."""

from __future__ import annotations

import asyncio
import contextlib
import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from console_city import PASSWORD, City, running_city
from console_support import serving

from smartcity.services.console.app import ConsoleServer
from smartcity.services.console.settings import ConsoleSettings

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VALUE = "[data-testid=device-value][data-metric=turbidity]"


def _console(city: City) -> contextlib.AbstractAsyncContextManager[str]:
    return serving(ConsoleServer(ConsoleSettings(targets=city.targets), "127.0.0.1", 0))


@contextlib.asynccontextmanager
async def _publishing(city: City, values: list[float]) -> AsyncIterator[list[float]]:
    """Publish ``values[0]`` every 0.3 s (plus a small step each time, so the value keeps
    changing) until the block ends; the test changes ``values[0]`` to move it."""

    async def run() -> None:
        step = 0
        while True:
            step += 1
            await city.publish(round(values[0] + (step % 10) / 100, 2))
            await asyncio.sleep(0.3)  # the pace of a field device, not a wait for a condition

    task = asyncio.create_task(run())
    try:
        yield values
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _pixels(png: bytes) -> tuple[int, int, list[bytearray], int]:
    """Width, height, rows of pixel bytes and bytes per pixel of an 8-bit RGB(A) PNG."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    position, compressed = 8, bytearray()
    width = height = color = 0
    while position < len(png):
        length, kind = struct.unpack(">I4s", png[position : position + 8])
        body = png[position + 8 : position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8
        elif kind == b"IDAT":
            compressed += body
    size = {2: 3, 6: 4}[color]
    raw = zlib.decompress(bytes(compressed))
    stride = width * size
    above = bytearray(stride)
    rows = []
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride) if kind else ():
            left = line[i - size] if i >= size else 0
            up, corner = above[i], (above[i - size] if i >= size else 0)
            if kind == 1:
                guess = left
            elif kind == 2:
                guess = up
            elif kind == 3:
                guess = (left + up) >> 1
            else:
                p = left + up - corner
                near = sorted(
                    ((abs(p - left), 0, left), (abs(p - up), 1, up), (abs(p - corner), 2, corner))
                )
                guess = near[0][2]
            line[i] = (line[i] + guess) & 255
        rows.append(line)
        above = line
    return width, height, rows, size


def _brightness_spread(png: bytes) -> tuple[float, int]:
    """The variance of the pixels' brightness and the number of distinct colours."""
    width, _, rows, size = _pixels(png)
    levels, colours = [], set()
    for row in rows[::4]:
        for x in range(0, width * size, size * 4):
            r, g, b = row[x], row[x + 1], row[x + 2]
            levels.append((299 * r + 587 * g + 114 * b) / 1000)
            colours.add((r, g, b))
    mean = sum(levels) / len(levels)
    return sum((v - mean) ** 2 for v in levels) / len(levels), len(colours)


@pytest.fixture
def chromium() -> str:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    return str(CHROMIUM)


async def test_an_operator_sees_live_values_and_acknowledges_an_alert(
    tmp_path: Path, chromium: str
) -> None:
    playwright_api = pytest.importorskip("playwright.async_api")
    async with (
        running_city(tmp_path / "city") as city,
        _console(city) as url,
        _publishing(city, [1.0]) as level,
        playwright_api.async_playwright() as playwright,
    ):
        browser = await playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = await browser.new_page(viewport={"width": 1920, "height": 1080}, locale="en-GB")
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            await page.goto(url)
            await page.get_by_test_id("login-username").fill("op.an")
            await page.get_by_test_id("login-password").fill(PASSWORD)
            await page.get_by_test_id("login-submit").click()

            value = page.locator(VALUE).first
            await value.wait_for(timeout=20_000)
            await page.wait_for_function(
                "s => { const c = document.querySelector(s); return c && c.dataset.value !== ''; }",
                arg=VALUE,
                timeout=20_000,
            )
            first = await value.get_attribute("data-value")
            assert await value.get_attribute("data-quality") == "good"
            # the next readings arrive over the live stream and change the cell in place
            await page.wait_for_function(
                "([s, v]) => document.querySelector(s).dataset.value !== v",
                arg=[VALUE, first],
                timeout=20_000,
            )

            level[0] = 3.0  # above the rule's 2 NTU
            row = page.locator("[data-testid=alert-row][data-state=firing]").first
            await row.wait_for(timeout=20_000)
            assert "Turbidity above 2 NTU" in await row.inner_text()
            assert await row.get_attribute("data-acknowledged") == "false"
            await row.get_by_test_id("alert-ack").click()
            await page.locator("[data-testid=alert-row][data-acknowledged=true]").wait_for(
                timeout=10_000
            )
            await page.locator("[data-testid=alert-row]").first.click()
            history = page.get_by_test_id("alert-history")
            await history.locator("[data-type=acknowledged]").wait_for(timeout=10_000)
            assert "op.an" in await history.inner_text()

            shot = await page.screenshot(path=str(tmp_path / "console.png"))
            spread, colours = _brightness_spread(shot)
            assert spread > 50, f"the screenshot looks blank (variance {spread:.1f})"
            assert colours > 20
            assert errors == []
        finally:
            await browser.close()
