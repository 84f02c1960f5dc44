"""PostgreSQL, the scale-out backend: an asyncpg pool shared by every replica of a service.

:class:`PostgresDatabase` owns the pool and the translation of failures: :func:`unavailable`
tells what a retry may cure (a lost connection, a server out of resources or shutting down)
from what it cannot, by exception class and SQLSTATE class, and no message carries the
password. Migrations run under a transaction-scoped advisory lock keyed by the service and the
schema, so replicas starting together migrate once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from smartcity.runtime.storage.errors import StoreError, StoreUnavailable, error_chain, mask_url
from smartcity.runtime.storage.migrations import Migration, newer_schema_error

STALE_RETRIES = 10
"""Attempts at a statement whose pooled connection the server ended while it was idle
(asyncpg answers "another operation is in progress" before sending anything, so another
connection is tried): as many as the pool holds, since an administrator may end them all."""

CONNECTION_LOST = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InternalClientError,
)
DATABASE_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OverflowError,  # an integer past 64 bits, refused by the binary encoding
    *CONNECTION_LOST,
)

_UNAVAILABLE_CLASSES = frozenset({"08", "40", "53", "57", "58"})
"""SQLSTATE classes a retry may cure: 08 connection exception, 40 transaction rollback
(serialization failure, deadlock), 53 insufficient resources (disk full, out of memory, too
many connections), 57 operator intervention (shutting down, starting, statement timeout or
cancel), 58 system error (I/O)."""


def unavailable(error: BaseException) -> bool:
    """Whether ``error`` means the database cannot do it now but may later
    (:class:`~.errors.StoreUnavailable`), rather than that it refuses this data or this setup
    (a constraint, a value, a password, a missing table). Server errors are told by their
    SQLSTATE class; without one, what fails on the way to the server is transient: the
    socket (``OSError``: refused, reset, unreachable), a timeout, a connection closed in the
    middle of an operation, or asyncpg's ``InternalClientError`` ("another operation is in
    progress"), which a pooled connection that the server ended while idle answers its next
    statement with. The whole :func:`~.errors.error_chain` counts: leaving a transaction on
    a connection just lost raises an ``InterfaceError`` of its own on top of the loss."""
    for link in error_chain(error):
        if isinstance(link, asyncpg.PostgresError):
            if str(getattr(link, "sqlstate", None) or "")[:2] in _UNAVAILABLE_CLASSES:
                return True
        elif isinstance(link, CONNECTION_LOST):
            return True
    return False


async def migrate(
    conn: asyncpg.Connection, migrations: Sequence[Migration], where: str, lock: int
) -> None:
    """Bring the schema to the newest of ``migrations`` inside the caller's transaction,
    under the advisory lock ``(lock, hash of the current schema)``."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext(coalesce(current_schema(), '')))", lock
    )
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
        "name text NOT NULL, applied_at bigint NOT NULL)"
    )
    version = await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations")
    if version > len(migrations):
        raise newer_schema_error(version, len(migrations), where)
    for migration in migrations[version:]:
        await conn.execute(migration.sql)
        await conn.execute(
            "INSERT INTO schema_migrations(version, name, applied_at) VALUES ($1, $2, $3)",
            migration.version,
            migration.name,
            time.time_ns() // 1000,
        )


class PostgresDatabase:
    """An asyncpg pool for one service's tables.

    The URL goes to asyncpg as it is; its query parameters that are not connection options
    (``search_path``, ``application_name`` …) become server settings of every connection.
    """

    def __init__(
        self,
        url: str,
        *,
        min_connections: int = 1,
        max_connections: int = 10,
        command_timeout: float = 60.0,
    ) -> None:
        if not url.startswith(("postgresql://", "postgres://")):
            raise StoreError(
                f"{url.split(':', 1)[0]!r} is not a PostgreSQL URL: use "
                "postgresql://user@host:5432/database"
            )
        self._dsn = url
        self.url = mask_url(url)
        password = urlsplit(url).password
        self._secret = password if password and len(password) >= 3 else None
        self._pool_options = {
            "min_size": min_connections,
            "max_size": max_connections,
            "command_timeout": command_timeout,
        }
        self._pool: asyncpg.Pool | None = None

    @property
    def is_open(self) -> bool:
        return self._pool is not None

    async def open(self, migrations: Sequence[Migration], lock: int) -> None:
        """Connect and migrate; ``lock`` keys the advisory lock of this service's schema."""
        if self._pool is not None:
            raise StoreError(f"{self.url} is already open")
        try:
            self._pool = await asyncpg.create_pool(self._dsn, **self._pool_options)
        except (*DATABASE_ERRORS, ValueError) as exc:
            kind = StoreUnavailable if unavailable(exc) else StoreError
            raise kind(f"cannot connect to {self.url}: {self.scrub(exc)}") from None
        try:
            with self.errors():
                async with self.connection() as conn, conn.transaction():
                    await migrate(conn, migrations, self.url, lock)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    def scrub(self, error: BaseException) -> str:
        """The text of ``error`` without the password."""
        text = str(error) or type(error).__name__
        return text.replace(self._secret, "***") if self._secret else text

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        """Database failures inside become :class:`~.errors.StoreError` or
        :class:`~.errors.StoreUnavailable`."""
        try:
            yield
        except DATABASE_ERRORS as exc:
            kind = StoreUnavailable if unavailable(exc) else StoreError
            raise kind(f"{self.url}: {self.scrub(exc)}") from exc

    def connection(self) -> Any:
        """``async with db.connection() as conn``: a pooled connection."""
        if self._pool is None:
            raise StoreUnavailable(f"{self.url} is not open")
        return self._pool.acquire()

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """One statement's rows, on another pooled connection if the first one was stale."""
        with self.errors():
            for attempt in range(1, STALE_RETRIES + 1):
                try:
                    async with self.connection() as conn:
                        return await conn.fetch(sql, *args)
                except asyncpg.InternalClientError:
                    if attempt == STALE_RETRIES:
                        raise
            raise AssertionError("unreachable")

    async def schema_version(self) -> int:
        rows = await self.fetch("SELECT coalesce(max(version), 0) FROM schema_migrations")
        return int(rows[0][0])
