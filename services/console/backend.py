"""The four services as the console calls them, and what their refusals become over HTTP.

One channel per service, shared by every user: the token goes with each call, never with
the channel, so the console holds no rights of its own and each call has exactly the user's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import grpc.aio

from smartcity.alerts.v1 import alerts_pb2_grpc
from smartcity.identity.v1 import identity_pb2_grpc
from smartcity.monitoring.v1 import monitoring_pb2_grpc
from smartcity.records.v1 import records_pb2_grpc
from smartcity.runtime.errors import DomainError
from smartcity.runtime.grpc_client import channel
from smartcity.services.console.settings import SERVICES, ConsoleSettings

__all__ = ["ApiError", "Backend", "GrpcBackend", "bearer", "http_status"]

Reply = TypeVar("Reply")

# What each gRPC status means to a browser. A status the table does not name is the
# service failing, not the request: 502, the gateway's word for it.
_HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.CANCELLED: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


def http_status(code: grpc.StatusCode) -> int:
    return _HTTP_STATUS.get(code, 502)


class ApiError(Exception):
    """A refusal the browser is told about: HTTP status, message and a code it can test."""

    def __init__(self, status: int, message: str, code: str = "", service: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or _default_code(status)
        self.service = service

    @classmethod
    def from_rpc(cls, error: grpc.aio.AioRpcError, service: str) -> ApiError:
        code = error.code()
        message = error.details() or f"{service} answered {code.name}"
        return cls(http_status(code), message, code.name, service)

    @classmethod
    def from_domain(cls, error: DomainError) -> ApiError:
        name = type(error).__name__
        status = {
            "InvalidArgument": 400,
            "Unauthenticated": 401,
            "PermissionDenied": 403,
            "NotFound": 404,
            "ResourceExhausted": 429,
            "Unavailable": 503,
        }.get(name, 409)
        return cls(status, error.message)

    def body(self) -> dict[str, str]:
        body = {"error": self.message, "code": self.code}
        if self.service:
            body["service"] = self.service
        return body


def _default_code(status: int) -> str:
    return {
        400: "INVALID_ARGUMENT",
        401: "UNAUTHENTICATED",
        403: "PERMISSION_DENIED",
        404: "NOT_FOUND",
        405: "METHOD_NOT_ALLOWED",
        409: "FAILED_PRECONDITION",
        413: "PAYLOAD_TOO_LARGE",
        415: "UNSUPPORTED_MEDIA_TYPE",
        429: "RESOURCE_EXHAUSTED",
        503: "UNAVAILABLE",
    }.get(status, "ERROR")


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


@dataclass
class Backend:
    """The stubs of the four services. Tests build one over stand-ins; :class:`GrpcBackend`
    builds it over real channels."""

    identity: Any
    monitoring: Any
    records: Any
    alerts: Any
    call_timeout: float = 10.0

    async def call(
        self,
        service: str,
        method: Callable[..., Awaitable[Reply]],
        request: Any,
        token: str | None = None,
        client: str | None = None,
    ) -> Reply:
        """``method(request)`` with the user's ``token``; a refusal raised as
        :class:`ApiError` with the service's own message. ``client``, the browser's address,
        goes along as ``x-forwarded-for``: identity, configured to trust the console
        (``identity.trusted_proxies``), then counts failed logins per browser, not for the
        console as a whole."""
        metadata = (
            *(bearer(token) if token else ()),
            *((("x-forwarded-for", client),) if client else ()),
        )
        try:
            return await method(request, metadata=metadata, timeout=self.call_timeout)
        except grpc.aio.AioRpcError as error:
            raise ApiError.from_rpc(error, service) from None

    async def close(self) -> None:
        """Release connections (nothing to release for stand-ins)."""


class GrpcBackend(Backend):
    """Channels to the services' targets; create inside the event loop that uses them."""

    def __init__(self, settings: ConsoleSettings) -> None:
        targets = settings.targets
        self._channels = {
            name: channel(getattr(targets, name), settings=settings.grpc) for name in SERVICES
        }
        super().__init__(
            identity=identity_pb2_grpc.IdentityServiceStub(self._channels["identity"]),
            monitoring=monitoring_pb2_grpc.MonitoringServiceStub(self._channels["monitoring"]),
            records=records_pb2_grpc.RecordsServiceStub(self._channels["records"]),
            alerts=alerts_pb2_grpc.AlertsServiceStub(self._channels["alerts"]),
            call_timeout=settings.call_timeout_seconds,
        )

    async def close(self) -> None:
        for opened in self._channels.values():
            await opened.close()
