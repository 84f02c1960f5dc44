"""What the SQLite store's reads and writes share: the file and its connections (the writer
thread's and the readers', see :class:`~smartcity.runtime.storage.sqlite.SqliteDatabase`),
opened and migrated by :class:`SqliteStoreBase`, the settings of every connection, and the
cache of series ids.

The WAL is checkpointed every :data:`CHECKPOINT_PAGES` pages rather than SQLite's 1000, since
one write of a few hundred batches alone dirties more than that (see :mod:`.writes`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from smartcity.runtime.storage.sqlite import BUSY_TIMEOUT, SqliteDatabase
from smartcity.services.monitoring.store import common
from smartcity.services.monitoring.store.base import StoreError, TimeSeriesStore

T = TypeVar("T")

CHECKPOINT_PAGES = 10_000
"""WAL pages (4 KiB) after which a commit checkpoints; the WAL file is cut back to
:data:`WAL_SIZE_LIMIT` bytes afterwards."""
WAL_SIZE_LIMIT = 64 * 1024 * 1024


class SqliteStoreBase(TimeSeriesStore):
    """The database of a :class:`~smartcity.services.monitoring.store.sqlite.SqliteStore`:
    its lifecycle, the threads its reads and writes run in, and the series ids it knows."""

    def __init__(self, url: str, *, readers: int = 2, busy_timeout: float = BUSY_TIMEOUT) -> None:
        self._sqlite = SqliteDatabase(
            url, name="monitoring", readers=readers, busy_timeout=busy_timeout
        )
        self.url = self._sqlite.url
        self.path = self._sqlite.path
        self._series: dict[tuple[str, str, str], dict[str, int]] = {}
        self._fresh: list[tuple[tuple[str, str, str], list[str]]] = []
        self._generation = 0
        """Bumped when a rolled-back write forgets series ids it had cached."""
        self._migrations = common.load_migrations("sqlite")

    # -- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        await self._sqlite.open(self._migrations, self._prepare_connection)
        try:
            await self._in_writer(self._load_series)
        except BaseException:
            await self.close()
            raise

    def _prepare_connection(self, db: sqlite3.Connection) -> None:
        db.execute("PRAGMA cache_size=-65536")
        db.execute("PRAGMA temp_store=MEMORY")
        db.execute(f"PRAGMA wal_autocheckpoint={CHECKPOINT_PAGES}")
        db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        try:
            db.execute("SELECT json_array()")
        except sqlite3.OperationalError:
            raise StoreError(
                f"this SQLite ({sqlite3.sqlite_version}) lacks the JSON functions the "
                "monitoring store needs"
            ) from None

    def _load_series(self) -> None:
        for series_id, field, site, device, metric in self._db.execute(
            "SELECT id, field, site, device, metric FROM series"
        ):
            self._series.setdefault((field, site, device), {})[metric] = series_id

    @property
    def _db(self) -> sqlite3.Connection:
        return self._sqlite.db

    async def close(self) -> None:
        await self._sqlite.close()
        self._series.clear()

    # -- plumbing -------------------------------------------------------------------------

    async def _in_writer(self, function: Callable[..., T], *args: Any) -> T:
        return await self._sqlite.in_writer(function, *args)

    async def _read(self, function: Callable[..., T], *args: Any) -> T:
        return await self._sqlite.read(function, *args)

    async def ping(self) -> None:
        await self._sqlite.ping()

    async def schema_version(self) -> int:
        return await self._sqlite.schema_version()
