"""Scale-out: two service replicas share one durable consumer and one PostgreSQL; every
batch is stored by one of them, once, and both give the same answers."""

from __future__ import annotations

import asyncio
from pathlib import Path

from monitoring_support import opened_store
from support import eventually

from smartcity.agents.buffer import DiskBuffer
from smartcity.agents.profile import parse_profile
from smartcity.agents.publisher import TelemetryPublisher
from smartcity.agents.reading import Reading
from smartcity.fields import load_fields
from smartcity.runtime.bus import Bus
from smartcity.runtime.config import ConsumerSettings, MonitoringSettings, StreamsSettings
from smartcity.runtime.nats_server import EmbeddedNats
from smartcity.services.monitoring.ingest import TelemetryIngest
from smartcity.services.monitoring.model import Aggregation, Selector

BATCHES = 40


async def test_two_replicas_share_the_consumer_and_the_answers(
    nats_server: EmbeddedNats, postgres_url: str, tmp_path: Path
) -> None:
    publisher_bus = await Bus.connect(nats_server.client_settings(), name="agent")
    await publisher_bus.ensure_streams(StreamsSettings())
    profile = parse_profile(
        {
            "site": "cau-do",
            "field": "water_supply",
            "device": "station-1",
            "protocol": "modbus",
            "endpoint": "tcp://127.0.0.1:502",
            "points": [{"name": "ph", "unit": "pH", "address": 0}],
        }
    )
    publisher = TelemetryPublisher(DiskBuffer(tmp_path / "agent.db"), agent_id="a", max_batch=25)
    publisher.submit(profile, [Reading.good("ph", 7.0, "pH") for _ in range(BATCHES * 25)])
    assert await publisher.drain(publisher_bus, timeout=20)

    fields = load_fields()
    settings = MonitoringSettings(
        ingest=ConsumerSettings(durable="monitoring", fetch_batch=2, fetch_timeout_seconds=0.2)
    )
    async with opened_store(postgres_url) as first, opened_store(postgres_url) as second:
        buses = [
            await Bus.connect(nats_server.client_settings(), name=f"replica-{n}") for n in range(2)
        ]
        replicas = [
            TelemetryIngest(buses[0], first, fields, settings),
            TelemetryIngest(buses[1], second, fields, settings),
        ]
        tasks = [asyncio.create_task(replica.run()) for replica in replicas]
        try:
            await eventually(
                lambda: sum(r.stats.batches_written for r in replicas) >= BATCHES, within=30
            )
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        assert sum(r.stats.batches_written for r in replicas) == BATCHES
        assert all(r.stats.batches_written > 0 for r in replicas), "one replica did it all"
        for store in (first, second):
            count, _ = await store.aggregate(Selector(metric="ph"), Aggregation.COUNT, 0, 2**62)
            assert count == BATCHES * 25
        answers = [await store.latest(Selector(site="cau-do")) for store in (first, second)]
        assert answers[0].items == answers[1].items
        for bus in buses:
            await bus.close()
    await publisher_bus.close()
