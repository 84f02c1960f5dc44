"""Stores that run the same SQL on both backends: the lifecycle and the transaction frame
each backend gives them, so a service writes only its statements.

Statements use PostgreSQL's numbered parameters (``$1``); on SQLite they become ``?1``
(:func:`numbered`), which SQLite reads the same way. A SQLite transaction holds the writer
connection from ``BEGIN IMMEDIATE`` to ``COMMIT`` (excluding every other writer, of this
process and of any other on the file), with an asyncio lock keeping other coroutines'
statements out of it; a PostgreSQL transaction holds one pooled connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
from collections.abc import AsyncIterator, Sequence
from functools import lru_cache
from typing import Any

import asyncpg

from smartcity.runtime.storage.migrations import load_migrations
from smartcity.runtime.storage.postgres import PostgresDatabase
from smartcity.runtime.storage.sqlite import SqliteDatabase

__all__ = ["PostgresBacked", "SqliteBacked", "fetch_all", "numbered"]

_PARAMETER = re.compile(r"\$(\d+)")


@lru_cache(maxsize=256)
def numbered(sql: str) -> str:
    """``$1`` → ``?1``: SQLite's numbered parameters."""
    return _PARAMETER.sub(r"?\1", sql)


def fetch_all(db: sqlite3.Connection, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
    return db.execute(numbered(sql), args).fetchall()


class SqliteBacked:
    """A store on one SQLite file, its migrations in package ``migrations``."""

    def __init__(self, url: str, *, name: str, migrations: str) -> None:
        self._database = SqliteDatabase(url, name=name)
        self.url = self._database.url
        self._lock = asyncio.Lock()
        self._migrations = load_migrations(migrations)

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
        return await self._database.read(fetch_all, sql, args)

    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[SqliteDatabase]:
        """The writer connection inside one transaction: committed when the block ends,
        rolled back when it raises."""
        database = self._database
        async with self._lock:
            await database.in_writer(lambda: database.db.execute("BEGIN IMMEDIATE"))
            try:
                yield database
            except BaseException:
                # Shielded: a cancelled caller must still leave the connection out of the
                # transaction, or the next one would fail to begin.
                await asyncio.shield(database.in_writer(lambda: database.db.execute("ROLLBACK")))
                raise
            await database.in_writer(lambda: database.db.execute("COMMIT"))


class PostgresBacked:
    """A store in PostgreSQL, its migrations in package ``migrations`` run under the advisory
    lock ``migration_lock`` (so replicas starting together migrate once)."""

    def __init__(
        self, url: str, *, migrations: str, migration_lock: int, max_connections: int = 10
    ) -> None:
        self._database = PostgresDatabase(url, max_connections=max_connections)
        self.url = self._database.url
        self._migrations = load_migrations(migrations)
        self._migration_lock = migration_lock

    async def open(self) -> None:
        await self._database.open(self._migrations, self._migration_lock)

    async def close(self) -> None:
        await self._database.close()

    async def ping(self) -> None:
        await self._database.fetch("SELECT 1")

    async def schema_version(self) -> int:
        return await self._database.schema_version()

    async def _query(self, sql: str, *args: Any) -> Sequence[Sequence[Any]]:
        return await self._database.fetch(sql, *args)

    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection inside one transaction, store errors told apart."""
        with self._database.errors():
            async with self._database.connection() as conn, conn.transaction():
                yield conn
