"""What both backends share: the column lists, rows to and from the model, and the search
query built once for either SQL dialect."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from smartcity.runtime.storage import migrations
from smartcity.runtime.storage.migrations import Migration
from smartcity.runtime.storage.paging import decode_page_token, encode_page_token
from smartcity.services.records.model import (
    Actor,
    AuditEntry,
    Change,
    EventType,
    Order,
    OutboxEvent,
    RecordVersion,
    SearchQuery,
)
from smartcity.services.records.schemas import encode

VERSION_COLUMNS = (
    "id",
    "type",
    "field",
    "owner_id",
    "owner_kind",
    "version",
    "deleted",
    "schema_version",
    "data",
    "create_time",
    "update_time",
    "created_by",
    "created_by_kind",
    "updated_by",
    "updated_by_kind",
    "reason",
)
RECORD_COLUMNS = (*VERSION_COLUMNS, "request_key", "purge_after")
_KEPT_ON_UPDATE = {"id", "create_time", "created_by", "created_by_kind", "request_key"}
SELECT_VERSION = ", ".join(VERSION_COLUMNS)
OUTBOX_COLUMNS = (
    "event_id",
    "event",
    "record_id",
    "type",
    "field",
    "owner_id",
    "owner_kind",
    "version",
    "actor_id",
    "actor_kind",
    "reason",
    "time",
)
AUDIT_COLUMNS = ("time", "actor_id", "actor_kind", "record_id", "version", "action", "reason")

PAGE_KIND = "records.search"


def load_migrations(backend: str) -> list[Migration]:
    """The migrations shipped for ``backend`` (``sqlite`` or ``postgres``)."""
    return migrations.load_migrations(f"smartcity.services.records.store.migrations.{backend}")


def upsert_record_sql(placeholders: Sequence[str]) -> str:
    """``INSERT INTO records … ON CONFLICT (id) DO UPDATE``: the latest state follows the new
    version; what version 1 fixed (creation, request key) stays."""
    updates = ", ".join(
        f"{column} = excluded.{column}"
        for column in RECORD_COLUMNS
        if column not in _KEPT_ON_UPDATE
    )
    return (
        f"INSERT INTO records ({', '.join(RECORD_COLUMNS)}) VALUES ({', '.join(placeholders)}) "
        f"ON CONFLICT (id) DO UPDATE SET {updates}"
    )


def data_text(change: Change) -> str | None:
    """The text a change's data is stored as (``None`` for a tombstone)."""
    if change.text is not None:
        return change.text
    data = change.version.data
    return None if data is None else encode(data)


def version_row(version: RecordVersion, data: str | None) -> tuple[Any, ...]:
    return (
        version.id,
        version.type,
        version.field,
        version.owner.id,
        version.owner.kind,
        version.version,
        version.deleted,
        version.schema_version,
        data,
        version.create_time,
        version.update_time,
        version.created_by.id,
        version.created_by.kind,
        version.updated_by.id,
        version.updated_by.kind,
        version.reason,
    )


def record_row(change: Change, data: str | None) -> tuple[Any, ...]:
    return (*version_row(change.version, data), change.request_key, change.purge_after)


def outbox_row(change: Change) -> tuple[Any, ...]:
    version = change.version
    return (
        change.event_id,
        change.event.value,
        version.id,
        version.type,
        version.field,
        version.owner.id,
        version.owner.kind,
        version.version,
        version.updated_by.id,
        version.updated_by.kind,
        version.reason,
        version.update_time,
    )


def audit_row(entry: AuditEntry) -> tuple[Any, ...]:
    return (
        entry.time,
        entry.actor.id,
        entry.actor.kind,
        entry.record_id,
        entry.version,
        entry.action,
        entry.reason,
    )


def to_version(row: Sequence[Any]) -> RecordVersion:
    """A row of :data:`VERSION_COLUMNS`; the data is JSON text in both backends."""
    data = row[8]
    return RecordVersion(
        id=row[0],
        type=row[1],
        field=row[2],
        owner=Actor(row[3], row[4]),
        version=int(row[5]),
        deleted=bool(row[6]),
        schema_version=int(row[7]),
        data=None if data is None else json.loads(data),
        create_time=int(row[9]),
        update_time=int(row[10]),
        created_by=Actor(row[11], row[12]),
        updated_by=Actor(row[13], row[14]),
        reason=row[15],
    )


