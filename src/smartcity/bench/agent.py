"""``smartcity bench agent``: how many points per second one agent process reads and publishes.

Everything is real and local: the substation simulator runs in a process of its own (so the
agent does not share its interpreter with the server it reads), the embedded ``nats-server``
with the TELEMETRY stream on disk, and the agent in this process with its SQLite buffer.

Three figures, measured in the same run so that they are comparable:

1. the ceiling: a plain pymodbus client issuing the very requests the agent plans, as fast
   as the simulator answers them (requests/s and the points those requests carry);
2. the agent: points read by the drivers per second and points acknowledged by JetStream per
   second, over a steady window after a warm-up; after the run the buffer is drained and the
   stream is checked to hold every reading produced;
3. the read planner: requests per poll cycle with and without merging.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from smartcity.agents.modbus.planner import plan_reads
from smartcity.agents.profile import ModbusDevice
from smartcity.agents.sim.substation import load_substation_profile

TARGET_POINTS_PER_SECOND = 100_000
"""EMQX Neuron, written in C, publishes 100,000 points/s of Modbus TCP on 4 cores."""


@dataclass(frozen=True)
class AgentBenchResult:
    devices: int
    points_per_device: int
    raw_requests_per_second: float
    raw_points_per_second: float
    agent_requests_per_second: float
    read_points_per_second: float
    published_points_per_second: float
    requests_per_cycle_planned: int
    requests_per_cycle_unplanned: int
    produced: int
    stored: int
    seconds: float


def _bench_profile(profile: ModbusDevice) -> ModbusDevice:
    """Every point fast and without deadband: the agent reports every value every cycle."""
    points = [
        point.model_copy(update={"deadband": None, "poll": "fast", "interval": None})
        for point in profile.points
    ]
    return profile.model_copy(
        update={"points": points, "poll_interval": 0.001, "timeout": 2.0, "retries": 0}
    )


def _start_simulator(devices: int, out: Path) -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "smartcity.cli.main",
            "sim",
            "modbus",
            "--port",
            "0",
            "--devices",
            str(devices),
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        match = re.search(r"tcp://[\d.]+:(\d+)", line)
        if match:
            return process, int(match.group(1))
        if not line and process.poll() is not None:
            break
    process.kill()
    raise RuntimeError("the simulator did not start")


async def _raw_rate(profiles: list[ModbusDevice], seconds: float) -> tuple[float, float]:
    """Requests/s and points/s of bare pymodbus clients issuing the agent's planned reads."""
    from pymodbus.client import AsyncModbusTcpClient

    count = 0
    points = 0
    stop_at = time.monotonic() + seconds

    async def hammer(profile: ModbusDevice) -> None:
        nonlocal count, points
        plan = plan_reads(
            profile.points,
            max_gap=profile.max_gap,
            max_registers=profile.max_registers,
            max_bits=profile.max_bits,
        )
        where = profile.connection
        client = AsyncModbusTcpClient(where.host, port=where.port, timeout=2, retries=0)
        await client.connect()
        readers = {
            "holding": client.read_holding_registers,
            "input": client.read_input_registers,
            "coil": client.read_coils,
            "discrete": client.read_discrete_inputs,
        }
        try:
            while time.monotonic() < stop_at:
                for request in plan:
                    await readers[request.function.value](
                        request.address, count=request.count, device_id=profile.unit_id
                    )
                    count += 1
                    points += len(request.points)
        finally:
            client.close()

    started = time.monotonic()
    await asyncio.gather(*(hammer(profile) for profile in profiles))
    elapsed = time.monotonic() - started
    return count / elapsed, points / elapsed


