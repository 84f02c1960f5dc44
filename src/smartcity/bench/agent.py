"""``smartcity bench agent``: what one agent delivers from many Modbus devices, counted at
the far end.

Everything is real, local and in processes of its own: each device is a pyModbusTCP server
(:mod:`.agent_devices`, a library independent of the agent's pymodbus) on its own port,
``points`` float32 holding registers whose values change every poll interval; the embedded
``nats-server`` holds the TELEMETRY stream on disk; the agent is ``smartcity agent`` (with
``--workers`` when asked), started as a user starts it.

Figures, all from the same run:

1. offered: devices x points / poll interval;
2. the ceiling: plain pymodbus clients issuing the agent's planned requests to the same
   devices as fast as they answer (points/s, and the CPU it costs them);
3. read: readings in the stream that are GOOD and were read in the measured window (a
   device that does not answer yields BAD readings, which count for nothing);
4. acknowledged: distinct (device, sequence) pairs JetStream stored during the measured
   window, after the warm-up, read back from the stream; a replayed batch counts once;
5. the agent's CPU seconds (its processes' user and system time from ``/proc``) per
   10,000 points/s acknowledged.

After the window the agent is stopped (it drains its buffer) and the stream is read back
whole: every device's sequences must be contiguous (nothing lost).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from smartcity.bench.agent_devices import PYMODBUSTCP_MISSING, pymodbustcp_installed
from smartcity.bench.agent_stream import StreamCount, agent_cpu_seconds, count_stream

TARGET_SHARE = 0.9
"""The agent must deliver at least this share of the offered points."""

Progress = Callable[[str], None]


class BenchError(Exception):
    """The benchmark cannot run here; the message says what is missing."""


@dataclass(frozen=True)
class AgentBenchResult:
    devices: int
    points: int
    poll: float
    workers: int
    seconds: float
    ceiling_points_per_second: float
    ceiling_requests_per_second: float
    ceiling_cores: float
    """CPU seconds per second the ceiling's clients used."""
    read_good_per_second: float
    acknowledged_per_second: float
    agent_cores: float
    """CPU seconds per second the agent's processes used in the measured window."""
    beside_cores: dict[str, float]
    """The same for the devices' processes and the nats-server, which share the machine."""
    stream: StreamCount

    @property
    def offered_per_second(self) -> float:
        return self.devices * self.points / self.poll

    @staticmethod
    def per_10k(cores: float, points_per_second: float) -> float:
        """CPU seconds (per second of wall time) per 10,000 points/s."""
        if points_per_second <= 0:
            return float("nan")
        return cores / (points_per_second / 10_000)


def _profile(index: int, port: int, points: int, poll: float) -> dict[str, object]:
    return {
        "site": "bench",
        "field": "electricity",
        "device": f"device-{index:02d}",
        "protocol": "modbus",
        "endpoint": f"tcp://127.0.0.1:{port}",
        "poll_interval": poll,
        "timeout": 1.0,
        "retries": 0,
        "points": [
            {"name": f"p{point:03d}", "unit": "V", "address": 2 * point, "type": "float32"}
            for point in range(points)
        ],
    }


