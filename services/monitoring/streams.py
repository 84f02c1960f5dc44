"""Live streams of readings as they are stored, optionally after the latest value of each
series, without a gap or a repeat between the two."""

from __future__ import annotations

from collections.abc import AsyncIterator

from smartcity.services.monitoring.checks import checked_selector, store_errors
from smartcity.services.monitoring.live import LiveHub, LiveReading
from smartcity.services.monitoring.model import LatestValue, Selector, SeriesKey, StoredReading
from smartcity.services.monitoring.store.base import TimeSeriesStore

__all__ = ["stream_readings"]


async def stream_readings(
    store: TimeSeriesStore,
    hub: LiveHub,
    selector: Selector,
    *,
    chunk: int,
    include_latest: bool = False,
) -> AsyncIterator[list[LiveReading]]:
    """Readings as they are stored, in chunks of at most ``chunk``, until the caller stops
    iterating.

    With ``include_latest`` the latest reading of every matching series comes first.
    The subscription starts before the latest values are read, so nothing stored in
    between is missed, and a live reading already sent as a latest one is not repeated.
    Raises :class:`~smartcity.services.monitoring.live.StreamOverflow` when the caller
    falls too far behind, and ``ResourceExhausted`` when the replica serves its maximum
    of streams. (A stream ends when its caller's token expires or is revoked: the
    runtime's auth interceptor sees to that for every service.)
    """
    selector = checked_selector(selector)
    with hub.subscribe(selector) as subscription:
        sent: dict[SeriesKey, tuple[int, int]] = {}
        if include_latest:
            page_token: str | None = None
            while True:
                with store_errors():
                    page = await store.latest(selector, page_size=chunk, page_token=page_token)
                readings = [(item.key, _stored(item)) for item in page.items]
                sent.update((key, (r.sequence, r.time)) for key, r in readings)
                if readings:
                    yield readings
                page_token = page.next_page_token
                if not page_token:
                    break
        while True:
            try:
                readings = await subscription.next_chunk(chunk)
            except StopAsyncIteration:
                return
            if sent:
                readings = _after(readings, sent)
            if readings:
                yield readings


def _stored(value: LatestValue) -> StoredReading:
    return StoredReading(
        value.key.metric,
        value.unit,
        value.value,
        value.quality,
        value.reason,
        value.time,
        value.sequence,
    )


def _after(
    readings: list[LiveReading], sent: dict[SeriesKey, tuple[int, int]]
) -> list[LiveReading]:
    """Live readings newer than the latest ones already sent; a series is forgotten once a
    newer reading of it passed, since ingest order keeps later ones newer still."""
    kept: list[LiveReading] = []
    for key, reading in readings:
        position = sent.get(key)
        if position is not None:
            if (reading.sequence, reading.time) <= position:
                continue
            del sent[key]
        kept.append((key, reading))
    return kept
