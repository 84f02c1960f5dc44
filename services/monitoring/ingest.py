"""Ingest: every telemetry batch from JetStream into storage, once, acknowledged only when
durable; every reading with a verdict.

The consumer is the runtime's (:mod:`smartcity.runtime.consumer`): one durable pull consumer
(``monitoring.ingest.durable``, default ``monitoring``) on the TELEMETRY stream, shared by
every replica; a message that can never be a batch is dead-lettered on
``city.deadletter.telemetry`` with the reason; a fetch becomes one storage transaction; a
storage outage is waited out, a batch storage refuses is isolated and retried, then
dead-lettered. This module is what is particular to telemetry:

1. :mod:`.decode` turns a message into a checked batch (every reading judged, per-batch
   derived values added);
2. :meth:`TelemetryIngest.commit` writes the batches of a fetch in one transaction (storage
   skips a batch id it already has, so a redelivered message changes nothing), then hands
   the batches it actually stored to the live streams of this replica and of the others, and
   to the hourly derivation (:mod:`.hourly`).

Counting, as the tests count: readings in accepted messages = readings stored (a reading
repeated within or across batches with the same series, time and sequence is stored once);
readings of rejected messages = readings dead-lettered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from nats.aio.msg import Msg
from opentelemetry import metrics

from smartcity.fields import FieldHost
from smartcity.readings.decode import TelemetryDecoder
from smartcity.runtime.bus import TELEMETRY_STREAM, Bus
from smartcity.runtime.config import MonitoringSettings
from smartcity.runtime.consumer import JetStreamConsumer
from smartcity.runtime.subjects import ALL_TELEMETRY, deadletter_subject
from smartcity.services.monitoring.fanout import LiveFanout
from smartcity.services.monitoring.hourly import HourlyDeriver
from smartcity.services.monitoring.live import LiveHub
from smartcity.services.monitoring.model import MICROS, IngestBatch
from smartcity.services.monitoring.store.base import StoreUnavailable, TimeSeriesStore

__all__ = ["DEADLETTER", "IngestStats", "TelemetryIngest"]

DEADLETTER = deadletter_subject("telemetry")


@dataclass
class IngestStats:
    batches_written: int = 0
    batches_skipped: int = 0
    """Batches already stored earlier (redelivered): nothing of them was written again."""
    readings_written: int = 0


class TelemetryIngest:
    """Telemetry from the TELEMETRY stream into a store, for one replica."""

    def __init__(
        self,
        bus: Bus,
        store: TimeSeriesStore,
        fields: FieldHost,
        settings: MonitoringSettings,
        *,
        live: LiveHub | None = None,
        fanout: LiveFanout | None = None,
        on_stored: Callable[[IngestStats], None] | None = None,
        clock: Callable[[], float] = time.time,
        meter: metrics.Meter | None = None,
    ) -> None:
        self.store = store
        self.live = live
        self.fanout = fanout
        self.on_stored = on_stored
        self.stats = IngestStats()
        self.decoder = TelemetryDecoder(
            fields, max_future_skew_seconds=settings.max_future_skew_seconds, clock=clock
        )
        self.consumer: JetStreamConsumer[IngestBatch] = JetStreamConsumer(
            bus,
            stream=TELEMETRY_STREAM,
            subject=ALL_TELEMETRY,
            settings=settings.ingest,
            handler=self,
            meter=meter,
        )
        self.hourly = HourlyDeriver(
            fields,
            store,
            acked_through=self.consumer.acked_through,
            fetched_through=lambda: self.consumer.last_fetched_sequence,
            on_stored=self._publish_live,
            clock=lambda: int(clock() * MICROS),
        )

    async def run(self) -> None:
        """Consume until cancelled (the hourly derivation runs beside it)."""
        hourly = asyncio.create_task(self.hourly.run(), name="monitoring.hourly")
        try:
            await self.consumer.run()
        finally:
            hourly.cancel()
            await asyncio.gather(hourly, return_exceptions=True)

    # -- the consumer's handler --------------------------------------------------------------

    def decode(self, msg: Msg) -> IngestBatch:
        return self.decoder.decode(msg)

    async def commit(self, items: Sequence[IngestBatch]) -> None:
        written = await self.store.write(items)
        stats = self.stats
        stats.batches_written += written.batches_written
        stats.batches_skipped += written.batches_skipped
        stats.readings_written += written.readings_written
        self.hourly.stored(written.written)
        await self._publish_live(written.written)
        if self.on_stored is not None:
            self.on_stored(stats)

    def is_transient(self, error: Exception) -> bool:
        return isinstance(error, StoreUnavailable)

    async def _publish_live(self, batches: Sequence[IngestBatch]) -> None:
        if self.live is not None:
            self.live.publish(batches)
        if self.fanout is not None:
            await self.fanout.publish(batches)
