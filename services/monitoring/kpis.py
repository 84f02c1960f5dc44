"""The field plugins' KPIs, computed from storage over each KPI's window.

A plugin declares what a KPI is (:class:`smartcity.fields.Kpi`); this module decides how
each aggregation is answered by the store, and always over GOOD readings only:

``mean``, ``min``, ``max``, ``last``
    one :meth:`~TimeSeriesStore.aggregate` over every series of the metric in the field;
    ``mean`` pools the readings of all devices.
``share_at_most``, ``share_at_least``
    :meth:`~TimeSeriesStore.count_share`: the share of readings on the good side of the
    threshold, in %. Devices poll at a fixed interval, so a share of readings is the share
    of time the device spent there.
``increase``
    the growth of each device's counter, summed over the field's devices. Counters reset
    (a meter replaced, a PLC restarted), so the growth is followed step by step: per step
    the store gives the last and the smallest value; a step whose smallest value is below
    the previous step's last saw a reset, and counts its last value as growth since the
    reset (as Prometheus' ``increase`` does). Steps are one minute or more, so long windows
    (a year for SAIDI) are answered from the roll-ups, not from raw points.
``ratio``
    ``metric`` over ``denominator``, each summed over the field's devices: a counter
    contributes its increase, a gauge its mean. Summing per device is what a city-wide
    ratio means: beds occupied over beds in all hospitals, not a mean of ratios.

The result is multiplied by the KPI's ``scale``. A KPI without GOOD readings in its window,
or whose denominator is zero, has no value (``None``): a dashboard must show "no data",
never a made-up zero. Results are cached for ``refresh`` seconds per field, because KPI
windows span days and dashboards ask every few seconds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from smartcity.fields import Aggregation as KpiAggregation
from smartcity.fields import Field, Kpi, Metric, MetricKind
from smartcity.services.monitoring.model import (
    HOUR,
    MICROS,
    MINUTE,
    Aggregation,
    Bucket,
    RangeQuery,
    Selector,
    SeriesKey,
)
from smartcity.services.monitoring.store.base import TimeSeriesStore

__all__ = ["KpiCalculator", "KpiValue", "counter_increase", "step_for"]

MAX_STEPS = 1440
"""Steps per series when following a counter: one a minute over a day."""

_STORE_AGGREGATION = {
    KpiAggregation.MEAN: Aggregation.AVG,
    KpiAggregation.MIN: Aggregation.MIN,
    KpiAggregation.MAX: Aggregation.MAX,
    KpiAggregation.LAST: Aggregation.LAST,
}
_SERIES_PAGE = 500


@dataclass(frozen=True, slots=True)
class KpiValue:
    kpi: Kpi
    value: float | None
    """``None`` when the window holds no GOOD reading (or the denominator is zero)."""
    computed_at: int
    """When the value was computed (µs); the window is the ``window_seconds`` before it."""


def step_for(window: int, max_steps: int = MAX_STEPS) -> int:
    """A step (µs) that covers ``window`` in at most ``max_steps`` steps: whole minutes
    below an hour, whole hours above, so that the store can answer from its roll-ups."""
    if window <= 0 or max_steps <= 0:
        raise ValueError("window and max_steps must be positive")
    step = -(-window // max_steps)
    unit = MINUTE if step <= HOUR else HOUR
    return max(unit, -(-step // unit) * unit)


def counter_increase(lasts: Sequence[Bucket], mins: Sequence[Bucket]) -> float | None:
    """Growth of one counter from its per-step last and smallest values (same steps, in
    time order), resets accounted for; ``None`` without any step."""
    if not lasts:
        return None
    lowest = {bucket.start: bucket.value for bucket in mins}
    total = 0.0
    previous: float | None = None
    for bucket in lasts:
        last = bucket.value
        low = lowest.get(bucket.start, last)
        if previous is None:
            total += max(last - low, 0.0)
        elif low < previous:
            total += last
        else:
            total += last - previous
        previous = last
    return total


class KpiCalculator:
    """Computes fields' KPIs from a store; one per service, shared by all calls."""

    def __init__(
        self, store: TimeSeriesStore, *, refresh: float = 60.0, max_steps: int = MAX_STEPS
    ) -> None:
        if refresh < 0:
            raise ValueError(f"refresh must not be negative, not {refresh}")
        self._store = store
        self._refresh = round(refresh * MICROS)
        self._max_steps = max_steps
        self._cache: dict[str, tuple[int, list[KpiValue]]] = {}

    async def compute(self, field: Field, now: int) -> list[KpiValue]:
        """Every KPI of ``field`` at ``now`` (µs), in the plugin's order; a result computed
        less than ``refresh`` seconds before ``now`` is reused."""
        cached = self._cache.get(field.id)
        if cached is not None and 0 <= now - cached[0] < self._refresh:
            return cached[1]
        values = [await self.compute_kpi(field.id, kpi, field.metrics, now) for kpi in field.kpis]
        self._cache[field.id] = (now, values)
        return values

    async def compute_kpi(
        self, field: str, kpi: Kpi, metrics: Mapping[str, Metric], now: int
    ) -> KpiValue:
        """One KPI of ``field`` over the ``window_seconds`` before ``now``, uncached."""
        start = now - kpi.window_seconds * MICROS
        value = await self._raw_value(field, kpi, metrics, start, now)
        if value is not None:
            value *= kpi.scale
            if not math.isfinite(value):
                value = None
        return KpiValue(kpi, value, now)

    async def _raw_value(
        self, field: str, kpi: Kpi, metrics: Mapping[str, Metric], start: int, end: int
    ) -> float | None:
        selector = Selector(field=field, metric=kpi.metric)
        aggregation = kpi.aggregation
        if aggregation in _STORE_AGGREGATION:
            value, count = await self._store.aggregate(
                selector, _STORE_AGGREGATION[aggregation], start, end
            )
            return value if count else None
        if aggregation is KpiAggregation.SHARE_AT_MOST:
            within, total = await self._store.count_share(
                selector, start, end, at_most=kpi.threshold
            )
            return 100.0 * within / total if total else None
        if aggregation is KpiAggregation.SHARE_AT_LEAST:
            within, total = await self._store.count_share(
                selector, start, end, at_least=kpi.threshold
            )
            return 100.0 * within / total if total else None
        if aggregation is KpiAggregation.INCREASE:
            return await self._field_increase(field, kpi.metric, start, end)
        if aggregation is KpiAggregation.RATIO:
            assert kpi.denominator is not None  # checked when the plugin loaded
            numerator = await self._field_total(field, metrics[kpi.metric], start, end)
            if numerator is None:
                return None
            denominator = await self._field_total(field, metrics[kpi.denominator], start, end)
            if not denominator:
                return None
            return numerator / denominator
        raise ValueError(f"KPI {kpi.id!r}: aggregation {aggregation} is not supported")

    async def _field_total(self, field: str, metric: Metric, start: int, end: int) -> float | None:
        """A metric summed over the field's devices: increases of a counter, means of a
        gauge or state."""
        if metric.kind is MetricKind.COUNTER:
            return await self._field_increase(field, metric.name, start, end)
        total: float | None = None
        for key in await self._series(field, metric.name):
            mean, count = await self._store.aggregate(_exact(key), Aggregation.AVG, start, end)
            if count and mean is not None:
                total = (total or 0.0) + mean
        return total

    async def _field_increase(self, field: str, metric: str, start: int, end: int) -> float | None:
        step = step_for(end - start, self._max_steps)
        total: float | None = None
        for key in await self._series(field, metric):
            lasts = await self._buckets(key, start, end, step, Aggregation.LAST)
            if not lasts:
                continue
            mins = await self._buckets(key, start, end, step, Aggregation.MIN)
            growth = counter_increase(lasts, mins)
            if growth is not None:
                total = (total or 0.0) + growth
        return total

    async def _series(self, field: str, metric: str) -> list[SeriesKey]:
        """Every series of ``metric`` in ``field`` that has ever had a reading."""
        keys: list[SeriesKey] = []
        token: str | None = None
        while True:
            page = await self._store.latest(
                Selector(field=field, metric=metric), page_size=_SERIES_PAGE, page_token=token
            )
            keys.extend(item.key for item in page.items)
            token = page.next_page_token
            if not token:
                return keys

    async def _buckets(
        self, key: SeriesKey, start: int, end: int, step: int, aggregation: Aggregation
    ) -> list[Bucket]:
        result = await self._store.range(RangeQuery(_exact(key), start, end, step, aggregation))
        for series in result.series:
            if series.key == key:
                return sorted(series.buckets, key=lambda bucket: bucket.start)
        return []


def _exact(key: SeriesKey) -> Selector:
    return Selector(field=key.field, site=key.site, device=key.device, metric=key.metric)
