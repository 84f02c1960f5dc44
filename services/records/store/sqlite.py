"""The embedded backend: one SQLite file in WAL mode (the runtime's :class:`SqliteDatabase`:
one writer thread, reader threads).

Every :meth:`SqliteRecordStore.write` is one ``BEGIN IMMEDIATE`` transaction in the writer
thread, so version checks and the writes after them cannot interleave with another writer,
in this process or another one on the same file.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from smartcity.runtime.storage.sqlite import SqliteDatabase, snapshot, transaction
from smartcity.services.records.model import (
    AuditEntry,
    Change,
    OutboxEvent,
    RecordVersion,
    SearchQuery,
    VersionConflict,
    WriteOutcome,
)
from smartcity.services.records.schemas import encode
from smartcity.services.records.store import common
from smartcity.services.records.store.base import RecordStore

_INSERT_VERSION = (
    f"INSERT INTO record_versions ({common.SELECT_VERSION}) "
    f"VALUES ({', '.join('?' * len(common.VERSION_COLUMNS))})"
)
_UPSERT_RECORD = common.upsert_record_sql(["?"] * len(common.RECORD_COLUMNS))
_INSERT_OUTBOX = (
    f"INSERT INTO outbox ({', '.join(common.OUTBOX_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(common.OUTBOX_COLUMNS))})"
)
_INSERT_AUDIT = (
    f"INSERT INTO access_audit ({', '.join(common.AUDIT_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(common.AUDIT_COLUMNS))})"
)
_CHECKPOINT = (
    "INSERT INTO imports(import_id, rows_done, update_time) VALUES (?, ?, ?) "
    "ON CONFLICT (import_id) DO UPDATE SET rows_done = excluded.rows_done, "
    "update_time = excluded.update_time"
)


class _Dialect(common.Dialect):
    def param(self, value: Any) -> str:
        self.args.append(value)
        return f"?{len(self.args)}"

    def any_of(self, column: str, values: Sequence[str]) -> str:
        return f"{column} IN (SELECT value FROM json_each({self.param(encode(list(values)))}))"

    def equals_at(self, path: str, value: str) -> str:
        where = self.param(f"$.{path}")
        spelled = (
            f"CASE json_type(records.data, {where}) "
            f"WHEN 'text' THEN json_extract(records.data, {where}) "
            f"WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' "
            f"ELSE json_quote(json_extract(records.data, {where})) END"
        )
        return f"({spelled}) = {self.param(value)}"

    def has_word(self, word: str) -> str:
        return (
            "EXISTS (SELECT 1 FROM json_tree(records.data) AS t WHERE t.type = 'text' "
            f"AND instr(lower(t.atom), {self.param(word)}) > 0)"
        )


def _write(
    db: sqlite3.Connection, changes: Sequence[Change], checkpoint: tuple[str, int] | None, now: int
) -> list[WriteOutcome]:
    outcomes = []
    with transaction(db):
        for change in changes:
            version = change.version
            if change.request_key is not None:
                seen = db.execute(
                    "SELECT id FROM records WHERE request_key = ?", (change.request_key,)
                ).fetchone()
                if seen is not None:
                    first = db.execute(
                        f"SELECT {common.SELECT_VERSION} FROM record_versions "
                        "WHERE id = ? AND version = 1",
                        (seen[0],),
                    ).fetchone()
                    outcomes.append(WriteOutcome(common.to_version(first), repeated=True))
                    continue
            row = db.execute("SELECT version FROM records WHERE id = ?", (version.id,)).fetchone()
            actual = 0 if row is None else int(row[0])
            if actual != change.expected_version:
                raise VersionConflict(version.id, change.expected_version, actual)
            data = common.data_text(change)
            db.execute(_INSERT_VERSION, common.version_row(version, data))
            db.execute(_UPSERT_RECORD, common.record_row(change, data))
            db.execute("DELETE FROM record_keys WHERE record_id = ?", (version.id,))
            db.executemany(
                "INSERT OR IGNORE INTO record_keys(path, value, update_time, record_id) "
                "VALUES (?, ?, ?, ?)",
                [(path, value, version.update_time, version.id) for path, value in change.keys],
            )
            db.execute(_INSERT_OUTBOX, common.outbox_row(change))
            outcomes.append(WriteOutcome(version))
        if checkpoint is not None:
            db.execute(_CHECKPOINT, (*checkpoint, now))
    return outcomes


def _fetch(db: sqlite3.Connection, sql: str, args: Sequence[Any]) -> list[Any]:
    with snapshot(db):
        return db.execute(sql, tuple(args)).fetchall()


def _purge(db: sqlite3.Connection, now: int, limit: int) -> int:
    with transaction(db):
        ids = [
            row[0]
            for row in db.execute(
                "SELECT id FROM records WHERE purge_after IS NOT NULL AND purge_after < ? "
                "ORDER BY purge_after LIMIT ?",
                (now, limit),
            )
        ]
        for table, column in (
            ("record_versions", "id"),
            ("record_keys", "record_id"),
            ("records", "id"),
        ):
            db.executemany(f"DELETE FROM {table} WHERE {column} = ?", [(item,) for item in ids])
    return len(ids)


class SqliteRecordStore(RecordStore):
    def __init__(self, url: str) -> None:
        self._db = SqliteDatabase(url, name="records")
        self.url = self._db.url

    async def open(self) -> None:
        await self._db.open(common.load_migrations("sqlite"), lambda db: None)

    async def close(self) -> None:
        await self._db.close()

    async def schema_version(self) -> int:
        return await self._db.schema_version()

    async def ping(self) -> None:
        await self._db.ping()

    async def write(
        self, changes: Sequence[Change], *, checkpoint: tuple[str, int] | None = None
    ) -> list[WriteOutcome]:
        now = time.time_ns() // 1000
        return await self._db.in_writer(lambda: _write(self._db.db, changes, checkpoint, now))

    async def _rows(self, sql: str, *args: Any) -> list[Any]:
        return await self._db.read(_fetch, sql, args)

    async def latest(self, ids: Sequence[str]) -> dict[str, RecordVersion]:
        if not ids:
            return {}
        rows = await self._rows(
            f"SELECT {common.SELECT_VERSION} FROM records "
            "WHERE id IN (SELECT value FROM json_each(?))",
            encode(list(ids)),
        )
        return {row[0]: common.to_version(row) for row in rows}

    async def version(self, record_id: str, version: int) -> RecordVersion | None:
        rows = await self._rows(
            f"SELECT {common.SELECT_VERSION} FROM record_versions WHERE id = ? AND version = ?",
            record_id,
            version,
        )
        return common.to_version(rows[0]) if rows else None

    async def history(
        self, record_id: str, *, limit: int, before: int | None = None
    ) -> list[RecordVersion]:
        rows = await self._rows(
            f"SELECT {common.SELECT_VERSION} FROM record_versions WHERE id = ? AND version < ? "
            "ORDER BY version DESC LIMIT ?",
            record_id,
            before if before is not None else 2**62,
            limit,
        )
        return [common.to_version(row) for row in rows]

    async def search(
        self, query: SearchQuery, *, limit: int, token: str | None = None
    ) -> tuple[list[RecordVersion], str | None]:
        dialect = _Dialect()
        sql = common.search_sql(query, dialect, limit, token)
        rows = await self._db.read(_fetch, sql, dialect.args)
        return common.search_page(rows, limit, query)

    async def audit(self, entries: Sequence[AuditEntry]) -> None:
        def append(db: sqlite3.Connection) -> None:
            with transaction(db):
                db.executemany(_INSERT_AUDIT, [common.audit_row(entry) for entry in entries])

        await self._db.in_writer(lambda: append(self._db.db))

    async def audit_log(self, record_id: str) -> list[AuditEntry]:
        rows = await self._rows(
            f"SELECT {', '.join(common.AUDIT_COLUMNS)} FROM access_audit WHERE record_id = ? "
            "ORDER BY sequence",
            record_id,
        )
        return [common.to_audit(row) for row in rows]

    async def pending_events(self, limit: int) -> list[OutboxEvent]:
        rows = await self._rows(
            f"SELECT sequence, {', '.join(common.OUTBOX_COLUMNS)} FROM outbox "
            "ORDER BY sequence LIMIT ?",
            limit,
        )
        return [common.to_event(row) for row in rows]

    async def events_published(self, sequences: Sequence[int]) -> None:
        def remove(db: sqlite3.Connection) -> None:
            with transaction(db):
                db.executemany("DELETE FROM outbox WHERE sequence = ?", [(s,) for s in sequences])

        await self._db.in_writer(lambda: remove(self._db.db))

    async def import_progress(self, import_id: str) -> int:
        rows = await self._rows("SELECT rows_done FROM imports WHERE import_id = ?", import_id)
        return int(rows[0][0]) if rows else 0

    async def purge(self, now: int, *, limit: int = 1000) -> int:
        return await self._db.in_writer(lambda: _purge(self._db.db, now, limit))

    async def count(self, type_name: str | None = None) -> int:
        if type_name is None:
            rows = await self._rows("SELECT count(*) FROM records")
        else:
            rows = await self._rows("SELECT count(*) FROM records WHERE type = ?", type_name)
        return int(rows[0][0])
