"""The monitoring gRPC API: protobuf in and out, and the permission of each RPC.

Everything the service decides lives in :mod:`smartcity.services.monitoring.service`; this
module translates messages (with :mod:`.convert`) and declares who may ask (enforced by the
runtime's :class:`~smartcity.runtime.auth.AuthInterceptor`, which also ends a live stream once
its token expires or is revoked):

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
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc.aio
from opentelemetry import trace

from smartcity.common.v1 import common_pb2
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
from smartcity.services.monitoring import convert
from smartcity.services.monitoring.service import MonitoringService

__all__ = ["DEFAULT_PORT", "SERVICE_NAME", "MonitoringServicer", "build_server", "servicer"]

SERVICE_NAME = monitoring_pb2.DESCRIPTOR.services_by_name["MonitoringService"].full_name

_log = get_logger(__name__)


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
        selector = convert.selector(request.selector)
        page = await self.service.latest(selector, convert.page_request(request.page))
        return monitoring_pb2.GetLatestResponse(
            readings=[convert.latest_reading_pb(item) for item in page.items],
            page=convert.page_pb(page),
        )

    @permission(Requires(Role.VIEWER, field=_selected_field))
    async def QueryRange(  # noqa: N802
        self, request: monitoring_pb2.QueryRangeRequest, context: grpc.aio.ServicerContext
    ) -> monitoring_pb2.QueryRangeResponse:
        selector = convert.selector(request.selector)
        aggregation = convert.aggregation(request.aggregation)
        span = request.time_range
        result = await self.service.range(
            selector,
            start=convert.micros(span.start_time) if span.HasField("start_time") else None,
            end=convert.micros(span.end_time) if span.HasField("end_time") else None,
            step=request.step.ToMicroseconds(),
            aggregation=aggregation,
            page=convert.page_request(request.page),
        )
        response = monitoring_pb2.QueryRangeResponse(
            series=[convert.series_pb(item) for item in result.series],
            from_rollup=result.resolution > 0,
            page=common_pb2.PageResponse(next_page_token=result.next_page_token or ""),
        )
        if result.resolution > 0:
            response.rollup_resolution.CopyFrom(convert.duration_pb(result.resolution))
        return response

    @permission(Requires(Role.VIEWER, field=_selected_field))
    async def StreamReadings(  # noqa: N802
        self, request: monitoring_pb2.StreamReadingsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[monitoring_pb2.StreamReadingsResponse]:
        selector = convert.selector(request.selector)
        async for readings in self.service.stream(selector, include_latest=request.include_latest):
            yield monitoring_pb2.StreamReadingsResponse(
                readings=[convert.live_reading_pb(item) for item in readings]
            )

    @permission(Requires(Role.VIEWER, field=_named_field))
    async def ListDevices(  # noqa: N802
        self, request: monitoring_pb2.ListDevicesRequest, context: grpc.aio.ServicerContext
    ) -> monitoring_pb2.ListDevicesResponse:
        states = convert.device_states(request.states)
        page = await self.service.devices(
            field=request.field or None,
            site=request.site or None,
            states=states,
            page=convert.page_request(request.page),
        )
        return monitoring_pb2.ListDevicesResponse(
            devices=[convert.device_pb(item) for item in page.items], page=convert.page_pb(page)
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
        return monitoring_pb2.GetDeviceResponse(device=convert.device_pb(status))

    @permission(Requires(Role.VIEWER, field=_named_field))
    async def GetFieldSummary(  # noqa: N802
        self, request: monitoring_pb2.GetFieldSummaryRequest, context: grpc.aio.ServicerContext
    ) -> monitoring_pb2.GetFieldSummaryResponse:
        if not request.field:
            raise InvalidArgument("field is required")
        summary = await self.service.field_summary(request.field)
        return monitoring_pb2.GetFieldSummaryResponse(summary=convert.summary_pb(summary))

    @permission(Authenticated())
    async def ListFields(  # noqa: N802
        self, request: monitoring_pb2.ListFieldsRequest, context: grpc.aio.ServicerContext
    ) -> monitoring_pb2.ListFieldsResponse:
        claims = principal()
        pillar = convert.pillar(request.pillar)
        page = self.service.list_fields(
            pillar=pillar,
            page=convert.page_request(request.page),
            visible=None if claims is None else _viewer_of(claims),
        )
        return monitoring_pb2.ListFieldsResponse(
            fields=[convert.field_pb(item) for item in page.items], page=convert.page_pb(page)
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
