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

Each subscriber's queue is a :class:`~smartcity.services.monitoring.subscription.Subscription`;
the device patterns the index is keyed by are in :mod:`.patterns`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from smartcity.runtime.errors import ResourceExhausted, Unavailable
from smartcity.runtime.logs import get_logger
from smartcity.services.monitoring.model import IngestBatch, Selector, SeriesKey
from smartcity.services.monitoring.patterns import (
    DevicePattern,
    Shape,
    describe,
    device_pattern,
    pattern_shapes,
    patterns_of,
)
from smartcity.services.monitoring.subscription import (
    LiveReading,
    StreamOverflow,
    Subscription,
    series_keys,
)

__all__ = [
    "DEFAULT_MAX_PENDING",
    "DevicePattern",
    "LiveHub",
    "LiveReading",
    "Shape",
    "StreamOverflow",
    "Subscription",
    "describe",
    "device_pattern",
    "pattern_shapes",
    "patterns_of",
]

_log = get_logger(__name__)

DEFAULT_MAX_PENDING = 10_000
"""Readings a subscriber may have waiting before it is cut off: some seconds of a busy
field, a few kilobytes each, so a thousand subscribers stay within memory."""
DEFAULT_MAX_SUBSCRIBERS = 1000


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
                        keys = series_keys(batch)
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
