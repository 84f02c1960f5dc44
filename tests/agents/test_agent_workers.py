"""``smartcity agent --workers N``: the devices spread over agent processes whose ids,
buffers, locks and heartbeats are their own; a worker that dies is restarted and loses
nothing; a second supervisor of the same devices is refused like a second agent."""

from __future__ import annotations

import itertools
import os
import signal
import sqlite3
import struct
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from nats.js.api import ConsumerConfig, DeliverPolicy
from support import eventually

from smartcity.agents.agent import waiting_elsewhere
from smartcity.agents.buffer import DiskBuffer
from smartcity.agents.profile import ModbusDevice, parse_profile
from smartcity.agents.workers import link_of, load_of, siblings, split, worker_id
from smartcity.runtime.bus import TELEMETRY_STREAM, Bus
from smartcity.runtime.config import AgentSettings, StreamsSettings
from smartcity.runtime.nats_server import EmbeddedNats
from smartcity.telemetry.v1 import telemetry_pb2


def device(name: str, endpoint: str, points: int = 4, unit_id: int = 1) -> ModbusDevice:
    profile = parse_profile(
        {
            "site": "plant",
            "field": "electricity",
            "device": name,
            "protocol": "modbus",
            "endpoint": endpoint,
            "unit_id": unit_id,
            "poll_interval": 0.05,
            "points": [
                {"name": f"v{i}", "unit": "V", "address": 2 * i, "type": "float32"}
                for i in range(points)
            ],
        }
    )
    assert isinstance(profile, ModbusDevice)
    return profile


fleets = st.lists(st.tuples(st.integers(0, 5), st.integers(1, 40)), min_size=1, max_size=12).map(
    lambda specs: [
        device(f"d{index}", f"tcp://10.0.0.{gateway}:502", points, unit_id=index % 200 + 1)
        for index, (gateway, points) in enumerate(specs)
    ]
)


@given(fleets, st.integers(1, 6), st.randoms())
def test_a_split_keeps_links_whole_is_stable_and_balanced(fleet, count, rng) -> None:
    groups = split(fleet, count)
    assert len(groups) == min(count, len({link_of(p) for p in fleet}))
    assert sorted(itertools.chain(*groups)) == list(range(len(fleet)))
    owner = {link_of(fleet[i]): k for k, group in enumerate(groups) for i in group}
    for k, group in enumerate(groups):  # a gateway's devices share one connection
        assert all(owner[link_of(fleet[i])] == k for i in group)
    shuffled = list(fleet)
    rng.shuffle(shuffled)
    named = [{fleet[i].device for i in group} for group in groups]
    assert [{shuffled[i].device for i in group} for group in split(shuffled, count)] == named
    loads = [sum(load_of(fleet[i]) for i in group) for group in groups]
    biggest = max(
        sum(load_of(p) for p in fleet if link_of(p) == link) for link in owner
    )  # greedy: no worker is above the lightest by more than one link
    assert max(loads) - min(loads) <= biggest + 1e-9


@given(st.from_regex(r"[a-z0-9][a-z0-9_-]{0,62}", fullmatch=True), st.integers(1, 64))
def test_worker_ids_are_valid_agent_ids_of_their_own(base: str, count: int) -> None:
    ids = [worker_id(base, index, count) for index in range(1, count + 1)]
    assert len(set(ids)) == count
    for ident in ids:
        assert AgentSettings(id=ident).id == ident
        pattern = siblings(ident)
        assert pattern is not None
        assert all(pattern.match(f"{other}.buffer.db") for other in ids)
    assert siblings(f"{base}-x") is None  # a plain agent has no siblings


def test_a_workers_siblings_buffers_are_not_taken_for_left_behind(tmp_path: Path) -> None:
    """Workers start one after the other: a sibling's buffer, unlocked for a moment and
    holding its backlog, is not another agent's to warn about; another N's buffer is."""
    for name in ("vm-1of2", "vm-2of3"):
        left = DiskBuffer(tmp_path / f"{name}.buffer.db")
        left.append("s", lambda first: ("m", b"x"), device="d", count=1)
        left.close()
    found = waiting_elsewhere(tmp_path / "vm-2of2.buffer.db", "vm-2of2")
    assert found == {tmp_path / "vm-2of3.buffer.db": 1}


# -- the supervisor, as a user runs it -------------------------------------------------------


@pytest.fixture
def devices() -> Iterator[list[int]]:
    """Three Modbus TCP devices (pyModbusTCP), four float32 each."""
    from pyModbusTCP.server import DataBank, ModbusServer

    servers, ports = [], []
    for index in range(3):
        bank = DataBank(h_regs_size=8)
        words = struct.unpack(">8H", struct.pack(">4f", *(index + i / 4 for i in range(4))))
        bank.set_holding_registers(0, list(words))
        server = ModbusServer(host="127.0.0.1", port=0, no_block=True, data_bank=bank)
        server.start()
        servers.append(server)
        ports.append(server._service.server_address[1])
    yield ports
    for server in servers:
        server.stop()


