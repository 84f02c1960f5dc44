"""The records service's own vocabulary, free of protobuf and of any database.

Times are integers of microseconds since the Unix epoch below the gRPC layer, as in the
other services. Record data is plain JSON (dicts, lists, str, int, float, bool, None) in its
canonical form (:func:`smartcity.services.records.schemas.canonical`): a whole number is an
``int`` however it arrived, so that equal documents compare, hash and search alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, TypeVar

MICROS = 1_000_000
DAY = 24 * 3600 * MICROS

T = TypeVar("T")


class EventType(StrEnum):
    """What a version did; the ``<event>`` token of ``city.records.<type>.<event>``."""

    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"


@dataclass(frozen=True, slots=True)
class Actor:
    """A principal as records remember it: who wrote a version, who owns a record."""

    id: str
    kind: str = ""
    """``citizen``, ``staff``, ``device``, ``service``; empty when unknown."""


@dataclass(frozen=True, slots=True)
class RecordVersion:
    """One version of a record, as stored: the latest one or any earlier one."""

    id: str
    type: str
    field: str
    owner: Actor
    version: int
    data: Mapping[str, Any] | None
    """``None`` in a tombstone."""
    deleted: bool
    schema_version: int
    create_time: int
    update_time: int
    created_by: Actor
    updated_by: Actor
    reason: str


@dataclass(frozen=True, slots=True)
class Change:
    """A new version to append, and what must hold for it to be appended.

    ``expected_version`` is the record's latest version (0: the record must not exist).
    ``request_key`` makes a create idempotent: a second create with the same key returns the
    record the first one made. The store writes the version, the record's latest state, its
    search keys and the outbox event in one transaction, or nothing."""

    version: RecordVersion
    expected_version: int
    event: EventType
    event_id: str
    keys: Sequence[tuple[str, str]] = ()
    """``(path, text value)`` of the type's indexed paths, for searches by value."""
    request_key: str | None = None
    purge_after: int | None = None
    """For a tombstone: when the retention period ends and the record is purged."""
    text: str | None = None
    """``version.data``'s text (:func:`~smartcity.services.records.schemas.encode`) when the
    writer has it already; the store encodes the data itself otherwise."""


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    """What one :class:`Change` came to: ``version`` is what the store holds for it (the
    earlier record when its request key was seen before, ``repeated`` then)."""

    version: RecordVersion
    repeated: bool = False


class VersionConflict(Exception):  # noqa: N818 - named for the state, like the others
    """The record's latest version is not the one a change expected (or it exists already
    when a create expected none): a concurrent writer came first."""

    def __init__(self, record_id: str, expected: int, actual: int) -> None:
        super().__init__(f"record {record_id}: expected version {expected}, found {actual}")
        self.record_id = record_id
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """A committed change waiting to be published; ``sequence`` orders the outbox."""

    sequence: int
    event_id: str
    event: EventType
    record_id: str
    type: str
    field: str
    owner: Actor
    version: int
    actor: Actor
    reason: str
    time: int


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """A read of a sensitive record: who, what, when and why."""

    time: int
    actor: Actor
    record_id: str
    version: int
    action: str
    reason: str


class Order(StrEnum):
    UPDATE_TIME = "update_time"
    CREATE_TIME = "create_time"


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """Latest versions matching every set filter. ``types`` limits to the types the caller
    may search (``None``: any); ``owner`` to one owner; ``equals`` are ``(dotted path, text)``
    conditions, ``words`` case-insensitive substrings of any text value."""

    types: frozenset[str] | None = None
    owner: str | None = None
    equals: Sequence[tuple[str, str]] = ()
    indexed: frozenset[str] = frozenset()
    """Which of ``equals``' paths have search keys (a condition on them uses the index)."""
    words: Sequence[str] = ()
    updated_from: int | None = None
    updated_before: int | None = None
    order: Order = Order.UPDATE_TIME
    descending: bool = True
    include_deleted: bool = False
    public_types: frozenset[str] = frozenset()
    """Types any caller may read whoever owns them: with ``owner_or_public``, a record of
    these types matches even when another principal owns it."""
    owner_or_public: bool = False


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: Sequence[T]
    next_page_token: str | None = None


@dataclass(frozen=True, slots=True)
class ImportRow:
    """One row of a bulk import, parsed: ``number`` counts from 1 over the data rows."""

    number: int
    id: str | None
    type: str
    owner_id: str | None
    data: Mapping[str, Any]
    reason: str = ""


@dataclass
class ImportStats:
    """What an import did, counted per row."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    refused: int = 0
    skipped: int = 0
    """Rows before the resume point, imported by an earlier run."""
    errors: list[tuple[int, str]] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return self.created + self.updated + self.unchanged + self.refused + self.skipped