def to_event(row: Sequence[Any]) -> OutboxEvent:
    """A row of ``sequence`` and :data:`OUTBOX_COLUMNS`."""
    return OutboxEvent(
        sequence=int(row[0]),
        event_id=row[1],
        event=EventType(row[2]),
        record_id=row[3],
        type=row[4],
        field=row[5],
        owner=Actor(row[6], row[7]),
        version=int(row[8]),
        actor=Actor(row[9], row[10]),
        reason=row[11],
        time=int(row[12]),
    )


def to_audit(row: Sequence[Any]) -> AuditEntry:
    return AuditEntry(
        time=int(row[0]),
        actor=Actor(row[1], row[2]),
        record_id=row[3],
        version=int(row[4]),
        action=row[5],
        reason=row[6],
    )


# -- search ----------------------------------------------------------------------------------


class Dialect:
    """How one SQL dialect spells what a search needs; ``args`` collects the parameters."""

    def __init__(self) -> None:
        self.args: list[Any] = []

    def param(self, value: Any) -> str:
        raise NotImplementedError

    def any_of(self, column: str, values: Sequence[str]) -> str:
        raise NotImplementedError

    def equals_at(self, path: str, value: str) -> str:
        """The JSON value at dotted ``path`` of ``data``, spelled as JSON (strings bare), is
        ``value``."""
        raise NotImplementedError

    def has_word(self, word: str) -> str:
        """Some string value of ``data`` contains ``word`` (lower case) ignoring case."""
        raise NotImplementedError


def search_sql(query: SearchQuery, dialect: Dialect, limit: int, token: str | None) -> str:
    """The statement of one page of ``query`` (``limit`` rows, after ``token``).

    Ordered by update time with a condition on an indexed path, the search is driven by
    that path's keys, which carry the update time of the record's latest version: the index
    ``(path, value, update_time, record_id)`` yields the matching records in page order, so
    a page reads about as many keys as it returns, whether the value is rare (one school of
    a thousand) or common (every open ticket)."""
    conditions: list[str] = []
    p = dialect.param
    column = "update_time" if query.order is Order.UPDATE_TIME else "create_time"
    driving = next(
        (item for item in query.equals if item[0] in query.indexed and column == "update_time"),
        None,
    )
    source = "records"
    order_by = f"records.{column}", "records.id"
    if driving is not None:
        source = "record_keys AS k JOIN records ON records.id = k.record_id"
        conditions.append(f"k.path = {p(driving[0])} AND k.value = {p(driving[1])}")
        order_by = "k.update_time", "k.record_id"
    if query.types is not None:
        conditions.append(dialect.any_of("records.type", sorted(query.types)))
    if query.owner_or_public:
        public = ""
        if query.public_types:
            public = dialect.any_of("records.type", sorted(query.public_types))
        mine = f"records.owner_id = {p(query.owner or '')}"
        conditions.append(f"({mine} OR {public})" if public else mine)
    elif query.owner is not None:
        conditions.append(f"records.owner_id = {p(query.owner)}")
    if not query.include_deleted:
        conditions.append(f"records.deleted = {p(False)}")
    for path, value in query.equals:
        if (path, value) == driving:
            continue
        if path in query.indexed:
            conditions.append(
                "records.id IN (SELECT record_id FROM record_keys "
                f"WHERE path = {p(path)} AND value = {p(value)})"
            )
        else:
            conditions.append(dialect.equals_at(path, value))
    for word in query.words:
        conditions.append(dialect.has_word(word.lower()))
    if query.updated_from is not None:
        conditions.append(f"records.update_time >= {p(query.updated_from)}")
    if query.updated_before is not None:
        conditions.append(f"records.update_time < {p(query.updated_before)}")
    after = decode_page_token(token, PAGE_KIND, 2)
    if after is not None:
        try:
            at = int(after[0])
        except ValueError:
            at = 0
        compare = "<" if query.descending else ">"
        conditions.append(f"({order_by[0]}, {order_by[1]}) {compare} ({p(at)}, {p(after[1])})")
    direction = "DESC" if query.descending else "ASC"
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    columns = ", ".join(f"records.{name}" for name in VERSION_COLUMNS)
    return (
        f"SELECT {columns} FROM {source} {where} "
        f"ORDER BY {order_by[0]} {direction}, {order_by[1]} {direction} LIMIT {p(limit + 1)}"
    )


def search_page(
    rows: Sequence[Sequence[Any]], limit: int, query: SearchQuery
) -> tuple[list[RecordVersion], str | None]:
    """The versions of one page (the statement fetched one more row) and the next token."""
    versions = [to_version(row) for row in rows[:limit]]
    if len(rows) <= limit:
        return versions, None
    last = versions[-1]
    at = last.update_time if query.order is Order.UPDATE_TIME else last.create_time
    return versions, encode_page_token(PAGE_KIND, [str(at), last.id])
