"""Ingest: every telemetry batch from JetStream into storage, once, acknowledged only when
durable.

One durable pull consumer (``monitoring`` by default) on the TELEMETRY stream; any number of
service replicas pull from it, and JetStream hands each message to one of them. A fetch of up
to ``fetch_batch`` messages becomes one storage transaction:

1. decode each ``TelemetryBatch``; a message that is not one (or whose payload contradicts its
   subject) goes to ``city.deadletter.telemetry`` with the reason in a header, and is
   acknowledged — it will never decode, so redelivering it would only block the consumer;
2. check every reading against its field's metric catalogue: an unknown metric, a unit that
   is not the metric's, a value outside the metric's valid range is kept with BAD quality and
   the reason — never dropped, never silently "fixed";
3. let the field plugin derive values (``derive`` hook), with the device's hourly means when
   the batch is the first of a new hour for that device;
4. write everything in one transaction (storage skips a batch id it already has, so a
   redelivered message changes nothing), then acknowledge the messages, then hand the new
   readings to live streams.

If storage fails, nothing is acknowledged: JetStream redelivers after ``ack_wait`` and the
batch-id gate makes the retry safe. A service killed mid-batch loses nothing either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from smartcity.fields import FieldHost, HourlyHistory
from smartcity.fields import Quality as FieldQuality
from smartcity.fields import Reading as FieldReading
from smartcity.fields.errors import DeriveError
from smartcity.runtime.bus import TELEMETRY_STREAM, Bus
from smartcity.runtime.config import MonitoringSettings
from smartcity.runtime.subjects import ALL_TELEMETRY, deadletter_subject, parse_telemetry_subject
from smartcity.services.monitoring.model import (
    HOUR,
    MICROS,
    IngestBatch,
    Quality,
    SeriesKey,
    StoredReading,
)
from smartcity.services.monitoring.store.base import TimeSeriesStore
from smartcity.telemetry.v1 import telemetry_pb2

log = logging.getLogger(__name__)

REASON_HEADER = "Smartcity-Deadletter-Reason"
SUBJECT_HEADER = "Smartcity-Original-Subject"
DEADLETTER = deadletter_subject("telemetry")

_GOOD = int(Quality.GOOD)
_BAD = int(Quality.BAD)
_QUALITY_GOOD = Quality.GOOD
_QUALITIES = {int(member): member for member in Quality}
_FIELD_QUALITY = {
    Quality.GOOD: FieldQuality.GOOD,
    Quality.BAD: FieldQuality.BAD,
    Quality.UNCERTAIN: FieldQuality.UNCERTAIN,
    Quality.STALE: FieldQuality.UNCERTAIN,  # the plugins know three classes
}
_STORED_QUALITY = {
    FieldQuality.GOOD: Quality.GOOD,
    FieldQuality.BAD: Quality.BAD,
    FieldQuality.UNCERTAIN: Quality.UNCERTAIN,
}


class LiveSink(Protocol):
    """Where newly stored readings go for live streams (the service's LiveHub)."""

    @property
    def subscriber_count(self) -> int: ...

    def publish(self, readings: Sequence[tuple[SeriesKey, StoredReading]]) -> None: ...


class Undecodable(Exception):  # noqa: N818 - a verdict on a message, not a failure of ours
    """A message that can never become a batch; the message says why."""


@dataclass
class IngestStats:
    messages: int = 0
    batches_written: int = 0
    batches_skipped: int = 0
    readings_written: int = 0
    deadlettered: int = 0
    store_failures: int = 0


class Catalogue:
    """Each field's metrics by name, for checking readings fast."""

    def __init__(self, fields: FieldHost) -> None:
        self.fields = fields
        self._metrics = {
            field.id: {name: (m.unit, m.minimum, m.maximum) for name, m in field.metrics.items()}
            for field in fields
        }

    def metrics_of(self, field: str) -> dict[str, tuple[str, float | None, float | None]]:
        """``{metric: (unit, minimum, maximum)}`` of a field; empty for an unknown one."""
        return self._metrics.get(field, {})

    def check(
        self, field: str, metric: str, unit: str, value: float | None, quality: int, reason: str
    ) -> tuple[int, str]:
        """The quality and reason a reading is stored with."""
        metrics = self._metrics.get(field)
        if metrics is None:
            return _BAD, f"unknown field {field!r}"
        spec = metrics.get(metric)
        if spec is None:
            return _BAD, f"unknown metric {metric!r} of field {field!r}"
        expected_unit, low, high = spec
        if unit != expected_unit:
            return _BAD, f"unit {unit!r} is not the metric's {expected_unit!r}"
        if quality == 0:
            return _BAD, "no quality given"
        if value is not None and quality == _GOOD:
            if low is not None and value < low:
                return _BAD, f"out of range: {value:g} < {low:g}"
            if high is not None and value > high:
                return _BAD, f"out of range: {value:g} > {high:g}"
        return quality, reason


def decode(msg: Msg, received: int, catalogue: Catalogue) -> IngestBatch:
    """One message as a checked batch; :class:`Undecodable` when it cannot be one."""
    try:
        where = parse_telemetry_subject(msg.subject)
    except ValueError as exc:
        raise Undecodable(f"not a telemetry subject: {exc}") from None
    try:
        batch = telemetry_pb2.TelemetryBatch.FromString(msg.data)
    except DecodeError as exc:
        raise Undecodable(f"not a TelemetryBatch: {exc}") from None
    said = (batch.field, batch.site, batch.device)
    if said != (where.field, where.site, where.device):
        raise Undecodable(
            f"payload says {'/'.join(said)} but the subject says "
            f"{where.field}/{where.site}/{where.device}"
        )
    if not batch.batch_id:
        raise Undecodable("batch_id is empty: a batch without an id cannot be de-duplicated")
    check = catalogue.check
    field = batch.field
    metrics = catalogue.metrics_of(field)
    readings = []
    append = readings.append
    for reading in batch.readings:
        metric = reading.metric
        unit = reading.unit
        value = reading.value if reading.HasField("value") else None
        when = reading.source_time if reading.HasField("source_time") else reading.read_time
        time_us = when.seconds * MICROS + when.nanos // 1000 or received
        quality = reading.quality
        spec = metrics.get(metric)
        if (
            quality == _GOOD
            and value is not None
            and spec is not None
            and spec[0] == unit
            and (spec[1] is None or value >= spec[1])
            and (spec[2] is None or value <= spec[2])
        ):
            append(StoredReading(metric, unit, value, _QUALITY_GOOD, "", time_us, reading.sequence))
            continue
        quality, reason = check(field, metric, unit, value, quality, reading.quality_reason)
        append(
            StoredReading(
                metric, unit, value, _QUALITIES[quality], reason, time_us, reading.sequence
            )
        )
    return IngestBatch(
        batch_id=batch.batch_id,
        field=field,
        site=batch.site,
        device=batch.device,
        agent_id=batch.agent_id,
        readings=readings,
        received=received,
    )


class Ingest:
    """The consumer loop of one service replica."""

    def __init__(
        self,
        bus: Bus,
        store: TimeSeriesStore,
        fields: FieldHost,
        settings: MonitoringSettings,
        *,
        live: LiveSink | None = None,
        on_stored: Callable[[IngestStats], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.bus = bus
        self.store = store
        self.fields = fields
        self.settings = settings
        self.live = live
        self.on_stored = on_stored
        self.clock = clock
        self.catalogue = Catalogue(fields)
        self.stats = IngestStats()
        self._hours: dict[tuple[str, str], int] = {}
        self._derives = {field.id for field in fields if field.derive_caller is not None}

    async def subscribe(self) -> object:
        """Bind to (or create) the durable consumer all replicas share."""
        config = ConsumerConfig(
            durable_name=self.settings.consumer,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.settings.ack_wait_seconds,
            max_deliver=-1,
            max_ack_pending=max(10_000, self.settings.fetch_batch * 8),
            filter_subject=ALL_TELEMETRY,
        )
        return await self.bus.js.pull_subscribe(
            ALL_TELEMETRY, durable=self.settings.consumer, stream=TELEMETRY_STREAM, config=config
        )

    async def run(self) -> None:
        """Fetch, store, acknowledge, until cancelled."""
        subscription = await self.subscribe()
        log.info(
            "ingest: consuming %s as %r into %s",
            TELEMETRY_STREAM,
            self.settings.consumer,
            self.store.url,
        )
        # Decoding the next fetch overlaps the storage write of the previous one (which runs
        # in the store's own thread); a fetch is acknowledged only once its write is done.
        writing: asyncio.Task[None] | None = None
        try:
            while True:
                try:
                    messages = await subscription.fetch(  # type: ignore[attr-defined]
                        self.settings.fetch_batch, timeout=self.settings.fetch_timeout_seconds
                    )
                except (TimeoutError, NatsTimeoutError):
                    continue
                batches, keep = await self.prepare(messages)
                if writing is not None:
                    await writing
                writing = asyncio.create_task(self.commit(batches, keep)) if batches else None
        finally:
            if writing is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(writing)
            # A pull subscription left open makes the connection's drain wait for it.
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()  # type: ignore[attr-defined]

    async def handle(self, messages: Sequence[Msg]) -> None:
        """One fetch: decode, check, derive, store, acknowledge."""
        batches, keep = await self.prepare(messages)
        if batches:
            await self.commit(batches, keep)

    async def prepare(self, messages: Sequence[Msg]) -> tuple[list[IngestBatch], list[Msg]]:
        """Decode, check and derive; dead-letter what cannot be a batch."""
        received = int(self.clock() * MICROS)
        batches: list[IngestBatch] = []
        keep: list[Msg] = []
        for msg in messages:
            self.stats.messages += 1
            try:
                batch = decode(msg, received, self.catalogue)
            except Undecodable as exc:
                await self._deadletter(msg, str(exc))
                continue
            if batch.field in self._derives:
                batch = await self._with_derived(batch)
            batches.append(batch)
            keep.append(msg)
        return batches, keep

    async def commit(self, batches: list[IngestBatch], keep: list[Msg]) -> None:
        """Store, then acknowledge; on failure nothing is acknowledged."""
        try:
            written = await self.store.write(batches)
        except Exception:
            self.stats.store_failures += 1
            log.exception(
                "ingest: storage refused %d batch(es); they stay unacknowledged and come back",
                len(batches),
            )
            for msg in keep:
                with contextlib.suppress(Exception):
                    await msg.nak(delay=1.0)
            return
        for msg in keep:
            await msg.ack()
        self.stats.batches_written += written.batches_written
        self.stats.batches_skipped += written.batches_skipped
        self.stats.readings_written += written.readings_written
        if self.live is not None and self.live.subscriber_count:
            self.live.publish(
                [
                    (SeriesKey(b.field, b.site, b.device, r.metric), r)
                    for b in batches
                    for r in b.readings
                ]
            )
        if self.on_stored is not None:
            self.on_stored(self.stats)

    async def _deadletter(self, msg: Msg, reason: str) -> None:
        self.stats.deadlettered += 1
        log.warning("ingest: dead-lettered a message from %s: %s", msg.subject, reason)
        await self.bus.jetstream_publish(
            DEADLETTER,
            msg.data,
            headers={REASON_HEADER: reason, SUBJECT_HEADER: msg.subject},
        )
        await msg.ack()

    async def _with_derived(self, batch: IngestBatch) -> IngestBatch:
        """The batch plus what its field's plugin derives from it."""
        good = [r for r in batch.readings if r.value is not None]
        if not good:
            return batch
        newest = max(r.time for r in good)
        hour = newest // HOUR * HOUR
        key = (batch.site, batch.device)
        hourly = None
        previous = self._hours.get(key)
        if previous is None:  # first batch since this replica started: ask storage
            known = await self.store.device(batch.site, batch.device)
            previous = known.last_seen // HOUR * HOUR if known is not None else None
        self._hours[key] = hour
        if previous is not None and hour > previous:
            hourly = await self._hourly(batch, hour)
        field = self.fields[batch.field]
        if field.derive_inputs is not None:
            wanted = field.derive_inputs
            good = [r for r in good if r.metric in wanted]
        if field.derive_reads_batches and good:
            moments: dict[int, datetime] = {}
            inputs = []
            for r in good:
                moment = moments.get(r.time)
                if moment is None:
                    moment = moments[r.time] = datetime.fromtimestamp(r.time / MICROS, UTC)
                inputs.append(
                    FieldReading.checked_elsewhere(
                        r.metric,
                        r.value,  # type: ignore[arg-type]
                        r.unit,
                        moment,
                        _FIELD_QUALITY.get(r.quality, FieldQuality.BAD),
                        r.reason,
                    )
                )
        elif hourly is None:
            return batch
        else:
            inputs = []
        try:
            derived = field.derive(batch.site, batch.device, inputs, hourly=hourly)
        except DeriveError:
            log.exception("ingest: derive failed for %s/%s", batch.site, batch.device)
            return batch
        if not derived:
            return batch
        sequence = max(r.sequence for r in batch.readings)
        extra = []
        for reading in derived:
            value: float | None = float(reading.value)
            quality, reason = self.catalogue.check(
                batch.field,
                reading.metric,
                reading.unit,
                value,
                int(_STORED_QUALITY.get(reading.quality, Quality.BAD)),
                reading.reason,
            )
            if not math.isfinite(value):
                value, quality = None, _BAD
            extra.append(
                StoredReading(
                    reading.metric,
                    reading.unit,
                    value,
                    Quality(quality),
                    reason,
                    int(reading.timestamp.timestamp() * MICROS),
                    sequence,
                    derived=True,
                )
            )
        return IngestBatch(
            batch.batch_id,
            batch.field,
            batch.site,
            batch.device,
            batch.agent_id,
            [*batch.readings, *extra],
            batch.received,
        )

    async def _hourly(self, batch: IngestBatch, hour_end: int) -> HourlyHistory:
        """The device's hourly means for the 24 hours ending at ``hour_end``."""
        means = await self.store.hourly_means(batch.field, batch.site, batch.device, hour_end)
        return HourlyHistory(hour_end=datetime.fromtimestamp(hour_end / MICROS, UTC), means=means)
