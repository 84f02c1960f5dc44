"""Ingest over a real nats-server into real storage: every reading lands once; bad readings are
kept with their reason; undecodable messages go to the dead-letter subject and the consumer
keeps going; a redelivered batch changes nothing."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from nats.js.api import ConsumerConfig, DeliverPolicy
from support import eventually

from smartcity.agents.buffer import DiskBuffer
from smartcity.agents.profile import parse_profile
from smartcity.agents.publisher import TelemetryPublisher
from smartcity.agents.reading import Reading
from smartcity.fields import load_fields
from smartcity.runtime.bus import DEADLETTER_STREAM, Bus
from smartcity.runtime.config import ConsumerSettings, MonitoringSettings, StreamsSettings
from smartcity.runtime.consumer import DEADLETTER_REASON_HEADER
from smartcity.services.monitoring.ingest import DEADLETTER, TelemetryIngest
from smartcity.services.monitoring.model import Aggregation, Quality, Selector
from smartcity.telemetry.v1 import telemetry_pb2

FIELDS = load_fields()
SETTINGS = MonitoringSettings(
    ingest=ConsumerSettings(durable="monitoring", fetch_timeout_seconds=0.2)
)
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


async def publish(bus: Bus, tmp_path: Path, readings: list[Reading]) -> TelemetryPublisher:
    publisher = TelemetryPublisher(DiskBuffer(tmp_path / "agent.db"), agent_id="a1", max_batch=50)
    publisher.submit(PROFILE, readings)
    assert await publisher.drain(bus, timeout=10)
    return publisher


async def test_readings_published_are_stored_once_with_honest_quality(
    bus: Bus, store, tmp_path: Path
) -> None:
    await bus.ensure_streams(StreamsSettings())
    readings = [Reading.good("ph", 7.0 + i / 100, "pH") for i in range(200)]
    readings += [
        Reading.good("ph", 15.0, "pH"),  # outside the metric's 0..14
        Reading.good("ph", 7.1, "mg/L"),  # not the metric's unit
        Reading.good("colour", 3.0, "TCU"),  # not in the water_supply catalogue
        Reading.bad("ph", "pH", "timeout after 2.0 s"),
    ]
    await publish(bus, tmp_path, readings)
    ingest = TelemetryIngest(bus, store, FIELDS, SETTINGS)
    running = asyncio.create_task(ingest.run())
    try:
        await eventually(lambda: ingest.stats.readings_written >= len(readings), within=20)
    finally:
        running.cancel()
    assert ingest.stats.readings_written == len(readings)
    latest = {
        (v.key.metric): v
        for v in (await store.latest(Selector(site="cau-do", device="station-1"))).items
    }
    assert set(latest) == {"ph", "colour"}
    assert latest["colour"].quality is Quality.BAD
    assert "unknown metric 'colour'" in latest["colour"].reason
    # the newest ph reading is the BAD one from the device, with the device's reason
    assert latest["ph"].quality is Quality.BAD
    assert latest["ph"].reason == "timeout after 2.0 s"


async def test_redelivered_batches_change_nothing(bus: Bus, store, tmp_path: Path) -> None:
    await bus.ensure_streams(StreamsSettings())
    publisher = await publish(bus, tmp_path, [Reading.good("ph", 7.2, "pH")] * 120)
    first = TelemetryIngest(bus, store, FIELDS, SETTINGS)
    running = asyncio.create_task(first.run())
    await eventually(lambda: first.stats.batches_written == 3, within=20)
    running.cancel()
    # A second consumer reads the whole stream again: every batch is already stored.
    replay = SETTINGS.ingest.model_copy(update={"durable": "replay"})
    again = TelemetryIngest(bus, store, FIELDS, SETTINGS.model_copy(update={"ingest": replay}))
    running = asyncio.create_task(again.run())
    try:
        await eventually(lambda: again.stats.batches_skipped == 3, within=20)
    finally:
        running.cancel()
    assert again.stats.batches_written == 0
    stored, _ = await store.aggregate(Selector(metric="ph"), Aggregation.COUNT, 0, 2**62)
    assert stored == 120
    assert publisher.stats.readings_sent == 120


async def test_undecodable_messages_go_to_the_dead_letter_subject(
    bus: Bus, store, tmp_path: Path
) -> None:
    await bus.ensure_streams(StreamsSettings())
    await bus.jetstream_publish("city.telemetry.water_supply.cau-do.station-1", b"\xff\x00junk")
    await publish(bus, tmp_path, [Reading.good("ph", 7.0, "pH")] * 10)
    ingest = TelemetryIngest(bus, store, FIELDS, SETTINGS)
    running = asyncio.create_task(ingest.run())
    try:
        await eventually(lambda: ingest.stats.readings_written == 10, within=20)
    finally:
        running.cancel()
    assert ingest.consumer.stats.deadlettered == 1
    sub = await bus.js.pull_subscribe(
        DEADLETTER,
        stream=DEADLETTER_STREAM,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
    )
    (letter,) = await sub.fetch(1, timeout=5)
    assert letter.data == b"\xff\x00junk"
    assert "not a TelemetryBatch" in letter.headers[DEADLETTER_REASON_HEADER]


def telemetry(field: str, batch_id: str, *readings: telemetry_pb2.Reading) -> bytes:
    return telemetry_pb2.TelemetryBatch(
        field=field,
        site="cau-do",
        device="station-1",
        agent_id="a1",
        batch_id=batch_id,
        readings=readings,
    ).SerializeToString()


def ph(value: float, at: float, sequence: int) -> telemetry_pb2.Reading:
    reading = telemetry_pb2.Reading(
        metric="ph", unit="pH", value=value, quality=1, sequence=sequence
    )
    reading.source_time.FromMicroseconds(int(at * 1_000_000))
    return reading


async def test_a_wrong_clock_never_pins_the_latest_value(bus: Bus, store) -> None:
    await bus.ensure_streams(StreamsSettings())
    ingest = TelemetryIngest(bus, store, FIELDS, SETTINGS)
    running = asyncio.create_task(ingest.run())
    subject = "city.telemetry.water_supply.cau-do.station-1"
    try:
        a_year_ahead = time.time() + 365 * 86400
        await bus.jetstream_publish(
            subject, telemetry("water_supply", "b1", ph(7.1, a_year_ahead, 1))
        )
        await eventually(lambda: ingest.stats.batches_written == 1)
        (first,) = (await store.latest(Selector(metric="ph"))).items
        assert first.quality is Quality.UNCERTAIN
        assert "ahead of the receiving clock; stored at its arrival time" in first.reason
        assert first.time <= time.time() * 1_000_000
        # The device's next reading, dated now, is the latest: the series is not frozen.
        await bus.jetstream_publish(
            subject, telemetry("water_supply", "b2", ph(7.3, time.time(), 2))
        )
        await eventually(lambda: ingest.stats.batches_written == 2)
    finally:
        running.cancel()
    (latest,) = (await store.latest(Selector(metric="ph"))).items
    assert (latest.value, latest.quality) == (7.3, Quality.GOOD)


async def test_batches_of_two_fields_with_one_id_are_both_stored(bus: Bus, store) -> None:
    await bus.ensure_streams(StreamsSettings())
    now = time.time()
    await bus.jetstream_publish(
        "city.telemetry.water_supply.cau-do.station-1",
        telemetry("water_supply", "cau-do/station-1/1", ph(7.1, now, 1)),
    )
    await bus.jetstream_publish(
        "city.telemetry.environment.cau-do.station-1",
        telemetry("environment", "cau-do/station-1/1", ph(6.8, now, 1)),
    )
    ingest = TelemetryIngest(bus, store, FIELDS, SETTINGS)
    running = asyncio.create_task(ingest.run())
    try:
        await eventually(lambda: ingest.consumer.stats.handled == 2)
    finally:
        running.cancel()
    assert (ingest.stats.batches_written, ingest.stats.batches_skipped) == (2, 0)
    latest = {v.key.field: v.value for v in (await store.latest(Selector(metric="ph"))).items}
    assert latest == {"water_supply": 7.1, "environment": 6.8}
    devices = await store.devices(site="cau-do", device="station-1")
    assert sorted(record.field for record in devices.items) == ["environment", "water_supply"]
