"""Live streams across replicas, over a real nats-server: a stream on one replica sees what
another replica stored, and nothing is sent between replicas while nobody watches."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from monitoring_support import city_fields, sqlite_store
from nats.aio.msg import Msg
from support import eventually

from smartcity.runtime.bus import Bus
from smartcity.runtime.config import ConsumerSettings, MonitoringSettings, StreamsSettings
from smartcity.runtime.nats_server import EmbeddedNats
from smartcity.runtime.subjects import MONITORING_WATCH
from smartcity.services.monitoring.fanout import LiveFanout
from smartcity.services.monitoring.ingest import TelemetryIngest
from smartcity.services.monitoring.live import LiveHub
from smartcity.services.monitoring.model import Quality, Selector
from smartcity.telemetry.v1 import telemetry_pb2

SUBJECT = "city.telemetry.water_supply.cau-do.station-1"


@dataclass
class Replica:
    hub: LiveHub
    fanout: LiveFanout
    ingest: TelemetryIngest | None


@contextlib.asynccontextmanager
async def replica(nats: EmbeddedNats, folder: Path | None) -> AsyncIterator[Replica]:
    """A monitoring replica's live side; with ``folder``, also its ingest into SQLite."""
    async with contextlib.AsyncExitStack() as stack:
        bus = await Bus.connect(nats.client_settings(), name="replica")
        stack.push_async_callback(bus.close)
        hub = LiveHub()
        fanout = LiveFanout(bus, hub)
        tasks = [asyncio.create_task(fanout.run())]
        ingest = None
        if folder is not None:
            store = await stack.enter_async_context(sqlite_store(folder))
            settings = MonitoringSettings(
                ingest=ConsumerSettings(durable="monitoring", fetch_timeout_seconds=0.2)
            )
            ingest = TelemetryIngest(bus, store, city_fields(), settings, live=hub, fanout=fanout)
            tasks.append(asyncio.create_task(ingest.run()))
        try:
            yield Replica(hub, fanout, ingest)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def publish(bus: Bus, sequence: int, value: float) -> None:
    reading = telemetry_pb2.Reading(
        metric="ph", unit="pH", value=value, quality=1, sequence=sequence
    )
    reading.source_time.FromMicroseconds(int(time.time() * 1_000_000))
    batch = telemetry_pb2.TelemetryBatch(
        field="water_supply",
        site="cau-do",
        device="station-1",
        batch_id=f"cau-do/station-1/{sequence}",
        readings=[reading],
    )
    await bus.jetstream_publish(SUBJECT, batch.SerializeToString())


async def test_a_stream_sees_what_another_replica_stored_and_idles_otherwise(
    nats_server: EmbeddedNats, bus: Bus, tmp_path: Path
) -> None:
    await bus.ensure_streams(StreamsSettings())
    async with replica(nats_server, tmp_path) as storing, replica(nats_server, None) as serving:
        assert storing.ingest is not None
        await publish(bus, 1, 7.0)
        await eventually(lambda: storing.ingest.stats.batches_written == 1)
        assert storing.fanout.published == 0, "nobody watches: nothing is sent"

        watching = serving.hub.subscribe(Selector(field="water_supply", metric="ph"))
        await eventually(lambda: storing.fanout.wanted_any, what="the interest to arrive")
        await publish(bus, 2, 7.4)
        chunk = await asyncio.wait_for(watching.next_chunk(), 10)
        ((key, reading),) = chunk
        assert (key.device, reading.value, reading.quality, reading.sequence) == (
            "station-1",
            7.4,
            Quality.GOOD,
            2,
        )
        assert storing.fanout.published == 1
        assert serving.fanout.received == 1

        # A malformed announcement is ignored; the replicas go on.
        await bus.publish(MONITORING_WATCH, b"{not json")
        await bus.publish(MONITORING_WATCH, b'{"replica": "x", "patterns": [["a.b", null, null]]}')

        watching.close()
        await eventually(lambda: not storing.fanout.wanted_any, what="the interest to end")
        await publish(bus, 3, 7.6)
        await eventually(lambda: storing.ingest.stats.batches_written == 3)
        assert storing.fanout.published == 1, "the last stream ended: nothing more is sent"


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=400) | st.text(max_size=200).map(str.encode))
async def test_arbitrary_bytes_from_other_replicas_are_ignored_not_raised(data: bytes) -> None:
    hub = LiveHub()
    watching = hub.subscribe(Selector())
    fanout = LiveFanout(None, hub)  # type: ignore[arg-type]  # neither path uses the bus
    await fanout._on_watch(Msg(None, subject="city.monitoring.watch", data=data))  # type: ignore[arg-type]
    await fanout._on_live(Msg(None, subject="city.monitoring.live.a.b.c", data=data))  # type: ignore[arg-type]
    # Either it was a batch of valid names, handed to the streams, or it was dropped.
    assert (fanout.received, watching.pending > 0) in ((0, False), (1, False), (1, True))
    assert all(
        (field is None or field) and (site is None or site) and (device is None or device)
        for field, site, device in fanout._wanted
    )
