"""The monitoring gRPC API: protobuf in and out, and the permission of each RPC.

Everything the service decides lives in :mod:`smartcity.services.monitoring.service`; this
module translates messages and declares who may ask (enforced by the runtime's
:class:`~smartcity.runtime.auth.AuthInterceptor`, which also ends a live stream once its token
expires or is revoked):

* a request that names a field (``selector.field``, ``ListDevicesRequest.field``,
  ``GetFieldSummaryRequest.field``) needs ``viewer`` (or a role above it) on that field;
* a request that names no field would read every field, so it needs ``viewer`` on ``*``.
  It is refused (PERMISSION_DENIED, naming the fields the caller may view) rather than
  quietly narrowed, so that an operator of one field who forgets the filter learns why,
  instead of reading an answer that looks like the whole city's;
* ``GetDevice`` names no field, so the device's own field decides; a caller who may not
  view every field gets PERMISSION_DENIED for a device that does not exist too, so
  probing cannot tell which devices exist;
* ``ListFields`` is the plugin catalogue, not measurements: any caller may ask, and it lists
  the fields the caller may view.

With auth off (no identity yet, a single machine) every caller may read everything.

A KPI without a value (no GOOD reading in its window) is left out of
``FieldSummary.kpis``, as ``Series`` leaves out steps without readings: ``Kpi.value`` has no
"unset", and a zero would read as a measured zero. ``Field.kpis`` still lists every KPI id.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

import grpc.aio
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from opentelemetry import trace

from smartcity.common.v1 import common_pb2
from smartcity.fields import Direction, Field, Pillar
from smartcity.monitoring.v1 import monitoring_pb2, monitoring_pb2_grpc
from smartcity.runtime.auth import (
    Authenticated,
    Authenticator,
    AuthInterceptor,
    Requires,
    denial,
    permission,
    principal,
)
from smartcity.runtime.config import GrpcSettings
from smartcity.runtime.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from smartcity.runtime.grpc_server import GrpcServer, Registration
from smartcity.runtime.logs import get_logger
from smartcity.runtime.tokens import WILDCARD_FIELD, Claims, Role, TokenVerifier
from smartcity.runtime.trust import LocalAuthenticator
from smartcity.services.monitoring.kpis import KpiValue
from smartcity.services.monitoring.live import LiveReading
from smartcity.services.monitoring.model import (
    Aggregation,
    DeviceState,
    LatestValue,
    Page,
    Selector,
    SeriesRange,
)
from smartcity.services.monitoring.service import (
    DeviceStatus,
    FieldSummary,
    MonitoringService,
    PageRequest,
)
from smartcity.telemetry.v1 import telemetry_pb2

__all__ = ["DEFAULT_PORT", "SERVICE_NAME", "MonitoringServicer", "build_server", "servicer"]

SERVICE_NAME = monitoring_pb2.DESCRIPTOR.services_by_name["MonitoringService"].full_name

_log = get_logger(__name__)

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


def _selected_field(request: Any) -> str:
    """The field a selector names; ``*`` (every field) when it names none."""
    return request.selector.field or WILDCARD_FIELD


def _named_field(request: Any) -> str:
    return request.field or WILDCARD_FIELD


def _may_view(claims: Claims | None, field: str) -> bool:
    return claims is None or claims.allows(Role.VIEWER, field)


class MonitoringServicer(monitoring_pb2_grpc.MonitoringServiceServicer):
    """``smartcity.monitoring.v1.MonitoringService`` over a :class:`MonitoringService`."""

    def __init__(self, service: MonitoringService) -> None:
        self.service = service

    @permission(Requires(Role.VIEWER, field=_selected_field))
    async def GetLatest(  # noqa: N802 - the generated servicer's names
        self, request: monitoring_pb2.GetLatestRequest, context: grpc.aio.ServicerContext
    ) -> monitoring_pb2.GetLatestResponse:
        selector = _selector(request.selector)
        page = await self.service.latest(selector, _page(request.page))
        return monitoring_pb2.GetLatestResponse(
            readings=[_latest_reading(item) for item in page.items],
            page=_page_response(page),
        )

    @permission(Requires(Role.VIEWER, field=_selected_field))
    async def QueryRange(  # noqa: N802
        self, request: monitoring_pb2.QueryRangeRequest, context: grpc.aio.ServicerContext
    ) -> monitoring_pb2.QueryRangeResponse:
        selector = _selector(request.selector)
        if request.aggregation not in _AGGREGATIONS:
            raise InvalidArgument(f"aggregation {request.aggregation} is not one this API knows")
        span = request.time_range
        result = await self.service.range(
            selector,
            start=_micros(span.start_time) if span.HasField("start_time") else None,
            end=_micros(span.end_time) if span.HasField("end_time") else None,
            step=request.step.ToMicroseconds(),
            aggregation=_AGGREGATIONS[request.aggregation],
            page=_page(request.page),
        )
        response = monitoring_pb2.QueryRangeResponse(
            series=[_series(item) for item in result.series],
            from_rollup=result.resolution > 0,
            page=common_pb2.PageResponse(next_page_token=result.next_page_token or ""),
        )
        if result.resolution > 0:
            response.rollup_resolution.CopyFrom(_duration(result.resolution))
        return response

    @permission(Requires(Role.VIEWER, field=_selected_field))
    async def StreamReadings(  # noqa: N802
        self, request: monitoring_pb2.StreamReadingsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[monitoring_pb2.StreamReadingsResponse]:
        selector = _selector(request.selector)
        async for readings in self.service.stream(selector, include_latest=request.include_latest):
            yield monitoring_pb2.StreamReadingsResponse(
                readings=[_live_reading(item) for item in readings]
            )

    @permission(Requires(Role.VIEWER, field=_named_field))
    async def ListDevices(  # noqa: N802
        self, request: monitoring_pb2.ListDevicesRequest, context: grpc.aio.ServicerContext
    ) -> monitoring_pb2.ListDevicesResponse:
        states = _states(request.states)
        page = await self.service.devices(
            field=request.field or None,
            site=request.site or None,
            states=states,
            page=_page(request.page),
        )
        return monitoring_pb2.ListDevicesResponse(
            devices=[_device(item) for item in page.items], page=_page_response(page)
        )

    @permission(Requires(Role.VIEWER, field=lambda request: request.field or None))
    async def GetDevice(  # noqa: N802
        self, request: monitoring_pb2.GetDeviceRequest, context: grpc.aio.ServicerContext
    ) -> monitoring_pb2.GetDeviceResponse:
        claims = principal()
        try:
            status = await self.service.device(request.site, request.device, request.field or None)
        except (NotFound, FailedPrecondition):
            # Which devices exist, and in which fields, is itself something to view: a
            # caller who may not view every field learns nothing from a refusal.
            if (
                claims is not None
                and not request.field
                and not claims.allows(Role.VIEWER, WILDCARD_FIELD)
            ):
                raise PermissionDenied(
                    f"{claims.sub} may not view device {request.device!r} at site "
                    f"{request.site!r}; name a field you may view"
                ) from None
            raise
        if not _may_view(claims, status.record.field):
            assert claims is not None
            raise PermissionDenied(denial(claims, Role.VIEWER, status.record.field))
        return monitoring_pb2.GetDeviceResponse(device=_device(status))

    @permission(Requires(Role.VIEWER, field=_named_field))
    async def GetFieldSummary(  # noqa: N802
        self, request: monitoring_pb2.GetFieldSummaryRequest, context: grpc.aio.ServicerContext
    ) -> monitoring_pb2.GetFieldSummaryResponse:
        if not request.field:
            raise InvalidArgument("field is required")
        summary = await self.service.field_summary(request.field)
        return monitoring_pb2.GetFieldSummaryResponse(summary=_summary(summary))

    @permission(Authenticated())
    async def ListFields(  # noqa: N802
        self, request: monitoring_pb2.ListFieldsRequest, context: grpc.aio.ServicerContext
    ) -> monitoring_pb2.ListFieldsResponse:
        claims = principal()
        if request.pillar == monitoring_pb2.PILLAR_UNSPECIFIED:
            pillar = None
        elif request.pillar in _PILLAR_OF:
            pillar = _PILLAR_OF[request.pillar]
        else:
            raise InvalidArgument(f"pillar {request.pillar} is not one this API knows")
        page = self.service.list_fields(
            pillar=pillar,
            page=_page(request.page),
            visible=None if claims is None else _viewer_of(claims),
        )
        return monitoring_pb2.ListFieldsResponse(
            fields=[_field(item) for item in page.items], page=_page_response(page)
        )


def _viewer_of(claims: Claims) -> Callable[[str], bool]:
    return lambda field: claims.allows(Role.VIEWER, field)


DEFAULT_PORT = 50051
"""Where ``smartcity serve monitoring`` listens unless told otherwise (grpc.port 0 is kept for
tests and embedded use, where any free port will do)."""


def servicer(service: MonitoringService) -> Registration:
    """The monitoring API as a registration for a :class:`GrpcServer`."""
    return (
        monitoring_pb2_grpc.add_MonitoringServiceServicer_to_server,
        MonitoringServicer(service),
    )


def build_server(
    settings: GrpcSettings,
    service: MonitoringService,
    authenticator: Authenticator | TokenVerifier | None,
    *,
    tracer_provider: trace.TracerProvider | None = None,
) -> GrpcServer:
    """The monitoring API alone, ready to start (with health, reflection and auth), on
    ``settings``; the service process itself runs through :mod:`.app`."""
    if isinstance(authenticator, TokenVerifier):
        authenticator = LocalAuthenticator(authenticator)
    registrations = [servicer(service)]
    return GrpcServer(
        settings,
        registrations,
        service_names=[SERVICE_NAME],
        tracer_provider=tracer_provider,
        auth=AuthInterceptor.for_servicers(registrations, authenticator),
    )


# -- protobuf -> domain ------------------------------------------------------------------------


def _selector(message: common_pb2.SeriesSelector) -> Selector:
    return Selector(
        field=message.field or None,
        site=message.site or None,
        device=message.device or None,
        metric=message.metric or None,
    )


def _page(message: common_pb2.PageRequest) -> PageRequest:
    return PageRequest(size=message.page_size, token=message.page_token or None)


def _micros(stamp: Timestamp) -> int:
    return stamp.ToMicroseconds()


def _states(values: Iterable[int]) -> list[DeviceState]:
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


def _timestamp(micros: int) -> Timestamp:
    stamp = Timestamp()
    stamp.FromMicroseconds(micros)
    return stamp


def _duration(micros: int) -> Duration:
    span = Duration()
    span.FromMicroseconds(micros)
    return span


def _page_response(page: Page[Any]) -> common_pb2.PageResponse:
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
        read_time=_timestamp(time),
        sequence=sequence,
    )
    if value is not None:
        reading.value = value
    return reading


def _latest_reading(item: LatestValue) -> monitoring_pb2.DeviceReading:
    key = item.key
    return monitoring_pb2.DeviceReading(
        field=key.field,
        site=key.site,
        device=key.device,
        reading=_reading(
            key.metric, item.unit, item.value, item.quality, item.reason, item.time, item.sequence
        ),
    )


def _live_reading(item: LiveReading) -> monitoring_pb2.DeviceReading:
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


def _series(item: SeriesRange) -> monitoring_pb2.Series:
    key = item.key
    return monitoring_pb2.Series(
        field=key.field,
        site=key.site,
        device=key.device,
        metric=key.metric,
        unit=item.unit,
        points=[
            monitoring_pb2.Point(
                time=_timestamp(bucket.start),
                value=bucket.value,
                count=bucket.count,
                # Only GOOD readings are aggregated, so the worst quality in a point is GOOD.
                quality=common_pb2.QUALITY_GOOD,
            )
            for bucket in item.buckets
        ],
    )


def _device(status: DeviceStatus) -> monitoring_pb2.Device:
    record, health = status.record, status.health
    device = monitoring_pb2.Device(
        field=record.field,
        site=record.site,
        device=record.device,
        agent_id=record.agent_id,
        state=_STATES[health.state],
        last_seen_time=_timestamp(record.last_seen),
        metrics=list(record.metrics),
    )
    if record.poll_interval > 0:
        device.poll_interval.CopyFrom(_duration(record.poll_interval))
    if health.since is not None:
        device.state_change_time.CopyFrom(_timestamp(health.since))
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
        compute_time=_timestamp(item.computed_at),
        description=kpi.description,
    )
    if kpi.target is not None:
        message.target = kpi.target
    return message


def _summary(summary: FieldSummary) -> monitoring_pb2.FieldSummary:
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


def _field(item: Field) -> monitoring_pb2.Field:
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
