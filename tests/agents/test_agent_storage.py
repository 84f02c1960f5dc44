"""The agent's own storage: a fault in it stops no device and loses nothing; one buffer
belongs to one agent; two agents from one folder get two ids.

A real Modbus simulator, a real nats-server and the agent's real SQLite buffer, whose write
lock another connection holds for a while (a full disk fails the same calls).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
import yaml
from nats.js.api import ConsumerConfig, DeliverPolicy
from support import eventually

from smartcity.agents.agent import Agent, AgentError, default_agent_id, waiting_elsewhere
from smartcity.agents.buffer import DiskBuffer
from smartcity.agents.sim.substation import Substation
from smartcity.runtime.bus import TELEMETRY_STREAM, Bus
from smartcity.runtime.config import StreamsSettings, load_settings
from smartcity.runtime.nats_server import EmbeddedNats
from smartcity.telemetry.v1 import telemetry_pb2


async def stored_sequences(bus: Bus) -> dict[str, list[int]]:
    count = (await bus.js.stream_info(TELEMETRY_STREAM)).state.messages
    sub = await bus.js.pull_subscribe(
        "city.telemetry.>",
        stream=TELEMETRY_STREAM,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
    )
    found: dict[str, list[int]] = defaultdict(list)
    seen = 0
    while seen < count:
        for msg in await sub.fetch(min(500, count - seen), timeout=5):
            batch = telemetry_pb2.TelemetryBatch.FromString(msg.data)
            found[f"{batch.site}/{batch.device}"].extend(r.sequence for r in batch.readings)
            seen += 1
    await sub.unsubscribe()
    return found


def numbered(db: Path) -> dict[str, set[int]]:
    """Every sequence the buffer handed out, per device."""
    result: dict[str, set[int]] = defaultdict(set)
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        for device, first, next_ in conn.execute("SELECT device, first, next FROM reserved"):
            result[device].update(range(first, next_))
    return result


class LoopLag:
    """How late the event loop wakes a 10 ms sleeper: a blocked loop shows here."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.01)
            self.worst = max(self.worst, time.monotonic() - before - 0.01)

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def test_a_locked_buffer_stops_no_device_and_loses_nothing(
    nats_server: EmbeddedNats, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="smartcity.agents.buffer")
    bus = await Bus.connect(nats_server.client_settings(), name="ioc")
    await bus.ensure_streams(StreamsSettings())
    beats: list[telemetry_pb2.AgentHeartbeat] = []
    await bus.subscribe(
        "city.agents.>", lambda msg: beats.append(telemetry_pb2.AgentHeartbeat.FromString(msg.data))
    )
    settings = load_settings(
        data_dir=str(tmp_path), agent={"id": "edge-1", "heartbeat_interval_seconds": 0.2}
    )
    stop = asyncio.Event()
    async with Substation("127.0.0.1", 0, devices=1, period=0.05) as simulator:
        profile = simulator.profile_for(1, poll_interval=0.05)
        agent = Agent([profile], settings, nats_url=nats_server.url)
        running = asyncio.create_task(agent.run(stop))
        try:
            await eventually(lambda: agent.publisher is not None and agent.connected.is_set())
            assert agent.publisher is not None
            await eventually(lambda: agent.publisher.stats.batches_sent >= 5, what="sending")
            (driver,) = agent.drivers
            lag = LoopLag()
            holder = sqlite3.connect(agent.buffer_path, isolation_level=None)
            holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            try:
                polls = driver.stats.polls
                await eventually(lambda: driver.stats.polls >= polls + 40, what="polling")
                await eventually(lambda: agent.publisher.health.failing, what="the failure")
                polls = driver.stats.polls
                # polling goes on while the buffer fails: 40 more polls of 50 ms, 2 s
                await eventually(lambda: driver.stats.polls >= polls + 40, what="polling")
                assert agent.publisher.health.failing
                await eventually(
                    lambda: any(
                        d.last_error.startswith("disk buffer: appending readings")
                        for d in beats[-1].devices
                    ),
                    what="the heartbeat to say so",
                )
                assert agent.publisher.staged_readings > 0  # kept in memory meanwhile
            finally:
                holder.execute("ROLLBACK")
                holder.close()
            await eventually(lambda: not agent.publisher.health.failing, what="recovery")
            await eventually(lambda: agent.publisher.staged_readings < 200, what="caught up")
            await lag.stop()
            assert lag.worst < 0.5, f"the event loop stalled for {lag.worst:.2f} s"
            await eventually(lambda: beats[-1].devices[0].last_error == "", what="clean beat")
        finally:
            stop.set()
            await asyncio.wait_for(running, 30)
    stored = await stored_sequences(bus)
    await bus.close()
    expected = numbered(agent.buffer_path)
    key = f"{profile.site}/{profile.device}"
    assert set(stored[key]) == expected[key]
    assert len(stored[key]) == len(expected[key]) > 100
    assert stored[key] == sorted(stored[key])
    messages = [r.getMessage() for r in caplog.records]
    # once when it starts and once when it ends, not once a cycle
    assert len([m for m in messages if "appending readings failed" in m]) == 1, messages
    assert len([m for m in messages if "appending readings works again" in m]) == 1, messages


