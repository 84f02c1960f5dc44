"""The range plan, the same for both backends: which roll-up serves which part of
``[start, end)`` so that the answer is exactly what raw points would give, and the merge of
the partial aggregates each part returns into the buckets of the answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from smartcity.services.monitoring.model import HOUR, MINUTE, Aggregation, Bucket

ROLLUP_TABLES = {HOUR: "rollup_1h", MINUTE: "rollup_1m"}
"""Roll-up widths (µs), widest first, and the table that keeps each."""

Partial = list[Any]
"""``[count, sum, min, max, last_time, last_sequence, last_value]`` of one bucket; the last
three are None unless the query asked for LAST."""


@dataclass(frozen=True, slots=True)
class Segment:
    """A part of a range served by one source: a roll-up of ``width`` µs, or raw points
    when ``width`` is 0. Roll-up segments start and end on multiples of their width."""

    width: int
    start: int
    end: int


def plan(start: int, end: int, step: int | None) -> list[Segment]:
    """Split ``[start, end)`` into segments served by the widest roll-up that fits.

    A roll-up of width ``w`` can serve a bucket of ``step`` only if ``step`` is a multiple
    of ``w`` (every step bucket is then a union of whole roll-up buckets), and only over the
    part of the range that starts and ends on multiples of ``w``. What is left at either end
    goes to the next narrower roll-up and finally to raw points, so the answer equals the
    one computed from raw points while reading at most two roll-up widths' worth of raw
    points per series. ``step=None`` means one bucket for the whole range (any width fits).
    """
    widths = [width for width in ROLLUP_TABLES if step is None or step % width == 0]

    def split(lo: int, hi: int, level: int) -> list[Segment]:
        if lo >= hi:
            return []
        if level == len(widths):
            return [Segment(0, lo, hi)]
        width = widths[level]
        inner_lo = -(-lo // width) * width
        inner_hi = hi // width * width
        if inner_lo >= inner_hi:
            return split(lo, hi, level + 1)
        return [
            *split(lo, inner_lo, level + 1),
            Segment(width, inner_lo, inner_hi),
            *split(inner_hi, hi, level + 1),
        ]

    return split(start, end, 0)


def resolution(segments: Sequence[Segment]) -> int:
    """The widest roll-up a plan reads, 0 when it reads raw points only."""
    return max((segment.width for segment in segments), default=0)


def bucket_sql(column: str, step: str) -> str:
    """The start of the step bucket holding ``column``, aligned to multiples of ``step``
    since the epoch; floored for times before 1970 too (SQL's ``%`` truncates)."""
    return f"({column} - (({column} % {step}) + {step}) % {step})"


def merge_partials(
    rows: Iterable[Sequence[Any]],
    into: dict[tuple[int, int], Partial],
) -> None:
    """Fold rows ``(series_id, bucket, count, sum, min, max, last_time, last_sequence,
    last_value)`` from any segment into ``into``."""
    for row in rows:
        key = (int(row[0]), int(row[1]))
        part = list(row[2:])
        acc = into.get(key)
        if acc is None:
            into[key] = part
        else:
            _merge(acc, part)


def _merge(acc: Partial, part: Sequence[Any]) -> None:
    acc[0] += part[0]
    acc[1] += part[1]
    acc[2] = min(acc[2], part[2])
    acc[3] = max(acc[3], part[3])
    if part[4] is not None and (
        acc[4] is None or part[4] > acc[4] or (part[4] == acc[4] and part[5] > acc[5])
    ):
        acc[4], acc[5], acc[6] = part[4], part[5], part[6]


def final_value(aggregation: Aggregation, part: Partial) -> float:
    count, total, low, high, _, _, last_value = part
    if aggregation is Aggregation.AVG:
        return float(total) / float(count)
    if aggregation is Aggregation.SUM:
        return float(total)
    if aggregation is Aggregation.MIN:
        return float(low)
    if aggregation is Aggregation.MAX:
        return float(high)
    if aggregation is Aggregation.COUNT:
        return float(count)
    return float(last_value)


def buckets_by_series(
    aggregation: Aggregation, partials: dict[tuple[int, int], Partial]
) -> dict[int, list[Bucket]]:
    found: dict[int, list[Bucket]] = {}
    for (series_id, start), part in sorted(partials.items()):
        found.setdefault(series_id, []).append(
            Bucket(start=start, value=final_value(aggregation, part), count=int(part[0]))
        )
    return found
