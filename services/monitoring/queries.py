"""Queries over stored readings: the latest value of each series, and series over a range.

A range query is refused before the store does any work when it would be too large: too many
steps per series, too many series times steps in one page, or too many raw readings.
"""

from __future__ import annotations

from collections.abc import Callable

from smartcity.runtime.errors import InvalidArgument
from smartcity.services.monitoring.checks import checked_selector, iso, span, store_errors
from smartcity.services.monitoring.limits import PageRequest, QueryLimits, page_size
from smartcity.services.monitoring.model import (
    MICROS,
    Aggregation,
    LatestValue,
    Page,
    RangeQuery,
    RangeResult,
    Selector,
)
from smartcity.services.monitoring.store.base import TimeSeriesStore

__all__ = ["latest", "query_range"]


async def latest(
    store: TimeSeriesStore, limits: QueryLimits, selector: Selector, page: PageRequest
) -> Page[LatestValue]:
    """The newest reading of each series ``selector`` matches."""
    selector = checked_selector(selector)
    size = page_size(page, limits)
    with store_errors():
        return await store.latest(selector, page_size=size, page_token=page.token or None)


async def query_range(
    store: TimeSeriesStore,
    limits: QueryLimits,
    clock: Callable[[], int],
    selector: Selector,
    *,
    start: int | None,
    end: int | None,
    step: int,
    aggregation: Aggregation,
    page: PageRequest,
) -> RangeResult:
    """The matching series over ``[start, end)`` (``end`` ``None``: now, by ``clock``), in
    steps of ``step`` µs combined by ``aggregation``; step 0 returns the raw GOOD readings."""
    selector = checked_selector(selector)
    size = page_size(page, limits)
    if start is None:
        raise InvalidArgument("time_range.start_time is required")
    if end is None:
        end = clock()
    if start >= end:
        raise InvalidArgument(
            f"the time range is empty: start {iso(start)} is not before end {iso(end)}"
        )
    if step < 0:
        raise InvalidArgument(f"step must not be negative, not {span(step)}")
    if step:
        steps = (end - 1) // step - start // step + 1
        if steps > limits.max_steps:
            least = -(-(end - start) // limits.max_steps)
            if least > MICROS:
                least = -(-least // MICROS) * MICROS
            raise InvalidArgument(
                f"the range {iso(start)} to {iso(end)} spans {steps:,} steps of "
                f"{span(step)} per series; at most {limits.max_steps:,} are allowed: "
                f"use a step of at least {span(least)} or a shorter range"
            )
        await _check_range_size(store, limits, selector, steps, size)
    else:
        with store_errors():
            count = (await store.aggregate(selector, Aggregation.COUNT, start, end))[1]
        if count > limits.max_raw_points:
            raise InvalidArgument(
                f"the range holds {count:,} raw readings; at most "
                f"{limits.max_raw_points:,} are returned without aggregation: give a "
                "step, or narrow the range or the selector"
            )
        # Stored times are whole microseconds, so one-microsecond steps are the readings
        # themselves (the store answers them from raw points, never from a roll-up).
        step, aggregation = 1, Aggregation.LAST
    query = RangeQuery(selector, start, end, step, aggregation, size, page.token or None)
    with store_errors():
        return await store.range(query)


async def _check_range_size(
    store: TimeSeriesStore, limits: QueryLimits, selector: Selector, steps: int, size: int
) -> None:
    """Refuse a page of ``steps`` steps over up to ``size`` series whose size exceeds the
    limit, before the store builds any of it."""
    limit = limits.max_range_points
    if steps * size <= limit:
        return
    with store_errors():
        series = await store.count_series(selector, size)
    if series * steps <= limit:
        return
    fits = limit // steps
    advice = (
        f"ask for page_size {fits} (or fewer) and page through the rest"
        if fits
        else "use wider steps"
    )
    raise InvalidArgument(
        f"one page would hold {series:,} series x {steps:,} steps = {series * steps:,} "
        f"points; at most {limit:,} are allowed: {advice}, or narrow the selector"
    )
