"""Building stored readings for the monitoring service's tests: batches written straight into
a real store (ingest over NATS is tested on its own), and a clock the tests set."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from smartcity.fields import FieldHost, load_fields
from smartcity.services.monitoring.model import (
    HOUR,
    MICROS,
    IngestBatch,
    Quality,
    StoredReading,
)
from smartcity.services.monitoring.store.base import TimeSeriesStore, open_store

SECOND = MICROS
T0 = 1_795_305_600 * MICROS
"""2026-11-22T00:00:00Z: an hour boundary, so roll-up buckets line up with the test data."""
assert T0 % HOUR == 0


@cache
def city_fields() -> FieldHost:
    """The sixteen installed field plugins, loaded once per test session."""
    return load_fields()


@dataclass
class Clock:
    """A settable clock in µs, for the service's ``clock``."""

    now: int

    def __call__(self) -> int:
        return self.now


@contextlib.asynccontextmanager
async def opened_store(url: str) -> AsyncIterator[TimeSeriesStore]:
    store = open_store(url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def sqlite_store(folder: Path) -> contextlib.AbstractAsyncContextManager[TimeSeriesStore]:
    return opened_store(f"sqlite:///{folder / 'monitoring.db'}")


def backend_url(request: pytest.FixtureRequest, folder: Path) -> str:
    """The URL of the backend a ``params=BACKENDS`` fixture was asked for; PostgreSQL comes
    from the suite's ``postgres_url`` fixture (a fresh schema, or a skip without a server)."""
    if request.param == "sqlite":
        return f"sqlite:///{folder / 'monitoring.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def reading(
    metric: str,
    unit: str,
    value: float | None,
    time: int,
    sequence: int,
    quality: Quality = Quality.GOOD,
    reason: str = "",
) -> StoredReading:
    return StoredReading(metric, unit, value, quality, reason, time, sequence)


def batch(
    field: str,
    site: str,
    device: str,
    readings: Iterable[StoredReading],
    *,
    received: int | None = None,
    agent_id: str = "edge-1",
) -> IngestBatch:
    items = list(readings)
    first = min(item.sequence for item in items)
    return IngestBatch(
        batch_id=f"{site}/{device}/{first}",
        field=field,
        site=site,
        device=device,
        agent_id=agent_id,
        readings=items,
        received=received if received is not None else max(item.time for item in items),
    )


def series_batches(
    field: str,
    site: str,
    device: str,
    metric: str,
    unit: str,
    values: Iterable[float | None],
    *,
    start: int,
    interval: int,
    first_sequence: int = 1,
) -> list[IngestBatch]:
    """One batch per value, ``interval`` µs apart from ``start``, received when measured."""
    batches = []
    for index, value in enumerate(values):
        time = start + index * interval
        quality = Quality.GOOD if value is not None else Quality.BAD
        reason = "" if value is not None else "sensor fault"
        batches.append(
            batch(
                field,
                site,
                device,
                [reading(metric, unit, value, time, first_sequence + index, quality, reason)],
            )
        )
    return batches
