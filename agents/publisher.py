"""From readings to JetStream: numbered batches on disk, then an acknowledged uplink.

Two halves that never wait for each other:

* :meth:`TelemetryPublisher.sink_for` gives each device driver a sink. It numbers the
  readings (per-device sequence, kept across restarts), builds a ``TelemetryBatch``, and
  appends it to the disk buffer together with the trace context of the read. A driver is
  never slowed by the network: the append is a local SQLite transaction.
* :meth:`TelemetryPublisher.run` is the uplink. It sends the oldest buffered batches to
  JetStream as a pipelined window (``publish_async``), each with ``Nats-Msg-Id`` set to the
  batch id, and deletes a batch from the buffer only once JetStream has acknowledged it.
  While NATS is unreachable it backs off and retries; the batches wait on disk, oldest
  first. A batch whose acknowledgement was lost is sent again with the same id, and
  JetStream's de-duplication stores it once; consumers also skip a batch id they stored.
  When NATS answers but no stream captures the subject, the batches wait the same way; the
  agent says so in words, once per outage, and never creates a stream itself: streams are
  the platform's (``smartcity streams ensure``), an agent only publishes.

``sent_time`` is stamped at each send without decoding the stored batch: protobuf merges a
serialized message with the bytes of one more field appended, so the stored payload plus an
encoded ``sent_time`` is the batch with that field set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf.timestamp_pb2 import Timestamp
from nats.js import api as js_api
from nats.js.errors import NoStreamResponseError
from opentelemetry import trace

from smartcity.agents.buffer import DiskBuffer
from smartcity.agents.driver import ReadingSink
from smartcity.agents.profile import DeviceBase
from smartcity.agents.reading import Quality, Reading
from smartcity.agents.resilience import Backoff
from smartcity.common.v1 import common_pb2
from smartcity.runtime.bus import Bus, context_headers
from smartcity.runtime.subjects import telemetry_subject
from smartcity.telemetry.v1 import telemetry_pb2

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("smartcity.agents")

_QUALITY = {
    Quality.GOOD: common_pb2.QUALITY_GOOD,
    Quality.BAD: common_pb2.QUALITY_BAD,
    Quality.UNCERTAIN: common_pb2.QUALITY_UNCERTAIN,
    Quality.STALE: common_pb2.QUALITY_STALE,
}
_INT64 = range(-(2**63), 2**63)


def _stamp(timestamp: object, seconds: float) -> None:
    whole = int(seconds)
    timestamp.seconds = whole  # type: ignore[attr-defined]
    timestamp.nanos = int((seconds - whole) * 1e9)  # type: ignore[attr-defined]


class _Stamps(dict[float, Timestamp]):
    """Timestamps by Unix time: the readings of one poll share their read time, so a batch
    converts each distinct time once."""

    def __missing__(self, seconds: float) -> Timestamp:
        whole = int(seconds)
        stamp = self[seconds] = Timestamp(seconds=whole, nanos=int((seconds - whole) * 1e9))
        return stamp


def add_reading(
    batch: telemetry_pb2.TelemetryBatch, reading: Reading, sequence: int, stamps: _Stamps
) -> None:
    """Append ``reading`` to ``batch``; ``value`` is always the numeric view (see
    docs/architecture.md, "NATS subjects")."""
    value = reading.value
    if value.__class__ is float and reading.source_time is None and not reading.reason:
        # The common case, a good analogue value read directly from a device: no dict.
        batch.readings.add(
            metric=reading.metric,
            unit=reading.unit,
            quality=_QUALITY[reading.quality],
            sequence=sequence,
            read_time=stamps[reading.read_time],
            value=value,
        )
        if reading.server_time is not None:
            batch.readings[-1].server_time.CopyFrom(stamps[reading.server_time])
        return
    fields: dict[str, object] = {
        "metric": reading.metric,
        "unit": reading.unit,
        "quality": _QUALITY[reading.quality],
        "sequence": sequence,
        "read_time": stamps[reading.read_time],
    }
    if isinstance(value, bool):
        fields["bool_value"] = value
        fields["value"] = 1.0 if value else 0.0
    elif isinstance(value, int):
        if value in _INT64:
            fields["int_value"] = value
        fields["value"] = float(value)
    elif value is not None:
        fields["value"] = value
    if reading.reason:
        fields["quality_reason"] = reading.reason
    if reading.source_time is not None:
        fields["source_time"] = stamps[reading.source_time]
    if reading.server_time is not None:
        fields["server_time"] = stamps[reading.server_time]
    batch.readings.add(**fields)


def to_proto(reading: Reading, sequence: int) -> telemetry_pb2.Reading:
    """One reading as it travels (the batch builder uses :func:`add_reading` directly)."""
    batch = telemetry_pb2.TelemetryBatch()
    add_reading(batch, reading, sequence, _Stamps())
    return batch.readings[0]


def batch_id(site: str, device: str, first_sequence: int) -> str:
    """The batch's identity: the same readings always get the same id, on every replay."""
    return f"{site}/{device}/{first_sequence}"


