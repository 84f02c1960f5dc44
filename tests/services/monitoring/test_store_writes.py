"""What a write stores, worked out before the database sees it (``store.writes``), against a
direct computation written here: the point rows of every reading, and the latest value and
roll-ups of each series and bucket, whichever path the rows take (a batch of plain readings
column by column, anything else reading by reading; a series whose times increase at once,
one out of order reading by reading)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from store_helpers import make_batches

from smartcity.services.monitoring.model import (
    HOUR,
    MICROS,
    MINUTE,
    IngestBatch,
    Quality,
    StoredReading,
)
from smartcity.services.monitoring.store import writes

T0 = 1_767_225_600 * MICROS
METRICS = ("ph", "pressure", "turbidity")
DEVICES = ("station-1", "station-2")


def series_ids(batches: Sequence[IngestBatch]) -> dict[tuple[str, str, str], dict[str, int]]:
    ids: dict[tuple[str, str, str], dict[str, int]] = {}
    for batch in batches:
        device = ids.setdefault((batch.field, batch.site, batch.device), {})
        for reading in batch.readings:
            device.setdefault(reading.metric, 100 - len(ids) * 10 - len(device))
    return ids


def expected(
    batches: Sequence[IngestBatch], ids: dict[tuple[str, str, str], dict[str, int]]
) -> tuple[list[Any], list[Any], list[Any], list[Any]]:
    """Every point row, and the latest, minute and hour rows, computed directly."""
    rows = []
    for batch in batches:
        device = ids[(batch.field, batch.site, batch.device)]
        for r in batch.readings:
            rows.append((device[r.metric], r.time, r.sequence, r.value, int(r.quality), r.reason))
    latest = {}
    for row in sorted(rows, key=lambda row: row[:3]):
        latest[row[0]] = (*row[:5], row[5] or None)
    buckets: dict[int, dict[tuple[int, int], list[Any]]] = {MINUTE: {}, HOUR: {}}
    for width, found in buckets.items():
        grouped = defaultdict(list)
        for row in rows:
            if row[4] == Quality.GOOD and row[3] is not None:
                grouped[(row[0], row[1] - row[1] % width)].append(row)
        for key, members in grouped.items():
            values = [row[3] for row in members]
            last = max(members, key=lambda row: row[1:3])
            found[key] = [len(values), sum(values), min(values), max(values), *last[1:4]]
    minute, hour = ([(*key, *acc) for key, acc in sorted(b.items())] for b in buckets.values())
    return rows, [latest[key] for key in sorted(latest)], minute, hour


def check(batches: Sequence[IngestBatch]) -> writes.Points:
    ids = series_ids(batches)
    points = writes.point_rows(batches, ids, writes.known_series_only)
    rows, latest, minute, hour = expected(batches, ids)
    assert sorted(points.full()) == sorted((*row[:5], row[5] or None) for row in rows)
    assert [row[0] for row in points.plain] == sorted(row[0] for row in points.plain)
    summary = writes.summarize(points)
    assert summary.latest == latest
    assert summary.minute == minute
    assert summary.hour == hour
    return points


def test_the_storage_tests_batches() -> None:
    batches = make_batches()
    points = check(batches)
    assert points.plain
    assert points.other
    for size in (1, 7, 40):
        for start in range(0, len(batches), size):
            check(batches[start : start + size])


def test_a_series_out_of_time_order_or_tied_in_time() -> None:
    def reading(metric: str, at: int, sequence: int, value: float = 1.5) -> StoredReading:
        return StoredReading(metric, "u", value, Quality.GOOD, "", at, sequence)

    ordered = [reading("ph", T0 + n * MICROS, n) for n in range(1, 200)]
    tied = [reading("ph", T0 + (n // 2) * MICROS, n, n / 4) for n in range(1, 200)]
    backwards = [reading("ph", T0 - n * MICROS, n, n / 4) for n in range(1, 200)]
    for readings in (ordered, tied, backwards, [*ordered, *backwards], ordered[:1]):
        check([IngestBatch("b", "water_supply", "s", "d", "a", readings, T0)])


READINGS = st.builds(
    lambda metric, second, sequence, value, kind: StoredReading(
        metric,
        "u",
        None if kind == "missing" else value / 4,
        Quality.GOOD if kind in ("plain", "noted") else Quality.BAD,
        "a note" if kind in ("noted", "missing") else "",
        T0 + second * MICROS,
        sequence,
    ),
    st.sampled_from(METRICS),
    st.integers(-4000, 4000),
    st.integers(0, 2**63 - 1),
    st.integers(-4000, 4000),
    st.sampled_from(["plain"] * 6 + ["noted", "bad", "missing"]),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(DEVICES), st.lists(READINGS, max_size=30)), max_size=8))
def test_arbitrary_writes(contents: list[tuple[str, list[StoredReading]]]) -> None:
    batches, seen = [], set()
    for number, (device, readings) in enumerate(contents):
        unique = []
        for r in readings:  # a stored point is one per series, time and sequence
            if (device, r.metric, r.time, r.sequence) not in seen:
                seen.add((device, r.metric, r.time, r.sequence))
                unique.append(r)
        batches.append(IngestBatch(f"b{number}", "water_supply", "s", device, "a", unique, T0))
    check(batches)
