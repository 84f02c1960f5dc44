"""Live streams across replicas: a ``StreamReadings`` client sees what every replica stores,
and the fan-out costs nothing while nobody watches.

JetStream hands each telemetry batch to one replica, so a replica's own :class:`LiveHub` only
sees a share of the city. Replicas therefore tell each other what their live streams watch,
over core NATS:

* a replica whose hub has subscribers announces their device patterns (field, site, device,
  each possibly "any") on ``city.monitoring.watch``: at once when they change, then every
  few seconds while any remain, with a time to live so that a replica that died is
  forgotten; it announces an empty set when its last stream ends;
* after each durable write, a replica publishes on ``city.monitoring.live.<field>.<site>.
  <device>`` only the stored batches that some *other* replica announced interest in. With
  no announcement there is nothing to publish and nothing is encoded;
* a replica with subscribers listens on ``city.monitoring.live.>`` and hands what other
  replicas stored to its hub, which delivers it like its own.

A replica that starts asks the others to announce at once, instead of waiting for their
next round. What arrives here is checked like any input: a malformed announcement or batch
is ignored with a log line, never raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Sequence
from typing import Any

from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from smartcity.runtime import subjects
from smartcity.runtime.bus import Bus
from smartcity.runtime.cancellation import raise_if_cancelled
from smartcity.runtime.logs import get_logger
from smartcity.services.monitoring.live import (
    DevicePattern,
    LiveHub,
    Shape,
    pattern_shapes,
    patterns_of,
)
from smartcity.services.monitoring.model import MICROS, IngestBatch, Quality, StoredReading
from smartcity.telemetry.v1 import telemetry_pb2

__all__ = ["LiveFanout"]

_log = get_logger(__name__)

REPLICA_HEADER = "Smartcity-Replica"
ANNOUNCE_INTERVAL_SECONDS = 5.0
ANNOUNCE_TTL_SECONDS = 15.0
_QUALITIES = {int(member): member for member in Quality}


class LiveFanout:
    """One replica's side of the fan-out between monitoring replicas."""

    def __init__(self, bus: Bus, hub: LiveHub, *, replica: str | None = None) -> None:
        self.bus = bus
        self.hub = hub
        self.replica = replica or uuid.uuid4().hex[:12]
        self.published = 0
        """Batches sent to other replicas."""
        self.received = 0
        """Batches received from other replicas."""
        self._remote: dict[str, tuple[frozenset[DevicePattern], float]] = {}
        self._wanted: set[DevicePattern] = set()
        self._shapes: list[Shape] = []
        self._changed = asyncio.Event()
        self._watch: Subscription | None = None
        self._live: Subscription | None = None
        self._announced = False
        hub.on_change = self._changed.set

    async def run(self) -> None:
        """Listen for announcements, announce this replica's interest, until cancelled."""
        self._watch = await self.bus.subscribe(subjects.MONITORING_WATCH, self._on_watch)
        try:
            await self._send({"replica": self.replica, "query": True})  # others: announce now
            while True:
                raise_if_cancelled()  # a publish may have swallowed the request to stop
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(ANNOUNCE_INTERVAL_SECONDS):
                        await self._changed.wait()
                self._changed.clear()
                try:
                    await self._follow_local_interest()
                except Exception as exc:  # NATS away: streams see this replica's own readings
                    _log.warning("live fan-out could not follow interest", error=repr(exc))
                    self._changed.set()
                    await asyncio.sleep(ANNOUNCE_INTERVAL_SECONDS)
                self._forget_expired()
        finally:
            for subscription in (self._watch, self._live):
                if subscription is not None:
                    with contextlib.suppress(Exception):
                        await subscription.unsubscribe()
            self._watch = self._live = None
            if self._announced:
                await self._send({"replica": self.replica, "patterns": []})

    # -- what this replica stored, for the others -----------------------------------------

    @property
    def wanted_any(self) -> bool:
        """Whether any other replica watches anything now."""
        return bool(self._wanted)

    def wanted(self, batch: IngestBatch) -> bool:
        """Whether another replica watches the device of ``batch``."""
        wanted = self._wanted
        return any(
            pattern in wanted
            for pattern in patterns_of(batch.field, batch.site, batch.device, self._shapes)
        )

    async def publish(self, batches: Sequence[IngestBatch]) -> None:
        """Send the stored ``batches`` that other replicas watch; never raises."""
        if not self._wanted:
            return
        for batch in batches:
            if not self.wanted(batch):
                continue
            try:
                await self.bus.nc.publish(
                    subjects.live_subject(batch.field, batch.site, batch.device),
                    _encode(batch),
                    headers={REPLICA_HEADER: self.replica},
                )
            except Exception as exc:  # a live stream may miss a batch; storage has it
                _log.debug("live fan-out publish failed", error=repr(exc))
                return
            self.published += 1

    # -- announcements ----------------------------------------------------------------------

    async def _follow_local_interest(self) -> None:
        patterns = self.hub.patterns
        if patterns and self._live is None:
            self._live = await self.bus.subscribe(f"{subjects.MONITORING_LIVE}.>", self._on_live)
        elif not patterns and self._live is not None:
            with contextlib.suppress(Exception):
                await self._live.unsubscribe()
            self._live = None
        if not patterns and not self._announced:
            return  # an empty set is announced once, when the last stream ends
        self._announced = bool(patterns)
        await self._send(
            {
                "replica": self.replica,
                "patterns": [list(pattern) for pattern in sorted(patterns, key=str)],
                "ttl": ANNOUNCE_TTL_SECONDS,
            }
        )

    async def _send(self, announcement: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):  # NATS down: the next round announces again
            await self.bus.nc.publish(subjects.MONITORING_WATCH, json.dumps(announcement).encode())

    async def _on_watch(self, msg: Msg) -> None:
        try:
            announcement = json.loads(msg.data)
            replica = announcement["replica"]
            if not isinstance(replica, str) or not replica:
                raise ValueError("no replica id")
            if replica == self.replica:
                return
            if announcement.get("query") is True:
                self._changed.set()  # answer with our own interest, at once
                return
            patterns = frozenset(_pattern(item) for item in announcement["patterns"])
            ttl = float(announcement.get("ttl", ANNOUNCE_TTL_SECONDS))
        except (ValueError, TypeError, KeyError) as exc:
            _log.warning("ignored a malformed live-stream announcement", error=str(exc))
            return
        if patterns:
            self._remote[replica] = (patterns, time.monotonic() + max(ttl, 1.0))
        else:
            self._remote.pop(replica, None)
        self._reindex()

    def _forget_expired(self) -> None:
        now = time.monotonic()
        expired = [replica for replica, (_, until) in self._remote.items() if until < now]
        for replica in expired:
            del self._remote[replica]
        if expired:
            self._reindex()

    def _reindex(self) -> None:
        self._wanted = {pattern for patterns, _ in self._remote.values() for pattern in patterns}
        self._shapes = pattern_shapes(self._wanted)

    # -- what the others stored, for this replica's streams ----------------------------------

    async def _on_live(self, msg: Msg) -> None:
        if (msg.headers or {}).get(REPLICA_HEADER) == self.replica:
            return
        try:
            batch = _decode(msg.data)
        except (DecodeError, ValueError) as exc:
            _log.warning("ignored a malformed live batch", subject=msg.subject, error=str(exc))
            return
        self.received += 1
        self.hub.publish([batch])


