"""OpenTelemetry traces and metrics for one smartcity process.

One call at start-up builds the SDK providers with the process's identity (service name,
version and instance id), points them at the configured exporter (nowhere, the console, an
OTLP collector over gRPC, or a file of JSON lines), optionally serves metrics for Prometheus
to scrape,
and installs them as the process-wide providers with the W3C TraceContext and Baggage
propagators, so gRPC and NATS instrumentation continue the callers' traces.

OpenTelemetry lets the global providers be set once per process. The first call that asks
for it installs them; a later call still builds and returns working providers but leaves the
globals alone (and logs that it did). Tests, and anything embedding several services in one
process, pass ``install_globals=False`` and hand the providers to what they build.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from wsgiref.simple_server import WSGIServer

import prometheus_client
from opentelemetry import metrics, propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from smartcity.runtime.config import TelemetrySettings
from smartcity.runtime.logs import get_logger

__all__ = ["JsonLinesSpanExporter", "Observability", "ObservabilityError", "setup_observability"]

_log = get_logger(__name__)

_globals_lock = threading.Lock()
_globals_owner: Observability | None = None


class ObservabilityError(RuntimeError):
    """Telemetry cannot be set up as configured (e.g. the Prometheus port is taken)."""


class JsonLinesSpanExporter(SpanExporter):
    """Appends each finished span to a file as one JSON object per line, in the SDK's own
    JSON form of a span (what the console exporter prints, on one line): name, context
    (``trace_id``, ``span_id``), kind, ``parent_id``, times, status, attributes, events,
    links and resource.

    Each export is one ``write`` to a file opened for appending, so that several processes
    may share a file without their lines mixing; a file per process is simpler to read.
    """

    def __init__(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as exc:
            raise ObservabilityError(
                f"cannot write spans to {path}: {exc.strerror or exc}"
            ) from exc
        self.path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        data = "".join(span.to_json(indent=None) + "\n" for span in spans).encode("utf-8")
        with self._lock:
            if self._fd is None:
                return SpanExportResult.FAILURE
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(self._fd, view) :]
            except OSError as exc:
                _log.warning("spans not written", path=str(self.path), error=str(exc))
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True  # every export is written through at once


@dataclass
class _PrometheusEndpoint:
    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@dataclass
class Observability:
    """The providers of one process, and the means to flush them on the way out."""

    resource: Resource
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    installed_globally: bool
    _prometheus: _PrometheusEndpoint | None = field(default=None, repr=False)
    _closed: bool = field(default=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def prometheus_port(self) -> int | None:
        """The port Prometheus scrapes (``/metrics``), the real one when 0 was asked for."""
        return self._prometheus.port if self._prometheus is not None else None

    def tracer(self, name: str) -> trace.Tracer:
        return self.tracer_provider.get_tracer(name)

    def meter(self, name: str) -> metrics.Meter:
        return self.meter_provider.get_meter(name)

    def shutdown(self) -> None:
        """Export what is buffered, then stop exporting. Runs at most once (also registered
        to run at interpreter exit); blocks for up to the exporters' timeouts."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        atexit.unregister(self.shutdown)
        try:
            self.meter_provider.shutdown()
            self.tracer_provider.shutdown()
        finally:
            if self._prometheus is not None:
                self._prometheus.close()


def _resource(settings: TelemetrySettings, service_name: str, service_version: str) -> Resource:
    """The configured name wins over OTEL_SERVICE_NAME; the SDK adds a per-process
    ``service.instance.id`` unless OTEL_RESOURCE_ATTRIBUTES provides one (e.g. the pod name
    through the downward API)."""
    return Resource.create(
        {SERVICE_NAME: settings.service_name or service_name, SERVICE_VERSION: service_version}
    )


