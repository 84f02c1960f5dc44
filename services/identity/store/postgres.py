"""The scale-out backend: PostgreSQL through the runtime's asyncpg pool
(:class:`~smartcity.runtime.storage.postgres.PostgresDatabase`), shared by every replica.
Migrations run under an advisory lock of their own, so replicas starting together migrate
once."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg

from smartcity.runtime.storage.backed import PostgresBacked
from smartcity.services.identity.store.base import Conflict, Transaction
from smartcity.services.identity.store.interface import IdentityStore

MIGRATION_LOCK = 0x534D_4931
"""First key of the advisory lock identity's migrations hold ("SMI1")."""


def _changed(status: str) -> int:
    """Rows changed, from a command status such as ``UPDATE 3``."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class _Transaction(Transaction):
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: Any) -> Sequence[Sequence[Any]]:
        return await self._conn.fetch(sql, *args)

    async def execute(self, sql: str, *args: Any) -> int:
        try:
            return _changed(await self._conn.execute(sql, *args))
        except asyncpg.UniqueViolationError as exc:
            raise Conflict(f"taken already ({exc.constraint_name})") from exc


class PostgresIdentityStore(PostgresBacked, IdentityStore):
    def __init__(self, url: str) -> None:
        super().__init__(
            url,
            migrations="smartcity.services.identity.store.migrations.postgres",
            migration_lock=MIGRATION_LOCK,
        )

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Transaction]:
        async with self._writing() as conn:
            yield _Transaction(conn)
