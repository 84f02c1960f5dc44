"""What a write stores, worked out before the database sees it, the same for both backends:

- :func:`point_rows`: the ``points`` rows of a write's batches, in series order (one series'
  points then go into one b-tree page after another);
- :func:`~.summary.summarize` (in :mod:`.summary`, re-exported here): what the rows actually
  stored change besides ``points``: the latest value of each series and the 1-minute and
  1-hour roll-up increments, one row per key, which the backend upserts in one statement per
  table, so neither database re-reads points on the write path;
- the device registry rows, and what keeps a batch, or a point, from being stored twice.

Both run on the ingest hot path over every reading, in the thread that also decodes the next
messages. A batch whose readings are all GOOD, with a finite value and no reason (nearly
every batch) is therefore handled column by column with builtins that loop in C (``map``,
``zip``, ``sum``, ``min``, ``max``, ``bisect``): work per batch, per series and per roll-up
bucket, none per reading in Python. Anything else takes the general path, reading by
reading; both give the same rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from smartcity.services.monitoring.model import IngestBatch, Quality
from smartcity.services.monitoring.store.base import StoreError
from smartcity.services.monitoring.store.common import GOOD, BatchKey
from smartcity.services.monitoring.store.summary import Accumulator as Accumulator
from smartcity.services.monitoring.store.summary import RollupRow as RollupRow
from smartcity.services.monitoring.store.summary import Summary as Summary
from smartcity.services.monitoring.store.summary import summarize as summarize

PointRow = tuple[int, int, int, float | None, int, str | None]
"""``(series_id, time, sequence, value, quality, reason)``, the column order of ``points``."""

PlainRow = tuple[int, int, int, float]
"""``(series_id, time, sequence, value)`` of a GOOD reading without a reason."""

DeviceRow = tuple[str, str, str, str, int, int]
"""``(field, site, device, agent_id, received, last_sequence)``, one per device batch."""

# Fields of a StoredReading, and the series id of a point row.
_METRIC, _VALUE, _QUALITY, _REASON, _TIME, _SEQUENCE = map(itemgetter, (0, 2, 3, 4, 5, 6))
_SERIES = itemgetter(0)


@dataclass(slots=True)
class Points:
    """Point rows, the common case apart: a GOOD reading with a value and no reason is a
    :data:`PlainRow`, which binds two parameters fewer per row (a third less work for
    SQLite's binding, the largest share of an insert). ``plain`` is in series order."""

    plain: list[PlainRow]
    other: list[PointRow]

    def __len__(self) -> int:
        return len(self.plain) + len(self.other)

    def full(self) -> list[PointRow]:
        """Every row with all six columns."""
        return [(*row, GOOD, None) for row in self.plain] + self.other


def point_rows(
    batches: Iterable[IngestBatch],
    cache: dict[tuple[str, str, str], dict[str, int]],
    resolve: Callable[[IngestBatch], dict[str, int]],
) -> Points:
    """The ``points`` rows of ``batches``, plain rows in series order. ``cache`` maps a
    device ``(field, site, device)`` to its metrics' series ids; when a batch has a metric
    it lacks, ``resolve(batch)`` returns the ids of every metric of that batch."""
    plain: list[PlainRow] = []
    other: list[PointRow] = []
    empty: dict[str, int] = {}
    for batch in batches:
        readings = batch.readings
        ids = cache.get((batch.field, batch.site, batch.device), empty)
        try:
            series = list(map(ids.__getitem__, map(_METRIC, readings)))
        except KeyError:
            ids = resolve(batch)
            series = list(map(ids.__getitem__, map(_METRIC, readings)))
        if _all_plain(readings):
            times, sequences = map(_TIME, readings), map(_SEQUENCE, readings)
            plain.extend(zip(series, times, sequences, map(_VALUE, readings), strict=True))
        else:
            _sort_out(batch, series, plain, other)
    plain.sort(key=_SERIES)
    return Points(plain, other)


def _all_plain(readings: Sequence[Any]) -> bool:
    """Whether every reading is GOOD, without a reason, with a finite value."""
    if any(map(_REASON, readings)):
        return False
    if list(map(_QUALITY, readings)).count(Quality.GOOD) != len(readings):
        return False
    try:
        # -0.0 is the identity of float addition; a missing value raises.
        total = sum(map(_VALUE, readings), -0.0)
    except TypeError:
        return False
    # NaN or an infinity anywhere makes the total so; so does an overflow of finite values,
    # which the general path then accepts.
    return total - total == 0.0


def _sort_out(
    batch: IngestBatch, series: list[int], plain: list[PlainRow], other: list[PointRow]
) -> None:
    """The rows of a batch that is not all plain, reading by reading."""
    for series_id, reading in zip(series, batch.readings, strict=True):
        value, quality, reason = reading.value, reading.quality, reading.reason
        if value is None:
            other.append((series_id, reading.time, reading.sequence, None, int(quality),
                          reason or None))  # fmt: skip
        elif value - value != 0.0:
            raise StoreError(
                f"batch {batch.batch_id!r}: {reading.metric} has the value {value}; "
                "store a reading without a finite value as value=None with bad quality"
            )
        elif quality == GOOD and not reason:
            plain.append((series_id, reading.time, reading.sequence, value))
        else:
            other.append((series_id, reading.time, reading.sequence, value, int(quality),
                          reason or None))  # fmt: skip


class NewSeries(Exception):  # noqa: N818 - control flow inside a backend's write
    """A batch has a metric whose series id is not cached yet."""


def known_series_only(batch: IngestBatch) -> dict[str, int]:
    """A ``resolve`` for :func:`point_rows` that gives up on a new series, so that the
    common case (every series known) needs no scan for missing ones."""
    raise NewSeries(batch.batch_id)


def missing_metrics(
    batch: IngestBatch, cache: dict[tuple[str, str, str], dict[str, int]]
) -> dict[str, str]:
    """The metrics of ``batch`` that ``cache`` has no series id for, with their units."""
    known = cache.get((batch.field, batch.site, batch.device), {})
    return {r.metric: r.unit for r in batch.readings if r.metric not in known}


def device_rows(batches: Iterable[IngestBatch]) -> list[DeviceRow]:
    """One registry update per batch from a device (not those the service derived), ordered
    by device and then by arrival: the poll interval estimate follows the batches in the
    order they were received."""
    rows = [
        (
            batch.field,
            batch.site,
            batch.device,
            batch.agent_id,
            batch.received,
            max(map(_SEQUENCE, batch.readings), default=0),
        )
        for batch in batches
        if batch.from_device
    ]
    rows.sort(key=lambda row: (row[0], row[1], row[2], row[4]))
    return rows


def batch_key(batch: IngestBatch) -> BatchKey:
    return (batch.field, batch.batch_id)


def first_of_each(batches: Iterable[IngestBatch]) -> list[IngestBatch]:
    """``batches`` without repeated ``(field, batch_id)`` (the first one wins)."""
    seen: set[BatchKey] = set()
    unique = []
    for batch in batches:
        key = (batch.field, batch.batch_id)
        if key not in seen:
            seen.add(key)
            unique.append(batch)
    return unique


def distinct_points(rows: Iterable[PointRow]) -> list[PointRow]:
    """``rows`` without repeated ``(series_id, time, sequence)`` keys (the first one wins)."""
    seen: set[tuple[int, int, int]] = set()
    unique = []
    for row in rows:
        key = (row[0], row[1], row[2])
        if key not in seen:
            seen.add(key)
            unique.append(row)
    return unique