def _exporters(settings: TelemetrySettings) -> tuple[SpanExporter | None, MetricExporter | None]:
    if settings.exporter == "console":
        # Resolved now rather than at import, so a redirected stdout is honoured.
        return ConsoleSpanExporter(out=sys.stdout), ConsoleMetricExporter(out=sys.stdout)
    if settings.exporter == "otlp":
        return (
            OTLPSpanExporter(endpoint=settings.otlp_endpoint, insecure=settings.otlp_insecure),
            OTLPMetricExporter(endpoint=settings.otlp_endpoint, insecure=settings.otlp_insecure),
        )
    if settings.exporter == "file" and settings.file_path is not None:
        return JsonLinesSpanExporter(settings.file_path), None
    return None, None


def _serve_prometheus(
    settings: TelemetrySettings, port: int
) -> tuple[PrometheusMetricReader, _PrometheusEndpoint]:
    """A registry of this process's own, so that two setups in one process (tests, embedded
    services) never export each other's metrics, with the usual process and runtime metrics."""
    registry = prometheus_client.CollectorRegistry(auto_describe=True)
    prometheus_client.ProcessCollector(registry=registry)
    prometheus_client.PlatformCollector(registry=registry)
    prometheus_client.GCCollector(registry=registry)
    reader = PrometheusMetricReader(registry=registry)
    try:
        server, thread = prometheus_client.start_http_server(
            port, addr=settings.prometheus_host, registry=registry
        )
    except OSError as exc:
        raise ObservabilityError(
            f"cannot serve Prometheus metrics on {settings.prometheus_host}:{port}: "
            f"{exc.strerror or exc}"
        ) from exc
    return reader, _PrometheusEndpoint(server, thread)


def _install_globals(observability: Observability) -> bool:
    global _globals_owner
    with _globals_lock:
        if _globals_owner is not None or not isinstance(
            trace.get_tracer_provider(), trace.ProxyTracerProvider
        ):
            _log.warning(
                "OpenTelemetry providers were already installed in this process; "
                "the new ones are returned but not made global",
                service=observability.resource.attributes.get(SERVICE_NAME),
            )
            return False
        trace.set_tracer_provider(observability.tracer_provider)
        metrics.set_meter_provider(observability.meter_provider)
        _globals_owner = observability
        return True


def setup_observability(
    settings: TelemetrySettings,
    *,
    service_name: str,
    service_version: str,
    install_globals: bool = True,
    span_processors: Sequence[SpanProcessor] = (),
    metric_readers: Sequence[MetricReader] = (),
) -> Observability:
    """Build tracing and metrics for this process from ``settings``.

    ``span_processors`` and ``metric_readers`` are added to the ones the settings ask for
    (tests pass an in-memory exporter here). Call :meth:`Observability.shutdown` before the
    process exits so that batched spans and the last metrics are not lost.
    """
    span_exporter, metric_exporter = _exporters(settings)
    readers: list[MetricReader] = list(metric_readers)
    if metric_exporter is not None:
        readers.append(
            PeriodicExportingMetricReader(
                metric_exporter,
                export_interval_millis=settings.metric_interval_seconds * 1000,
            )
        )
    prometheus: _PrometheusEndpoint | None = None
    if settings.prometheus_port is not None:
        reader, prometheus = _serve_prometheus(settings, settings.prometheus_port)
        readers.append(reader)

    resource = _resource(settings, service_name, service_version)
    tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    if span_exporter is not None:
        tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
    for processor in span_processors:
        tracer_provider.add_span_processor(processor)
    meter_provider = MeterProvider(
        resource=resource, metric_readers=readers, shutdown_on_exit=False
    )

    observability = Observability(
        resource=resource,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        installed_globally=False,
        _prometheus=prometheus,
    )
    atexit.register(observability.shutdown)
    if install_globals:
        observability.installed_globally = _install_globals(observability)
        # Setting the propagators again is allowed and harmless; they are the W3C pair that
        # our gRPC and NATS instrumentation read and write.
        propagate.set_global_textmap(
            CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
        )
    _log.debug(
        "observability ready",
        exporter=settings.exporter,
        prometheus_port=observability.prometheus_port,
        installed_globally=observability.installed_globally,
    )
    return observability