def _start_devices(
    count: int, points: int, poll: float
) -> tuple[list[subprocess.Popen[str]], list[int]]:
    command = [sys.executable, "-m", "smartcity.bench.agent_devices"]
    processes = [
        subprocess.Popen(
            [*command, "--points", str(points), "--period", str(poll)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    ports = []
    for process in processes:
        assert process.stdout is not None
        line = process.stdout.readline()  # the device prints its port once it listens
        if not line.startswith("listening "):
            _stop_all(processes)
            raise BenchError(f"a device process did not start: {line.strip() or 'no output'}")
        ports.append(int(line.rsplit(":", 1)[1]))
    return processes, ports


def _stop_all(processes: list[subprocess.Popen[str]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _ceiling(ports: list[int], points: int, seconds: float) -> tuple[float, float, float]:
    """Requests/s, points/s and CPU seconds per second (cores) of bare pymodbus clients
    issuing the agent's planned reads, one client per device, as fast as the devices
    answer."""
    from pymodbus.client import AsyncModbusTcpClient

    from smartcity.agents.modbus.planner import plan_reads
    from smartcity.agents.profile import ModbusDevice

    requests = read = 0
    stop_at = time.monotonic() + seconds

    async def hammer(port: int) -> None:
        nonlocal requests, read
        profile = ModbusDevice.model_validate(_profile(0, port, points, 1.0))
        plan = plan_reads(
            profile.points,
            max_gap=profile.max_gap,
            max_registers=profile.max_registers,
            max_bits=profile.max_bits,
        )
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
        await client.connect()
        try:
            while time.monotonic() < stop_at:
                for request in plan:
                    answer = await client.read_holding_registers(
                        request.address, count=request.count, device_id=1
                    )
                    if not answer.isError():
                        requests += 1
                        read += len(request.points)
        finally:
            client.close()

    cpu, started = time.process_time(), time.monotonic()
    await asyncio.gather(*(hammer(port) for port in ports))
    elapsed = time.monotonic() - started
    return requests / elapsed, read / elapsed, (time.process_time() - cpu) / elapsed


def _start_agent(
    profiles: list[Path], url: str, workdir: Path, workers: int
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SMARTCITY_DATA_DIR": str(workdir),
        "SMARTCITY_AGENT__HEARTBEAT_INTERVAL_SECONDS": "1",
        "SMARTCITY_AGENT__DRAIN_TIMEOUT_SECONDS": "120",
        "SMARTCITY_LOGGING__LEVEL": "warning",
    }
    command = [sys.executable, "-m", "smartcity.cli.main", "agent", "--nats", url]
    command += ["--id", "bench"] + (["--workers", str(workers)] if workers > 1 else [])
    for path in profiles:
        command += ["--profile", str(path)]
    log = open(workdir / "agent.log", "ab")  # noqa: SIM115 (the process holds it)
    try:
        return subprocess.Popen(command, env=env, stdout=log, stderr=log)
    finally:
        log.close()


class _Heartbeats:
    """The agent's heartbeats: readings produced per device, for progress and warm-up."""

    def __init__(self) -> None:
        self.readings: dict[str, int] = {}
        self.buffer_bytes: dict[str, int] = {}

    async def on_message(self, msg: object) -> None:
        from smartcity.telemetry.v1 import telemetry_pb2

        beat = telemetry_pb2.AgentHeartbeat.FromString(msg.data)  # type: ignore[attr-defined]
        self.buffer_bytes[beat.agent_id] = beat.buffer_bytes
        for device in beat.devices:
            self.readings[device.device] = device.readings_total

    def total(self) -> int:
        return sum(self.readings.values())


async def _measure_agent(
    profiles: list[Path],
    workdir: Path,
    *,
    devices: int,
    device_pids: list[int],
    workers: int,
    seconds: float,
    warmup: float,
    progress: Progress,
) -> tuple[StreamCount, float, float, dict[str, float]]:
    from smartcity.runtime.bus import TELEMETRY_STREAM, Bus
    from smartcity.runtime.config import NatsSettings, load_settings
    from smartcity.runtime.nats_server import EmbeddedNats

    async with EmbeddedNats(NatsSettings(data_dir=workdir / "nats", port=0)) as nats:
        bus = await Bus.connect(nats.client_settings(), name="bench")
        await bus.ensure_streams(load_settings().nats.streams)
        beats = _Heartbeats()
        await bus.nc.subscribe("city.agents.>", cb=beats.on_message)

        async def last_seq() -> int:
            return int((await bus.js.stream_info(TELEMETRY_STREAM)).state.last_seq)

        agent = _start_agent(profiles, nats.url, workdir, workers)
        try:
            deadline = time.monotonic() + 60
            while len([n for n in beats.readings.values() if n]) < devices:
                if agent.poll() is not None or time.monotonic() > deadline:
                    raise BenchError(f"the agent did not start: {_tail(workdir / 'agent.log')}")
                await asyncio.sleep(0.2)
            progress(f"agent reads all {devices} devices; warming up for {warmup:g} s")
            await _watch(bus, beats, agent.pid, warmup, progress, "warm-up")
            others = {"devices": device_pids, "nats-server": [nats.pid or 0]}
            t0, s0, cpu0 = time.time(), await last_seq(), agent_cpu_seconds(agent.pid)
            used0 = {name: sum(map(agent_cpu_seconds, pids)) for name, pids in others.items()}
            await _watch(bus, beats, agent.pid, seconds, progress, "measured")
            t1, s1, cpu1 = time.time(), await last_seq(), agent_cpu_seconds(agent.pid)
            beside = {
                name: (sum(map(agent_cpu_seconds, pids)) - used0[name]) / (t1 - t0)
                for name, pids in others.items()
            }
            progress("stopping the agent (it drains its buffer)")
            agent.send_signal(signal.SIGTERM)
            await asyncio.to_thread(agent.wait, 180)
        finally:
            if agent.poll() is None:
                agent.kill()
                agent.wait()
        if agent.returncode != 0:
            raise BenchError(
                f"the agent exited with {agent.returncode}: {_tail(workdir / 'agent.log')}"
            )
        progress("reading the stream back")
        counted = await count_stream(bus, window=(t0, t1), stream_window=(s0, s1))
        await bus.close()
    return counted, t1 - t0, cpu1 - cpu0, beside


async def _watch(
    bus: object, beats: _Heartbeats, pid: int, seconds: float, progress: Progress, phase: str
) -> None:
    """Wait ``seconds``, with a progress line every second from the heartbeats."""
    from smartcity.runtime.bus import TELEMETRY_STREAM

    end = time.monotonic() + seconds
    readings, cpu, at = beats.total(), agent_cpu_seconds(pid), time.monotonic()
    while (left := end - time.monotonic()) > 0:
        await asyncio.sleep(min(1.0, left))
        now = time.monotonic()
        total, used = beats.total(), agent_cpu_seconds(pid)
        info = await bus.js.stream_info(TELEMETRY_STREAM)  # type: ignore[attr-defined]
        progress(
            f"{phase}: agent produced {(total - readings) / (now - at):,.0f} readings/s "
            f"(heartbeats), CPU {(used - cpu) / (now - at):.2f} core(s), buffer "
            f"{sum(beats.buffer_bytes.values()) / 1e6:.1f} MB, stream {info.state.messages:,} "
            "messages"
        )
        readings, cpu, at = total, used, now


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def run_agent_bench(
    *,
    devices: int = 16,
    points: int = 120,
    poll: float = 0.02,
    workers: int = 1,
    seconds: float = 10.0,
    warmup: float = 5.0,
    progress: Progress = lambda message: None,
) -> AgentBenchResult:
    """Run the whole benchmark and return its figures."""
    if not pymodbustcp_installed():
        raise BenchError(PYMODBUSTCP_MISSING)
    with tempfile.TemporaryDirectory(prefix="smartcity-bench-agent-") as folder:
        workdir = Path(folder)
        progress(f"starting {devices} pyModbusTCP device(s), each in its own process")
        processes, ports = _start_devices(devices, points, poll)
        try:
            profiles = []
            for index, port in enumerate(ports, start=1):
                path = workdir / f"device-{index:02d}.yaml"
                path.write_text(yaml.safe_dump(_profile(index, port, points, poll)), "utf-8")
                profiles.append(path)
            progress(f"plain pymodbus clients for {seconds:g} s (the ceiling)")
            ceiling_requests, ceiling_points, ceiling_cores = asyncio.run(
                _ceiling(ports, points, seconds)
            )
            progress(
                f"ceiling: {ceiling_points:,.0f} points/s; starting the agent "
                f"({workers} worker process(es))"
            )
            counted, window, cpu, beside = asyncio.run(
                _measure_agent(
                    profiles,
                    workdir,
                    devices=devices,
                    device_pids=[process.pid for process in processes],
                    workers=workers,
                    seconds=seconds,
                    warmup=warmup,
                    progress=progress,
                )
            )
        finally:
            _stop_all(processes)
    return AgentBenchResult(
        devices=devices,
        points=points,
        poll=poll,
        workers=workers,
        seconds=window,
        ceiling_points_per_second=ceiling_points,
        ceiling_requests_per_second=ceiling_requests,
        ceiling_cores=ceiling_cores,
        read_good_per_second=counted.good_in_window / window,
        acknowledged_per_second=counted.acknowledged_in_window / window,
        agent_cores=cpu / window,
        beside_cores=beside,
        stream=counted,
    )
