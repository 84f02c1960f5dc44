"""Uplink faults, each against a real nats-server and a real SQLite buffer, counted in the
stream: a restored copy of the buffer, an id collision, one refused batch in the middle of a
device's backlog, batches above the server's ``max_payload``."""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

import pytest
from nats.js import api as js_api
from nats.js.api import ConsumerConfig, DeliverPolicy
from support import eventually

from smartcity.agents.buffer import DiskBuffer
from smartcity.agents.profile import parse_profile
from smartcity.agents.publisher import TelemetryPublisher
from smartcity.agents.reading import Reading
from smartcity.runtime.bus import TELEMETRY_STREAM, Bus
from smartcity.runtime.config import NatsSettings, StreamsSettings
from smartcity.runtime.nats_server import EmbeddedNats, find_nats_server
from smartcity.telemetry.v1 import telemetry_pb2


def profile(device: str = "station-1"):
    return parse_profile(
        {
            "site": "cau-do",
            "field": "water_supply",
            "device": device,
            "protocol": "modbus",
            "endpoint": "tcp://127.0.0.1:502",
            "points": [{"name": "ph", "unit": "pH", "address": 0}],
        }
    )


def readings(n: int, start: int = 0, metric: str = "ph") -> list[Reading]:
    return [Reading.good(metric, 7.0 + (start + i) / 1000, "pH") for i in range(n)]


async def stored(bus: Bus) -> list[telemetry_pb2.TelemetryBatch]:
    """Every batch in the stream, in stream order."""
    count = (await bus.js.stream_info(TELEMETRY_STREAM)).state.messages
    sub = await bus.js.pull_subscribe(
        "city.telemetry.>",
        stream=TELEMETRY_STREAM,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
    )
    batches: list[telemetry_pb2.TelemetryBatch] = []
    while len(batches) < count:
        for msg in await sub.fetch(min(500, count - len(batches)), timeout=5):
            batches.append(telemetry_pb2.TelemetryBatch.FromString(msg.data))
    await sub.unsubscribe()
    return batches


def sequences_by_device(batches: list[telemetry_pb2.TelemetryBatch]) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for batch in batches:
        found.setdefault(batch.device, []).extend(r.sequence for r in batch.readings)
    return found


async def test_a_restored_copy_of_the_buffer_loses_nothing(bus: Bus, tmp_path: Path) -> None:
    """The buffer is copied, readings are sent, the copy is restored (a VM snapshot): the
    readings taken afterwards must reach the stream too, none taken for a duplicate."""
    await bus.ensure_streams(StreamsSettings())
    path = tmp_path / "buffer.db"

    publishers: list[TelemetryPublisher] = []

    async def send(n: int, start: int) -> None:
        publisher = TelemetryPublisher(DiskBuffer(path), agent_id="agent-1")
        publisher.submit(profile(), readings(n, start))
        assert await publisher.drain(bus, timeout=10)
        publisher.buffer.close()
        publishers.append(publisher)

    await send(5, 0)
    shutil.copy(path, tmp_path / "snapshot.db")
    await send(5, 5)
    shutil.copy(tmp_path / "snapshot.db", path)  # the restore
    await send(5, 10)

    (sequences,) = sequences_by_device(await stored(bus)).values()
    assert len(set(sequences)) == 15, sorted(sequences)
    assert len(sequences) == 15
    assert [p.stats.duplicates_unexpected for p in publishers] == [0, 0, 0]


