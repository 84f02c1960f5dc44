"""A driver run as the agent runs it: through its device loop (schedule, breaker, outage
reports), reported by exception or with every reading."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from support import Collector

from smartcity.agents.device_loop import read_device, serve_device
from smartcity.agents.driver import DeviceDriver
from smartcity.agents.exception_report import ExceptionReport
from smartcity.agents.resilience import CircuitBreaker


@contextlib.asynccontextmanager
async def _in_task(
    driver: DeviceDriver, loop: Coroutine[Any, Any, None]
) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(loop)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await driver.close()


@contextlib.asynccontextmanager
async def serving(
    driver: DeviceDriver,
    sink: Collector,
    *,
    keepalive: float | None = None,
    breaker: CircuitBreaker | None = None,
) -> AsyncIterator[asyncio.Task[None]]:
    """``serve_device(driver, sink)`` in a task for the duration of the block."""
    report = ExceptionReport(driver.profile, keepalive=keepalive, every_point=driver.changes_only)
    async with _in_task(driver, serve_device(driver, sink, report=report, breaker=breaker)) as task:
        yield task


@contextlib.asynccontextmanager
async def reading(
    driver: DeviceDriver, sink: Collector, *, breaker: CircuitBreaker | None = None
) -> AsyncIterator[asyncio.Task[None]]:
    """``read_device(driver, sink)`` in a task for the duration of the block: every reading,
    with ``breaker`` as the device's."""
    async with _in_task(driver, read_device(driver, sink, breaker=breaker)) as task:
        yield task
