"""Values defined on hourly means (VN_AQI), derived once per device and hour, from stored data.

A field plugin whose ``derive`` takes ``hourly`` gets, once per completed hour of each
device, the device's hourly means over the last day. Three things make that hard to get
right, and this module is where they are handled:

* **Only complete hours.** An hour is complete once every message published before the
  device's first reading of the next hour is stored, by whichever replica took it. When a
  stored batch shows a device entering a new hour, a job is queued for the hours that just
  completed, tagged with the highest stream sequence this replica had fetched; it runs once
  the consumer's acknowledgement floor (JetStream's "everything up to here is acknowledged",
  shared by every replica) has passed that sequence. After an outage the backlog is replayed
  in order and every hour comes out as if there had been none.
* **Exactly once.** What a job derives is written as a batch of its own, with the id
  ``hourly/<site>/<device>/<hour end>`` and without touching the device registry; storage
  keeps a batch id once, so when two replicas derive the same hour, one of them is stored.
  A job first asks storage which of its hours are already there and skips them.
* **Nothing forgotten across restarts.** Jobs live in memory; a replica that meets a device
  for the first time since it started also looks at the day before the device's reading,
  and derives the hours with data that have no stored result yet.

An hour in which the device stored no reading of its own is not derived.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from smartcity.fields import FieldHost, HourlyHistory
from smartcity.readings.decode import derived_readings
from smartcity.runtime.logs import get_logger
from smartcity.services.monitoring.model import HOUR, MICROS, IngestBatch
from smartcity.services.monitoring.store.base import StoreError, TimeSeriesStore

__all__ = ["HourlyDeriver", "hourly_batch_id"]

_log = get_logger(__name__)

POLL_SECONDS = 0.2
"""How often the acknowledgement floor is asked for while jobs wait for it."""
DeviceKey = tuple[str, str, str]


def hourly_batch_id(site: str, device: str, hour_end: int) -> str:
    stamp = datetime.fromtimestamp(hour_end / MICROS, UTC).strftime("%Y-%m-%dT%H")
    return f"hourly/{site}/{device}/{stamp}"


@dataclass
class _Job:
    after_sequence: int
    hour_ends: set[int] = field(default_factory=set)


@dataclass
class HourlyStats:
    hours_derived: int = 0
    hours_skipped: int = 0
    """Hours already stored (by another replica or an earlier run) or without data."""
    failures: int = 0


class HourlyDeriver:
    """Queues and runs the hourly ``derive`` calls of one replica."""

    def __init__(
        self,
        fields: FieldHost,
        store: TimeSeriesStore,
        *,
        acked_through: Callable[[], Awaitable[int]],
        fetched_through: Callable[[], int],
        on_stored: Callable[[Sequence[IngestBatch]], Coroutine[object, object, None]] | None = None,
        clock: Callable[[], int],
    ) -> None:
        self.fields = fields
        self.store = store
        self.acked_through = acked_through
        self.fetched_through = fetched_through
        self.on_stored = on_stored
        self.clock = clock
        self.stats = HourlyStats()
        self._fields = {item.id for item in fields if item.derive_reads_hourly}
        self._hour: dict[DeviceKey, int] = {}
        self._measured: dict[DeviceKey, set[str]] = {}
        self._jobs: dict[DeviceKey, _Job] = {}
        self._queued = asyncio.Event()

    @property
    def pending(self) -> int:
        """Hours queued and not yet derived."""
        return sum(len(job.hour_ends) for job in self._jobs.values())

    def stored(self, batches: Sequence[IngestBatch]) -> None:
        """Note the device batches a write just made durable; queue the hours they close."""
        for batch in batches:
            if batch.field not in self._fields or not batch.from_device:
                continue
            own = [r for r in batch.readings if not r.derived]
            if not own:
                continue
            key = (batch.field, batch.site, batch.device)
            self._measured.setdefault(key, set()).update(r.metric for r in own)
            hour = max(r.time for r in own) // HOUR * HOUR
            previous = self._hour.get(key)
            if previous is None:
                # First sight since this replica started: look back a day for hours whose
                # result is missing (a restart may have lost their jobs).
                previous = hour - HourlyHistory.HOURS * HOUR
            if hour <= previous:
                continue
            self._hour[key] = hour
            job = self._jobs.get(key)
            if job is None:
                job = self._jobs[key] = _Job(self.fetched_through())
            else:
                job.after_sequence = max(job.after_sequence, self.fetched_through())
            start = max(previous, hour - HourlyHistory.HOURS * HOUR)
            job.hour_ends.update(range(start + HOUR, hour + 1, HOUR))
            self._queued.set()

    async def run(self) -> None:
        """Run jobs as their hours become complete, until cancelled."""
        while True:
            await self._queued.wait()
            floor = await self.acked_through()
            due = [key for key, job in self._jobs.items() if job.after_sequence <= floor]
            for key in due:
                job = self._jobs.pop(key)
                try:
                    await self._derive(key, sorted(job.hour_ends))
                except StoreError as exc:  # storage away: the hours wait for it
                    self.stats.failures += 1
                    _log.warning("hourly derive failed; trying again", device=key, error=str(exc))
                    self._requeue(key, job)
                    await asyncio.sleep(1.0)
                except Exception:  # the plugin, or a bug: these hours are skipped, not retried
                    self.stats.failures += 1
                    _log.exception("hourly derive failed; its hours are skipped", device=key)
            if not self._jobs:
                self._queued.clear()
            else:
                await asyncio.sleep(POLL_SECONDS)

    def _requeue(self, key: DeviceKey, job: _Job) -> None:
        current = self._jobs.get(key)
        if current is None:
            self._jobs[key] = job
        else:
            current.hour_ends |= job.hour_ends

    async def _derive(self, key: DeviceKey, hour_ends: list[int]) -> None:
        field_id, site, device = key
        ids = {end: hourly_batch_id(site, device, end) for end in hour_ends}
        stored = await self.store.has_batches([(field_id, ids[end]) for end in hour_ends])
        todo = [end for end in hour_ends if (field_id, ids[end]) not in stored]
        self.stats.hours_skipped += len(hour_ends) - len(todo)
        if not todo:
            return
        span = HourlyHistory.HOURS + (todo[-1] - todo[0]) // HOUR
        means = await self.store.hourly_means(field_id, site, device, todo[-1], span)
        measured = self._measured.get(key, set())
        field = self.fields[field_id]
        batches = []
        for end in todo:
            offset = (todo[-1] - end) // HOUR
            window = {
                metric: row[len(row) - offset - HourlyHistory.HOURS : len(row) - offset]
                for metric, row in means.items()
            }
            if not any(window[m][-1] is not None for m in measured if m in window):
                self.stats.hours_skipped += 1  # the device stored nothing of its own then
                continue
            history = HourlyHistory(
                hour_end=datetime.fromtimestamp(end / MICROS, UTC),
                means={
                    m: values for m, values in window.items() if any(v is not None for v in values)
                },
            )
            derived = field.derive(site, device, [], hourly=history)
            if not derived:
                continue
            readings = derived_readings(field.metrics, derived, end // HOUR)
            batches.append(
                IngestBatch(
                    batch_id=ids[end],
                    field=field_id,
                    site=site,
                    device=device,
                    agent_id="",
                    readings=readings,
                    received=self.clock(),
                    from_device=False,
                )
            )
        if not batches:
            return
        written = await self.store.write(batches)
        self.stats.hours_derived += len(written.written)
        self.stats.hours_skipped += len(batches) - len(written.written)
        if self.on_stored is not None and written.written:
            await self.on_stored(written.written)
