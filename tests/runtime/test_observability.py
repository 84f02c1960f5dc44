"""Traces and metrics leave the process through each configured exporter.

Every setup here passes ``install_globals=False``: OpenTelemetry's global providers can be set
once per process, and the suite shares one. Installing them is tested in a child process.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, SERVICE_VERSION
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from smartcity.runtime.config import TelemetrySettings
from smartcity.runtime.observability import (
    Observability,
    ObservabilityError,
    setup_observability,
)


def setup(**values: Any) -> Observability:
    return setup_observability(
        TelemetrySettings(**values),
        service_name="monitoring",
        service_version="1.2.3",
        install_globals=False,
    )


def json_documents(text: str) -> list[Any]:
    """The console exporters print indented JSON documents one after another."""
    decoder, documents, position = json.JSONDecoder(), [], 0
    while (position := _skip_space(text, position)) < len(text):
        document, position = decoder.raw_decode(text, position)
        documents.append(document)
    return documents


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position


def test_resource_names_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    first = setup(service_name="monitoring-east")
    second = setup()
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.instance.id=monitoring-7f9c,k8s.ns=ioc")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "not-this-one")
    deployed = setup()
    try:
        attributes = first.resource.attributes
        assert attributes[SERVICE_NAME] == "monitoring-east"
        assert attributes[SERVICE_VERSION] == "1.2.3"
        assert second.resource.attributes[SERVICE_NAME] == "monitoring"
        # One process is one instance, identified by a UUID unless the deployment names it.
        assert (
            str(uuid.UUID(str(attributes[SERVICE_INSTANCE_ID]))) == attributes[SERVICE_INSTANCE_ID]
        )
        assert second.resource.attributes[SERVICE_INSTANCE_ID] == attributes[SERVICE_INSTANCE_ID]
        assert deployed.resource.attributes[SERVICE_INSTANCE_ID] == "monitoring-7f9c"
        assert deployed.resource.attributes["k8s.ns"] == "ioc"
        assert deployed.resource.attributes[SERVICE_NAME] == "monitoring"
        assert not first.installed_globally
    finally:
        for observability in (first, second, deployed):
            observability.shutdown()


def test_explicit_processors_and_readers_receive_data() -> None:
    spans = InMemorySpanExporter()
    reader = InMemoryMetricReader()
    observability = setup_observability(
        TelemetrySettings(),
        service_name="alerts",
        service_version="0.1.0",
        install_globals=False,
        span_processors=[SimpleSpanProcessor(spans)],
        metric_readers=[reader],
    )
    try:
        with observability.tracer("test").start_as_current_span("evaluate rules"):
            observability.meter("test").create_counter("rules_evaluated").add(5)
        [span] = spans.get_finished_spans()
        assert span.name == "evaluate rules"
        assert span.resource.attributes[SERVICE_NAME] == "alerts"
        data = reader.get_metrics_data()
        assert data is not None
        points = [
            point.value
            for resource_metrics in data.resource_metrics
            for scope in resource_metrics.scope_metrics
            for metric in scope.metrics
            if metric.name == "rules_evaluated"
            for point in metric.data.data_points
        ]
        assert points == [5]
    finally:
        observability.shutdown()


def test_console_exporter_writes_the_span(capsys: pytest.CaptureFixture[str]) -> None:
    observability = setup(exporter="console")
    with observability.tracer("test").start_as_current_span("poll modbus") as span:
        span.set_attribute("device", "bay-1-meter")
    observability.shutdown()  # flushes the batch processor
    observability.shutdown()  # and is harmless twice

    documents = json_documents(capsys.readouterr().out)
    [printed] = [d for d in documents if d.get("name") == "poll modbus"]
    assert printed["attributes"] == {"device": "bay-1-meter"}
    assert printed["context"]["trace_id"] == f"0x{span.get_span_context().trace_id:032x}"
    assert printed["resource"]["attributes"][SERVICE_NAME] == "monitoring"


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def test_prometheus_endpoint_serves_a_counter() -> None:
    observability = setup(prometheus_port=0)
    port = observability.prometheus_port
    try:
        assert port is not None
        assert port > 0
        readings = observability.meter("test").create_counter("smartcity_readings")
        readings.add(3, {"field": "water_supply"})
        readings.add(4, {"field": "water_supply"})

        text = scrape(port)
        [sample] = [
            line
            for line in text.splitlines()
            if line.startswith("smartcity_readings_total{") and 'field="water_supply"' in line
        ]
        assert float(sample.rsplit(" ", 1)[1]) == 7.0
        assert "process_cpu_seconds_total" in text  # the usual process metrics come along
    finally:
        observability.shutdown()
    with pytest.raises(urllib.error.URLError, match="refused"):
        scrape(port)


def test_two_prometheus_setups_do_not_mix_their_metrics() -> None:
    first, second = setup(prometheus_port=0), setup(prometheus_port=0)
    try:
        first.meter("test").create_counter("smartcity_only_in_first").add(1)
        assert first.prometheus_port is not None
        assert second.prometheus_port is not None
        assert "smartcity_only_in_first_total" in scrape(first.prometheus_port)
        assert "smartcity_only_in_first" not in scrape(second.prometheus_port)
    finally:
        first.shutdown()
        second.shutdown()


def test_a_taken_prometheus_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ObservabilityError, match=f"127.0.0.1:{port}"):
            setup(prometheus_port=port)


class Collector(
    trace_service_pb2_grpc.TraceServiceServicer, metrics_service_pb2_grpc.MetricsServiceServicer
):
    """Just enough of an OTLP collector to see what arrives."""

    def __init__(self) -> None:
        self.traces: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self.metrics: list[metrics_service_pb2.ExportMetricsServiceRequest] = []

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        if isinstance(request, trace_service_pb2.ExportTraceServiceRequest):
            self.traces.append(request)
            return trace_service_pb2.ExportTraceServiceResponse()
        self.metrics.append(request)
        return metrics_service_pb2.ExportMetricsServiceResponse()


@pytest.fixture
def collector() -> Iterator[tuple[Collector, int]]:
    servicer = Collector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, port
    server.stop(0)


def test_otlp_exporter_sends_to_the_configured_collector(
    collector: tuple[Collector, int],
) -> None:
    received, port = collector
    observability = setup(
        exporter="otlp", otlp_endpoint=f"http://127.0.0.1:{port}", otlp_insecure=True
    )
    with observability.tracer("test").start_as_current_span("store batch"):
        observability.meter("test").create_counter("batches_stored").add(2)
    observability.shutdown()  # exports the last metrics and the batched span

    spans = [
        (span.name, resource_spans.resource)
        for request in received.traces
        for resource_spans in request.resource_spans
        for scope in resource_spans.scope_spans
        for span in scope.spans
    ]
    [(name, resource)] = spans
    assert name == "store batch"
    assert {"key": SERVICE_NAME, "value": "monitoring"} in [
        {"key": a.key, "value": a.value.string_value} for a in resource.attributes
    ]
    metric_names = {
        metric.name
        for request in received.metrics
        for resource_metrics in request.resource_metrics
        for scope in resource_metrics.scope_metrics
        for metric in scope.metrics
    }
    assert "batches_stored" in metric_names


GLOBALS_SCRIPT = textwrap.dedent(
    """
    from opentelemetry import propagate, trace
    from smartcity.runtime.config import TelemetrySettings
    from smartcity.runtime.observability import setup_observability

    first = setup_observability(TelemetrySettings(), service_name="a", service_version="1")
    second = setup_observability(TelemetrySettings(), service_name="b", service_version="1")
    print(first.installed_globally, second.installed_globally)
    print(trace.get_tracer_provider() is first.tracer_provider)
    print(sorted(propagate.get_global_textmap().fields))
    first.shutdown()
    second.shutdown()
    """
)


def test_first_setup_installs_the_globals_and_a_second_leaves_them() -> None:
    done = subprocess.run(
        [sys.executable, "-c", GLOBALS_SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    installed, is_first, fields = done.stdout.splitlines()
    assert installed == "True False"
    assert is_first == "True"
    assert fields == str(["baggage", "traceparent", "tracestate"])
    assert "already installed" in done.stderr
