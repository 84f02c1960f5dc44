"""Readings as services receive them from the TELEMETRY stream: checked, with a verdict.

Times are integers of microseconds since the Unix epoch: exact, cheap to compare and to
bucket, and the same in SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

__all__ = ["MICROS", "IngestBatch", "Quality", "StoredReading"]

MICROS = 1_000_000


class Quality(IntEnum):
    """Stored as the ``smartcity.common.v1.Quality`` numbers, so no mapping is needed."""

    UNSPECIFIED = 0
    GOOD = 1
    BAD = 2
    UNCERTAIN = 3
    STALE = 4


class StoredReading(NamedTuple):
    """One reading as ingest hands it to storage, already validated.

    ``time`` is the measurement time (source time when the device gave one, else read
    time). ``value`` is None for a reading without a usable value (BAD). Aggregates and
    roll-ups use GOOD readings only; every reading is kept raw with its quality and reason.
    A named tuple: ingest builds hundreds of thousands a second.
    """

    metric: str
    unit: str
    value: float | None
    quality: Quality
    reason: str
    time: int
    sequence: int
    derived: bool = False


@dataclass(frozen=True, slots=True)
class IngestBatch:
    """The readings of one batch, the unit of idempotence: storage keeps a ``(field,
    batch_id)`` once, so a redelivered batch changes nothing. The id is unique within its
    field only: two fields may well name batches alike."""

    batch_id: str
    field: str
    site: str
    device: str
    agent_id: str
    readings: Sequence[StoredReading]
    received: int
    """When monitoring received the batch (µs); drives last-seen and device health."""
    from_device: bool = True
    """False for a batch the service derives itself (hourly VN_AQI values, say, under an id
    such as ``hourly/<site>/<device>/<hour>``): its id still gates it, so a value that two
    replicas compute is stored once, and its readings are stored as any others; but it
    leaves the device registry alone, since its received time and sequence say nothing
    about how the device polls."""
