"""The one interface every time-series backend implements.

Two backends, chosen by URL: ``sqlite:///path/monitoring.db`` (the embedded default, WAL)
and ``postgresql://user@host/db`` (scale-out; several service replicas share it). Both keep
the same tables and give the same answers; the service and its tests are written against
this interface only.

Write path (ingest): :meth:`TimeSeriesStore.write` takes whole batches and stores each at
most once (by field and batch id), in one transaction with the latest values, the 1-minute
and 1-hour roll-ups and the device registry (keyed by field, site and device: a device that
reports to two fields has a record in each), so that an acknowledgement sent after it
returns never acknowledges something that is not durable.

Failures are told apart by class, so that callers can answer each rightly:
:class:`InvalidQuery` (the request is wrong, whatever the database holds),
:class:`StoreUnavailable` (the database cannot do it now; a retry later may succeed) and
any other :class:`StoreError` (the database refused this data or this configuration; the
same call fails the same way again).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

from smartcity.runtime.storage.base import Store
from smartcity.runtime.storage.errors import InvalidQuery as InvalidQuery
from smartcity.runtime.storage.errors import StoreError
from smartcity.runtime.storage.errors import StoreUnavailable as StoreUnavailable
from smartcity.runtime.storage.urls import backend_of
from smartcity.services.monitoring.model import (
    HOUR,
    Aggregation,
    DeviceRecord,
    IngestBatch,
    LatestValue,
    Page,
    RangeQuery,
    RangeResult,
    Retention,
    RetentionStats,
    Selector,
    WriteStats,
)


class TimeSeriesStore(Store):
    """Async time-series storage for the monitoring service."""

    @abc.abstractmethod
    async def write(self, batches: Sequence[IngestBatch]) -> WriteStats:
        """Store ``batches`` atomically and idempotently (see the module docstring); a
        batch whose ``(field, batch_id)`` is stored already, or came earlier in the same
        call, is skipped whole. Batches that are not ``from_device`` leave the device
        registry alone."""

    @abc.abstractmethod
    async def has_batches(self, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of the ``(field, batch_id)`` pairs are stored already (one statement)."""

    @abc.abstractmethod
    async def latest(
        self, selector: Selector, *, page_size: int = 100, page_token: str | None = None
    ) -> Page[LatestValue]:
        """The newest reading of every matching series, ordered by series."""

    @abc.abstractmethod
    async def count_series(self, selector: Selector, at_most: int) -> int:
        """How many series match ``selector``, counting no further than ``at_most``: enough
        to refuse a query that would be too large before doing any of its work."""

    @abc.abstractmethod
    async def range(self, query: RangeQuery) -> RangeResult:
        """Aggregated buckets of the matching series over ``[start, end)``; served from the
        1-hour or 1-minute roll-up when ``step`` is a multiple of its width, else from raw
        points. Only GOOD readings are aggregated; empty buckets are left out."""

    @abc.abstractmethod
    async def devices(
        self,
        *,
        field: str | None = None,
        site: str | None = None,
        device: str | None = None,
        page_size: int = 100,
        page_token: str | None = None,
    ) -> Page[DeviceRecord]:
        """The registry records matching the filters that are set, ordered by field, site
        and device. With ``site`` and ``device`` only: every field that device reports to."""

    @abc.abstractmethod
    async def device(self, field: str, site: str, device: str) -> DeviceRecord | None:
        """The registry record of ``device`` at ``site`` in ``field``; None if never seen."""

    @abc.abstractmethod
    async def aggregate(
        self,
        selector: Selector,
        aggregation: Aggregation,
        start: int,
        end: int,
    ) -> tuple[float | None, int]:
        """One value over every matching series and ``[start, end)``, and the number of GOOD
        readings it came from; for KPIs. ``(None, 0)`` when there is nothing."""

    @abc.abstractmethod
    async def count_share(
        self,
        selector: Selector,
        start: int,
        end: int,
        *,
        at_most: float | None = None,
        at_least: float | None = None,
    ) -> tuple[int, int]:
        """``(readings within the bound, all GOOD readings)`` over ``[start, end)``; for the
        "share of readings at most/at least a threshold" KPIs."""

    @abc.abstractmethod
    async def readings_since(self, field: str, since: int) -> int:
        """Readings of ``field`` stored with a time at or after ``since``."""

    @abc.abstractmethod
    async def apply_retention(self, now: int, retention: Retention) -> RetentionStats:
        """Delete what is older than each resolution's retention."""

    async def hourly_means(
        self, field: str, site: str, device: str, hour_end: int, hours: int = 24
    ) -> dict[str, list[float | None]]:
        """Every metric's hourly mean (GOOD readings) of one device over the ``hours`` hours
        ending at ``hour_end`` (aligned to the hour), oldest first, ``None`` where an hour
        has no reading: the history the plugins' ``derive`` hook gets once an hour."""
        start = hour_end - hours * HOUR
        means: dict[str, list[float | None]] = {}
        token: str | None = None
        while True:
            result = await self.range(
                RangeQuery(
                    Selector(field=field, site=site, device=device),
                    start,
                    hour_end,
                    HOUR,
                    Aggregation.AVG,
                    page_size=500,
                    page_token=token,
                )
            )
            for series in result.series:
                row: list[float | None] = [None] * hours
                for bucket in series.buckets:
                    row[(bucket.start - start) // HOUR] = bucket.value
                means[series.key.metric] = row
            token = result.next_page_token
            if token is None:
                return means


def open_store(url: str) -> TimeSeriesStore:
    """The backend for ``url`` (not yet opened)."""
    try:
        backend = backend_of(url, "monitoring")
    except ValueError as exc:
        raise StoreError(str(exc)) from None
    if backend == "sqlite":
        from smartcity.services.monitoring.store.sqlite import SqliteStore

        return SqliteStore(url)
    from smartcity.services.monitoring.store.postgres import PostgresStore

    return PostgresStore(url)