def _pattern(item: Any) -> DevicePattern:
    if not isinstance(item, list) or len(item) != 3:
        raise ValueError(f"a pattern is [field, site, device], not {item!r}")
    parts = []
    for part, what in zip(item, ("field", "site", "device"), strict=True):
        if part is not None:
            subjects.token(part, what)
        parts.append(part)
    return (parts[0], parts[1], parts[2])


def _encode(batch: IngestBatch) -> bytes:
    message = telemetry_pb2.TelemetryBatch(
        field=batch.field,
        site=batch.site,
        device=batch.device,
        agent_id=batch.agent_id,
        batch_id=batch.batch_id,
    )
    for reading in batch.readings:
        item = message.readings.add(
            metric=reading.metric,
            unit=reading.unit,
            quality=int(reading.quality),  # type: ignore[arg-type]
            quality_reason=reading.reason,
            sequence=reading.sequence,
        )
        item.read_time.FromMicroseconds(reading.time)
        if reading.value is not None:
            item.value = reading.value
    return message.SerializeToString()


def _decode(data: bytes) -> IngestBatch:
    message = telemetry_pb2.TelemetryBatch.FromString(data)
    for part, what in (
        (message.field, "field"),
        (message.site, "site"),
        (message.device, "device"),
    ):
        subjects.token(part, what)
    readings = []
    for item in message.readings:
        quality = _QUALITIES.get(item.quality)
        if quality is None:
            raise ValueError(f"unknown quality {item.quality}")
        readings.append(
            StoredReading(
                item.metric,
                item.unit,
                item.value if item.HasField("value") else None,
                quality,
                item.quality_reason,
                item.read_time.seconds * MICROS + item.read_time.nanos // 1000,
                item.sequence,
            )
        )
    return IngestBatch(
        batch_id=message.batch_id,
        field=message.field,
        site=message.site,
        device=message.device,
        agent_id=message.agent_id,
        readings=readings,
        received=time.time_ns() // 1000,
    )
