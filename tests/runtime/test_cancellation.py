"""A cancellation swallowed on the way (as Python 3.11's ``wait_for`` inside nats-py may
swallow it) is still honoured at the loop's next round."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from smartcity.runtime.cancellation import raise_if_cancelled


async def test_a_swallowed_cancellation_is_raised_at_the_next_check() -> None:
    running = asyncio.Event()

    async def loop() -> None:
        while True:
            raise_if_cancelled()
            running.set()
            with contextlib.suppress(asyncio.CancelledError):  # the library that loses it
                await asyncio.sleep(0.01)

    task = asyncio.create_task(loop())
    await asyncio.wait_for(running.wait(), 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(task), 2)
    assert task.cancelled()


async def test_nothing_is_raised_in_a_task_nobody_cancelled() -> None:
    raise_if_cancelled()  # the current task is running normally
    assert not asyncio.current_task().cancelling()  # type: ignore[union-attr]
