"""The embedded backend: one SQLite file (WAL), through the runtime's writer and reader
threads (:class:`~smartcity.runtime.storage.sqlite.SqliteDatabase`).

A transaction holds the writer connection from ``BEGIN IMMEDIATE`` to ``COMMIT``, which
excludes every other writer (of this process and of any other on the file): partition and
event locks are therefore no-ops here. An asyncio lock keeps another coroutine's statements
out of an open transaction.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from smartcity.runtime.storage.backed import SqliteBacked, fetch_all, numbered
from smartcity.runtime.storage.sqlite import SqliteDatabase
from smartcity.services.alerts.store.base import AlertStore
from smartcity.services.alerts.store.writes import Transaction

__all__ = ["SqliteAlertStore"]


class _Transaction(Transaction):
    def __init__(self, database: SqliteDatabase) -> None:
        self._database = database

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return await self._database.in_writer(lambda: fetch_all(self._database.db, sql, args))

    async def execute(self, sql: str, *args: Any) -> None:
        await self._database.in_writer(lambda: self._database.db.execute(numbered(sql), args))

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            await self._database.in_writer(
                lambda: self._database.db.executemany(numbered(sql), rows)
            )

    async def lock(self, number: int) -> None:
        return None  # BEGIN IMMEDIATE already excludes every other writer


class SqliteAlertStore(SqliteBacked, AlertStore):
    def __init__(self, url: str) -> None:
        super().__init__(
            url, name="alerts", migrations="smartcity.services.alerts.store.migrations.sqlite"
        )

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Transaction]:
        async with self._writing() as database:
            yield _Transaction(database)
