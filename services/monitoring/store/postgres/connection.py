"""What the PostgreSQL store's reads and writes share: the asyncpg pool, opened and migrated
by :class:`PostgresStoreBase`, the connections a write takes (each with its staging table),
how driver errors become store errors, and the cache of series ids.

Migrations run under a transaction-scoped advisory lock keyed by the schema
(:data:`MIGRATION_LOCK`), so replicas starting together migrate once.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from smartcity.runtime.storage.postgres import PostgresDatabase
from smartcity.services.monitoring.store import common
from smartcity.services.monitoring.store.base import TimeSeriesStore
from smartcity.services.monitoring.store.postgres import statements as sql

MIGRATION_LOCK = 0x534D_4D31
"""First key of the advisory lock migrations hold; the second is a hash of the schema."""


class PostgresStoreBase(TimeSeriesStore):
    """The database of a :class:`~smartcity.services.monitoring.store.postgres.PostgresStore`:
    its pool and lifecycle, and the series ids it knows."""

    def __init__(
        self,
        url: str,
        *,
        min_connections: int = 1,
        max_connections: int = 10,
        command_timeout: float = 60.0,
    ) -> None:
        self._database = PostgresDatabase(
            url,
            min_connections=min_connections,
            max_connections=max_connections,
            command_timeout=command_timeout,
        )
        self.url = self._database.url
        self._series: dict[tuple[str, str, str], dict[str, int]] = {}
        self._staged: set[int] = set()
        """Server processes (connections) whose staging table exists."""
        self._migrations = common.load_migrations("postgres")

    # -- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        await self._database.open(self._migrations, MIGRATION_LOCK)
        try:
            with self._errors():
                await self._load_series()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        await self._database.close()
        self._series.clear()
        self._staged.clear()

    async def _load_series(self) -> None:
        async with self._connection() as conn:
            rows = await conn.fetch("SELECT id, field, site, device, metric FROM series")
        for series_id, field, site, device, metric in rows:
            self._series.setdefault((field, site, device), {})[metric] = series_id

    # -- plumbing -------------------------------------------------------------------------

    def _errors(self) -> contextlib.AbstractContextManager[None]:
        return self._database.errors()

    def _connection(self) -> Any:
        return self._database.connection()

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        return await self._database.fetch(sql, *args)

    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection for a write: one with the staging table
        (:data:`~.statements.STAGE`), made on its first write."""
        async with self._connection() as conn:
            backend = conn.get_server_pid()
            if backend not in self._staged:
                await conn.execute(sql.CREATE_STAGE)
                self._staged.add(backend)
            yield conn

    async def ping(self) -> None:
        await self._fetch("SELECT 1")

    async def schema_version(self) -> int:
        return await self._database.schema_version()
