"""Running a service: what every one of the platform's services does around its own logic.

A service describes itself with a :class:`ServiceSpec`: a name, a default port and a
``setup`` that builds its parts (servicers, background tasks, health checks) once the bus is
connected. :func:`run_service` does everything else, in one order for every service:

1. connect to NATS, or start the embedded ``nats-server`` when no URL is configured, and
   make sure the platform's streams exist;
2. open the token authenticator ``auth`` asks for (:mod:`smartcity.runtime.trust`: off,
   key files, or identity's key set and revocations from the IDENTITY stream), enter
   ``setup`` (which opens the service's storage and so on) and start the gRPC server with
   health, reflection and the auth interceptor enforcing the permission each RPC declares
   (:mod:`smartcity.runtime.auth`; a servicer with an undeclared RPC is refused here);
3. start the background tasks and keep ``grpc.health.v1`` true to what the process can do:
   NOT_SERVING, with the reason in the log, while NATS is disconnected or any health check
   of the service reports a problem (storage unreachable, a consumer that cannot progress);
4. on ``stop`` (or SIGINT/SIGTERM under :func:`serve`): NOT_SERVING first, the service's
   ``on_stop`` (end live streams), then a graceful gRPC stop, the tasks cancelled, the bus
   drained, ``setup`` left, the embedded server stopped — the reverse of the start.

A background task that fails, or ends at all, ends the service with that error, so that the
process exits and its supervisor (Kubernetes, ``smartcity up``) restarts it; handling what
comes from a wire is the task's own job (the consumer never lets a message end it).

:func:`serve` is the foreground entry point of ``smartcity serve <service>``: logging,
OpenTelemetry and signals, then :func:`run_service`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace

from smartcity.runtime.auth import Authenticator, AuthInterceptor
from smartcity.runtime.bus import Bus, BusError
from smartcity.runtime.config import Settings
from smartcity.runtime.grpc_server import GrpcServer, Registration
from smartcity.runtime.logs import get_logger
from smartcity.runtime.nats_server import EmbeddedNats
from smartcity.runtime.streams import provision_streams
from smartcity.runtime.tokens import TokenVerifier
from smartcity.runtime.trust import LocalAuthenticator, open_authenticator

__all__ = [
    "HealthCheck",
    "Running",
    "ServiceContext",
    "ServiceParts",
    "ServiceSpec",
    "run_service",
    "serve",
]

_log = get_logger(__name__)

HEALTH_INTERVAL_SECONDS = 2.0

HealthCheck = Callable[[], Coroutine[Any, Any, str | None]]
"""An async check: the problem that keeps the service from serving, or ``None``."""


@dataclass(frozen=True)
class ServiceContext:
    """What ``setup`` gets: the settings and a connected bus."""

    settings: Settings
    bus: Bus
    tracer_provider: trace.TracerProvider | None = None
    authenticator: Authenticator | None = None
    """Who the callers are, as ``auth`` configures (``None``: auth is off); for a service
    that authenticates callers outside gRPC too."""


@dataclass
class ServiceParts:
    """What a service runs, as built by its ``setup``."""

    registrations: Sequence[Registration]
    service_names: Sequence[str]
    tasks: Mapping[str, Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=dict)
    """Background work by name (ingest, retention), started once the server listens."""
    checks: Mapping[str, HealthCheck] = field(default_factory=dict)
    """Health checks by name; NATS is checked for every service."""
    on_stop: Callable[[], None] | None = None
    """Called first when stopping, before the server stops (e.g. end live streams)."""
    details: Mapping[str, str] = field(default_factory=dict)
    """What ``on_ready`` shows besides the addresses (e.g. the storage URL)."""
    verifier: TokenVerifier | None = None
    """Verifies this service's callers instead of what ``auth`` configures: identity checks
    tokens with its own key ring rather than waiting for its own announcements."""


Setup = Callable[[ServiceContext], AbstractAsyncContextManager[ServiceParts]]


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    """The service's name: logs, NATS connection, OpenTelemetry ``service.name``."""
    default_port: int
    """Where :func:`serve` listens unless ``grpc.port`` is configured."""
    setup: Setup


@dataclass(frozen=True)
class Running:
    """Where a started service can be reached."""

    name: str
    grpc_address: str
    nats_url: str
    details: Mapping[str, str]


