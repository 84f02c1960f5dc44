"""From readings to JetStream: numbered batches on disk, then an acknowledged uplink.

Three parts that never wait for each other:

* :meth:`TelemetryPublisher.sink_for` gives each device a sink for the readings worth
  sending (the agent's device loop has reported them by exception,
  :mod:`~smartcity.agents.device_loop`) and stages them in memory; it never touches the disk,
  so a driver is never slowed or stopped by the agent's own storage.
* :meth:`TelemetryPublisher.run_writer` commits everything staged, across devices, in one
  SQLite transaction: group commit, once per tick. It numbers the readings (per-device
  sequence) and builds each ``TelemetryBatch`` with the trace context of its read on the event
  loop (CPU work, which in a thread would only contend for the GIL), then writes the group in
  a worker thread, so that the loop never waits for the disk. When the buffer fails (its
  file locked by another process, a full disk) the readings stay in memory and the commit is
  retried with back-off; the failure is logged once, reported in the heartbeat and the
  metrics, and the writer carries on by itself when the disk works again. Only when more than
  ``staging_max_readings`` wait in memory are the oldest dropped, counted and logged.
* :meth:`TelemetryPublisher.run` is the uplink (:mod:`smartcity.agents.uplink`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from opentelemetry import trace

from smartcity.agents.batches import (
    add_reading,
    batch_id,
    encode_batch,
    sent_time_suffix,
    to_proto,
)
from smartcity.agents.buffer import BufferHealth, Build, DiskBuffer, Row
from smartcity.agents.driver import ReadingSink
from smartcity.agents.profile import DeviceBase
from smartcity.agents.reading import Reading
from smartcity.agents.resilience import Backoff
from smartcity.agents.uplink import Uplink, UplinkStats
from smartcity.runtime.bus import Bus, context_headers
from smartcity.runtime.subjects import telemetry_subject

__all__ = [
    "TelemetryPublisher",
    "UplinkStats",
    "add_reading",
    "batch_id",
    "sent_time_suffix",
    "to_proto",
]

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("smartcity.agents")
_APPEND = "appending readings"


@dataclass
class StagingStats:
    readings_dropped: int = 0
    """Readings dropped from memory because the buffer failed for too long."""


class TelemetryPublisher:
    """Buffers device readings as batches and ships them to JetStream in order."""

    def __init__(
        self,
        buffer: DiskBuffer,
        *,
        agent_id: str,
        max_batch: int = 1000,
        window: int = 256,
        ack_timeout: float = 5.0,
        staging_max_readings: int = 200_000,
    ) -> None:
        if max_batch < 1 or window < 1 or ack_timeout <= 0 or staging_max_readings < 1:
            raise ValueError(
                "max_batch, window and staging_max_readings must be >= 1 and ack_timeout positive"
            )
        self.buffer = buffer
        self.agent_id = agent_id
        self.max_batch = max_batch
        self.staging_max_readings = staging_max_readings
        self.health = BufferHealth(buffer.path)
        self._wake = asyncio.Event()
        self.uplink = Uplink(
            buffer,
            self.health,
            window=window,
            ack_timeout=ack_timeout,
            wake=self._wake,
            max_readings=max_batch,
        )
        self.stats = self.uplink.stats
        self.staging = StagingStats()
        self.last_sequence: dict[tuple[str, str], int] = {}
        self.readings_buffered = 0
        self._staged: deque[tuple[DeviceBase, Sequence[Reading], dict[str, str]]] = deque()
        self._staged_readings = 0
        """Readings staged or numbered, not yet on disk."""
        self._rows: list[Row] = []
        """Batches numbered and encoded whose commit failed: the next one retries them."""
        self._staged_event = asyncio.Event()
        self._commit_lock = asyncio.Lock()
        self._writer: asyncio.Task[None] | None = None
        self._dropping = False

    # -- producing ---------------------------------------------------------------------------

    def sink_for(self, profile: DeviceBase) -> ReadingSink:
        """The sink a device's driver hands its readings to. It returns at once."""
        span_name = f"create city.telemetry.{profile.field}"
        attributes = {
            "messaging.system": "nats",
            "messaging.destination.name": telemetry_subject(
                profile.field, profile.site, profile.device
            ),
            "smartcity.site": profile.site,
            "smartcity.device": profile.device,
        }

        async def sink(readings: Sequence[Reading]) -> None:
            if not readings:
                return
            with _tracer.start_as_current_span(
                span_name,
                kind=trace.SpanKind.PRODUCER,
                attributes={**attributes, "messaging.batch.message_count": len(readings)},
            ):
                self.stage(profile, readings, context_headers())

        return sink

    def stage(
        self, profile: DeviceBase, readings: Sequence[Reading], headers: dict[str, str]
    ) -> None:
        """Queue ``readings`` for the next group commit."""
        self._staged.append((profile, readings, headers))
        self._staged_readings += len(readings)
        while self._staged_readings > self.staging_max_readings and (
            self._rows or len(self._staged) > 1
        ):
            # the oldest first; a numbered batch dropped leaves a gap in its sequence
            dropped = self._rows.pop(0).count if self._rows else len(self._staged.popleft()[1])
            self._staged_readings -= dropped
            self.staging.readings_dropped += dropped
            if not self._dropping:
                self._dropping = True
                log.error(
                    "disk buffer %s has failed for too long: more than %d readings wait in "
                    "memory, dropping the oldest (counted in readings_dropped)",
                    self.buffer.path,
                    self.staging_max_readings,
                )
        self._staged_event.set()

    def submit(self, profile: DeviceBase, readings: Sequence[Reading]) -> None:
        """Number ``readings`` and store them now, on the calling thread (at most
        ``max_batch`` readings a batch). For tools and tests; an agent uses the sinks."""
        rows = self._number([(profile, readings, context_headers())])
        self.buffer.append_rows(rows)
        self.readings_buffered += sum(row.count for row in rows)

    def _number(
        self, staged: Iterable[tuple[DeviceBase, Sequence[Reading], dict[str, str]]]
    ) -> list[Row]:
        """Number and encode staged readings as batches of at most ``max_batch``. CPU only,
        on the event loop: in a worker thread it would fight the loop for the GIL."""
        rows: list[Row] = []
        for profile, readings, headers in staged:
            subject = telemetry_subject(profile.field, profile.site, profile.device)
            key = f"{profile.site}/{profile.device}"
            for start in range(0, len(readings), self.max_batch):
                chunk = readings[start : start + self.max_batch]
                first = self.buffer.reserve(key, len(chunk))
                try:
                    msg_id, payload = self._builder(profile, chunk)(first)
                except Exception:  # a reading that cannot be encoded must not stop the rest
                    log.exception("readings of %s cannot be encoded; dropped", key)
                    self.staging.readings_dropped += len(chunk)
                    self._staged_readings -= len(chunk)
                    continue
                rows.append(Row(subject, key, first, len(chunk), msg_id, headers, payload))
                self.last_sequence[(profile.site, profile.device)] = first + len(chunk) - 1
        return rows

    def _builder(self, profile: DeviceBase, chunk: Sequence[Reading]) -> Build:
        def build(first: int) -> tuple[str, bytes]:
            return encode_batch(
                profile.field,
                profile.site,
                profile.device,
                agent_id=self.agent_id,
                epoch=self.buffer.epoch,
                first=first,
                readings=chunk,
            )

        return build

    async def flush(self) -> bool:
        """Commit what is staged: numbered and encoded here, written in a worker thread.
        False when the buffer failed; the batches then wait in memory, numbered, for the
        next try."""
        async with self._commit_lock:
            if self._staged:
                self._rows += self._number(self._staged)
                self._staged.clear()
            self._staged_event.clear()
            if not self._rows:
                return True
            rows, self._rows = self._rows, []
            try:
                await asyncio.to_thread(self.buffer.append_rows, rows)
            except Exception as exc:
                self._rows[:0] = rows
                self._staged_event.set()
                self.health.failed(_APPEND, exc)
                return False
            committed = sum(row.count for row in rows)
            self._staged_readings -= committed
            self.readings_buffered += committed
            self.health.recovered(_APPEND)
            self._dropping = False
            self._wake.set()
            return True

    @property
    def staged_readings(self) -> int:
        return self._staged_readings

    async def run_writer(self) -> None:
        """Commit staged readings as they come, until cancelled; never raises for a buffer
        error (it is retried with back-off and reported)."""
        backoff = Backoff(initial=0.05, maximum=5.0)
        self._writer = asyncio.current_task()
        try:
            while True:
                await self._staged_event.wait()
                await asyncio.sleep(0)  # let the other devices of this tick stage theirs too
                try:
                    committed = await self.flush()
                except Exception as exc:  # whatever it is, the writer must outlive it
                    self.health.failed(_APPEND, exc)
                    committed = False
                if committed:
                    backoff.reset()
                else:
                    await asyncio.sleep(backoff.next_delay())
        finally:
            self._writer = None

    # -- the uplink --------------------------------------------------------------------------

    async def run(self, bus: Bus) -> None:
        """Send buffered batches until cancelled; never raises for a NATS outage. Commits
        staged readings too, unless :meth:`run_writer` already runs."""
        writer = None
        if self._writer is None:
            writer = asyncio.create_task(self.run_writer(), name="buffer writer")
        try:
            await self.uplink.run(bus)
        finally:
            if writer is not None:
                writer.cancel()
                await asyncio.gather(writer, return_exceptions=True)

    async def drain(self, bus: Bus, timeout: float) -> bool:  # noqa: ASYNC109
        """Commit what is staged and send what is buffered for up to ``timeout`` seconds;
        True when nothing is left."""
        await self.flush()
        return await self.uplink.drain(bus, timeout) and not self._staged and not self._rows