def sent_time_suffix(now: float) -> bytes:
    """Serialized ``TelemetryBatch`` holding only ``sent_time``, to append to a payload."""
    suffix = telemetry_pb2.TelemetryBatch()
    _stamp(suffix.sent_time, now)
    return suffix.SerializeToString()


@dataclass
class UplinkStats:
    batches_sent: int = 0
    readings_sent: int = 0
    send_failures: int = 0
    last_error: str = ""
    connected: bool = False


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
    ) -> None:
        if max_batch < 1 or window < 1 or ack_timeout <= 0:
            raise ValueError("max_batch and window must be >= 1 and ack_timeout positive")
        self.buffer = buffer
        self.agent_id = agent_id
        self.max_batch = max_batch
        self.window = window
        self.ack_timeout = ack_timeout
        self.stats = UplinkStats()
        self.last_sequence: dict[tuple[str, str], int] = {}
        self.readings_buffered = 0
        self._wake = asyncio.Event()
        self._no_stream_reported = False

    # -- producing ---------------------------------------------------------------------------

    def sink_for(self, profile: DeviceBase) -> ReadingSink:
        """The sink a device's driver hands its readings to."""

        async def sink(readings: Sequence[Reading]) -> None:
            self.submit(profile, readings)

        return sink

    def submit(self, profile: DeviceBase, readings: Sequence[Reading]) -> None:
        """Number ``readings`` and buffer them as one or more batches (at most
        ``max_batch`` readings each)."""
        subject = telemetry_subject(profile.field, profile.site, profile.device)
        key = f"{profile.site}/{profile.device}"
        span_name = f"create city.telemetry.{profile.field}"
        for start in range(0, len(readings), self.max_batch):
            chunk = readings[start : start + self.max_batch]
            with _tracer.start_as_current_span(
                span_name,
                kind=trace.SpanKind.PRODUCER,
                attributes={
                    "messaging.system": "nats",
                    "messaging.destination.name": subject,
                    "messaging.batch.message_count": len(chunk),
                    "smartcity.site": profile.site,
                    "smartcity.device": profile.device,
                },
            ):
                headers = context_headers()

                def build(first: int, chunk: Sequence[Reading] = chunk) -> tuple[str, bytes]:
                    ident = batch_id(profile.site, profile.device, first)
                    batch = telemetry_pb2.TelemetryBatch(
                        field=profile.field,
                        site=profile.site,
                        device=profile.device,
                        agent_id=self.agent_id,
                        batch_id=ident,
                        first_sequence=first,
                        last_sequence=first + len(chunk) - 1,
                    )
                    stamps = _Stamps()
                    for offset, reading in enumerate(chunk):
                        add_reading(batch, reading, first + offset, stamps)
                    return ident, batch.SerializeToString()

                first = self.buffer.append(
                    subject, build, device=key, count=len(chunk), headers=headers
                )
            self.last_sequence[(profile.site, profile.device)] = first + len(chunk) - 1
            self.readings_buffered += len(chunk)
        self._wake.set()

    # -- the uplink --------------------------------------------------------------------------

    async def run(self, bus: Bus) -> None:
        """Send buffered batches until cancelled; never raises for a NATS outage."""
        backoff = Backoff(initial=0.1, maximum=5.0)
        while True:
            if not bus.nc.is_connected:
                self.stats.connected = False
                await asyncio.sleep(backoff.next_delay())
                continue
            self.stats.connected = True
            entries = self.buffer.peek(self.window)
            if not entries:
                self._wake.clear()
                if self.buffer.stats().batches == 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), 1.0)
                continue
            acked = await self._send(bus, entries)
            if len(acked) < len(entries):
                await asyncio.sleep(backoff.next_delay())
            else:
                backoff.reset()

    async def drain(self, bus: Bus, timeout: float) -> bool:  # noqa: ASYNC109
        """Send what is buffered for up to ``timeout`` seconds; True when nothing is left."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and bus.nc.is_connected:
            entries = self.buffer.peek(self.window)
            if not entries:
                return True
            await self._send(bus, entries, min(self.ack_timeout, deadline - time.monotonic()))
        return self.buffer.stats().batches == 0

    async def _send(self, bus: Bus, entries: list, ack_timeout: float | None = None) -> list[int]:
        suffix = sent_time_suffix(time.time())
        futures: list[asyncio.Future[js_api.PubAck]] = []
        error = ""
        try:
            for entry in entries:
                headers = {**entry.headers, js_api.Header.MSG_ID.value: entry.msg_id}
                futures.append(
                    await bus.js.publish_async(
                        entry.subject,
                        entry.payload + suffix,
                        headers=headers,
                        wait_stall=self.ack_timeout,
                    )
                )
        except Exception as exc:  # connection lost mid-window, publish buffer full, ...
            error = f"{type(exc).__name__}: {exc}"
        if futures:
            _, pending = await asyncio.wait(futures, timeout=ack_timeout or self.ack_timeout)
            for future in pending:
                future.cancel()
        acked: list[int] = []
        readings = 0
        no_stream: list[str] = []
        for entry, future in zip(entries, futures, strict=False):
            if future.cancelled():
                error = error or f"no acknowledgement within {self.ack_timeout:g} s"
                continue
            exc = future.exception()
            if exc is not None:
                if isinstance(exc, NoStreamResponseError) and entry.subject not in no_stream:
                    no_stream.append(entry.subject)
                error = error or f"{type(exc).__name__}: {exc}"
                continue
            acked.append(entry.id)
            readings += entry.readings
        if acked:
            self.buffer.remove(acked)
            self.stats.batches_sent += len(acked)
            self.stats.readings_sent += readings
        if len(acked) < len(entries):
            self.stats.send_failures += 1
            if no_stream:
                error = f"no JetStream stream captures {', '.join(no_stream)}"
                if not self._no_stream_reported:
                    self._report_no_stream(bus, no_stream)
            elif error != self.stats.last_error:
                log.warning(
                    "uplink: %d of %d batch(es) not acknowledged, kept on disk for retry: %s",
                    len(entries) - len(acked),
                    len(entries),
                    error,
                )
            self.stats.last_error = error
        elif self.stats.last_error:
            log.info("uplink: JetStream acknowledges again; replaying the buffer in order")
            self.stats.last_error = ""
            self._no_stream_reported = False
        return acked

    def _report_no_stream(self, bus: Bus, subjects: list[str]) -> None:
        """Say once per outage that the server has no stream for our subjects, and who
        creates one: the platform, never the agent (it needs no stream-admin rights)."""
        self._no_stream_reported = True
        url = bus.nc.connected_url  # without the credentials it may carry
        server = f"{url.scheme}://{url.hostname}:{url.port}" if url is not None else "URL"
        named = " or ".join(subjects[:3])
        if len(subjects) > 3:
            named += f" (and {len(subjects) - 3} more subjects)"
        log.warning(
            "uplink: no JetStream stream captures %s on %s; the readings stay in the disk "
            "buffer and are retried until one does. Create the platform's streams with "
            "`smartcity streams ensure --nats %s` (or run `smartcity nats` or `smartcity up`, "
            "which create them)",
            named,
            server,
            server,
        )
