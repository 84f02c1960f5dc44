"""The embedded backend: one SQLite file (WAL), through the runtime's writer and reader
threads (:class:`~smartcity.runtime.storage.sqlite.SqliteDatabase`).

A transaction holds the writer connection from ``BEGIN IMMEDIATE`` to ``COMMIT``, which
excludes every other writer (of this process and of any other on the file): partition and
event locks are therefore no-ops here. An asyncio lock keeps another coroutine's statements
out of an open transaction.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Sequence
from typing import Any

from smartcity.runtime.storage.backed import SqliteBacked, fetch_all, numbered
from smartcity.runtime.storage.sqlite import SqliteDatabase
from smartcity.services.alerts.store.base import AlertStore
from smartcity.services.alerts.store.transaction import Query, Transaction

__all__ = ["SqliteAlertStore"]


_Writes = list[tuple[str, Sequence[Sequence[Any]]]]
"""Statements and their rows of arguments, waiting to run."""


class _Transaction(Transaction):
    """Statements go to the writer thread together: the writes wait for the transaction's
    next read or its end and run with it, so an evaluation costs a thread hop for its
    reads and one for its writes rather than one per statement."""

    def __init__(self, database: SqliteDatabase) -> None:
        self._database = database
        self._pending: _Writes = []

    async def fetch(self, sql: str, *args: Any) -> Sequence[Sequence[Any]]:
        return (await self.fetch_many([(sql, args)]))[0]

    async def fetch_many(self, queries: Sequence[Query]) -> list[Sequence[Sequence[Any]]]:
        pending, self._pending = self._pending, []
        db = self._database.db

        def run() -> list[Sequence[Sequence[Any]]]:
            _write(db, pending)
            return [fetch_all(db, sql, args) for sql, args in queries]

        return await self._database.in_writer(run)

    async def execute(self, sql: str, *args: Any) -> None:
        self._pending.append((sql, [args]))

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._pending.append((sql, rows))

    async def flush(self) -> None:
        """Run the writes still waiting."""
        if self._pending:
            pending, self._pending = self._pending, []
            db = self._database.db
            await self._database.in_writer(lambda: _write(db, pending))

    async def lock(self, number: int) -> None:
        return None  # BEGIN IMMEDIATE already excludes every other writer


def _write(
    db: sqlite3.Connection, statements: Sequence[tuple[str, Sequence[Sequence[Any]]]]
) -> None:
    for sql, rows in statements:
        if len(rows) == 1:
            db.execute(numbered(sql), rows[0])
        else:
            db.executemany(numbered(sql), rows)


class SqliteAlertStore(SqliteBacked, AlertStore):
    def __init__(self, url: str) -> None:
        super().__init__(
            url, name="alerts", migrations="smartcity.services.alerts.store.migrations.sqlite"
        )

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Transaction]:
        async with self._writing() as database:
            tx = _Transaction(database)
            yield tx
            await tx.flush()
