"""Helpers shared by the test suite: waiting for a condition with a deadline (never a bare
sleep), a reading sink that records what a driver produced, and a driver running in a task.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from smartcity.agents.driver import DeviceDriver
from smartcity.agents.reading import Quality, Reading


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]],
    *,
    within: float = 20.0,
    interval: float = 0.02,
    what: str = "condition",
) -> None:
    """Poll ``condition`` (plain or async) until it holds; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        outcome = condition()
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if outcome:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {within} s waiting for {what}")
        await asyncio.sleep(interval)


@dataclass
class Collector:
    """A reading sink that keeps every batch with the time it arrived."""

    batches: list[tuple[float, list[Reading]]] = field(default_factory=list)
    on_batch: Callable[[Sequence[Reading]], None] | None = None

    async def __call__(self, batch: Sequence[Reading]) -> None:
        self.batches.append((time.monotonic(), list(batch)))
        if self.on_batch is not None:
            self.on_batch(batch)

    def readings(self, since: float = 0.0) -> list[Reading]:
        return [r for at, batch in self.batches if at >= since for r in batch]

    def latest(self, since: float = 0.0) -> dict[str, Reading]:
        return {r.metric: r for r in self.readings(since)}

    def all_good(self, names: Sequence[str], since: float = 0.0) -> bool:
        latest = self.latest(since)
        return all(name in latest and latest[name].quality is Quality.GOOD for name in names)

    async def wait_for(
        self, condition: Callable[[], bool], what: str = "condition", within: float = 20.0
    ) -> None:
        """Like :func:`eventually`, and on failure shows the last readings received."""
        try:
            await eventually(condition, within=within, what=what)
        except AssertionError as exc:
            tail = [(r.metric, r.value, r.quality.value, r.reason) for r in self.readings()]
            raise AssertionError(f"{exc}; last readings: {tail[-8:]}") from None


@contextlib.asynccontextmanager
async def running(driver: DeviceDriver, sink: Collector) -> AsyncIterator[asyncio.Task[None]]:
    """``driver.run(sink)`` in a task for the duration of the block."""
    task = asyncio.create_task(driver.run(sink))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await driver.close()