async def test_a_duplicate_answer_for_a_batch_never_sent_is_an_alarm(
    bus: Bus, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await bus.ensure_streams(StreamsSettings())
    buffer = DiskBuffer(tmp_path / "buffer.db")
    publisher = TelemetryPublisher(buffer, agent_id="agent-1")
    publisher.submit(profile(), readings(10))
    (entry,) = buffer.peek()
    # Other readings already stored under this batch's id.
    other = telemetry_pb2.TelemetryBatch(batch_id=entry.msg_id, site="cau-do", device="x")
    await bus.jetstream_publish(entry.subject, other.SerializeToString(), msg_id=entry.msg_id)
    with caplog.at_level(logging.ERROR, logger="smartcity.agents.uplink"):
        assert await publisher.drain(bus, timeout=10)
    publisher.submit(profile(), readings(10, 10))
    assert await publisher.drain(bus, timeout=10)
    assert publisher.stats.duplicates_unexpected == 1
    assert publisher.stats.readings_sent == 10  # the second batch only
    assert buffer.stats().quarantined == 1  # kept on disk, not deleted as delivered
    assert f"JetStream answered duplicate for {entry.msg_id}" in caplog.text


async def test_a_round_stopped_while_it_waits_for_acknowledgements_loses_nothing(
    bus: Bus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent stops while a round waits for JetStream's answers: what that round sent is
    in the stream, unanswered. The next round (the drain) sends those batches again under
    their ids, never merged with later ones, so nothing is taken for a collision."""
    await bus.ensure_streams(StreamsSettings())
    buffer = DiskBuffer(tmp_path / "buffer.db")
    publisher = TelemetryPublisher(buffer, agent_id="agent-1")
    publisher.submit(profile("station-1"), readings(10))
    publisher.submit(profile("station-2"), readings(10))
    await publisher.flush()
    real = bus.js.publish_async
    published = 0

    async def unanswered(*args: object, **kwargs: object) -> asyncio.Future[js_api.PubAck]:
        nonlocal published
        await real(*args, **kwargs)  # type: ignore[arg-type]
        published += 1
        return asyncio.get_running_loop().create_future()  # the answer never comes

    monkeypatch.setattr(bus.js, "publish_async", unanswered)
    waiting = asyncio.create_task(publisher.uplink.round(bus, ack_timeout=60))
    await eventually(lambda: published == 2)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    monkeypatch.setattr(bus.js, "publish_async", real)
    # Later batches of the same devices: mergeable with the unanswered ones, were they not
    # known to be sent.
    publisher.submit(profile("station-1"), readings(10, 10))
    publisher.submit(profile("station-2"), readings(10, 10))
    assert await publisher.drain(bus, timeout=10)
    assert publisher.stats.duplicates_unexpected == 0
    assert buffer.stats().quarantined == 0
    found = sequences_by_device(await stored(bus))
    assert sorted(found) == ["station-1", "station-2"]
    for sequences in found.values():
        first = min(sequences)
        assert sorted(set(sequences)) == list(range(first, first + 20))


async def test_a_refused_batch_is_not_overtaken_by_the_next_ones(bus: Bus, tmp_path: Path) -> None:
    """The stream refuses one batch of a device (too large for it) until the platform raises
    its limit; the device's later batches must not be stored before it."""
    await bus.js.add_stream(
        js_api.StreamConfig(name=TELEMETRY_STREAM, subjects=["city.telemetry.>"], max_msg_size=2000)
    )
    buffer = DiskBuffer(tmp_path / "buffer.db")
    publisher = TelemetryPublisher(buffer, agent_id="agent-1", ack_timeout=1.0)
    device, neighbour = profile("station-1"), profile("station-2")
    publisher.submit(device, readings(5))
    publisher.submit(device, readings(100, 5))  # too large for this stream
    uplink = asyncio.create_task(publisher.run(bus))
    try:
        await eventually(lambda: publisher.stats.send_failures >= 1, what="the refusal")
        for n in range(4):  # the device's next batches, and another device's
            publisher.submit(device, readings(5, 105 + 5 * n))
            publisher.submit(neighbour, readings(5, 5 * n))
        failures = publisher.stats.send_failures
        await eventually(lambda: publisher.stats.send_failures > failures + 1, what="retries")
        # the neighbour is not held up by the other device's refused batch
        await eventually(lambda: buffer.depth_by_subject().get(neighbour_subject) is None)
        config = (await bus.js.stream_info(TELEMETRY_STREAM)).config
        config.max_msg_size = -1
        await bus.js.update_stream(config)
        await eventually(lambda: buffer.stats().batches == 0, what="everything sent")
    finally:
        uplink.cancel()
    found = sequences_by_device(await stored(bus))
    assert found["station-1"] == sorted(found["station-1"]), "stored out of order"
    assert len(set(found["station-1"])) == 125
    assert len(found["station-2"]) == 20


neighbour_subject = "city.telemetry.water_supply.cau-do.station-2"


@pytest.fixture
def small_server(tmp_path: Path):
    """A nats-server that takes messages of at most 4 KiB (its configuration file says so)."""
    conf = tmp_path / "small.conf"
    conf.write_text("max_payload: 4096\n", encoding="utf-8")
    binary = tmp_path / "nats-server"
    binary.write_text(f'#!/bin/sh\nexec {find_nats_server()} "$@" --config {conf}\n')
    binary.chmod(0o755)
    settings = NatsSettings(data_dir=tmp_path / "nats", port=0)
    with EmbeddedNats(settings, binary=binary) as server:
        yield server


async def test_batches_above_max_payload_are_split_and_block_nothing(
    small_server: EmbeddedNats, tmp_path: Path
) -> None:
    bus = await Bus.connect(small_server.client_settings(), name="agent")
    try:
        assert bus.nc.max_payload == 4096
        await bus.ensure_streams(StreamsSettings())
        buffer = DiskBuffer(tmp_path / "buffer.db")
        publisher = TelemetryPublisher(buffer, agent_id="agent-1", max_batch=1000)
        publisher.submit(profile(), readings(1000))  # one batch of about 40 kB
        for n in range(50):  # and the ones after it
            publisher.submit(profile(), readings(10, 1000 + 10 * n))
        assert await publisher.drain(bus, timeout=30)
        batches = await stored(bus)
    finally:
        await bus.close()
    assert publisher.stats.batches_split == 1
    assert publisher.stats.readings_sent == 1500
    (sequences,) = sequences_by_device(batches).values()
    assert len(sequences) == len(set(sequences)) == 1500
    assert sequences == sorted(sequences)
    parts = [b for b in batches if "+" in b.batch_id]
    assert len(parts) > 10
    assert all(b.ByteSize() <= 4096 for b in batches)


async def test_a_full_disk_keeps_readings_in_memory_until_it_has_room(
    bus: Bus, tmp_path: Path
) -> None:
    """SQLite's page limit stands in for a full disk: the same "database or disk is full"."""
    await bus.ensure_streams(StreamsSettings())
    buffer = DiskBuffer(tmp_path / "buffer.db")
    publisher = TelemetryPublisher(buffer, agent_id="agent-1")
    sink = publisher.sink_for(profile())
    (pages,) = buffer._db.execute("PRAGMA page_count").fetchone()
    buffer._db.execute(f"PRAGMA max_page_count = {pages}")
    await sink(readings(500))
    assert not await publisher.flush()
    assert "full" in publisher.health.last_error
    await sink(readings(500, 500))  # the device is still read meanwhile
    assert publisher.staged_readings == 1000
    buffer._db.execute("PRAGMA max_page_count = 1073741823")
    assert await publisher.flush()
    assert not publisher.health.failing
    assert await publisher.drain(bus, timeout=10)
    (sequences,) = sequences_by_device(await stored(bus)).values()
    assert sequences == list(range(sequences[0], sequences[0] + 1000))
