"""Ingest over a real nats-server into real storage: every reading lands once; bad readings are
kept with their reason; undecodable messages go to the dead-letter subject and the consumer
keeps going; a redelivered batch changes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from monitoring_support import BACKENDS, backend_url, opened_store
from nats.js.api import ConsumerConfig, DeliverPolicy
from support import eventually

from smartcity.agents.buffer import DiskBuffer
from smartcity.agents.profile import parse_profile
from smartcity.agents.publisher import TelemetryPublisher
from smartcity.agents.reading import Reading
from smartcity.fields import load_fields
from smartcity.runtime.bus import DEADLETTER_STREAM, Bus
from smartcity.runtime.config import MonitoringSettings, StreamsSettings
from smartcity.services.monitoring.ingest import DEADLETTER, REASON_HEADER, Ingest
from smartcity.services.monitoring.model import Aggregation, Quality, Selector
from smartcity.services.monitoring.store import TimeSeriesStore

FIELDS = load_fields()
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


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return backend_url(request, tmp_path)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[TimeSeriesStore]:
    async with opened_store(store_url) as opened:
        yield opened


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
    ingest = Ingest(bus, store, FIELDS, MonitoringSettings(fetch_timeout_seconds=0.2))
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
    settings = MonitoringSettings(fetch_timeout_seconds=0.2)
    first = Ingest(bus, store, FIELDS, settings)
    running = asyncio.create_task(first.run())
    await eventually(lambda: first.stats.batches_written == 3, within=20)
    running.cancel()
    # A second consumer reads the whole stream again: every batch is already stored.
    again = Ingest(bus, store, FIELDS, settings.model_copy(update={"consumer": "replay"}))
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
    ingest = Ingest(bus, store, FIELDS, MonitoringSettings(fetch_timeout_seconds=0.2))
    running = asyncio.create_task(ingest.run())
    try:
        await eventually(lambda: ingest.stats.readings_written == 10, within=20)
    finally:
        running.cancel()
    assert ingest.stats.deadlettered == 1
    sub = await bus.js.pull_subscribe(
        DEADLETTER,
        stream=DEADLETTER_STREAM,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
    )
    (letter,) = await sub.fetch(1, timeout=5)
    assert letter.data == b"\xff\x00junk"
    assert "not a TelemetryBatch" in letter.headers[REASON_HEADER]
