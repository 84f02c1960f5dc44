"""The one interface both records backends implement.

Two backends, chosen by URL: ``sqlite:///path/records.db`` (embedded, WAL) and
``postgresql://user@host/db`` (scale-out; replicas share it). Both keep the same tables:

* ``records``: the latest version of each record (what reads, searches and the version
  precondition of an update look at);
* ``record_versions``: every version ever written, append-only (a trigger refuses updates);
  retention is the only thing that removes rows, those of records deleted longer ago than
  the retention period;
* ``record_keys``: the values of each type's indexed paths, for searches by value;
* ``outbox``: one event per committed change, written in the change's own transaction, so
  that an event exists exactly for the changes that committed; the publisher removes it
  once JetStream has it;
* ``access_audit``: reads of sensitive records (append-only);
* ``imports``: how many rows of each bulk import have committed, in the rows' transaction.

Failures are the runtime's storage errors (:mod:`smartcity.runtime.storage.errors`); a
change whose precondition fails is :class:`~smartcity.services.records.model.VersionConflict`
and rolls back everything written with it.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

from smartcity.runtime.storage.base import Store
from smartcity.runtime.storage.errors import InvalidQuery as InvalidQuery
from smartcity.runtime.storage.errors import StoreError
from smartcity.runtime.storage.errors import StoreUnavailable as StoreUnavailable
from smartcity.runtime.storage.urls import backend_of
from smartcity.services.records.model import (
    AuditEntry,
    Change,
    OutboxEvent,
    RecordVersion,
    SearchQuery,
    WriteOutcome,
)


class RecordStore(Store):
    """Async storage of the records service."""

    @abc.abstractmethod
    async def write(
        self, changes: Sequence[Change], *, checkpoint: tuple[str, int] | None = None
    ) -> list[WriteOutcome]:
        """Append ``changes`` in order, in one transaction, with their latest state, search
        keys and outbox events, and ``checkpoint`` (import id, rows done) if given; all or
        nothing. A change whose record is not at ``expected_version`` raises
        :class:`~smartcity.services.records.model.VersionConflict`; a create whose request
        key was used before returns that earlier record's first version, ``repeated``."""

    @abc.abstractmethod
    async def latest(self, ids: Sequence[str]) -> dict[str, RecordVersion]:
        """The latest version (tombstones included) of each of ``ids`` that exists."""

    @abc.abstractmethod
    async def version(self, record_id: str, version: int) -> RecordVersion | None: ...

    @abc.abstractmethod
    async def history(
        self, record_id: str, *, limit: int, before: int | None = None
    ) -> list[RecordVersion]:
        """Versions of a record, newest first, below version ``before`` if given; at most
        ``limit``."""

    @abc.abstractmethod
    async def search(
        self, query: SearchQuery, *, limit: int, token: str | None = None
    ) -> tuple[list[RecordVersion], str | None]:
        """Latest versions matching ``query``, one page, and the token of the next."""

    @abc.abstractmethod
    async def audit(self, entries: Sequence[AuditEntry]) -> None:
        """Append reads of sensitive records to the access audit (committed on return)."""

    @abc.abstractmethod
    async def audit_log(self, record_id: str) -> list[AuditEntry]:
        """The audited reads of a record, oldest first."""

    @abc.abstractmethod
    async def pending_events(self, limit: int) -> list[OutboxEvent]:
        """Outbox events not yet published, oldest first."""

    @abc.abstractmethod
    async def events_published(self, sequences: Sequence[int]) -> None:
        """Remove published events from the outbox."""

    @abc.abstractmethod
    async def import_progress(self, import_id: str) -> int:
        """Rows of the import committed so far (0 for a new import)."""

    @abc.abstractmethod
    async def purge(self, now: int, *, limit: int = 1000) -> int:
        """Remove every row of up to ``limit`` deleted records whose retention ended before
        ``now``; how many records were purged."""

    @abc.abstractmethod
    async def count(self, type_name: str | None = None) -> int:
        """Records (latest versions, tombstones included), of one type if given."""


def open_store(url: str) -> RecordStore:
    """The backend for ``url`` (not yet opened)."""
    try:
        backend = backend_of(url, "records")
    except ValueError as exc:
        raise StoreError(str(exc)) from None
    if backend == "sqlite":
        from smartcity.services.records.store.sqlite import SqliteRecordStore

        return SqliteRecordStore(url)
    from smartcity.services.records.store.postgres import PostgresRecordStore

    return PostgresRecordStore(url)
