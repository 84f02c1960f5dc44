"""One OpenTelemetry trace from an agent's reading to the alert it raises, across processes.

``smartcity agent``, ``smartcity serve monitoring`` and ``smartcity serve alerts`` run as the
processes they are in a city, each exporting its spans to a JSON lines file of its own
(``telemetry.exporter: file``), on an embedded nats-server, the agent reading the simulated
air-quality station. A rule fires on the first reading. The files must then hold one trace
with the agent's publish span, monitoring's and alerts' spans for the message (children of
the publish), and the alert event's publish (a child of alerts' span); the AlertEvent in the
ALERTS stream carries that publish's context in its headers.

Also the file exporter itself: one line per span, in the SDK's JSON form.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from opentelemetry.trace import SpanKind
from support import eventually

from smartcity.agents.sim.air_quality import AirQualityStation
from smartcity.alerts.v1 import alerts_pb2 as pb
from smartcity.alerts.v1 import alerts_pb2_grpc
from smartcity.common.v1 import common_pb2
from smartcity.runtime.bus import ALERTS_STREAM, Bus
from smartcity.runtime.config import ConfigError, TelemetrySettings, load_settings
from smartcity.runtime.grpc_client import channel
from smartcity.runtime.nats_server import EmbeddedNats
from smartcity.runtime.observability import JsonLinesSpanExporter, setup_observability

SMARTCITY = [sys.executable, "-m", "smartcity.cli.main"]
SITE = "son-tra-air"
Span = dict[str, Any]


# -- the file exporter -----------------------------------------------------------------------


def spans_in(path: Path) -> list[Span]:
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_the_file_exporter_writes_one_json_object_per_span(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "spans.jsonl"
    settings = TelemetrySettings(exporter="file", file_path=path)
    telemetry = setup_observability(
        settings, service_name="smartcity-test", service_version="0", install_globals=False
    )
    tracer = telemetry.tracer("test")
    with tracer.start_as_current_span("outer") as outer, tracer.start_as_current_span("inner"):
        pass
    telemetry.shutdown()
    inner, written_outer = spans_in(path)
    assert [inner["name"], written_outer["name"]] == ["inner", "outer"]
    assert len(path.read_text(encoding="utf-8").splitlines()) == 2
    assert inner["context"]["trace_id"] == written_outer["context"]["trace_id"]
    assert inner["parent_id"] == written_outer["context"]["span_id"]
    assert written_outer["context"]["span_id"] == f"0x{outer.get_span_context().span_id:016x}"
    assert inner["resource"]["attributes"]["service.name"] == "smartcity-test"


def test_exporter_file_needs_a_path_and_a_writable_place(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="exporter 'file' needs file_path"):
        load_settings(telemetry={"exporter": "file"})
    blocker = tmp_path / "a-file"
    blocker.write_text("", encoding="utf-8")
    with pytest.raises(Exception, match="cannot write spans to"):
        JsonLinesSpanExporter(blocker / "spans.jsonl")


# -- the processes ---------------------------------------------------------------------------


class Process:
    """A ``smartcity`` command in its own process, its output collected by a thread."""

    def __init__(self, name: str, args: list[str], folder: Path) -> None:
        self.name = name
        self.spans = folder / f"{name}.spans.jsonl"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTCITY_")}
        env.update(
            NO_COLOR="1",
            COLUMNS="200",
            SMARTCITY_DATA_DIR=str(folder / name),
            SMARTCITY_TELEMETRY__EXPORTER="file",
            SMARTCITY_TELEMETRY__FILE_PATH=str(self.spans),
            SMARTCITY_ALERTS__PLUGIN_RULES="false",
            OTEL_BSP_SCHEDULE_DELAY="100",  # export within a tenth of a second
        )
        self.popen = subprocess.Popen(
            [*SMARTCITY, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    async def wait_for(self, pattern: str, within: float = 60) -> re.Match[str]:
        def found() -> bool:
            if self.popen.poll() is not None and not re.search(pattern, self.output):
                raise AssertionError(f"{self.name} exited: {self.output}")
            return re.search(pattern, self.output) is not None

        await eventually(found, within=within, interval=0.1, what=f"{self.name}: {pattern}")
        match = re.search(pattern, self.output)
        assert match is not None
        return match

    def stop(self) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
        try:
            return self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            raise AssertionError(f"{self.name} did not stop: {self.output}") from None


@contextlib.contextmanager
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    try:
        yield started
    finally:
        for process in started:
            if process.popen.poll() is None:
                process.popen.kill()
                process.popen.wait()


async def create_rule(address: str) -> None:
    rule = pb.Rule(
        id="pm2_5_present",
        display_name="Any PM2.5 reading",
        field="environment",
        selector=common_pb2.SeriesSelector(metric="pm2_5"),
        severity=pb.SEVERITY_WARNING,
        threshold=pb.ThresholdCondition(comparison=pb.COMPARISON_GREATER, threshold=0.0),
        enabled=True,
    )
    async with channel(address) as connection:
        stub = alerts_pb2_grpc.AlertsServiceStub(connection)
        await stub.CreateRule(pb.CreateRuleRequest(rule=rule, request_id="trace-rule"))


def by_trace(spans: list[Span], trace_id: str) -> list[Span]:
    return [span for span in spans if span["context"]["trace_id"] == trace_id]


def one(spans: list[Span], name: str, kind: SpanKind) -> Span:
    found = [span for span in spans if span["name"] == name and span["kind"] == str(kind)]
    assert len(found) == 1, (name, [(s["name"], s["kind"]) for s in spans])
    return found[0]


def alert_publish(alerts: Process) -> Span | None:
    return next(
        (
            span
            for span in spans_in(alerts.spans)
            if span["name"] == "publish city.alerts"
            and span["attributes"]["messaging.destination.name"].startswith(
                "city.alerts.environment."
            )
        ),
        None,
    )


@pytest.mark.slow
async def test_one_trace_from_the_agent_to_the_alert_event(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    url = nats_server.url
    bus = await Bus.connect(nats_server.client_settings(), name="trace-test")
    with processes() as started:
        alerts = Process("alerts", ["serve", "alerts", "--port", "0", "--nats", url], tmp_path)
        monitoring = Process(
            "monitoring", ["serve", "monitoring", "--port", "0", "--nats", url], tmp_path
        )
        started += [alerts, monitoring]
        address = (await alerts.wait_for(r"alerts ready: gRPC (\S+)")).group(1)
        await monitoring.wait_for(r"monitoring ready")
        await create_rule(address)

        async with AirQualityStation(port=0, period=0.2, seed=1, site=SITE) as station:
            profile = tmp_path / "air-quality-station.yaml"
            profile.write_text(yaml.safe_dump(station.document("500ms")), encoding="utf-8")
            agent = Process(
                "agent",
                ["agent", "--profile", str(profile), "--nats", url, "--id", "edge-t"],
                tmp_path,
            )
            started.append(agent)

            async def alert_published() -> bool:
                info = await bus.js.stream_info(ALERTS_STREAM)
                return info.state.messages > 0

            await eventually(alert_published, within=60, interval=0.1, what="an alert event")

            def traced_through() -> bool:
                publish = alert_publish(alerts)
                if publish is None:
                    return False
                trace_id = publish["context"]["trace_id"]
                return all(by_trace(spans_in(p.spans), trace_id) for p in (agent, monitoring))

            await eventually(traced_through, within=30, interval=0.1, what="the spans exported")
            stopped = {p.name: p.stop() for p in (agent, monitoring, alerts)}
        assert stopped == {"agent": 0, "monitoring": 0, "alerts": 0}, [p.output for p in started]

    published = alert_publish(alerts)
    assert published is not None
    assert published["kind"] == str(SpanKind.PRODUCER)
    trace_id = published["context"]["trace_id"]
    agent_spans = by_trace(spans_in(agent.spans), trace_id)
    monitoring_spans = by_trace(spans_in(monitoring.spans), trace_id)
    alerts_spans = by_trace(spans_in(alerts.spans), trace_id)

    # the agent's publish of the batch that held the first reading starts the trace
    created = one(agent_spans, "create city.telemetry.environment", SpanKind.PRODUCER)
    assert created["parent_id"] is None
    assert created["attributes"]["messaging.destination.name"] == (
        f"city.telemetry.environment.{SITE}.air-quality-station"
    )
    assert created["resource"]["attributes"]["service.name"] == "smartcity-agent"

    # monitoring's ingest of that message: a child of the publish, stored and acknowledged
    ingest = one(monitoring_spans, "process city.telemetry.>", SpanKind.CONSUMER)
    assert ingest["parent_id"] == created["context"]["span_id"]
    assert ingest["attributes"]["messaging.consumer.group.name"] == "monitoring"
    assert ingest["attributes"]["smartcity.consumer.verdict"] == "handled"
    assert ingest["resource"]["attributes"]["service.name"] == "smartcity-monitoring"
    commits = [
        span
        for span in spans_in(monitoring.spans)
        if span["name"] == "commit monitoring"
        and ingest["context"]["span_id"] in {link["context"]["span_id"] for link in span["links"]}
    ]
    assert len(commits) == 1  # the storage transaction that made it durable links to it

    # alerts' evaluation of the same message, and the alert event it raised
    evaluation = one(alerts_spans, "process city.telemetry.>", SpanKind.CONSUMER)
    assert evaluation["parent_id"] == created["context"]["span_id"]
    assert evaluation["attributes"]["messaging.consumer.group.name"] == "alerts"
    assert evaluation["resource"]["attributes"]["service.name"] == "smartcity-alerts"
    assert published["parent_id"] == evaluation["context"]["span_id"]
    assert published["attributes"]["messaging.nats.stream"] == ALERTS_STREAM

    # the AlertEvent on the wire carries the context of its publish
    message = await bus.js.get_msg(ALERTS_STREAM, 1)
    event = pb.AlertEvent.FromString(message.data)
    assert event.alert.rule_id == "pm2_5_present"
    traceparent = (message.headers or {}).get("traceparent", "")
    _, header_trace, header_span, _ = traceparent.split("-")
    assert f"0x{header_trace}" == trace_id
    assert f"0x{header_span}" == published["context"]["span_id"]
    await bus.close()
