"""The gRPC server every smartcity service runs in.

A service hands over its servicers; this module adds what every service owes its operators
and clients: ``grpc.health.v1`` for Kubernetes probes and load balancers, server
reflection for grpcurl, the standard interceptors (:mod:`smartcity.runtime.interceptors`),
message size limits and keepalive policy, and a graceful stop that first reports NOT_SERVING
so traffic drains before the listener closes.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Self

import grpc
import grpc.aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry import trace

from smartcity.runtime.config import GrpcSettings
from smartcity.runtime.interceptors import server_interceptors
from smartcity.runtime.logs import get_logger

__all__ = ["GrpcServer", "GrpcServerError", "Registration", "serve"]

_log = get_logger(__name__)

MAX_METADATA_BYTES = 64 * 1024
"""Largest request metadata accepted; beyond the biggest token (16 KiB) with room to spare."""

# How a generated ``add_FooServicer_to_server`` is called, with the servicer to pass it.
Registration = tuple[Callable[[Any, grpc.aio.Server], None], Any]

# Accept the client keepalive of smartcity.runtime.grpc_client (a ping every 30 s, also while
# idle) instead of answering it with GOAWAY "too_many_pings", and ping idle clients ourselves
# so a peer that vanished without closing (a NAT timeout, a killed pod) frees its streams.
_KEEPALIVE_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 20_000),
    ("grpc.http2.max_pings_without_data", 0),
)


class GrpcServerError(RuntimeError):
    """The server cannot be started as configured (most often: the port is taken)."""


def _bind_address(host: str, port: int) -> str:
    if ":" in host and not host.startswith("["):
        return f"[{host}]:{port}"
    return f"{host}:{port}"


class GrpcServer:
    """A grpc.aio server with health, reflection, interceptors and graceful stop.

    ``registrations`` are ``(add_FooServicer_to_server, servicer)`` pairs; ``service_names``
    are the full names of the services they implement (``smartcity.alerts.v1.Alerts``), used
    for reflection and for per-service health. ``tracer_provider`` defaults to the global one;
    ``interceptors``, when given, replace the standard chain (and ``tracer_provider`` with it);
    ``auth`` (a :class:`smartcity.runtime.auth.AuthInterceptor`) goes innermost, inside the
    error mapping, so that its refusals reach callers as status codes.
    Use as ``async with GrpcServer(...) as server:``, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        settings: GrpcSettings,
        registrations: Sequence[Registration],
        *,
        service_names: Sequence[str],
        tracer_provider: trace.TracerProvider | None = None,
        interceptors: Sequence[grpc.aio.ServerInterceptor] | None = None,
        auth: grpc.aio.ServerInterceptor | None = None,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        if len(set(service_names)) != len(service_names) or "" in service_names:
            raise ValueError(f"service names must be unique and non-empty: {service_names!r}")
        self._settings = settings
        self._registrations = tuple(registrations)
        self._service_names = tuple(service_names)
        self._interceptors = (
            tuple(interceptors)
            if interceptors is not None
            else tuple(server_interceptors(tracer_provider=tracer_provider))
        ) + ((auth,) if auth is not None else ())
        self._options = (
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
            # Two servers must not share a fixed port silently (the Linux default allows it).
            ("grpc.so_reuseport", 0),
            # Room for a token up to the verifier's own limit, so that an oversized one is
            # refused as UNAUTHENTICATED with a reason rather than by the transport.
            ("grpc.max_metadata_size", MAX_METADATA_BYTES),
            *_KEEPALIVE_OPTIONS,
            *options,
        )
        self._health = health.aio.HealthServicer()
        self._server: grpc.aio.Server | None = None
        self._port: int | None = None
        self._stopping: asyncio.Task[None] | None = None
        self._signals: list[signal.Signals] = []

    @property
    def port(self) -> int:
        """The bound port (the real one when the settings asked for port 0)."""
        if self._port is None:
            raise RuntimeError("the gRPC server has not been started")
        return self._port

    @property
    def address(self) -> str:
        """``host:port`` a client on this machine can dial."""
        return _bind_address(self._settings.host, self.port)

    @property
    def service_names(self) -> tuple[str, ...]:
        return self._service_names

    async def set_serving(self, service: str, serving: bool) -> None:
        """Report a service (``""`` for the whole server) as able to serve or not, e.g. while
        its NATS connection is down; ignored once a stop has begun."""
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        await self._health.set(service, status)

    async def start(self) -> int:
        """Bind, start serving and report SERVING; returns the bound port."""
        if self._server is not None:
            raise RuntimeError("the gRPC server was already started")
        server = grpc.aio.server(interceptors=self._interceptors, options=self._options)
        for add_to_server, servicer in self._registrations:
            add_to_server(servicer, server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        if self._settings.reflection:
            reflection.enable_server_reflection(
                (*self._service_names, health.SERVICE_NAME, reflection.SERVICE_NAME), server
            )
        requested = _bind_address(self._settings.host, self._settings.port)
        try:
            port = server.add_insecure_port(requested)
        except RuntimeError as exc:
            port = 0
            cause: BaseException | None = exc
        else:
            cause = None
        if port == 0:
            # A server that never started must still be stopped: grpc frees it at garbage
            # collection otherwise, which can crash the interpreter on its way out.
            await server.stop(None)
            raise GrpcServerError(
                f"cannot listen for gRPC on {requested}: the address is in use or not local"
            ) from cause
        self._port = port
        await server.start()
        self._server = server
        for service in ("", *self._service_names):
            await self.set_serving(service, True)
        _log.info(
            "grpc server listening",
            address=self.address,
            services=list(self._service_names),
            reflection=self._settings.reflection,
        )
        return self._port

    async def stop(self, grace: float | None = None) -> None:
        """Report NOT_SERVING, refuse new calls and give calls in flight ``grace`` seconds
        (default: the configured shutdown grace) before cancelling them. Concurrent and
        repeated calls wait for the same stop."""
        if self._server is None:
            return
        if self._stopping is None:
            seconds = self._settings.shutdown_grace_seconds if grace is None else grace
            self._stopping = asyncio.ensure_future(self._stop(self._server, seconds))
        await asyncio.shield(self._stopping)

    async def _stop(self, server: grpc.aio.Server, grace: float) -> None:
        self._remove_signal_handlers()
        _log.info("grpc server stopping", address=self.address, grace_seconds=grace)
        await self._health.enter_graceful_shutdown()
        await server.stop(grace)
        _log.info("grpc server stopped", address=self.address)

    async def wait_for_termination(self) -> None:
        """Return once the server has stopped (after :meth:`stop`, or a signal)."""
        if self._server is None:
            raise RuntimeError("the gRPC server has not been started")
        await self._server.wait_for_termination()
        if self._stopping is not None:
            await asyncio.shield(self._stopping)

    def install_signal_handlers(
        self, signals: Sequence[signal.Signals] = (signal.SIGINT, signal.SIGTERM)
    ) -> None:
        """Stop gracefully on SIGINT/SIGTERM. Only for the process's own main server: the
        handlers belong to the running event loop and replace any installed before."""
        loop = asyncio.get_running_loop()
        for sig in signals:
            loop.add_signal_handler(sig, self._on_signal, sig)
            self._signals.append(sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        _log.info("signal received, stopping", signal=sig.name)
        if self._stopping is None and self._server is not None:
            self._stopping = asyncio.ensure_future(
                self._stop(self._server, self._settings.shutdown_grace_seconds)
            )

    def _remove_signal_handlers(self) -> None:
        if not self._signals:
            return
        loop = asyncio.get_running_loop()
        for sig in self._signals:
            loop.remove_signal_handler(sig)
        self._signals.clear()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


async def serve(
    settings: GrpcSettings,
    registrations: Sequence[Registration],
    *,
    service_names: Sequence[str],
    tracer_provider: trace.TracerProvider | None = None,
    on_started: Callable[[GrpcServer], None] | None = None,
) -> None:
    """Run a service in the foreground until SIGINT or SIGTERM, then stop gracefully."""
    server = GrpcServer(
        settings, registrations, service_names=service_names, tracer_provider=tracer_provider
    )
    async with server:
        server.install_signal_handlers()
        if on_started is not None:
            on_started(server)
        await server.wait_for_termination()
