"""The alerts process as ``smartcity serve alerts`` runs it, on a real nats-server: readings
published to the TELEMETRY stream come out as the exact sequence of ``AlertEvent`` s in the
ALERTS stream; a replayed batch and a restart add nothing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from alerts_support import opened_store
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from support import eventually

from smartcity.alerts.v1 import alerts_pb2 as pb
from smartcity.alerts.v1 import alerts_pb2_grpc
from smartcity.common.v1 import common_pb2
from smartcity.runtime.bus import ALERTS_STREAM, TELEMETRY_STREAM, Bus
from smartcity.runtime.config import (
    AlertsSettings,
    ConsumerSettings,
    GrpcSettings,
    Settings,
    StreamsSettings,
)
from smartcity.runtime.grpc_client import channel
from smartcity.runtime.nats_server import EmbeddedNats
from smartcity.runtime.service import Running, run_service
from smartcity.runtime.subjects import telemetry_subject
from smartcity.services.alerts.app import ALERTS
from smartcity.telemetry.v1 import telemetry_pb2

pytestmark = pytest.mark.slow

SITE, DEVICE = "cau-do", "tb-1"


def _settings(nats_server: EmbeddedNats, store_url: str, folder: Path) -> Settings:
    return Settings(
        nats=nats_server.client_settings(),
        grpc=GrpcSettings(port=0),
        alerts=AlertsSettings(
            store_url=store_url,
            tick_seconds=0.05,
            group_wait_seconds=0,
            group_interval_seconds=0.2,
            plugin_rules=False,
            evaluation=ConsumerSettings(durable="alerts", fetch_timeout_seconds=0.1),
        ),
        data_dir=folder,
    )


@contextlib.asynccontextmanager
async def running_alerts(settings: Settings) -> AsyncIterator[Running]:
    ready: asyncio.Future[Running] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    task = asyncio.create_task(run_service(ALERTS, settings, stop, on_ready=ready.set_result))
    try:
        await asyncio.wait([ready, task], timeout=30, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
        yield ready.result()
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def _batch(sequence: int, value: float, at: float) -> telemetry_pb2.TelemetryBatch:
    stamp = Timestamp()
    stamp.FromNanoseconds(int(at * 1e9))
    return telemetry_pb2.TelemetryBatch(
        field="water_supply",
        site=SITE,
        device=DEVICE,
        agent_id="edge-1",
        batch_id=f"{SITE}/{DEVICE}/{sequence}",
        first_sequence=sequence,
        last_sequence=sequence,
        readings=[
            telemetry_pb2.Reading(
                metric="turbidity",
                value=value,
                unit="NTU",
                quality=common_pb2.QUALITY_GOOD,
                source_time=stamp,
                sequence=sequence,
            )
        ],
    )


async def _publish(bus: Bus, batch: telemetry_pb2.TelemetryBatch, msg_id: str = "") -> None:
    await bus.jetstream_publish(
        telemetry_subject(batch.field, batch.site, batch.device),
        batch.SerializeToString(),
        msg_id=msg_id or batch.batch_id,
    )


async def _alert_events(bus: Bus) -> list[tuple[str, pb.AlertEvent]]:
    """Every message of the ALERTS stream, in order: (subject, event)."""
    info = await bus.js.stream_info(ALERTS_STREAM)
    found = []
    for sequence in range(info.state.first_seq, info.state.last_seq + 1):
        if info.state.messages == 0:
            break
        message = await bus.js.get_msg(ALERTS_STREAM, sequence)
        found.append((message.subject, pb.AlertEvent.FromString(message.data)))
    return found


async def _drained(bus: Bus) -> bool:
    info = await bus.js.consumer_info(TELEMETRY_STREAM, "alerts")
    return (info.num_pending or 0) == 0 and (info.num_ack_pending or 0) == 0


async def _create_rule(address: str) -> pb.Rule:
    rule = pb.Rule(
        id="turbidity_high",
        display_name="Turbidity above 2 NTU",
        field="water_supply",
        selector=common_pb2.SeriesSelector(metric="turbidity"),
        severity=pb.SEVERITY_WARNING,
        threshold=pb.ThresholdCondition(
            comparison=pb.COMPARISON_GREATER, threshold=2.0, hysteresis=0.5
        ),
        enabled=True,
    )
    async with channel(address) as connection:
        stub = alerts_pb2_grpc.AlertsServiceStub(connection)
        created = await stub.CreateRule(pb.CreateRuleRequest(rule=rule, request_id="r-1"))
        again = await stub.CreateRule(pb.CreateRuleRequest(rule=rule, request_id="r-1"))
        assert again.rule == created.rule  # the idempotency key returns the first result
        return created.rule


async def test_readings_become_the_exact_alert_events(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    bus = await Bus.connect(nats_server.client_settings(), name="agent")
    await bus.ensure_streams(StreamsSettings())
    try:
        async with running_alerts(_settings(nats_server, url, tmp_path)) as running:
            await _create_rule(running.grpc_address)
            now = time.time()
            values = [1.0, 2.5, 1.8, 2.2, 1.4, 3.0]
            for sequence, value in enumerate(values, start=1):
                await _publish(bus, _batch(sequence, value, now + sequence))
            await eventually(lambda: _count(bus, 3), what="three alert events", within=20)
            # A replay: the same batch again, under a new message id so the stream keeps it.
            await _publish(bus, _batch(2, 2.5, now + 2), msg_id="replayed")
            await _publish(bus, _batch(5, 1.4, now + 5), msg_id="replayed-2")
            await eventually(lambda: _drained(bus), what="the replay consumed")
            async with channel(running.grpc_address) as connection:
                stub = alerts_pb2_grpc.AlertsServiceStub(connection)
                listed = await stub.ListAlerts(pb.ListAlertsRequest())
        events = await _alert_events(bus)
        assert [(subject, e.type) for subject, e in events] == [
            ("city.alerts.water_supply.warning", pb.AlertEvent.TYPE_FIRING),
            ("city.alerts.water_supply.warning", pb.AlertEvent.TYPE_RESOLVED),
            ("city.alerts.water_supply.warning", pb.AlertEvent.TYPE_FIRING),
        ]
        assert [e.alert.value for _, e in events] == [2.5, 1.4, 3.0]
        assert [e.revision for _, e in events] == [1, 2, 3]
        assert len({e.alert.fingerprint for _, e in events}) == 1
        assert [a.state for a in listed.alerts] == [pb.ALERT_STATE_FIRING]
        assert listed.revision == 3
    finally:
        await bus.close()


async def _count(bus: Bus, wanted: int) -> bool:
    info = await bus.js.stream_info(ALERTS_STREAM)
    return info.state.messages >= wanted


async def test_a_restart_keeps_state_and_sends_nothing_twice(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    settings = _settings(nats_server, url, tmp_path)
    bus = await Bus.connect(nats_server.client_settings(), name="agent")
    await bus.ensure_streams(StreamsSettings())
    now = time.time()
    try:
        async with running_alerts(settings) as running:
            await _create_rule(running.grpc_address)
            await _publish(bus, _batch(1, 3.0, now))
            await eventually(lambda: _count(bus, 1), what="the firing event")
            await eventually(lambda: _notifications(url, 1), what="the notification")
        async with running_alerts(settings):
            # The batch again (a replay after the restart) and a reading that keeps it firing.
            await _publish(bus, _batch(1, 3.0, now), msg_id="after-restart")
            await _publish(bus, _batch(2, 3.5, now + 1))
            await eventually(lambda: _drained(bus), what="both consumed")
            await _publish(bus, _batch(3, 1.0, now + 2))
            await eventually(lambda: _count(bus, 2), what="the resolved event")
            await eventually(lambda: _notifications(url, 2), what="the resolved notification")
        events = await _alert_events(bus)
        assert [e.type for _, e in events] == [
            pb.AlertEvent.TYPE_FIRING,
            pb.AlertEvent.TYPE_RESOLVED,
        ]
        async with opened_store(url) as store:
            sent = [json.loads(body)["status"] for _, body, _ in await store.notifications()]
        assert sent == ["firing", "resolved"]
    finally:
        await bus.close()


async def _notifications(url: str, wanted: int) -> bool:
    async with opened_store(url) as store:
        return len(await store.notifications()) >= wanted


async def test_a_bad_rule_is_refused_naming_the_field(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    async with (
        running_alerts(_settings(nats_server, url, tmp_path)) as running,
        channel(running.grpc_address) as connection,
    ):
        stub = alerts_pb2_grpc.AlertsServiceStub(connection)
        bad = pb.Rule(
            id="inverted",
            display_name="x",
            field="water_supply",
            selector=common_pb2.SeriesSelector(metric="no_such_metric"),
            severity=pb.SEVERITY_WARNING,
            threshold=pb.ThresholdCondition(
                comparison=pb.COMPARISON_GREATER, threshold=1, hysteresis=-1
            ),
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.CreateRule(pb.CreateRuleRequest(rule=bad))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        details = refused.value.details() or ""
        assert "rule.selector.metric" in details
        assert "rule.threshold.hysteresis" in details
        listed = await stub.ListRules(pb.ListRulesRequest(include_disabled=True))
        assert list(listed.rules) == []


async def test_watch_from_a_revision_then_live_and_heartbeats(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    bus = await Bus.connect(nats_server.client_settings(), name="agent")
    await bus.ensure_streams(StreamsSettings())
    now = time.time()
    try:
        async with (
            running_alerts(_settings(nats_server, url, tmp_path)) as running,
            channel(running.grpc_address) as connection,
        ):
            stub = alerts_pb2_grpc.AlertsServiceStub(connection)
            await _create_rule(running.grpc_address)
            offline = pb.Rule(
                id="station_offline",
                display_name="Station offline",
                field="water_supply",
                severity=pb.SEVERITY_CRITICAL,
                no_data=pb.NoDataCondition(timeout=Duration(seconds=1)),
                enabled=True,
            )
            await stub.CreateRule(pb.CreateRuleRequest(rule=offline))
            await _publish(bus, _batch(1, 3.0, now))
            await _publish(bus, _batch(2, 1.0, now + 1))
            await eventually(lambda: _count(bus, 2), what="firing and resolved")
            listed = await stub.ListAlerts(pb.ListAlertsRequest(states=[pb.ALERT_STATE_RESOLVED]))
            assert listed.revision == 2
            watch = stub.WatchAlerts(pb.WatchAlertsRequest(since_revision=1))
            first = await asyncio.wait_for(watch.read(), 10)
            assert (first.event.revision, first.event.type) == (2, pb.AlertEvent.TYPE_RESOLVED)
            # A heartbeat that is not one is ignored; a device only an agent knows of goes
            # offline after the rule's timeout, live on the watch.
            await bus.publish("city.agents.cau-do.edge-1", b"\xff not a heartbeat")
            beat = telemetry_pb2.AgentHeartbeat(site="cau-do", agent_id="edge-1")
            beat.devices.add(field="water_supply", device="tb-silent", connected=False)
            await bus.publish("city.agents.cau-do.edge-1", beat.SerializeToString())
            live = await asyncio.wait_for(_firing_of(watch, "tb-silent"), 20)
            assert live.event.alert.rule_id == "station_offline"
            assert live.event.alert.severity == pb.SEVERITY_CRITICAL
            watch.cancel()
    finally:
        await bus.close()


async def _firing_of(watch: Any, device: str) -> pb.WatchAlertsResponse:
    """The next FIRING event of ``device`` on the watch (tb-1 goes quiet too meanwhile)."""
    while True:
        item = await watch.read()
        alert = item.event.alert
        if item.event.type == pb.AlertEvent.TYPE_FIRING and alert.labels["device"] == device:
            return item  # type: ignore[no-any-return]