def start(profiles: list[Path], url: str, data: Path, name: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "SMARTCITY_DATA_DIR": str(data),
        "SMARTCITY_AGENT__HEARTBEAT_INTERVAL_SECONDS": "0.3",
        "SMARTCITY_AGENT__ACK_TIMEOUT_SECONDS": "1",
        "SMARTCITY_NATS__RECONNECT_WAIT_SECONDS": "0.2",
    }
    command = [sys.executable, "-m", "smartcity.cli.main", "agent", "--workers", "2"]
    command += ["--nats", url]
    for path in profiles:
        command += ["--profile", str(path)]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=open(data / name, "w"), text=True
    )


def holder_pid(buffer: Path) -> int | None:
    try:
        text = buffer.with_name(buffer.name + ".lock").read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


async def stream_sequences(bus: Bus) -> dict[str, list[int]]:
    last = (await bus.js.stream_info(TELEMETRY_STREAM)).state.last_seq
    sub = await bus.js.pull_subscribe(
        "city.telemetry.>",
        stream=TELEMETRY_STREAM,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
    )
    found: dict[str, list[int]] = defaultdict(list)
    at = 0
    while at < last:
        for msg in await sub.fetch(256, timeout=20):
            at = msg.metadata.sequence.stream
            batch = telemetry_pb2.TelemetryBatch.FromString(msg.data)
            found[batch.device].extend(reading.sequence for reading in batch.readings)
    await sub.unsubscribe()
    return found


@pytest.mark.slow
async def test_workers_share_out_the_devices_and_survive_one_of_them_dying(
    nats_server: EmbeddedNats, devices: list[int], tmp_path: Path
) -> None:
    bus = await Bus.connect(nats_server.client_settings(), name="ioc")
    await bus.ensure_streams(StreamsSettings())
    beats: dict[str, set[str]] = defaultdict(set)

    async def on_beat(msg) -> None:
        beat = telemetry_pb2.AgentHeartbeat.FromString(msg.data)
        beats[beat.agent_id].update(d.device for d in beat.devices if d.readings_total)

    await bus.subscribe("city.agents.plant.>", on_beat)
    profiles = []
    for index, port in enumerate(devices):
        path = tmp_path / f"meter-{index}.yaml"
        document = device(f"meter-{index}", f"tcp://127.0.0.1:{port}").model_dump(
            mode="json", exclude_defaults=True
        )
        path.write_text(yaml.safe_dump({**document, "protocol": "modbus"}), encoding="utf-8")
        profiles.append(path)
    data = tmp_path / "data"
    data.mkdir()
    supervisor = start(profiles, nats_server.url, data, "first.log")
    try:
        await eventually(
            lambda: len(beats) == 2 and set().union(*beats.values()) == {
                "meter-0", "meter-1", "meter-2"
            },
            within=60,
            what="two workers reading all three devices",
        )  # fmt: skip
        ids = sorted(beats)
        assert [ident.rsplit("-", 1)[1] for ident in ids] == ["1of2", "2of2"]
        assert not beats[ids[0]] & beats[ids[1]]  # each device in one worker
        buffers = [data / "agent" / f"{ident}.buffer.db" for ident in ids]

        # the same devices again: refused by the workers' buffer locks, like a second agent
        second = start(profiles, nats_server.url, data, "second.log")
        assert second.wait(timeout=60) == 2
        refused = (data / "second.log").read_text()
        assert "is in use by another process" in refused, refused
        assert "--id" in refused

        # a worker killed outright comes back by itself, under the same id and buffer
        killed = holder_pid(buffers[0])
        assert killed is not None
        os.kill(killed, signal.SIGKILL)
        await eventually(
            lambda: holder_pid(buffers[0]) not in (None, killed),
            within=60,
            what="the worker restarted",
        )
        beats.clear()
        await eventually(lambda: ids[0] in beats, within=30, what="the restarted worker's beat")
    finally:
        supervisor.send_signal(signal.SIGTERM)
        code = supervisor.wait(timeout=60)
    assert code == 0, (data / "first.log").read_text()[-3000:]

    # nothing lost: every sequence each worker numbered (its runs' reserved ranges) is in
    # the stream, the killed worker's included
    stored = await stream_sequences(bus)
    await bus.close()
    numbered: dict[str, set[int]] = defaultdict(set)
    for buffer in buffers:
        with sqlite3.connect(f"file:{buffer}?mode=ro", uri=True) as db:
            assert db.execute("SELECT count(*) FROM batches").fetchone() == (0,)
            for key, first, end in db.execute("SELECT device, first, next FROM reserved"):
                numbered[key.split("/")[1]].update(range(first, end))
    assert set(stored) == set(numbered) == {"meter-0", "meter-1", "meter-2"}
    for name, sequences in stored.items():
        assert set(sequences) == numbered[name], name
