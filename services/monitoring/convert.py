"""Monitoring values to and from protobuf, for the gRPC API.

Requests become the plain values of :mod:`.model` and :mod:`.limits` (an enum number this
API does not know is refused here with ``INVALID_ARGUMENT``); latest values, series, live
readings, devices, field summaries and the field catalogue become messages.

A KPI without a value (no GOOD reading in its window) is left out of
``FieldSummary.kpis``, as ``Series`` leaves out steps without readings: ``Kpi.value`` has no
"unset", and a zero would read as a measured zero. ``Field.kpis`` still lists every KPI id.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from smartcity.common.v1 import common_pb2
from smartcity.fields import Direction, Field, Pillar
from smartcity.monitoring.v1 import monitoring_pb2
from smartcity.runtime.errors import InvalidArgument
from smartcity.services.monitoring.catalogue import FieldSummary
from smartcity.services.monitoring.devices import DeviceStatus
from smartcity.services.monitoring.kpis import KpiValue
from smartcity.services.monitoring.limits import PageRequest
from smartcity.services.monitoring.live import LiveReading
from smartcity.services.monitoring.model import (
    Aggregation,
    DeviceState,
    LatestValue,
    Page,
    Selector,
    SeriesRange,
)
from smartcity.telemetry.v1 import telemetry_pb2

__all__ = [
    "aggregation",
    "device_pb",
    "device_states",
    "duration_pb",
    "field_pb",
    "latest_reading_pb",
    "live_reading_pb",
    "micros",
    "page_pb",
    "page_request",
    "pillar",
    "selector",
    "series_pb",
    "summary_pb",
    "timestamp_pb",
]

_AGGREGATIONS = {
    monitoring_pb2.AGGREGATION_UNSPECIFIED: Aggregation.AVG,
    monitoring_pb2.AGGREGATION_AVG: Aggregation.AVG,
    monitoring_pb2.AGGREGATION_MIN: Aggregation.MIN,
    monitoring_pb2.AGGREGATION_MAX: Aggregation.MAX,
    monitoring_pb2.AGGREGATION_LAST: Aggregation.LAST,
    monitoring_pb2.AGGREGATION_COUNT: Aggregation.COUNT,
    monitoring_pb2.AGGREGATION_SUM: Aggregation.SUM,
}
_STATES = {
    DeviceState.UNKNOWN: monitoring_pb2.DEVICE_STATE_UNKNOWN,
    DeviceState.ONLINE: monitoring_pb2.DEVICE_STATE_ONLINE,
    DeviceState.STALE: monitoring_pb2.DEVICE_STATE_STALE,
    DeviceState.OFFLINE: monitoring_pb2.DEVICE_STATE_OFFLINE,
}
_STATE_OF = {number: state for state, number in _STATES.items()}
_PILLARS = {pillar: monitoring_pb2.Pillar.Value(f"PILLAR_{pillar.name}") for pillar in Pillar}
_PILLAR_OF = {number: pillar for pillar, number in _PILLARS.items()}
_DIRECTIONS = {
    Direction.HIGHER: monitoring_pb2.KPI_DIRECTION_HIGHER_IS_BETTER,
    Direction.LOWER: monitoring_pb2.KPI_DIRECTION_LOWER_IS_BETTER,
}


# -- protobuf -> domain ------------------------------------------------------------------------


def selector(message: common_pb2.SeriesSelector) -> Selector:
    return Selector(
        field=message.field or None,
        site=message.site or None,
        device=message.device or None,
        metric=message.metric or None,
    )


def page_request(message: common_pb2.PageRequest) -> PageRequest:
    return PageRequest(size=message.page_size, token=message.page_token or None)


def micros(stamp: Timestamp) -> int:
    return stamp.ToMicroseconds()


def aggregation(number: monitoring_pb2.Aggregation) -> Aggregation:
    if number not in _AGGREGATIONS:
        raise InvalidArgument(f"aggregation {number} is not one this API knows")
    return _AGGREGATIONS[number]


def pillar(number: monitoring_pb2.Pillar) -> Pillar | None:
    """The pillar ``number`` names; ``None`` (every pillar) for ``PILLAR_UNSPECIFIED``."""
    if number == monitoring_pb2.PILLAR_UNSPECIFIED:
        return None
    if number in _PILLAR_OF:
        return _PILLAR_OF[number]
    raise InvalidArgument(f"pillar {number} is not one this API knows")


def device_states(values: Iterable[int]) -> list[DeviceState]:
    states = []
    for index, value in enumerate(values):
        if value not in _STATE_OF:
            raise InvalidArgument(
                f"states[{index}] is {value}, not one of DEVICE_STATE_UNKNOWN, ONLINE, STALE "
                "or OFFLINE"
            )
        states.append(_STATE_OF[value])
    return states


# -- domain -> protobuf ------------------------------------------------------------------------


def timestamp_pb(micros: int) -> Timestamp:
    stamp = Timestamp()
    stamp.FromMicroseconds(micros)
    return stamp


def duration_pb(micros: int) -> Duration:
    span = Duration()
    span.FromMicroseconds(micros)
    return span


def page_pb(page: Page[Any]) -> common_pb2.PageResponse:
    return common_pb2.PageResponse(next_page_token=page.next_page_token or "")


def _reading(
    metric: str,
    unit: str,
    value: float | None,
    quality: int,
    reason: str,
    time: int,
    sequence: int,
) -> telemetry_pb2.Reading:
    reading = telemetry_pb2.Reading(
        metric=metric,
        unit=unit,
        quality=quality,  # type: ignore[arg-type]  # stored as the protobuf numbers
        quality_reason=reason,
        read_time=timestamp_pb(time),
        sequence=sequence,
    )
    if value is not None:
        reading.value = value
    return reading


def latest_reading_pb(item: LatestValue) -> monitoring_pb2.DeviceReading:
    key = item.key
    return monitoring_pb2.DeviceReading(
        field=key.field,
        site=key.site,
        device=key.device,
        reading=_reading(
            key.metric, item.unit, item.value, item.quality, item.reason, item.time, item.sequence
        ),
    )


def live_reading_pb(item: LiveReading) -> monitoring_pb2.DeviceReading:
    key, stored = item
    return monitoring_pb2.DeviceReading(
        field=key.field,
        site=key.site,
        device=key.device,
        reading=_reading(
            key.metric,
            stored.unit,
            stored.value,
            stored.quality,
            stored.reason,
            stored.time,
            stored.sequence,
        ),
    )


def series_pb(item: SeriesRange) -> monitoring_pb2.Series:
    key = item.key
    return monitoring_pb2.Series(
        field=key.field,
        site=key.site,
        device=key.device,
        metric=key.metric,
        unit=item.unit,
        points=[
            monitoring_pb2.Point(
                time=timestamp_pb(bucket.start),
                value=bucket.value,
                count=bucket.count,
                # Only GOOD readings are aggregated, so the worst quality in a point is GOOD.
                quality=common_pb2.QUALITY_GOOD,
            )
            for bucket in item.buckets
        ],
    )


def device_pb(status: DeviceStatus) -> monitoring_pb2.Device:
    record, health = status.record, status.health
    device = monitoring_pb2.Device(
        field=record.field,
        site=record.site,
        device=record.device,
        agent_id=record.agent_id,
        state=_STATES[health.state],
        last_seen_time=timestamp_pb(record.last_seen),
        metrics=list(record.metrics),
    )
    if record.poll_interval > 0:
        device.poll_interval.CopyFrom(duration_pb(record.poll_interval))
    if health.since is not None:
        device.state_change_time.CopyFrom(timestamp_pb(health.since))
    return device


def _kpi(item: KpiValue) -> monitoring_pb2.Kpi | None:
    if item.value is None:
        return None
    kpi = item.kpi
    message = monitoring_pb2.Kpi(
        id=kpi.id,
        display_name=kpi.title,
        value=item.value,
        unit=kpi.unit,
        direction=_DIRECTIONS[kpi.direction],
        compute_time=timestamp_pb(item.computed_at),
        description=kpi.description,
    )
    if kpi.target is not None:
        message.target = kpi.target
    return message


def summary_pb(summary: FieldSummary) -> monitoring_pb2.FieldSummary:
    states = summary.states
    kpis: Sequence[monitoring_pb2.Kpi | None] = [_kpi(item) for item in summary.kpis]
    return monitoring_pb2.FieldSummary(
        field=summary.field,
        device_count=summary.device_count,
        online_count=states[DeviceState.ONLINE],
        stale_count=states[DeviceState.STALE],
        offline_count=states[DeviceState.OFFLINE],
        unknown_count=states[DeviceState.UNKNOWN],
        series_count=summary.series_count,
        readings_last_hour=summary.readings_last_hour,
        kpis=[kpi for kpi in kpis if kpi is not None],
    )


def field_pb(item: Field) -> monitoring_pb2.Field:
    origin = item.origin
    version = f"{origin.distribution} {origin.version}" if origin.distribution else origin.target
    return monitoring_pb2.Field(
        id=item.id,
        pillar=_PILLARS[item.pillar],
        display_name=item.info.title,
        description=item.info.description,
        metrics=[
            monitoring_pb2.MetricSpec(
                name=metric.name,
                unit=metric.unit,
                description=metric.description,
                min_value=metric.minimum,
                max_value=metric.maximum,
            )
            for metric in item.metrics.values()
        ],
        record_types=[record.name for record in item.record_types],
        kpis=[kpi.id for kpi in item.kpis],
        plugin_version=version,
    )
