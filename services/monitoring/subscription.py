"""One live-stream subscriber of the :class:`~smartcity.services.monitoring.live.LiveHub`:
its bounded queue of readings, taken in chunks in ingest order, and its cut-off when it falls
further behind than the bound (:class:`StreamOverflow`, which the gRPC layer turns into
RESOURCE_EXHAUSTED).
"""

from __future__ import annotations

import asyncio
from collections import deque
from operator import itemgetter
from types import TracebackType
from typing import TYPE_CHECKING, Self

from smartcity.runtime.errors import ResourceExhausted
from smartcity.services.monitoring.model import IngestBatch, Selector, SeriesKey, StoredReading
from smartcity.services.monitoring.patterns import device_pattern

if TYPE_CHECKING:
    from smartcity.services.monitoring.live import LiveHub

__all__ = ["LiveReading", "StreamOverflow", "Subscription", "series_keys"]

LiveReading = tuple[SeriesKey, StoredReading]
"""A stored reading and the series it belongs to."""


class StreamOverflow(ResourceExhausted):
    """The subscriber fell too far behind and was disconnected."""


_METRIC = itemgetter(0)  # StoredReading.metric


def series_keys(batch: IngestBatch) -> dict[str, SeriesKey]:
    """The series key of each metric of ``batch``: a batch holds a few metrics many times
    over, so its keys are made once, not once per reading."""
    field, site, device = batch.field, batch.site, batch.device
    return {
        metric: SeriesKey(field, site, device, metric)
        for metric in set(map(_METRIC, batch.readings))
    }


class Subscription:
    """One subscriber's queue. Iterate it (``async for chunk in subscription``) for lists of
    readings in ingest order; close it (or leave its ``with`` block) to unsubscribe."""

    def __init__(self, hub: LiveHub, selector: Selector, max_pending: int) -> None:
        self.selector = selector
        self.pattern = device_pattern(selector)
        self.max_pending = max_pending
        self._hub = hub
        self._queue: deque[list[LiveReading]] = deque()
        """Readings waiting, a list per batch: queued and taken a batch at a time."""
        self._pending = 0
        self._ready = asyncio.Event()
        self._failure: Exception | None = None
        self._closed = False
        self.delivered = 0
        """Readings handed to the consumer so far."""

    @property
    def pending(self) -> int:
        """Readings queued and not yet taken."""
        return self._pending

    @property
    def closed(self) -> bool:
        return self._closed

    def _offer(self, batch: IngestBatch, keys: dict[str, SeriesKey]) -> bool:
        """Queue the readings of ``batch`` this subscriber selects (its device part already
        matched); ``keys`` are the batch's series keys by metric. ``False`` when it
        overflowed."""
        if self._closed:
            return True
        metric = self.selector.metric
        readings = batch.readings
        if metric:
            key = SeriesKey(batch.field, batch.site, batch.device, metric)
            matched = [(key, r) for r in readings if r.metric == metric]
        else:
            # Built in C: a stream of everything gets every reading ingest stores.
            series = map(keys.__getitem__, map(_METRIC, readings))
            matched = list(zip(series, readings, strict=True))
        if not matched:
            return True
        if self._pending + len(matched) > self.max_pending:
            self._fail(
                StreamOverflow(
                    f"the stream fell behind: {self._pending} readings were waiting to be "
                    f"sent and {len(matched)} more arrived (at most {self.max_pending} may "
                    "wait); reconnect, with include_latest to catch up"
                )
            )
            return False
        self._queue.append(matched)
        self._pending += len(matched)
        self._ready.set()
        return True

    def _fail(self, failure: Exception) -> None:
        self._failure = failure
        self._queue.clear()
        self._pending = 0
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
        taken = queue.popleft()
        while queue and len(taken) + len(queue[0]) <= max_readings:
            taken += queue.popleft()
        if len(taken) > max_readings:  # one batch larger than a chunk: the rest waits
            queue.appendleft(taken[max_readings:])
            taken = taken[:max_readings]
        self._pending -= len(taken)
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
