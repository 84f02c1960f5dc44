"""A driver run as the agent runs it: through its device loop, reported by exception."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from support import Collector

from smartcity.agents.device_loop import serve_device
from smartcity.agents.driver import DeviceDriver
from smartcity.agents.exception_report import ExceptionReport


@contextlib.asynccontextmanager
async def serving(
    driver: DeviceDriver, sink: Collector, *, keepalive: float | None = None
) -> AsyncIterator[asyncio.Task[None]]:
    """``serve_device(driver, sink)`` in a task for the duration of the block."""
    report = ExceptionReport(driver.profile, keepalive=keepalive, every_point=driver.changes_only)
    task = asyncio.create_task(serve_device(driver, sink, report=report))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await driver.close()
