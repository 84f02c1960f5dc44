"""Nothing accepted is lost: the agent process against a real Modbus simulator and a real
nats-server, through a NATS outage and a SIGKILL of the agent itself.

"Accepted" means numbered and written to the agent's disk buffer. Sequence numbers are
reserved in the same SQLite transaction as the batch, and the buffer records the range each
run of the agent reserved per device (a run starts no lower than the clock, so a restart
leaves a gap): the stream must hold every sequence of those ranges once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
import yaml
from nats.js.api import ConsumerConfig, DeliverPolicy
from support import eventually

from smartcity.agents.sim.substation import Substation
from smartcity.runtime.bus import TELEMETRY_STREAM, Bus
from smartcity.runtime.config import StreamsSettings
from smartcity.runtime.nats_server import EmbeddedNats
from smartcity.telemetry.v1 import telemetry_pb2

pytestmark = pytest.mark.slow


def buffered(db: Path) -> int:
    """Batches waiting in the agent's buffer, read from outside the agent process."""
    if not db.exists():
        return 0
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        try:
            return conn.execute("SELECT count(*) FROM batches").fetchone()[0]
        except sqlite3.OperationalError:  # the agent has not created its tables yet
            return 0


def produced(db: Path) -> dict[str, set[int]]:
    """Every sequence number each device was given, from the agent's buffer."""
    numbered: dict[str, set[int]] = defaultdict(set)
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        for device, first, next_ in conn.execute("SELECT device, first, next FROM reserved"):
            numbered[device].update(range(first, next_))
    return numbered


async def stream_count(bus: Bus) -> int:
    return (await bus.js.stream_info(TELEMETRY_STREAM)).state.messages


def stored_at_least(bus: Bus, count: int):
    async def check() -> bool:
        return await stream_count(bus) >= count

    return check


async def all_readings(bus: Bus) -> dict[str, list[int]]:
    count = await stream_count(bus)
    sub = await bus.js.pull_subscribe(
        "city.telemetry.>",
        stream=TELEMETRY_STREAM,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
    )
    sequences: dict[str, list[int]] = defaultdict(list)
    seen = 0
    while seen < count:
        for msg in await sub.fetch(min(256, count - seen), timeout=5):
            batch = telemetry_pb2.TelemetryBatch.FromString(msg.data)
            sequences[f"{batch.site}/{batch.device}"].extend(r.sequence for r in batch.readings)
            seen += 1
    await sub.unsubscribe()
    return sequences


def start_agent(profiles: list[Path], url: str, data: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SMARTCITY_DATA_DIR": str(data),
        "SMARTCITY_AGENT__ID": "loss-agent",
        "SMARTCITY_AGENT__ACK_TIMEOUT_SECONDS": "1",
        "SMARTCITY_AGENT__HEARTBEAT_INTERVAL_SECONDS": "1",
        "SMARTCITY_NATS__RECONNECT_WAIT_SECONDS": "0.2",
    }
    args = [sys.executable, "-m", "smartcity.cli.main", "agent", "--nats", url]
    for path in profiles:
        args += ["--profile", str(path)]
    return subprocess.Popen(
        args, env=env, stdout=subprocess.DEVNULL, stderr=open(data / "agent.log", "ab")
    )


async def test_no_reading_is_lost_or_duplicated_across_nats_and_agent_restarts(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    bus = await Bus.connect(nats_server.client_settings(), name="observer")
    await bus.ensure_streams(StreamsSettings())
    data = tmp_path / "agent"
    data.mkdir()
    db = data / "agent" / "loss-agent.buffer.db"
    async with Substation("127.0.0.1", 0, devices=2, period=0.05) as simulator:
        profiles = []
        for unit in simulator.units:
            profile = simulator.profile_for(unit, poll_interval=0.05, slow_poll_interval=0.2)
            path = tmp_path / f"unit{unit}.yaml"
            document = profile.model_dump(mode="json", exclude_defaults=True)
            document["protocol"] = "modbus"
            path.write_text(yaml.safe_dump(document), encoding="utf-8")
            profiles.append(path)

        agent = start_agent(profiles, nats_server.url, data)
        try:
            await eventually(lambda: db.exists(), what="agent buffer created")
            first = await stream_count(bus)
            await eventually(stored_at_least(bus, first + 20), what="first batches stored")

            # 1. NATS goes away: the agent keeps reading into its buffer.
            await bus.close()
            nats_server.stop()
            await eventually(lambda: buffered(db) >= 20, what="batches buffered during outage")
            nats_server.start()
            bus = await Bus.connect(nats_server.client_settings(), name="observer")
            await eventually(lambda: buffered(db) < 5, what="buffer replayed after outage")

            # 2. The agent is killed outright, mid-flight, and started again.
            before_kill = await stream_count(bus)
            agent.send_signal(signal.SIGKILL)
            agent.wait(timeout=10)
            agent = start_agent(profiles, nats_server.url, data)
            await eventually(stored_at_least(bus, before_kill + 20), what="agent back")

            # 3. Both at once: NATS down while the agent is killed and restarted.
            await bus.close()
            nats_server.stop()
            await eventually(lambda: buffered(db) >= 10, what="buffered before second kill")
            agent.send_signal(signal.SIGKILL)
            agent.wait(timeout=10)
            agent = start_agent(profiles, nats_server.url, data)
            await asyncio.sleep(0)  # the new agent reads while NATS is still away
            await eventually(lambda: buffered(db) >= 15, what="new agent buffering")
            nats_server.start()
            bus = await Bus.connect(nats_server.client_settings(), name="observer")
            await eventually(lambda: buffered(db) < 5, what="buffer replayed after restart")
        finally:
            agent.send_signal(signal.SIGTERM)  # a clean stop drains the buffer
            assert agent.wait(timeout=30) == 0, (data / "agent.log").read_text()[-3000:]
    assert buffered(db) == 0
    numbered = produced(db)
    stored = await all_readings(bus)
    await bus.close()
    assert set(stored) == {"lien-chieu-110kv/t1-bay-1", "lien-chieu-110kv/t1-bay-2"}
    for device, sequences in stored.items():
        distinct = set(sequences)
        expected = numbered[device]
        assert distinct == expected, f"{device}: {len(expected - distinct)} reading(s) missing"
        # JetStream's de-duplication window absorbed every replayed batch
        assert len(sequences) == len(distinct), f"{device}: duplicates in the stream"
        assert len(distinct) > 500