async def run_service(
    spec: ServiceSpec,
    settings: Settings,
    stop: asyncio.Event,
    *,
    on_ready: Callable[[Running], None] | None = None,
    tracer_provider: trace.TracerProvider | None = None,
) -> None:
    """Run ``spec`` until ``stop`` is set (see the module docstring)."""
    async with contextlib.AsyncExitStack() as stack:
        nats = settings.nats
        if nats.url is None:
            embedded = EmbeddedNats(nats)
            await embedded.astart()
            stack.push_async_callback(embedded.astop)
            nats = embedded.client_settings()
        bus = await Bus.connect(nats, name=spec.name, tracer_provider=tracer_provider)
        stack.push_async_callback(bus.close)
        await _ensure_streams(bus, settings)
        authenticator: Authenticator | None = await stack.enter_async_context(
            open_authenticator(settings.auth, bus)
        )
        context = ServiceContext(settings, bus, tracer_provider, authenticator)
        parts = await stack.enter_async_context(spec.setup(context))
        if parts.verifier is not None:
            authenticator = LocalAuthenticator(parts.verifier)
        checks = dict(parts.checks)
        if authenticator is not None:
            checks.setdefault("auth", _auth_check(authenticator))
        server = GrpcServer(
            settings.grpc,
            parts.registrations,
            service_names=parts.service_names,
            tracer_provider=tracer_provider,
            auth=AuthInterceptor.for_servicers(parts.registrations, authenticator),
        )
        await server.start()
        tasks = {
            asyncio.create_task(start(), name=f"{spec.name}.{name}"): name
            for name, start in parts.tasks.items()
        }
        watching = asyncio.create_task(_watch_health(spec.name, server, bus, checks))
        if on_ready is not None:
            on_ready(Running(spec.name, server.address, str(nats.url), dict(parts.details)))
        try:
            stopped = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait([stopped, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is stopped:
                    continue
                _log.error("background task ended", service=spec.name, task=tasks[task])
                failure = None if task.cancelled() else task.exception()
                raise failure or RuntimeError(
                    f"{spec.name}: its background task {tasks[task]!r} ended on its own"
                )
        finally:
            stopped.cancel()
            watching.cancel()
            await server.set_serving("", False)
            if parts.on_stop is not None:
                parts.on_stop()
            await server.stop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(watching, *tasks, return_exceptions=True)


async def _ensure_streams(bus: Bus, settings: Settings) -> None:
    """Create or update the platform's streams; a process that logs in as its own NATS user
    may only look them up, so for it a refusal means "the admin provisions": it goes on with
    the streams as they are (and its consumer reports a stream that is missing)."""
    nats = settings.nats
    try:
        await provision_streams(bus, nats.streams)
    except BusError as exc:
        if nats.credentials_file is None and nats.user is None:
            raise
        _log.warning(
            "may not provision the streams as this NATS user; using them as they are "
            "(provision them as the admin: smartcity streams ensure)",
            error=str(exc),
        )


def _auth_check(authenticator: Authenticator) -> HealthCheck:
    async def check() -> str | None:
        return getattr(authenticator, "problem", None)

    return check


async def _watch_health(
    name: str, server: GrpcServer, bus: Bus, checks: Mapping[str, HealthCheck]
) -> None:
    """Keep the health service true to what the process can do; log each change."""
    serving = True
    while True:
        problems: list[str] = []
        if not bus.nc.is_connected:
            problems.append("nats: not connected")
        for check_name, check in checks.items():
            try:
                problem = await check()
            except Exception as exc:
                problem = f"check failed: {exc!r}"
            if problem:
                problems.append(f"{check_name}: {problem}")
        if bool(problems) == serving:
            serving = not problems
            for service in ("", *server.service_names):
                await server.set_serving(service, serving)
            if serving:
                _log.info("serving again", service=name)
            else:
                _log.warning("not serving", service=name, problems=problems)
        await asyncio.sleep(HEALTH_INTERVAL_SECONDS)


def serve(
    spec: ServiceSpec,
    settings: Settings,
    *,
    version: str,
    on_ready: Callable[[Running], None] | None = None,
) -> None:
    """Run ``spec`` in the foreground until SIGINT/SIGTERM: logging and OpenTelemetry as
    configured, the gRPC port defaulting to the service's own."""
    from smartcity.runtime.foreground import run_until_signalled
    from smartcity.runtime.logs import setup_logging
    from smartcity.runtime.observability import setup_observability

    if "port" not in settings.grpc.model_fields_set:
        grpc = settings.grpc.model_copy(update={"port": spec.default_port})
        settings = settings.model_copy(update={"grpc": grpc})
    setup_logging(settings.logging, service=spec.name)
    telemetry = setup_observability(
        settings.telemetry, service_name=f"smartcity-{spec.name}", service_version=version
    )
    try:
        run_until_signalled(lambda stop: run_service(spec, settings, stop, on_ready=on_ready))
    finally:
        telemetry.shutdown()
