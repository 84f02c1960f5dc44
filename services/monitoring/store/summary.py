"""What the points a write actually stored change besides ``points``, the same for both
backends: the latest value of each series and the 1-minute and 1-hour roll-up increments, one
row per key (:func:`summarize`), which the backend upserts in one statement per table, so
neither database re-reads points on the write path.

It runs on the ingest hot path (see :mod:`.writes`): plain rows are folded a series' run and a
minute at a time with builtins that loop in C, anything else row by row; both give the same
rows.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import islice
from operator import lt
from typing import TYPE_CHECKING, Any

from smartcity.services.monitoring.model import HOUR, MINUTE
from smartcity.services.monitoring.store.common import GOOD

if TYPE_CHECKING:
    from smartcity.services.monitoring.store.writes import PlainRow, PointRow, Points

RollupRow = tuple[int, int, int, float, float, float, int, int, float]
"""``(series_id, bucket, count, sum, min, max, last_time, last_sequence, last_value)``."""

Accumulator = list[Any]
"""``[count, sum, min, max, last_time, last_sequence, last_value]`` of one roll-up bucket."""


@dataclass(frozen=True, slots=True)
class Summary:
    """What the stored points change besides ``points``, one row per key."""

    latest: list[PointRow]
    minute: list[RollupRow]
    hour: list[RollupRow]


def summarize(points: Points) -> Summary:
    """Latest value per series and roll-up increments per series and bucket, of the point
    rows that were actually stored (``points.plain`` in series order, as
    :func:`.writes.point_rows` leaves it). Rows come out sorted by key: writers that take row locks
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
