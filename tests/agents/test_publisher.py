"""Uplink: buffered batches reach JetStream exactly once, in order, across a NATS outage.

Real nats-server (restarted on the same port and data folder), real SQLite buffer.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from support import eventually

from smartcity.agents.buffer import DiskBuffer
from smartcity.agents.profile import parse_profile
from smartcity.agents.publisher import TelemetryPublisher, to_proto
from smartcity.agents.reading import Reading
from smartcity.common.v1 import common_pb2
from smartcity.runtime.bus import TELEMETRY_STREAM, Bus
from smartcity.runtime.config import StreamsSettings
from smartcity.runtime.nats_server import EmbeddedNats
from smartcity.telemetry.v1 import telemetry_pb2

PROFILE = parse_profile(
    {
        "site": "cau-do",
        "field": "water_supply",
        "device": "station-1",
        "protocol": "modbus",
        "endpoint": "tcp://127.0.0.1:502",
        "points": [{"name": "ph", "unit": "pH", "address": 0}],
    }
)


async def stored_batches(bus: Bus) -> list[telemetry_pb2.TelemetryBatch]:
    info = await bus.js.stream_info(TELEMETRY_STREAM)
    count = info.state.messages
    if count == 0:
        return []
    sub = await bus.js.pull_subscribe(
        "city.telemetry.>",
        stream=TELEMETRY_STREAM,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
    )
    batches = []
    while len(batches) < count:
        for msg in await sub.fetch(min(500, count - len(batches)), timeout=5):
            batches.append(telemetry_pb2.TelemetryBatch.FromString(msg.data))
            await msg.ack()
    await sub.unsubscribe()
    return batches


def readings(n: int, start: float = 0.0) -> list[Reading]:
    return [Reading.good("ph", 7.0 + (start + i) / 1000, "pH") for i in range(n)]


def test_reading_conversion_keeps_types_and_quality() -> None:
    flag = to_proto(Reading.good("pump_running", True, ""), 5)
    assert (flag.bool_value, flag.value, flag.sequence) == (True, 1.0, 5)
    counter = to_proto(Reading.good("energy", 2**62 + 1, "kWh"), 6)
    assert counter.int_value == 2**62 + 1
    bad = to_proto(Reading.bad("ph", "pH", "timeout after 2 s"), 7)
    assert not bad.HasField("value")
    assert bad.quality == common_pb2.QUALITY_BAD
    assert bad.quality_reason == "timeout after 2 s"
    nan = to_proto(Reading.good("ph", float("nan"), "pH"), 8)
    assert nan.quality == common_pb2.QUALITY_BAD
    assert not nan.HasField("value")
    assert bad.read_time.seconds > 0


async def test_batches_arrive_once_in_order_with_contiguous_sequences(
    bus: Bus, tmp_path: Path
) -> None:
    await bus.ensure_streams(StreamsSettings())
    buffer = DiskBuffer(tmp_path / "buffer.db")
    publisher = TelemetryPublisher(buffer, agent_id="agent-1", max_batch=40)
    sink = publisher.sink_for(PROFILE)
    for round_ in range(5):
        await sink(readings(100, round_ * 100))  # 3 batches each: 40 + 40 + 20
    for round_ in range(5):
        await sink(readings(20, 500 + round_ * 20))  # small ones: two fit in one message
    uplink = asyncio.create_task(publisher.run(bus))
    try:
        await eventually(lambda: publisher.stats.readings_sent == 600, what="600 sent")
        await eventually(lambda: buffer.stats().batches == 0, what="the buffer emptied")
    finally:
        uplink.cancel()
    assert publisher.stats.readings_sent == 600
    batches = await stored_batches(bus)
    # a backlog of small batches goes out merged, never above max_batch readings
    assert [len(b.readings) for b in batches] == [40, 40, 20] * 4 + [40] * 5
    assert publisher.stats.batches_sent == len(batches)
    sequences = [r.sequence for b in batches for r in b.readings]
    assert sequences == list(range(sequences[0], sequences[0] + 600))
    for stored in batches:
        assert stored.first_sequence == stored.readings[0].sequence
        assert stored.last_sequence == stored.readings[-1].sequence
    first = batches[0]
    assert (first.field, first.site, first.device, first.agent_id) == (
        "water_supply",
        "cau-do",
        "station-1",
        "agent-1",
    )
    assert first.batch_id == f"cau-do/station-1/{buffer.epoch}/{first.first_sequence}"
    assert first.sent_time.seconds > 0
    assert [r.value for b in batches for r in b.readings][:3] == [7.0, 7.001, 7.002]


async def test_nothing_is_lost_or_duplicated_across_a_nats_outage(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    bus = await Bus.connect(nats_server.client_settings(), name="agent")
    await bus.ensure_streams(StreamsSettings())
    buffer = DiskBuffer(tmp_path / "buffer.db")
    publisher = TelemetryPublisher(buffer, agent_id="agent-1", max_batch=50, ack_timeout=1.0)
    sink = publisher.sink_for(PROFILE)
    uplink = asyncio.create_task(publisher.run(bus))
    produced = 0
    try:
        for _ in range(10):
            await sink(readings(50, produced))
            produced += 50
        await eventually(lambda: publisher.stats.readings_sent == produced)

        nats_server.stop()
        await eventually(lambda: not bus.nc.is_connected)
        for _ in range(20):  # produced while the uplink is down: only the disk has them
            await sink(readings(50, produced))
            produced += 50
        # the uplink has noticed the outage and holds everything on disk
        await eventually(lambda: not publisher.stats.connected)
        await eventually(lambda: buffer.stats().batches >= 20, what="the outage on disk")

        nats_server.start()  # same port and data folder: the stream keeps what it had
        await eventually(lambda: bus.nc.is_connected, within=20)
        await eventually(lambda: buffer.stats().batches == 0, within=20)
    finally:
        uplink.cancel()
    batches = await stored_batches(bus)
    sequences = [r.sequence for b in batches for r in b.readings]
    distinct = set(sequences)
    assert len(distinct) == produced == 1500
    assert len(sequences) == len(distinct), "a batch was stored twice"
    assert sequences == sorted(sequences), "replay was out of order"
    await bus.close()


async def test_a_resent_batch_is_deduplicated_by_its_id(bus: Bus, tmp_path: Path) -> None:
    await bus.ensure_streams(StreamsSettings())
    buffer = DiskBuffer(tmp_path / "buffer.db")
    publisher = TelemetryPublisher(buffer, agent_id="agent-1")
    publisher.submit(PROFILE, readings(10))
    (entry,) = buffer.peek()
    # As if the acknowledgement had been lost: the same batch goes out twice.
    await bus.jetstream_publish(entry.subject, entry.payload, msg_id=entry.msg_id)
    assert await publisher.drain(bus, timeout=5)
    info = await bus.js.stream_info(TELEMETRY_STREAM)
    assert info.state.messages == 1


async def test_no_stream_keeps_batches_on_disk(bus: Bus, tmp_path: Path, caplog) -> None:
    buffer = DiskBuffer(tmp_path / "buffer.db")
    publisher = TelemetryPublisher(buffer, agent_id="agent-1", ack_timeout=0.5)
    publisher.submit(PROFILE, readings(10))
    assert not await publisher.drain(bus, timeout=1)
    assert buffer.stats().batches == 1
    assert publisher.stats.last_error
    with pytest.raises(ValueError, match="max_batch"):
        TelemetryPublisher(buffer, agent_id="a", max_batch=0)


async def test_without_a_stream_the_agent_says_so_once_and_sends_when_one_appears(
    nats_server: EmbeddedNats, bus: Bus, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="smartcity.agents.uplink")
    buffer = DiskBuffer(tmp_path / "buffer.db")
    publisher = TelemetryPublisher(buffer, agent_id="agent-1", max_batch=40, ack_timeout=1.0)
    sink = publisher.sink_for(PROFILE)
    await sink(readings(100))  # 3 batches
    uplink = asyncio.create_task(publisher.run(bus))
    try:
        await eventually(lambda: publisher.stats.send_failures >= 3, what="3 failed sends")
        await sink(readings(20, 100))  # still reading during the outage
        failures = publisher.stats.send_failures
        await eventually(lambda: publisher.stats.send_failures > failures, what="one more")

        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1, warnings  # once per outage, not once per retry
        (warning,) = warnings
        assert "no JetStream stream captures city.telemetry.water_supply.cau-do.station-1" in (
            warning
        )
        assert "the readings stay in the disk buffer" in warning
        assert f"`smartcity streams ensure --nats {nats_server.url}`" in warning
        assert "NoStreamResponseError" not in warning
        assert publisher.stats.batches_sent == 0  # nothing acknowledged
        assert sum(e.readings for e in buffer.peek()) == 120  # nothing lost
        with pytest.raises(NotFoundError):  # and the agent created no stream
            await bus.js.stream_info(TELEMETRY_STREAM)

        await bus.ensure_streams(StreamsSettings())  # what the platform does
        await eventually(lambda: buffer.stats().batches == 0, what="the buffer to drain")
    finally:
        uplink.cancel()
    batches = await stored_batches(bus)
    sequences = [r.sequence for b in batches for r in b.readings]
    assert sequences == list(range(sequences[0], sequences[0] + 120))
    assert "JetStream acknowledges again" in caplog.text
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1
