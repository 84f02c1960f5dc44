"""The monitoring service's own vocabulary, free of protobuf and of any database.

Times are integers of microseconds since the Unix epoch everywhere below the gRPC layer:
exact, cheap to compare and to bucket, and the same in SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Generic, NamedTuple, TypeVar

MICROS = 1_000_000
MINUTE = 60 * MICROS
HOUR = 60 * MINUTE

T = TypeVar("T")


class Quality(IntEnum):
    """Stored as the ``smartcity.common.v1.Quality`` numbers, so no mapping is needed."""

    UNSPECIFIED = 0
    GOOD = 1
    BAD = 2
    UNCERTAIN = 3
    STALE = 4


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
