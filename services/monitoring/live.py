"""Live readings for stream subscribers, fanned out in process right after they are stored.

Ingest calls :meth:`LiveHub.publish` once a write is durable, so a subscriber never sees a
reading that a query could not find a moment later. Publishing must never wait on a
subscriber: ingest is the city's hot path, and one dashboard on a poor link must not slow
the storage of every substation. Each subscriber therefore gets a bounded queue; one that
falls further behind than its bound is cut off (its iterator raises
:class:`StreamOverflow`, which the gRPC layer turns into RESOURCE_EXHAUSTED) and may
reconnect, rather than growing memory without limit or back-pressuring ingest. A batch that
JetStream redelivers reaches ``publish`` again; the hub remembers each series' last
position while anyone listens and passes on only what is newer.

The hub is single-threaded by design: ``publish``, ``subscribe`` and the consumers all run on
the service's event loop, which is also where ingest runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Sequence
from types import TracebackType
from typing import Self

from smartcity.runtime.errors import ResourceExhausted, Unavailable
from smartcity.runtime.logs import get_logger
from smartcity.services.monitoring.model import Selector, SeriesKey, StoredReading

__all__ = [
    "DEFAULT_MAX_PENDING",
    "LiveHub",
    "LiveReading",
    "StreamOverflow",
    "Subscription",
]

_log = get_logger(__name__)

LiveReading = tuple[SeriesKey, StoredReading]
"""A stored reading and the series it belongs to."""

DEFAULT_MAX_PENDING = 10_000
"""Readings a subscriber may have waiting before it is cut off: some seconds of a busy
field, a few kilobytes each, so a thousand subscribers stay within memory."""


class StreamOverflow(ResourceExhausted):
    """The subscriber fell too far behind and was disconnected."""


class Subscription:
    """One subscriber's queue. Iterate it (``async for chunk in subscription``) for lists of
    readings in ingest order; close it (or leave its ``with`` block) to unsubscribe."""

    def __init__(self, hub: LiveHub, selector: Selector, max_pending: int) -> None:
        self.selector = selector
        self.max_pending = max_pending
        self._hub = hub
        self._everything = not any(
            (selector.field, selector.site, selector.device, selector.metric)
        )
        self._queue: deque[LiveReading] = deque()
        self._ready = asyncio.Event()
        self._failure: Exception | None = None
        self._closed = False
        self.delivered = 0
        """Readings handed to the consumer so far."""

    @property
    def pending(self) -> int:
        """Readings queued and not yet taken."""
        return len(self._queue)

    @property
    def closed(self) -> bool:
        return self._closed

    def _offer(self, readings: Sequence[LiveReading]) -> bool:
        """Queue the readings this subscriber selects; ``False`` when it overflowed."""
        if self._everything:
            matched: Sequence[LiveReading] = readings
        else:
            matches = self.selector.matches
            matched = [item for item in readings if matches(item[0])]
        if not matched:
            return True
        if len(self._queue) + len(matched) > self.max_pending:
            self._fail(
                StreamOverflow(
                    f"the stream fell behind: {len(self._queue)} readings were waiting to be "
                    f"sent and {len(matched)} more arrived (at most {self.max_pending} may "
                    "wait); reconnect, with include_latest to catch up"
                )
            )
            return False
        self._queue.extend(matched)
        self._ready.set()
        return True

    def _fail(self, failure: Exception) -> None:
        self._failure = failure
        self._queue.clear()
        self._closed = True
        self._ready.set()

    async def next_chunk(self, max_readings: int = 1000) -> list[LiveReading]:
        """Wait for readings and take up to ``max_readings`` of them, oldest first.

        Raises :class:`StreamOverflow` once the subscriber was cut off, :class:`Unavailable`
        when the hub closed, and ``StopAsyncIteration`` after :meth:`close`.
        """
        if max_readings <= 0:
            raise ValueError(f"max_readings must be positive, not {max_readings}")
        while not self._queue:
            if self._failure is not None:
                raise self._failure
            if self._closed:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
        queue = self._queue
        taken = [queue.popleft() for _ in range(min(max_readings, len(queue)))]
        self.delivered += len(taken)
        return taken

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> list[LiveReading]:
        return await self.next_chunk()

    def close(self) -> None:
        """Unsubscribe; a consumer waiting in :meth:`next_chunk` stops iterating."""
        if not self._closed:
            self._closed = True
            self._ready.set()
        self._hub._remove(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class LiveHub:
    """In-process fan-out of newly stored readings to stream subscribers."""

    def __init__(self, *, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        if max_pending <= 0:
            raise ValueError(f"max_pending must be positive, not {max_pending}")
        self.max_pending = max_pending
        self._subscriptions: list[Subscription] = []
        self._closed = False
        self._last: dict[SeriesKey, tuple[int, int]] = {}
        self.dropped = 0
        """Subscribers cut off for falling behind, since the hub started."""

    @property
    def subscriber_count(self) -> int:
        return len(self._subscriptions)

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        """The current subscribers, oldest first (for metrics and diagnostics)."""
        return tuple(self._subscriptions)

    def subscribe(self, selector: Selector, *, max_pending: int | None = None) -> Subscription:
        """A new subscriber to the readings ``selector`` matches, from now on."""
        if self._closed:
            raise Unavailable("the monitoring service is shutting down; reconnect elsewhere")
        limit = self.max_pending if max_pending is None else max_pending
        if limit <= 0:
            raise ValueError(f"max_pending must be positive, not {limit}")
        subscription = Subscription(self, selector, limit)
        self._subscriptions.append(subscription)
        return subscription

    def publish(self, readings: Sequence[LiveReading]) -> None:
        """Hand ``readings`` (just made durable, in ingest order) to every subscriber that
        selects them. Never waits; a subscriber whose queue would overflow is cut off."""
        if not self._subscriptions or not readings:
            return
        fresh = self._fresh(readings)
        if not fresh:
            return
        overflowed = [sub for sub in self._subscriptions if not sub._offer(fresh)]
        for subscription in overflowed:
            self._remove(subscription)
            self.dropped += 1
            _log.warning(
                "live stream subscriber cut off for falling behind",
                selector=_describe(subscription.selector),
                max_pending=subscription.max_pending,
                delivered=subscription.delivered,
            )

    def _fresh(self, readings: Sequence[LiveReading]) -> Sequence[LiveReading]:
        """``readings`` without those already published: a batch that JetStream redelivered
        (storage skipped it) must not reach a stream twice. A series' readings follow its
        device's sequence, so anything at or before the last one published is old."""
        last = self._last
        fresh: list[LiveReading] = []
        for item in readings:
            key, reading = item
            position = (reading.sequence, reading.time)
            seen = last.get(key)
            if seen is None or position > seen:
                last[key] = position
                fresh.append(item)
        return fresh if len(fresh) != len(readings) else readings

    def close(self) -> None:
        """End every subscription with UNAVAILABLE (the service is stopping) and refuse new
        ones, so that clients reconnect to another replica at once."""
        self._closed = True
        for subscription in self._subscriptions:
            subscription._fail(
                Unavailable("the monitoring service is shutting down; reconnect elsewhere")
            )
        self._subscriptions.clear()

    def _remove(self, subscription: Subscription) -> None:
        with contextlib.suppress(ValueError):
            self._subscriptions.remove(subscription)
        if not self._subscriptions:
            # Positions are only needed while someone listens; forget them so that the map
            # does not grow with every series the city ever had.
            self._last.clear()


def _describe(selector: Selector) -> str:
    parts = (
        f"{name}={value}"
        for name, value in (
            ("field", selector.field),
            ("site", selector.site),
            ("device", selector.device),
            ("metric", selector.metric),
        )
        if value
    )
    return " ".join(parts) or "everything"