async def test_a_second_agent_on_a_buffer_is_refused(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    settings = load_settings(data_dir=str(tmp_path), agent={"id": "edge-1"})
    stops = [asyncio.Event(), asyncio.Event()]
    async with Substation("127.0.0.1", 0, devices=1, period=None) as simulator:
        profile = simulator.profile_for(1)
        first = Agent([profile], settings, nats_url=nats_server.url)
        running = asyncio.create_task(first.run(stops[0]))
        try:
            await eventually(lambda: first.connected.is_set())
            second = Agent([profile], settings, nats_url=nats_server.url)
            with pytest.raises(AgentError) as refused:
                await second.run(stops[1])
            message = str(refused.value)
            assert str(first.buffer_path) in message
            assert "in use by another process" in message
            assert "--id" in message
        finally:
            stops[0].set()
            await asyncio.wait_for(running, 30)


def test_two_agents_from_one_folder_get_two_ids_and_two_buffers(tmp_path: Path) -> None:
    with contextlib.ExitStack():
        simulator = Substation("127.0.0.1", 0, devices=2, period=None)
        one, two = simulator.profile_for(1), simulator.profile_for(2)
    settings = load_settings(data_dir=str(tmp_path))
    first = Agent([one], settings, nats_url="nats://127.0.0.1:1")
    second = Agent([two], settings, nats_url="nats://127.0.0.1:1")
    assert first.agent_id != second.agent_id
    assert first.buffer_path != second.buffer_path
    # stable for the same devices, whatever their order
    assert default_agent_id([one, two]) == default_agent_id([two, one])
    assert Agent([one], settings, nats_url="nats://127.0.0.1:1").agent_id == first.agent_id


async def check(profile: Path, data: Path) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "smartcity.cli.main", "agent", "check", "--profile", str(profile)),
        *("--id", "edge-9"),
        env={**os.environ, "SMARTCITY_DATA_DIR": str(data), "COLUMNS": "250", "NO_COLOR": "1"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, output.decode()


async def test_agent_check_says_when_the_buffer_cannot_be_written(tmp_path: Path) -> None:
    path = tmp_path / "agent" / "edge-9.buffer.db"
    DiskBuffer(path).close()
    async with Substation("127.0.0.1", 0, devices=1, period=None) as simulator:
        document = simulator.profile_for(1).model_dump(mode="json", exclude_defaults=True)
        document["protocol"] = "modbus"
        profile = tmp_path / "bay.yaml"
        profile.write_text(yaml.safe_dump(document), encoding="utf-8")

        code, output = await check(profile, tmp_path)
        assert code == 0, output
        assert f"disk buffer {path}: no agent runs; 0 batch(es) waiting" in output

        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            code, output = await check(profile, tmp_path)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
    assert code == 1, output
    assert "disk buffer not writable: OperationalError: database is locked" in output


def test_a_buffer_left_by_another_id_is_named(tmp_path: Path) -> None:
    """The devices of an agent changed, so did its default id: the batches its old buffer
    still holds are pointed out, unless a running agent owns that buffer."""
    own = tmp_path / "vm-11111111.buffer.db"
    old = DiskBuffer(tmp_path / "vm-22222222.buffer.db")
    old.append("s", lambda first: ("m", b"x"), device="d", count=1)
    running = DiskBuffer(tmp_path / "vm-33333333.buffer.db")
    running.append("s", lambda first: ("m", b"x"), device="d", count=1)
    old.close()
    assert waiting_elsewhere(own) == {tmp_path / "vm-22222222.buffer.db": 1}
    running.close()
