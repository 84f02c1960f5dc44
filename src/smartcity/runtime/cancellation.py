"""Cancellation that cannot be lost by a library on the way.

On Python 3.11, ``asyncio.wait_for`` returns the awaited result when a cancellation arrives
just as that result does, and the cancellation is gone: the task still counts the request
(``Task.cancelling()``), but nothing raises. nats-py waits for every acknowledgement, fetch
and request that way, so a task cancelled while it publishes or fetches can carry on as if
nothing happened, and a loop that runs until it is cancelled would then never end (a service
that cannot be stopped). Such loops call :func:`raise_if_cancelled` once per round; their
own waits use ``asyncio.timeout``, which does not lose cancellations.
"""

from __future__ import annotations

import asyncio

__all__ = ["raise_if_cancelled"]


def raise_if_cancelled() -> None:
    """Raise :class:`asyncio.CancelledError` if this task was asked to stop and the request
    has not been honoured yet."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
