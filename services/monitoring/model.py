"""The monitoring service's own vocabulary, free of protobuf and of any database.

The readings themselves (:class:`StoredReading`, :class:`IngestBatch`, :class:`Quality`) are
:mod:`smartcity.readings`'s, shared with the alerts service; they are named here too, as the
service's vocabulary includes them.

Times are integers of microseconds since the Unix epoch everywhere below the gRPC layer:
exact, cheap to compare and to bucket, and the same in SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, NamedTuple, TypeVar

from smartcity.readings.model import MICROS as MICROS
from smartcity.readings.model import IngestBatch as IngestBatch
from smartcity.readings.model import Quality as Quality
from smartcity.readings.model import StoredReading as StoredReading

MINUTE = 60 * MICROS
HOUR = 60 * MINUTE

T = TypeVar("T")


class Aggregation(StrEnum):
    AVG = "avg"
    MIN = "min"
    MAX = "max"
    LAST = "last"
    COUNT = "count"
    SUM = "sum"


class DeviceState(StrEnum):
    UNKNOWN = "unknown"
    ONLINE = "online"
    STALE = "stale"
    OFFLINE = "offline"


class SeriesKey(NamedTuple):
    """One time series: a metric of a device. A named tuple: live streams build one per
    reading they deliver."""

    field: str
    site: str
    device: str
    metric: str


@dataclass(frozen=True, slots=True)
class Selector:
    """Which series a query is about; ``None`` (or empty) matches anything."""

    field: str | None = None
    site: str | None = None
    device: str | None = None
    metric: str | None = None

    def matches(self, key: SeriesKey) -> bool:
        return (
            (not self.field or self.field == key.field)
            and (not self.site or self.site == key.site)
            and (not self.device or self.device == key.device)
            and (not self.metric or self.metric == key.metric)
        )


@dataclass(frozen=True, slots=True)
class WriteStats:
    batches_written: int
    """``len(written)``."""
    batches_skipped: int
    """Batches already stored earlier (redelivered): nothing of them was written again."""
    readings_written: int
    written: Sequence[IngestBatch] = ()
    """The batches of this call that were stored now, in call order: what live streams
    publish, so that a batch delivered twice reaches them once."""


@dataclass(frozen=True, slots=True)
class LatestValue:
    key: SeriesKey
    unit: str
    value: float | None
    quality: Quality
    reason: str
    time: int
    sequence: int


@dataclass(frozen=True, slots=True)
class RangeQuery:
    selector: Selector
    start: int
    end: int
    """Exclusive."""
    step: int
    """Bucket width in µs; buckets are aligned to multiples of ``step`` since the epoch."""
    aggregation: Aggregation
    page_size: int = 100
    """Series per page."""
    page_token: str | None = None


@dataclass(frozen=True, slots=True)
class Bucket:
    start: int
    value: float
    count: int
    """GOOD readings that went into ``value``."""


@dataclass(frozen=True, slots=True)
class SeriesRange:
    key: SeriesKey
    unit: str
    buckets: Sequence[Bucket]


@dataclass(frozen=True, slots=True)
class RangeResult:
    series: Sequence[SeriesRange]
    resolution: int
    """0 when computed from raw points; else the roll-up's bucket width (µs)."""
    next_page_token: str | None


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    field: str
    site: str
    device: str
    agent_id: str
    first_seen: int
    last_seen: int
    poll_interval: int
    """Estimated from the spacing of its batches (µs); 0 until two batches were seen."""
    last_sequence: int
    metrics: Sequence[str]


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: Sequence[T]
    next_page_token: str | None = None


@dataclass(frozen=True, slots=True)
class Retention:
    """How long each resolution is kept, in µs (0 keeps forever)."""

    raw: int = 30 * 24 * HOUR
    minute: int = 180 * 24 * HOUR
    hour: int = 5 * 365 * 24 * HOUR


@dataclass(frozen=True, slots=True)
class RetentionStats:
    raw_deleted: int
    minute_deleted: int
    hour_deleted: int
    batch_ids_deleted: int = 0
    extra: dict[str, int] = field(default_factory=dict)
