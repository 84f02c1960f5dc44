"""The scale-out backend: PostgreSQL through the runtime's asyncpg pool
(:class:`~smartcity.runtime.storage.postgres.PostgresDatabase`), shared by every replica.

Partition and event locks are transaction-scoped advisory locks under :data:`LOCK_SPACE`,
released by the commit or rollback; migrations hold a lock of their own, so replicas
starting together migrate once.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg

from smartcity.runtime.storage.backed import PostgresBacked
from smartcity.services.alerts.store.base import AlertStore
from smartcity.services.alerts.store.transaction import Transaction

__all__ = ["PostgresAlertStore"]

MIGRATION_LOCK = 0x534D_4131
"""First key of the advisory lock the alerts migrations hold ("SMA1")."""
LOCK_SPACE = 0x534D_4132
"""First key of the partition and event locks ("SMA2")."""


class _Transaction(Transaction):
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: Any) -> Sequence[Sequence[Any]]:
        return await self._conn.fetch(sql, *args)

    async def execute(self, sql: str, *args: Any) -> None:
        await self._conn.execute(sql, *args)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            await self._conn.executemany(sql, rows)

    async def lock(self, number: int) -> None:
        await self._conn.execute("SELECT pg_advisory_xact_lock($1, $2)", LOCK_SPACE, number)

    async def lock_all(self, numbers: Sequence[int]) -> None:
        # One round trip; unnest yields the (ascending) array in order, so the locks are
        # taken in that order and two transactions never wait on each other in a circle.
        await self._conn.execute(
            "SELECT count(pg_advisory_xact_lock($1, number)) FROM unnest($2::int[]) AS number",
            LOCK_SPACE,
            list(numbers),
        )


class PostgresAlertStore(PostgresBacked, AlertStore):
    def __init__(self, url: str) -> None:
        super().__init__(
            url,
            migrations="smartcity.services.alerts.store.migrations.postgres",
            migration_lock=MIGRATION_LOCK,
        )

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Transaction]:
        async with self._writing() as conn:
            yield _Transaction(conn)
