"""The embedded backend: one SQLite file (WAL), through the runtime's writer and reader
threads (:class:`~smartcity.runtime.storage.sqlite.SqliteDatabase`).

A transaction holds the writer connection from ``BEGIN IMMEDIATE`` to ``COMMIT``; an asyncio
lock keeps another coroutine's statements out of it meanwhile, and each statement is one hop
to the writer thread. Identity writes a few rows per request, so the hops cost nothing that
matters next to an argon2 hash.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

from smartcity.runtime.storage.backed import SqliteBacked, fetch_all, numbered
from smartcity.runtime.storage.sqlite import SqliteDatabase
from smartcity.services.identity.store.base import Conflict, StoreError, Transaction
from smartcity.services.identity.store.interface import IdentityStore


class _Transaction(Transaction):
    def __init__(self, database: SqliteDatabase) -> None:
        self._database = database

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return await self._database.in_writer(lambda: fetch_all(self._database.db, sql, args))

    async def execute(self, sql: str, *args: Any) -> int:
        try:
            return await self._database.in_writer(
                lambda: self._database.db.execute(numbered(sql), args).rowcount
            )
        except StoreError as exc:
            cause = exc.__cause__
            if isinstance(cause, sqlite3.IntegrityError) and "UNIQUE" in str(cause):
                raise Conflict(f"taken already ({cause})") from exc
            raise


class SqliteIdentityStore(SqliteBacked, IdentityStore):
    def __init__(self, url: str) -> None:
        super().__init__(
            url, name="identity", migrations="smartcity.services.identity.store.migrations.sqlite"
        )

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Transaction]:
        async with self._writing() as database:
            yield _Transaction(database)
