"""The agent's loop for one device: its driver's readings, reported by exception, to a sink.

A driver does the protocol's I/O and hands over every reading it gets; which of them are
worth publishing is decided here, once, the same way for every protocol and mode
(:mod:`~smartcity.agents.exception_report`). A driver that hands over changes only (an
OPC-UA subscription: the server samples and reports what moved) never repeats a flat value,
so for it this loop also reads, at their keep-alive, the points that have been quiet that
long.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence

from smartcity.agents.driver import DeviceDriver, ReadingSink
from smartcity.agents.exception_report import KEEPALIVE_SLOW_INTERVALS, ExceptionReport
from smartcity.agents.reading import Reading


def by_exception(report: ExceptionReport, sink: ReadingSink) -> ReadingSink:
    """``sink``, handed only the readings ``report`` keeps."""

    async def filtered(readings: Sequence[Reading]) -> None:
        kept = report.keep(readings)
        if kept:
            await sink(kept)

    return filtered


async def serve_device(
    driver: DeviceDriver, sink: ReadingSink, *, report: ExceptionReport | None = None
) -> None:
    """Run ``driver`` until cancelled, its readings reported by exception to ``sink``."""
    if report is None:
        report = ExceptionReport(driver.profile, every_point=driver.changes_only)
    filtered = by_exception(report, sink)
    if not driver.changes_only:
        await driver.run(filtered)
        return
    keepalives = asyncio.create_task(_keep_alive(driver, report, filtered))
    try:
        await driver.run(filtered)
    finally:
        keepalives.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keepalives


async def _keep_alive(driver: DeviceDriver, report: ExceptionReport, sink: ReadingSink) -> None:
    """Read the points whose keep-alive has come, checked every sixth of the keep-alive (a
    slow interval by default), so a keep-alive is at most that late."""
    step = report.keepalive / KEEPALIVE_SLOW_INTERVALS
    while True:
        await asyncio.sleep(step)
        overdue = report.overdue(time.time())
        if overdue:
            await sink(await driver.read_points(overdue))