async def _agent_rate(
    profiles: list[ModbusDevice],
    workdir: Path,
    seconds: float,
    warmup: float,
    progress: Callable[[str], None],
) -> tuple[float, float, float, int, int]:
    from smartcity.agents.agent import Agent
    from smartcity.runtime.bus import TELEMETRY_STREAM, Bus
    from smartcity.runtime.config import NatsSettings, load_settings
    from smartcity.runtime.nats_server import EmbeddedNats

    async with EmbeddedNats(NatsSettings(data_dir=workdir / "nats", port=0)) as nats:
        bus = await Bus.connect(nats.client_settings(), name="bench")
        await bus.ensure_streams(load_settings().nats.streams)
        settings = load_settings(
            data_dir=str(workdir),
            agent={"id": "bench", "heartbeat_interval_seconds": 60, "drain_timeout_seconds": 60},
            logging={"level": "WARNING"},
        )
        agent = Agent(profiles, settings, nats_url=nats.url)
        stop = asyncio.Event()
        running = asyncio.create_task(agent.run(stop))

        def totals() -> tuple[int, int, int]:
            read = sum(driver.stats.readings for driver in agent.drivers)
            requests = sum(driver.stats.requests for driver in agent.drivers)
            sent = agent.publisher.stats.readings_sent if agent.publisher else 0
            return read, requests, sent

        progress(f"agent warming up for {warmup:g} s")
        await asyncio.sleep(warmup)
        read0, requests0, sent0 = totals()
        started = time.monotonic()
        progress(f"agent measured for {seconds:g} s")
        await asyncio.sleep(seconds)
        read1, requests1, sent1 = totals()
        elapsed = time.monotonic() - started
        stop.set()
        progress("stopping the agent and draining its buffer")
        await running
        produced = agent.publisher.readings_buffered if agent.publisher else 0
        info = await bus.js.stream_info(TELEMETRY_STREAM)
        stored = await _count_readings(bus, info.state.messages)
        await bus.close()
    return (
        (requests1 - requests0) / elapsed,
        (read1 - read0) / elapsed,
        (sent1 - sent0) / elapsed,
        produced,
        stored,
    )


async def _count_readings(bus: object, messages: int) -> int:
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    from smartcity.runtime.bus import TELEMETRY_STREAM
    from smartcity.telemetry.v1 import telemetry_pb2

    sub = await bus.js.pull_subscribe(  # type: ignore[attr-defined]
        "city.telemetry.>",
        stream=TELEMETRY_STREAM,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE),
    )
    readings = seen = 0
    while seen < messages:
        for message in await sub.fetch(min(1000, messages - seen), timeout=10):
            batch = telemetry_pb2.TelemetryBatch.FromString(message.data)
            readings += batch.last_sequence - batch.first_sequence + 1
            seen += 1
    await sub.unsubscribe()
    return readings


def run_agent_bench(
    *,
    devices: int = 10,
    seconds: float = 10.0,
    warmup: float = 3.0,
    progress: Callable[[str], None] = lambda message: None,
) -> AgentBenchResult:
    """Run the whole benchmark and return its figures."""
    template = _bench_profile(load_substation_profile())
    with tempfile.TemporaryDirectory(prefix="smartcity-bench-") as folder:
        workdir = Path(folder)
        progress(f"starting a simulated substation with {devices} bay(s) in its own process")
        simulator, port = _start_simulator(devices, workdir / "sim")
        try:
            profiles = [
                template.model_copy(
                    update={
                        "endpoint": f"tcp://127.0.0.1:{port}",
                        "unit_id": unit,
                        "device": f"bay-{unit}",
                    }
                )
                for unit in range(1, devices + 1)
            ]
            progress(f"plain pymodbus clients for {seconds:g} s (the ceiling)")
            raw_requests, raw_points = asyncio.run(_raw_rate(profiles, seconds))
            requests, read, published, produced, stored = asyncio.run(
                _agent_rate(profiles, workdir, seconds, warmup, progress)
            )
        finally:
            simulator.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                simulator.wait(timeout=10)
    planned = plan_reads(
        template.points,
        max_gap=template.max_gap,
        max_registers=template.max_registers,
        max_bits=template.max_bits,
    )
    return AgentBenchResult(
        devices=devices,
        points_per_device=len(template.points),
        raw_requests_per_second=raw_requests,
        raw_points_per_second=raw_points,
        agent_requests_per_second=requests,
        read_points_per_second=read,
        published_points_per_second=published,
        requests_per_cycle_planned=len(planned),
        requests_per_cycle_unplanned=len(template.points),
        produced=produced,
        stored=stored,
        seconds=seconds,
    )
