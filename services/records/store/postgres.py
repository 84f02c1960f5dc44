"""The scale-out backend: PostgreSQL through the runtime's asyncpg pool, shared by replicas.

A write is one transaction of a few statements however many changes it holds: the records'
rows are locked (``SELECT … FOR UPDATE``) and their versions checked, then the versions and
the outbox events go in by binary ``COPY`` and the latest states, search keys and import
checkpoint by ``unnest`` statements. Two writers of one record serialise on its row lock,
and the second then finds the version moved on: exactly one of two updates from the same
version wins. Two creates of one id meet on ``record_versions``' primary key instead.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import asyncpg

from smartcity.runtime.storage.postgres import PostgresDatabase
from smartcity.services.records.model import (
    AuditEntry,
    Change,
    OutboxEvent,
    RecordVersion,
    SearchQuery,
    VersionConflict,
    WriteOutcome,
)
from smartcity.services.records.store import common
from smartcity.services.records.store.base import RecordStore

MIGRATION_LOCK = 0x5245_4331
"""First key of the advisory lock migrations hold; the second is a hash of the schema."""

_RECORD_TYPES = (
    "text",
    "text",
    "text",
    "text",
    "text",
    "bigint",
    "boolean",
    "integer",
    "jsonb",
    "bigint",
    "bigint",
    "text",
    "text",
    "text",
    "text",
    "text",
    "text",
    "bigint",
)
_UPSERT_RECORDS = common.upsert_record_sql([]).split(" VALUES ")[0] + (
    " SELECT * FROM unnest("
    + ", ".join(f"${n}::{kind}[]" for n, kind in enumerate(_RECORD_TYPES, start=1))
    + ") ON CONFLICT (id) DO UPDATE SET "
    + common.upsert_record_sql([]).split(" DO UPDATE SET ")[1]
)
_CHECKPOINT = (
    "INSERT INTO imports(import_id, rows_done, update_time) VALUES ($1, $2, $3) "
    "ON CONFLICT (import_id) DO UPDATE SET rows_done = excluded.rows_done, "
    "update_time = excluded.update_time"
)


class _Dialect(common.Dialect):
    def param(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def any_of(self, column: str, values: Sequence[str]) -> str:
        return f"{column} = ANY({self.param(list(values))}::text[])"

    def equals_at(self, path: str, value: str) -> str:
        return f"(records.data #>> {self.param(path.split('.'))}::text[]) = {self.param(value)}"

    def has_word(self, word: str) -> str:
        return (
            "EXISTS (SELECT 1 FROM jsonb_path_query(records.data, 'strict $.**') AS v "
            "WHERE jsonb_typeof(v) = 'string' "
            f"AND strpos(lower(v #>> '{{}}'), {self.param(word)}) > 0)"
        )


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    return [[row[index] for row in rows] for index in range(width)]


async def _write(
    conn: asyncpg.Connection,
    changes: Sequence[Change],
    checkpoint: tuple[str, int] | None,
    now: int,
) -> list[WriteOutcome]:
    keys = [change.request_key for change in changes if change.request_key is not None]
    seen: dict[str, RecordVersion] = {}
    if keys:
        rows = await conn.fetch(
            f"SELECT r.request_key, {', '.join('v.' + c for c in common.VERSION_COLUMNS)} "
            "FROM records AS r JOIN record_versions AS v ON v.id = r.id AND v.version = 1 "
            "WHERE r.request_key = ANY($1::text[])",
            keys,
        )
        seen = {row[0]: common.to_version(tuple(row)[1:]) for row in rows}
    ids = sorted({change.version.id for change in changes})  # one lock order: no deadlocks
    current = {
        row[0]: int(row[1])
        for row in await conn.fetch(
            "SELECT id, version FROM records WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE",
            ids,
        )
    }
    outcomes: list[WriteOutcome] = []
    written: list[Change] = []
    for change in changes:
        version = change.version
        if change.request_key is not None and change.request_key in seen:
            outcomes.append(WriteOutcome(seen[change.request_key], repeated=True))
            continue
        actual = current.get(version.id, 0)
        if actual != change.expected_version:
            raise VersionConflict(version.id, change.expected_version, actual)
        current[version.id] = version.version
        written.append(change)
        outcomes.append(WriteOutcome(version))
    if not written and checkpoint is None:
        return outcomes
    data = [common.data_text(change) for change in written]
    last = {change.version.id: (change, text) for change, text in zip(written, data, strict=True)}
    try:
        if written:
            await conn.copy_records_to_table(
                "record_versions",
                records=[
                    common.version_row(change.version, text)
                    for change, text in zip(written, data, strict=True)
                ],
                columns=common.VERSION_COLUMNS,
            )
    except asyncpg.UniqueViolationError:
        first = written[0].version
        raise VersionConflict(first.id, written[0].expected_version, -1) from None
    if written:
        # Records new in this transaction (the bulk of an import) go in by COPY; the others
        # are upserted, and their old search keys replaced.
        new = {i for i, (change, _) in last.items() if change.expected_version == 0}
        fresh = [common.record_row(c, text) for i, (c, text) in last.items() if i in new]
        moved = [common.record_row(c, text) for i, (c, text) in last.items() if i not in new]
        if fresh:
            await conn.copy_records_to_table(
                "records", records=fresh, columns=common.RECORD_COLUMNS
            )
        if moved:
            await conn.execute(_UPSERT_RECORDS, *_columns(moved, len(common.RECORD_COLUMNS)))
            await conn.execute(
                "DELETE FROM record_keys WHERE record_id = ANY($1::text[])",
                [i for i in last if i not in new],
            )
        key_rows = [
            (path, value, change.version.update_time, change.version.id)
            for change, _ in last.values()
            for path, value in dict(change.keys).items()
        ]
        if key_rows:
            await conn.copy_records_to_table(
                "record_keys",
                records=key_rows,
                columns=("path", "value", "update_time", "record_id"),
            )
        await conn.copy_records_to_table(
            "outbox",
            records=[common.outbox_row(change) for change in written],
            columns=common.OUTBOX_COLUMNS,
        )
    if checkpoint is not None:
        await conn.execute(_CHECKPOINT, *checkpoint, now)
    return outcomes


class PostgresRecordStore(RecordStore):
    def __init__(self, url: str) -> None:
        self._db = PostgresDatabase(url)
        self.url = self._db.url

    async def open(self) -> None:
        await self._db.open(common.load_migrations("postgres"), MIGRATION_LOCK)

    async def close(self) -> None:
        await self._db.close()

    async def schema_version(self) -> int:
        return await self._db.schema_version()

    async def ping(self) -> None:
        await self._db.fetch("SELECT 1")

    async def write(
        self, changes: Sequence[Change], *, checkpoint: tuple[str, int] | None = None
    ) -> list[WriteOutcome]:
        now = time.time_ns() // 1000
        with self._db.errors():
            async with self._db.connection() as conn, conn.transaction():
                return await _write(conn, changes, checkpoint, now)

    async def latest(self, ids: Sequence[str]) -> dict[str, RecordVersion]:
        if not ids:
            return {}
        rows = await self._db.fetch(
            f"SELECT {common.SELECT_VERSION} FROM records WHERE id = ANY($1::text[])", list(ids)
        )
        return {row[0]: common.to_version(tuple(row)) for row in rows}

    async def version(self, record_id: str, version: int) -> RecordVersion | None:
        rows = await self._db.fetch(
            f"SELECT {common.SELECT_VERSION} FROM record_versions WHERE id = $1 AND version = $2",
            record_id,
            version,
        )
        return common.to_version(tuple(rows[0])) if rows else None

    async def history(
        self, record_id: str, *, limit: int, before: int | None = None
    ) -> list[RecordVersion]:
        rows = await self._db.fetch(
            f"SELECT {common.SELECT_VERSION} FROM record_versions WHERE id = $1 "
            "AND version < $2 ORDER BY version DESC LIMIT $3",
            record_id,
            before if before is not None else 2**62,
            limit,
        )
        return [common.to_version(tuple(row)) for row in rows]

    async def search(
        self, query: SearchQuery, *, limit: int, token: str | None = None
    ) -> tuple[list[RecordVersion], str | None]:
        dialect = _Dialect()
        sql = common.search_sql(query, dialect, limit, token)
        rows = await self._db.fetch(sql, *dialect.args)
        return common.search_page([tuple(row) for row in rows], limit, query)

    async def audit(self, entries: Sequence[AuditEntry]) -> None:
        with self._db.errors():
            async with self._db.connection() as conn:
                await conn.copy_records_to_table(
                    "access_audit",
                    records=[common.audit_row(entry) for entry in entries],
                    columns=common.AUDIT_COLUMNS,
                )

    async def audit_log(self, record_id: str) -> list[AuditEntry]:
        rows = await self._db.fetch(
            f"SELECT {', '.join(common.AUDIT_COLUMNS)} FROM access_audit WHERE record_id = $1 "
            "ORDER BY sequence",
            record_id,
        )
        return [common.to_audit(tuple(row)) for row in rows]

    async def pending_events(self, limit: int) -> list[OutboxEvent]:
        rows = await self._db.fetch(
            f"SELECT sequence, {', '.join(common.OUTBOX_COLUMNS)} FROM outbox "
            "ORDER BY sequence LIMIT $1",
            limit,
        )
        return [common.to_event(tuple(row)) for row in rows]

    async def events_published(self, sequences: Sequence[int]) -> None:
        await self._db.fetch("DELETE FROM outbox WHERE sequence = ANY($1::bigint[])", sequences)

    async def import_progress(self, import_id: str) -> int:
        rows = await self._db.fetch("SELECT rows_done FROM imports WHERE import_id = $1", import_id)
        return int(rows[0][0]) if rows else 0

    async def purge(self, now: int, *, limit: int = 1000) -> int:
        with self._db.errors():
            async with self._db.connection() as conn, conn.transaction():
                ids = [
                    row[0]
                    for row in await conn.fetch(
                        "SELECT id FROM records WHERE purge_after < $1 ORDER BY purge_after "
                        "LIMIT $2 FOR UPDATE SKIP LOCKED",
                        now,
                        limit,
                    )
                ]
                for table, column in (
                    ("record_versions", "id"),
                    ("record_keys", "record_id"),
                    ("records", "id"),
                ):
                    await conn.execute(f"DELETE FROM {table} WHERE {column} = ANY($1::text[])", ids)
        return len(ids)

    async def count(self, type_name: str | None = None) -> int:
        if type_name is None:
            rows = await self._db.fetch("SELECT count(*) FROM records")
        else:
            rows = await self._db.fetch("SELECT count(*) FROM records WHERE type = $1", type_name)
        return int(rows[0][0])
