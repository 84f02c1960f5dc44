"""The embedded backend: one SQLite file (WAL), through the runtime's writer and reader
threads (:class:`~smartcity.runtime.storage.sqlite.SqliteDatabase`).

A transaction holds the writer connection from ``BEGIN IMMEDIATE`` to ``COMMIT``, which
excludes every other writer (of this process and of any other on the file): partition and
event locks are therefore no-ops here. An asyncio lock keeps another coroutine's statements
out of an open transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
from collections.abc import AsyncIterator, Sequence
from functools import lru_cache
from typing import Any

from smartcity.runtime.storage.migrations import load_migrations
from smartcity.runtime.storage.sqlite import SqliteDatabase
from smartcity.services.alerts.store.base import AlertStore
from smartcity.services.alerts.store.writes import Transaction

__all__ = ["SqliteAlertStore"]

_PARAMETER = re.compile(r"\$(\d+)")


@lru_cache(maxsize=256)
def _sqlite(sql: str) -> str:
    """``$1`` → ``?1``: SQLite's numbered parameters."""
    return _PARAMETER.sub(r"?\1", sql)


def _fetch(db: sqlite3.Connection, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
    return db.execute(_sqlite(sql), args).fetchall()


class _Transaction(Transaction):
    def __init__(self, database: SqliteDatabase) -> None:
        self._database = database

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return await self._database.in_writer(lambda: _fetch(self._database.db, sql, args))

    async def execute(self, sql: str, *args: Any) -> None:
        await self._database.in_writer(lambda: self._database.db.execute(_sqlite(sql), args))

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            await self._database.in_writer(
                lambda: self._database.db.executemany(_sqlite(sql), rows)
            )

    async def lock(self, number: int) -> None:
        return None  # BEGIN IMMEDIATE already excludes every other writer


class SqliteAlertStore(AlertStore):
    def __init__(self, url: str) -> None:
        self._database = SqliteDatabase(url, name="alerts")
        self.url = self._database.url
        self._lock = asyncio.Lock()
        self._migrations = load_migrations("smartcity.services.alerts.store.migrations.sqlite")

    async def open(self) -> None:
        await self._database.open(self._migrations, lambda db: None)

    async def close(self) -> None:
        async with self._lock:
            await self._database.close()

    async def ping(self) -> None:
        await self._database.ping()

    async def schema_version(self) -> int:
        return await self._database.schema_version()

    async def _query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return await self._database.read(_fetch, sql, args)

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Transaction]:
        async with self._lock:
            await self._database.in_writer(lambda: self._database.db.execute("BEGIN IMMEDIATE"))
            try:
                yield _Transaction(self._database)
            except BaseException:
                # Shielded: a cancelled caller must still leave the connection out of the
                # transaction, or the next one would fail to begin.
                await asyncio.shield(
                    self._database.in_writer(lambda: self._database.db.execute("ROLLBACK"))
                )
                raise
            await self._database.in_writer(lambda: self._database.db.execute("COMMIT"))
