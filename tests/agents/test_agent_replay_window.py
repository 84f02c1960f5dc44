"""A batch replayed after the TELEMETRY stream's duplicate window is stored once all the same.

JetStream recognises a replayed ``Nats-Msg-Id`` only within the stream's duplicate window
(two minutes by default). A batch whose acknowledgement was lost (the server stored it, the
answer never came back), replayed later than that (after a long outage, say), is stored in
the stream a second time; monitoring's batch-id check is what keeps it from being stored
twice. Here the stream's window is one second, the server and the monitoring ingest are real,
and the store is counted by distinct sequence.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from support import eventually

from smartcity.agents.buffer import DiskBuffer
from smartcity.agents.profile import parse_profile
from smartcity.agents.publisher import TelemetryPublisher
from smartcity.agents.reading import Reading
from smartcity.fields import load_fields
from smartcity.runtime.bus import TELEMETRY_STREAM, Bus
from smartcity.runtime.config import (
    ConsumerSettings,
    MonitoringSettings,
    StreamLimits,
    StreamsSettings,
)
from smartcity.runtime.nats_server import EmbeddedNats
from smartcity.services.monitoring.ingest import TelemetryIngest
from smartcity.services.monitoring.store import open_store
from smartcity.telemetry.v1 import telemetry_pb2

WINDOW = 1.0
"""The stream's duplicate window in these tests, in seconds."""
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


class _AckLost:
    """JetStream as the agent sees it when acknowledgements are lost: every publish reaches
    the server, and no answer ever comes back."""

    def __init__(self, js: Any) -> None:
        self._js = js

    async def publish_async(self, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        await self._js.publish_async(*args, **kwargs)
        return asyncio.get_running_loop().create_future()  # the answer that never comes

    def __getattr__(self, name: str) -> Any:
        return getattr(self._js, name)


class _Lossy:
    def __init__(self, bus: Bus) -> None:
        self.nc = bus.nc
        self.js = _AckLost(bus.js)


async def in_stream(bus: Bus) -> list[tuple[str, float]]:
    """Each message of the stream: its batch id and when the server stored it."""
    info = await bus.js.stream_info(TELEMETRY_STREAM)
    found = []
    for sequence in range(info.state.first_seq, info.state.last_seq + 1):
        message = await bus.js.get_msg(TELEMETRY_STREAM, sequence)
        assert message.data is not None
        assert message.time is not None
        batch = telemetry_pb2.TelemetryBatch.FromString(message.data)
        found.append((batch.batch_id, message.time.timestamp()))
    return found


def points(db: Path) -> tuple[int, int, int, int]:
    """Readings of the station in monitoring's store: rows, distinct sequences, lowest and
    highest sequence."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT p.sequence), min(p.sequence), max(p.sequence) "
            "FROM points p JOIN series s ON s.id = p.series_id WHERE s.device = 'station-1'"
        ).fetchone()
    return row


@pytest.mark.parametrize("outage", [False, True], ids=["lost-ack", "long-outage"])
async def test_a_batch_replayed_after_the_window_is_stored_once(
    nats_server: EmbeddedNats, tmp_path: Path, outage: bool
) -> None:
    bus = await Bus.connect(nats_server.client_settings(), name="agent")
    streams = StreamsSettings(telemetry=StreamLimits(duplicate_window_seconds=WINDOW))
    await bus.ensure_streams(streams)
    info = await bus.js.stream_info(TELEMETRY_STREAM)
    assert info.config.duplicate_window == WINDOW

    publisher = TelemetryPublisher(
        DiskBuffer(tmp_path / "agent.db"), agent_id="a1", max_batch=40, ack_timeout=0.3
    )
    readings = [Reading.good("ph", 7.0 + i / 1000, "pH") for i in range(100)]
    publisher.submit(PROFILE, readings)  # three batches: 40, 40 and 20 readings

    # 1. The first batch sent, stored by JetStream, and its acknowledgement lost: it stays
    # in the buffer (and the device's next batch waits behind it).
    assert await publisher.uplink.round(_Lossy(bus), ack_timeout=0.3) is False
    await eventually(lambda: _messages(bus, 1), what="the batch stored by the stream")
    assert publisher.buffer.stats().batches == 3
    ((ident, stored_at),) = await in_stream(bus)

    # 2. Longer than the duplicate window passes (through an outage of the server, or not).
    if outage:
        await bus.close()
        nats_server.stop()
    await eventually(
        lambda: time.time() > stored_at + 2 * WINDOW, what="the duplicate window passed"
    )
    if outage:
        nats_server.start()
        bus = await Bus.connect(nats_server.client_settings(), name="agent")

    # 3. The replay: JetStream no longer knows the id, and stores the batch again.
    assert await publisher.drain(bus, timeout=10)
    ids = [batch_id for batch_id, _ in await in_stream(bus)]
    assert ids[:2] == [ident, ident]
    assert len(ids) == 4
    assert len(set(ids)) == 3
    assert publisher.stats.duplicates_replayed == 0  # JetStream saw a new message
    assert publisher.stats.duplicates_unexpected == 0

    # 4. Monitoring stores each reading once: its batch-id check skips the second copies.
    db = tmp_path / "monitoring.db"
    store = open_store(f"sqlite:///{db}")
    await store.open()
    settings = MonitoringSettings(
        ingest=ConsumerSettings(durable="monitoring", fetch_timeout_seconds=0.2, fetch_batch=1)
    )
    ingest = TelemetryIngest(bus, store, load_fields(), settings)
    running = asyncio.create_task(ingest.run())
    try:
        await eventually(
            lambda: ingest.stats.batches_written + ingest.stats.batches_skipped == 4,
            within=30,
            what="the four messages consumed",
        )
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await store.close()
        await bus.close()
    assert (ingest.stats.batches_written, ingest.stats.batches_skipped) == (3, 1)
    assert ingest.stats.readings_written == 100
    first = publisher.last_sequence[("cau-do", "station-1")] - 99
    assert points(db) == (100, 100, first, first + 99)


async def _messages(bus: Bus, count: int) -> bool:
    return (await bus.js.stream_info(TELEMETRY_STREAM)).state.messages == count
