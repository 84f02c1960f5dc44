"""The records gRPC API: protobuf in and out, the permission of each RPC, and the error
details of refusals.

Who may call (the interceptor enforces this much; the service then applies the per-record
rules of :mod:`.access` with the verified caller):

* ``CreateRecord``, ``GetRecord``, ``ListRecordHistory``, ``SearchRecords``,
  ``ListRecordTypes``: any authenticated caller; whether a citizen owns the record, a
  member of staff holds a role on its field, and a sensitive record's reader has eID level 2
  and a recent strong login is the service's decision, since it depends on the record;
* ``UpdateRecord``, ``DeleteRecord``: ``records_officer`` on some field (the record's own
  field is checked by the service).

Refusals carry details: a document refused for its content is INVALID_ARGUMENT with a
``google.rpc.BadRequest`` (one field violation per problem, ``field`` the JSON Pointer); a
stale ``expected_version`` is ABORTED with a ``google.rpc.ErrorInfo`` (reason
``VERSION_MISMATCH``, the expected and actual versions).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
import grpc.aio
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from opentelemetry import trace

from smartcity.common.v1 import common_pb2
from smartcity.records.v1 import records_pb2, records_pb2_grpc
from smartcity.runtime.auth import (
    Authenticated,
    Authenticator,
    AuthInterceptor,
    Requires,
    permission,
    principal,
)
from smartcity.runtime.config import GrpcSettings
from smartcity.runtime.grpc_server import GrpcServer, Registration
from smartcity.runtime.tokens import Role, TokenVerifier
from smartcity.runtime.trust import LocalAuthenticator
from smartcity.services.records import convert
from smartcity.services.records.model import Page
from smartcity.services.records.schemas import SchemaViolation
from smartcity.services.records.search import Search
from smartcity.services.records.service import PageRequest, RecordsService, StaleVersion

__all__ = ["DEFAULT_PORT", "SERVICE_NAME", "RecordsServicer", "build_server", "servicer"]

SERVICE_NAME = records_pb2.DESCRIPTOR.services_by_name["RecordsService"].full_name
DEFAULT_PORT = 50052
"""Where ``smartcity serve records`` listens unless told otherwise."""

R = TypeVar("R")
Handler = Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[R]]


def _packed(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _status(code: int, message: str, detail: Any) -> grpc.Status:
    return rpc_status.to_status(
        status_pb2.Status(code=code, message=message, details=[_packed(detail)])
    )


def _with_details(method: Handler[R]) -> Handler[R]:
    """Turns the refusals that carry structure into statuses with their details."""

    @functools.wraps(method)
    async def call(self: Any, request: Any, context: grpc.aio.ServicerContext) -> R:
        try:
            return await method(self, request, context)
        except SchemaViolation as exc:
            detail = error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=item.path or "/", description=item.message
                    )
                    for item in exc.violations
                ]
            )
            status = _status(code_pb2.INVALID_ARGUMENT, exc.message, detail)
        except StaleVersion as exc:
            detail = error_details_pb2.ErrorInfo(
                reason="VERSION_MISMATCH",
                domain="records.smartcity",
                metadata={"expected_version": str(exc.expected), "actual_version": str(exc.actual)},
            )
            status = _status(code_pb2.ABORTED, exc.message, detail)
        await context.abort(status.code, status.details, status.trailing_metadata)
        raise AssertionError("abort returns only by raising")

    return call


def _page(message: common_pb2.PageRequest) -> PageRequest:
    return PageRequest(size=message.page_size, token=message.page_token or None)


def _page_response(page: Page[Any]) -> common_pb2.PageResponse:
    return common_pb2.PageResponse(next_page_token=page.next_page_token or "")


class RecordsServicer(records_pb2_grpc.RecordsServiceServicer):
    """``smartcity.records.v1.RecordsService`` over a :class:`RecordsService`."""

    def __init__(self, service: RecordsService) -> None:
        self.service = service

    @permission(Authenticated())
    @_with_details
    async def CreateRecord(  # noqa: N802 - the generated servicer's names
        self, request: records_pb2.CreateRecordRequest, context: grpc.aio.ServicerContext
    ) -> records_pb2.CreateRecordResponse:
        created = await self.service.create(
            principal(),
            request.type,
            convert.plain(request.data),
            owner_id=request.owner_id,
            reason=request.reason,
            request_id=request.request_id,
        )
        return records_pb2.CreateRecordResponse(record=convert.record(created))

    @permission(Authenticated())
    async def GetRecord(  # noqa: N802
        self, request: records_pb2.GetRecordRequest, context: grpc.aio.ServicerContext
    ) -> records_pb2.GetRecordResponse:
        found = await self.service.get(
            principal(), request.id, version=request.version, reason=request.reason
        )
        return records_pb2.GetRecordResponse(record=convert.record(found))

    @permission(Requires(Role.RECORDS_OFFICER))
    @_with_details
    async def UpdateRecord(  # noqa: N802
        self, request: records_pb2.UpdateRecordRequest, context: grpc.aio.ServicerContext
    ) -> records_pb2.UpdateRecordResponse:
        updated = await self.service.update(
            principal(),
            request.id,
            convert.plain(request.data),
            expected_version=request.expected_version,
            reason=request.reason,
        )
        return records_pb2.UpdateRecordResponse(record=convert.record(updated))

    @permission(Requires(Role.RECORDS_OFFICER))
    @_with_details
    async def DeleteRecord(  # noqa: N802
        self, request: records_pb2.DeleteRecordRequest, context: grpc.aio.ServicerContext
    ) -> records_pb2.DeleteRecordResponse:
        deleted = await self.service.delete(
            principal(),
            request.id,
            expected_version=request.expected_version,
            reason=request.reason,
        )
        return records_pb2.DeleteRecordResponse(record=convert.record(deleted))

    @permission(Authenticated())
    async def ListRecordHistory(  # noqa: N802
        self, request: records_pb2.ListRecordHistoryRequest, context: grpc.aio.ServicerContext
    ) -> records_pb2.ListRecordHistoryResponse:
        page = await self.service.history(
            principal(), request.id, _page(request.page), reason=request.reason
        )
        return records_pb2.ListRecordHistoryResponse(
            records=[convert.record(item) for item in page.items], page=_page_response(page)
        )

    @permission(Authenticated())
    async def SearchRecords(  # noqa: N802
        self, request: records_pb2.SearchRecordsRequest, context: grpc.aio.ServicerContext
    ) -> records_pb2.SearchRecordsResponse:
        span = request.update_time_range
        search = Search(
            type=request.type,
            owner_id=request.owner_id,
            field=request.field,
            query=request.query,
            updated_from=span.start_time.ToMicroseconds() if span.HasField("start_time") else None,
            updated_before=span.end_time.ToMicroseconds() if span.HasField("end_time") else None,
            order_by=request.order_by,
            include_deleted=request.include_deleted,
            reason=request.reason,
        )
        page = await self.service.search(principal(), search, _page(request.page))
        return records_pb2.SearchRecordsResponse(
            records=[convert.record(item) for item in page.items], page=_page_response(page)
        )

    @permission(Authenticated())
    async def ListRecordTypes(  # noqa: N802
        self, request: records_pb2.ListRecordTypesRequest, context: grpc.aio.ServicerContext
    ) -> records_pb2.ListRecordTypesResponse:
        page = self.service.list_types(request.field, _page(request.page))
        return records_pb2.ListRecordTypesResponse(
            record_types=[convert.record_type(item) for item in page.items],
            page=_page_response(page),
        )


def servicer(service: RecordsService) -> Registration:
    """The records API as a registration for a :class:`GrpcServer`."""
    return (records_pb2_grpc.add_RecordsServiceServicer_to_server, RecordsServicer(service))


def build_server(
    settings: GrpcSettings,
    service: RecordsService,
    authenticator: Authenticator | TokenVerifier | None,
    *,
    tracer_provider: trace.TracerProvider | None = None,
) -> GrpcServer:
    """The records API alone, ready to start (with health, reflection and auth); the
    service process itself runs through :mod:`.app`."""
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
