"""Live readings for stream subscribers, fanned out in process right after they are stored.

Ingest calls :meth:`LiveHub.publish` with the batches a write actually stored, so a
subscriber never sees a reading that a query could not find a moment later, and a batch
JetStream redelivers (storage skips it) never reaches a stream twice. Batches stored by
other replicas arrive through :mod:`.fanout` and are published here the same way.

Publishing must never wait on a subscriber, and must not cost the city's hot path more for
every dashboard that watches something else. So:

* subscribers are indexed by the device part of their selector (field, site, device, each
  possibly a wildcard): a batch looks up only the few index entries that can match it, and
  a subscriber whose selector does not match costs nothing per reading;
* each subscriber gets a bounded queue; one that falls further behind than its bound is cut
  off (its iterator raises :class:`StreamOverflow`, which the gRPC layer turns into
  RESOURCE_EXHAUSTED) and may reconnect, rather than growing memory without limit or
  back-pressuring ingest;
* the number of subscribers is capped (``max_subscribers``; RESOURCE_EXHAUSTED beyond).

The hub is single-threaded by design: ``publish``, ``subscribe`` and the consumers all run on
the service's event loop, which is also where ingest runs.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from operator import itemgetter
from types import TracebackType
from typing import Self

from smartcity.runtime.errors import ResourceExhausted, Unavailable
from smartcity.runtime.logs import get_logger
from smartcity.services.monitoring.model import IngestBatch, Selector, SeriesKey, StoredReading

__all__ = [
    "DEFAULT_MAX_PENDING",
    "DevicePattern",
    "LiveHub",
    "LiveReading",
    "StreamOverflow",
    "Subscription",
]

_log = get_logger(__name__)

LiveReading = tuple[SeriesKey, StoredReading]
"""A stored reading and the series it belongs to."""

DevicePattern = tuple[str | None, str | None, str | None]
"""``(field, site, device)`` of a selector, ``None`` for "any"."""

DEFAULT_MAX_PENDING = 10_000
"""Readings a subscriber may have waiting before it is cut off: some seconds of a busy
field, a few kilobytes each, so a thousand subscribers stay within memory."""
DEFAULT_MAX_SUBSCRIBERS = 1000


class StreamOverflow(ResourceExhausted):
    """The subscriber fell too far behind and was disconnected."""


_METRIC = itemgetter(0)  # StoredReading.metric


def _keys(batch: IngestBatch) -> dict[str, SeriesKey]:
    """The series key of each metric of ``batch``: a batch holds a few metrics many times
    over, so its keys are made once, not once per reading."""
    field, site, device = batch.field, batch.site, batch.device
    return {
        metric: SeriesKey(field, site, device, metric)
        for metric in set(map(_METRIC, batch.readings))
    }


def device_pattern(selector: Selector) -> DevicePattern:
    return (selector.field or None, selector.site or None, selector.device or None)


Shape = tuple[bool, bool, bool]
"""Which of field, site and device a pattern names."""


def pattern_shapes(patterns: Iterable[DevicePattern]) -> list[Shape]:
    """The shapes of ``patterns``, each once: a batch is looked up once per shape, not once
    per pattern or subscriber."""
    return sorted({(f is not None, s is not None, d is not None) for f, s, d in patterns})


def patterns_of(
    field: str, site: str, device: str, shapes: Iterable[Shape]
) -> Iterator[DevicePattern]:
    """The pattern of each shape that a batch of ``field``, ``site`` and ``device`` matches."""
    for with_field, with_site, with_device in shapes:
        yield (
            field if with_field else None,
            site if with_site else None,
            device if with_device else None,
        )


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


class LiveHub:
    """In-process fan-out of newly stored readings to stream subscribers."""

    def __init__(
        self,
        *,
        max_pending: int = DEFAULT_MAX_PENDING,
        max_subscribers: int = DEFAULT_MAX_SUBSCRIBERS,
    ) -> None:
        if max_pending <= 0:
            raise ValueError(f"max_pending must be positive, not {max_pending}")
        if max_subscribers <= 0:
            raise ValueError(f"max_subscribers must be positive, not {max_subscribers}")
        self.max_pending = max_pending
        self.max_subscribers = max_subscribers
        self._index: dict[DevicePattern, list[Subscription]] = {}
        self._shapes: list[Shape] = []
        self._count = 0
        self._closed = False
        self.on_change: Callable[[], None] | None = None
        """Called when the set of patterns watched changes (the fan-out announces it)."""
        self.dropped = 0
        """Subscribers cut off for falling behind, since the hub started."""

    @property
    def subscriber_count(self) -> int:
        return self._count

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        """The current subscribers (for metrics and diagnostics)."""
        return tuple(sub for subs in self._index.values() for sub in subs)

    @property
    def patterns(self) -> frozenset[DevicePattern]:
        """The device patterns someone watches now."""
        return frozenset(self._index)

    def subscribe(
        self,
        selector: Selector,
        *,
        max_pending: int | None = None,
    ) -> Subscription:
        """A new subscriber to the readings ``selector`` matches, from now on."""
        if self._closed:
            raise Unavailable("the monitoring service is shutting down; reconnect elsewhere")
        if self._count >= self.max_subscribers:
            raise ResourceExhausted(
                f"this monitoring replica already serves {self._count} live streams, its "
                f"limit (monitoring.max_streams); retry later or on another replica"
            )
        limit = self.max_pending if max_pending is None else max_pending
        if limit <= 0:
            raise ValueError(f"max_pending must be positive, not {limit}")
        subscription = Subscription(self, selector, limit)
        pattern = subscription.pattern
        subscribers = self._index.get(pattern)
        if subscribers is None:
            subscribers = self._index[pattern] = []
            self._reindex()
        subscribers.append(subscription)
        self._count += 1
        return subscription

    def publish(self, batches: Sequence[IngestBatch]) -> None:
        """Hand the readings of ``batches`` (just made durable, in ingest order) to every
        subscriber that selects them. Never waits; a subscriber whose queue would overflow
        is cut off."""
        if not self._count:
            return
        index = self._index
        overflowed: list[Subscription] = []
        for batch in batches:
            keys: dict[str, SeriesKey] | None = None
            for pattern in patterns_of(batch.field, batch.site, batch.device, self._shapes):
                subscribers = index.get(pattern)
                if subscribers:
                    if keys is None:
                        keys = _keys(batch)
                    overflowed += [sub for sub in subscribers if not sub._offer(batch, keys)]
        for subscription in overflowed:
            self._remove(subscription)
            self.dropped += 1
            _log.warning(
                "live stream subscriber cut off for falling behind",
                selector=describe(subscription.selector),
                max_pending=subscription.max_pending,
                delivered=subscription.delivered,
            )

    def close(self) -> None:
        """End every subscription with UNAVAILABLE (the service is stopping) and refuse new
        ones, so that clients reconnect to another replica at once."""
        self._closed = True
        for subscription in self.subscriptions:
            subscription._fail(
                Unavailable("the monitoring service is shutting down; reconnect elsewhere")
            )
        self._index.clear()
        self._count = 0
        self._reindex()

    def _remove(self, subscription: Subscription) -> None:
        subscribers = self._index.get(subscription.pattern)
        if subscribers is None or subscription not in subscribers:
            return
        subscribers.remove(subscription)
        self._count -= 1
        if not subscribers:
            del self._index[subscription.pattern]
            self._reindex()

    def _reindex(self) -> None:
        self._shapes = pattern_shapes(self._index)
        if self.on_change is not None:
            self.on_change()


def describe(selector: Selector) -> str:
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
