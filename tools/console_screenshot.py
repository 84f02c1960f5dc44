"""Take the README's screenshot of the IOC console from a real city.

Starts ``smartcity up --ports auto`` in a temporary folder, injects a turbidity spike at one
water plant and a pollution episode at the air station (through the simulators, as the fault
schedule does), logs in to the console as ``ioc.admin`` in Debian's Chromium (driven by
Playwright, headless), waits until live values and a firing alert are on the page, and saves
the page as ``docs/console.png`` (or the path given). Needs the development extras and
``chromium``::

    python tools/console_screenshot.py [docs/console.png]
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"


def _fault(simulator: dict, fault: str, seconds: int) -> None:
    command = [
        sys.executable, "-m", "smartcity.cli.main", "sim", "fault",
        simulator["fault_endpoint"], fault, "--seconds", str(seconds),
    ]  # fmt: skip
    if "cert" in simulator:
        command += ["--cert", simulator["cert"], "--key", simulator["key"]]
    subprocess.run(command, check=True, capture_output=True)


def main(out: Path) -> None:
    from playwright.sync_api import sync_playwright

    from smartcity.bench.up import wait_until_ready

    password = secrets.token_urlsafe(12)
    with tempfile.TemporaryDirectory(prefix="smartcity-screenshot-") as folder:
        root = Path(folder) / "city"
        env = {**os.environ, "SMARTCITY_ADMIN_PASSWORD": password}
        process = subprocess.Popen(
            [sys.executable, "-m", "smartcity.cli.main", "up", "--data-dir", str(root),
             "--ports", "auto", "--no-faults", "--duration", "600"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        try:
            city = wait_until_ready(process, root / "city.json")
            simulators = city["simulators"]
            for site, fault in (
                ("cau-do-water", "turbidity_spike"),
                ("son-tra-air", "pollution_episode"),
            ):
                if site in simulators and "fault_endpoint" in simulators[site]:
                    _fault(simulators[site], fault, 300)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM,
                    headless=True,
                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
                )
                page = browser.new_page(viewport={"width": 1600, "height": 1000}, locale="vi-VN")
                page.goto(city["console"]["url"])
                page.get_by_test_id("login-username").fill("ioc.admin")
                page.get_by_test_id("login-password").fill(password)
                page.get_by_test_id("login-submit").click()
                page.locator("[data-testid=device-value]").first.wait_for(timeout=60_000)
                # A rule that holds its condition for a minute fires a minute after the fault.
                page.locator("[data-testid=alert-row]").first.wait_for(timeout=150_000)
                page.wait_for_timeout(2_000)  # let the charts and the map draw their last frame
                out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(out))
                browser.close()
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
    print(f"saved {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "console.png")
