"""What a write stores, worked out before the database sees it, the same for both backends:

- :func:`point_rows`: the ``points`` rows of a write's batches, in series order (one series'
  points then go into one b-tree page after another);
- :func:`summarize`: what the rows actually stored change besides ``points``: the latest
  value of each series and the 1-minute and 1-hour roll-up increments, one row per key,
  which the backend upserts in one statement per table, so neither database re-reads
  points on the write path;
- the device registry rows, and what keeps a batch, or a point, from being stored twice.

Both run on the ingest hot path over every reading, in the thread that also decodes the next
messages. A batch whose readings are all GOOD, with a finite value and no reason (nearly
every batch) is therefore handled column by column with builtins that loop in C (``map``,
``zip``, ``sum``, ``min``, ``max``, ``bisect``): work per batch, per series and per roll-up
bucket, none per reading in Python. Anything else takes the general path, reading by
reading; both give the same rows.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import islice
from operator import itemgetter, lt
from typing import Any

from smartcity.services.monitoring.model import HOUR, MINUTE, IngestBatch, Quality
from smartcity.services.monitoring.store.base import StoreError
from smartcity.services.monitoring.store.common import GOOD, BatchKey

PointRow = tuple[int, int, int, float | None, int, str | None]
"""``(series_id, time, sequence, value, quality, reason)``, the column order of ``points``."""

PlainRow = tuple[int, int, int, float]
"""``(series_id, time, sequence, value)`` of a GOOD reading without a reason."""

RollupRow = tuple[int, int, int, float, float, float, int, int, float]
"""``(series_id, bucket, count, sum, min, max, last_time, last_sequence, last_value)``."""

DeviceRow = tuple[str, str, str, str, int, int]
"""``(field, site, device, agent_id, received, last_sequence)``, one per device batch."""

Accumulator = list[Any]
"""``[count, sum, min, max, last_time, last_sequence, last_value]`` of one roll-up bucket."""

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


@dataclass(frozen=True, slots=True)
class Summary:
    """What the stored points change besides ``points``, one row per key."""

    latest: list[PointRow]
    minute: list[RollupRow]
    hour: list[RollupRow]


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


def summarize(points: Points) -> Summary:
    """Latest value per series and roll-up increments per series and bucket, of the point
    rows that were actually stored (``points.plain`` in series order, as
    :func:`point_rows` leaves it). Rows come out sorted by key: writers that take row locks
    in one order cannot deadlock each other."""
    latest: dict[int, tuple[Any, ...]] = {}
    minute: dict[tuple[int, int], Accumulator] = {}
    good: list[PlainRow] = []
    for row in points.other:
        series_id, time, sequence, value, quality, _ = row
        _offer_latest(latest, row)
        if quality == GOOD and value is not None:
            good.append((series_id, time, sequence, value))
    _fold_plain(points.plain, latest, minute)
    _fold_rows(good, latest, minute)
    hour: dict[tuple[int, int], Accumulator] = {}
    for (series_id, bucket), acc in minute.items():
        key = (series_id, bucket - bucket % HOUR)
        total = hour.get(key)
        if total is None:
            hour[key] = acc.copy()
        else:
            _merge(total, acc)
    return Summary(
        # A plain row is GOOD without a reason; a GOOD row of ``other`` that ties with its
        # own plain copy keeps its reason, as the tie does not replace it.
        latest=[_full(latest[key]) for key in sorted(latest)],
        minute=[(*key, *minute[key]) for key in sorted(minute)],
        hour=[(*key, *hour[key]) for key in sorted(hour)],
    )


def _fold_plain(
    rows: list[PlainRow],
    latest: dict[int, tuple[Any, ...]],
    minute: dict[tuple[int, int], Accumulator],
) -> None:
    """Fold plain rows in series order: each series' run at once when its times increase
    (as a device's readings do), its minutes found by bisection and summed in C."""
    if not rows:
        return
    ids, times, sequences, values = zip(*rows, strict=True)
    start, count = 0, len(ids)
    while start < count:
        series_id = ids[start]
        end = bisect_right(ids, series_id, start)
        run: Sequence[Any] = times[start:end]
        if not all(map(lt, run, islice(run, 1, None))):  # a tie in time, or out of order
            run = list(zip(run, sequences[start:end], strict=True))
            if not all(map(lt, run, islice(run, 1, None))):
                _fold_rows(rows[start:end], latest, minute)
                start = end
                continue
        last = end - 1
        _offer_latest(latest, (series_id, times[last], sequences[last], values[last]))
        first = start
        while first < end:
            time = times[first]
            bucket = time - time % MINUTE
            stop = bisect_left(times, bucket + MINUTE, first, end)
            chunk = values[first:stop]
            last = stop - 1
            acc = [stop - first, sum(chunk, -0.0), min(chunk), max(chunk), times[last],
                   sequences[last], values[last]]  # fmt: skip
            # A series' rows are one run, so the bucket is new to ``minute``.
            minute[(series_id, bucket)] = acc
            first = stop
        start = end


def _fold_rows(
    rows: Iterable[PlainRow],
    latest: dict[int, tuple[Any, ...]],
    minute: dict[tuple[int, int], Accumulator],
) -> None:
    """Fold GOOD rows with a value into the latest values and the minute roll-ups, one by
    one, in any order."""
    latest_get = latest.get
    minute_get = minute.get
    for row in rows:
        series_id, time, sequence, value = row
        newest = latest_get(series_id)
        if newest is None or time > newest[1] or (time == newest[1] and sequence > newest[2]):
            latest[series_id] = row
        key = (series_id, time - time % MINUTE)
        acc = minute_get(key)
        if acc is None:
            minute[key] = [1, value, value, value, time, sequence, value]
            continue
        acc[0] += 1
        acc[1] += value
        if value < acc[2]:
            acc[2] = value
        elif value > acc[3]:
            acc[3] = value
        if time > acc[4] or (time == acc[4] and sequence > acc[5]):
            acc[4:] = (time, sequence, value)


def _offer_latest(latest: dict[int, tuple[Any, ...]], row: tuple[Any, ...]) -> None:
    newest = latest.get(row[0])
    if newest is None or row[1] > newest[1] or (row[1] == newest[1] and row[2] > newest[2]):
        latest[row[0]] = row


def _merge(acc: Accumulator, part: Sequence[Any]) -> None:
    acc[0] += part[0]
    acc[1] += part[1]
    if part[2] < acc[2]:
        acc[2] = part[2]
    if part[3] > acc[3]:
        acc[3] = part[3]
    if part[4] > acc[4] or (part[4] == acc[4] and part[5] > acc[5]):
        acc[4:] = part[4:]


def _full(row: tuple[Any, ...]) -> PointRow:
    return row if len(row) == 6 else (*row, GOOD, None)  # type: ignore[return-value]


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
