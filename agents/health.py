"""What an agent says about itself: a heartbeat on NATS and OpenTelemetry metrics.

The IOC needs to tell "the substation is quiet" from "the agent that reads it is dead" from
"the agent is alive but its uplink is down and 40 MB are waiting on disk". Every
``heartbeat_interval`` the agent publishes an ``AgentHeartbeat`` per site on
``city.agents.<site>.<agent>`` with cumulative per-device counters, latency, buffer depth
and the last sequence number; the same figures are exported as OpenTelemetry metrics.

The agent's own storage is part of that picture: while the disk buffer fails (locked by
another process, a full disk) every device's ``last_error`` starts with ``disk buffer:`` and
the reason, and ``smartcity.agent.buffer_failing`` is 1; devices are still polled meanwhile.
Reading the buffer's depth never blocks the event loop: it is queried in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from opentelemetry import metrics

from smartcity import __version__
from smartcity.agents.buffer import DiskBuffer
from smartcity.agents.driver import DeviceDriver
from smartcity.agents.publisher import TelemetryPublisher
from smartcity.runtime.bus import Bus
from smartcity.runtime.subjects import agent_subject, telemetry_subject
from smartcity.telemetry.v1 import telemetry_pb2

log = logging.getLogger(__name__)


def _duration(target: object, milliseconds: float) -> None:
    seconds = milliseconds / 1000
    target.seconds = int(seconds)  # type: ignore[attr-defined]
    target.nanos = int((seconds - int(seconds)) * 1e9)  # type: ignore[attr-defined]


def build_heartbeats(
    *,
    agent_id: str,
    drivers: Iterable[DeviceDriver],
    buffer: DiskBuffer,
    publisher: TelemetryPublisher,
    started: float,
    interval: float,
    depth: dict[str, int],
) -> dict[str, telemetry_pb2.AgentHeartbeat]:
    """One heartbeat per site, from the drivers' counters and the buffer's depth per subject
    (``depth``, read beforehand off the event loop)."""
    health = publisher.health
    storage = f"disk buffer: {health.last_error}" if health.failing else ""
    now = time.time()
    beats: dict[str, telemetry_pb2.AgentHeartbeat] = {}
    for driver in drivers:
        profile, stats = driver.profile, driver.stats
        beat = beats.get(profile.site)
        if beat is None:
            beat = telemetry_pb2.AgentHeartbeat(
                site=profile.site,
                agent_id=agent_id,
                version=__version__,
                buffer_bytes=buffer.stats().bytes,
            )
            beat.start_time.FromNanoseconds(int(started * 1e9))
            beat.sent_time.FromNanoseconds(int(now * 1e9))
            _duration(beat.interval, interval * 1000)
            beats[profile.site] = beat
        device = beat.devices.add(
            field=profile.field,
            device=profile.device,
            connected=stats.connected,
            polls_total=stats.polls,
            poll_errors_total=stats.errors,
            readings_total=stats.readings,
            buffer_depth=depth.get(
                telemetry_subject(profile.field, profile.site, profile.device), 0
            ),
            last_sequence=publisher.last_sequence.get((profile.site, profile.device), 0),
            last_error="; ".join(text for text in (storage, stats.last_error) if text),
        )
        if stats.latencies_ms:
            _duration(device.mean_poll_latency, sum(stats.latencies_ms) / len(stats.latencies_ms))
            _duration(device.max_poll_latency, max(stats.latencies_ms))
        if stats.last_success is not None:
            device.last_success_time.FromNanoseconds(int(stats.last_success * 1e9))
    return beats


async def publish_heartbeats(
    bus: Bus,
    *,
    agent_id: str,
    drivers: Iterable[DeviceDriver],
    buffer: DiskBuffer,
    publisher: TelemetryPublisher,
    interval: float,
) -> None:
    """Publish heartbeats every ``interval`` seconds until cancelled. Core NATS, not
    JetStream: a heartbeat is only worth anything while it is fresh."""
    drivers = list(drivers)
    started = time.time()
    while True:
        if bus.nc.is_connected:
            try:
                depth = await asyncio.to_thread(buffer.depth_by_subject)
            except Exception as exc:  # a failing disk still gets a heartbeat out
                log.debug("buffer depth not read: %s", exc)
                depth = {}
            beats = build_heartbeats(
                agent_id=agent_id,
                drivers=drivers,
                buffer=buffer,
                publisher=publisher,
                started=started,
                interval=interval,
                depth=depth,
            )
            for site, beat in beats.items():
                try:
                    await bus.publish(agent_subject(site, agent_id), beat.SerializeToString())
                except Exception as exc:  # a heartbeat lost to an outage is not worth a crash
                    log.debug("heartbeat for %s not sent: %s", site, exc)
        await asyncio.sleep(interval)


def register_metrics(
    *,
    drivers: Iterable[DeviceDriver],
    buffer: DiskBuffer,
    publisher: TelemetryPublisher,
) -> None:
    """Export the agent's figures as OpenTelemetry observable instruments."""
    drivers = list(drivers)
    meter = metrics.get_meter("smartcity.agents", __version__)

    def per_device(attribute: str) -> metrics.CallbackT:
        def observe(options: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
            for driver in drivers:
                profile = driver.profile
                yield metrics.Observation(
                    getattr(driver.stats, attribute),
                    {"site": profile.site, "device": profile.device, "field": profile.field},
                )

        return observe

    meter.create_observable_counter(
        "smartcity.agent.polls", [per_device("polls")], unit="{poll}", description="Poll cycles"
    )
    meter.create_observable_counter(
        "smartcity.agent.poll_errors",
        [per_device("errors")],
        unit="{error}",
        description="Failed device requests",
    )
    meter.create_observable_counter(
        "smartcity.agent.readings",
        [per_device("readings")],
        unit="{reading}",
        description="Readings produced by the drivers",
    )

    def buffer_gauge(options: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
        stats = buffer.stats()
        yield metrics.Observation(stats.bytes, {"kind": "pending"})
        yield metrics.Observation(stats.dropped_bytes, {"kind": "dropped"})

    meter.create_observable_gauge(
        "smartcity.agent.buffer", [buffer_gauge], unit="By", description="Disk buffer bytes"
    )

    def uplink(options: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
        yield metrics.Observation(publisher.stats.batches_sent)

    meter.create_observable_counter(
        "smartcity.agent.batches_sent",
        [uplink],
        unit="{batch}",
        description="Batches acknowledged by JetStream",
    )

    def failing(options: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
        yield metrics.Observation(1 if publisher.health.failing else 0)

    meter.create_observable_gauge(
        "smartcity.agent.buffer_failing",
        [failing],
        unit="1",
        description="1 while the disk buffer fails (readings wait in memory, polling goes on)",
    )

    def failures(options: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
        yield metrics.Observation(publisher.health.failures)

    meter.create_observable_counter(
        "smartcity.agent.buffer_errors",
        [failures],
        unit="{error}",
        description="Failed disk buffer operations, each retried with back-off",
    )

    def dropped(options: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
        yield metrics.Observation(publisher.staging.readings_dropped)

    meter.create_observable_counter(
        "smartcity.agent.readings_dropped",
        [dropped],
        unit="{reading}",
        description="Readings dropped from memory after the disk buffer failed for too long",
    )

    def collisions(options: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
        yield metrics.Observation(publisher.stats.duplicates_unexpected)

    meter.create_observable_counter(
        "smartcity.agent.id_collisions",
        [collisions],
        unit="{batch}",
        description='Batches JetStream called "duplicate" that this agent never sent; '
        "quarantined in the buffer",
    )

    def staged(options: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
        yield metrics.Observation(publisher.staged_readings)

    meter.create_observable_gauge(
        "smartcity.agent.staged_readings",
        [staged],
        unit="{reading}",
        description="Readings waiting in memory for the next commit to the disk buffer",
    )
