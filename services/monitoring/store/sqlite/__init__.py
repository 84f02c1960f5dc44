"""The embedded backend: one SQLite file in WAL mode, shared by the service and its readers.

Threads: every write runs in one dedicated writer thread that owns the only writing
connection, so writes are serialised without locks and the event loop never waits on disk;
reads run in a small pool of reader threads, each with its own connection (WAL lets them
read while the writer writes). SQLite releases the GIL while it works, so the database work
of a write can overlap what the event loop does meanwhile; but each return from SQLite must
take the GIL back, which waits up to a switch interval while the loop is busy
(:data:`smartcity.readings.decode.INGEST_SWITCH_INTERVAL` in ingest), so a write runs as
few, large statements (see :class:`~.statements.Bulk`).

Durability: ``synchronous=NORMAL`` (default) survives a crash of the process, which is what
acknowledging JetStream messages needs; add ``?synchronous=FULL`` to the URL to survive
power loss too, at the cost of an fsync per write.

Errors: :func:`unavailable` tells what a retry may cure (a lock held past the busy timeout,
a full or failing disk) from what it cannot.

Where things are:

- :mod:`.connection`: the file, its connections and threads, opening (migrations) and
  closing, the settings of every connection, the cache of series ids;
- :mod:`.writes`: the write path and retention; :mod:`.statements`: the statements it runs;
- :mod:`.reads`: every query;
- the schema: the migrations in ``store/migrations/sqlite``.
"""

from __future__ import annotations

from smartcity.runtime.storage.sqlite import sqlite_path as sqlite_path
from smartcity.runtime.storage.sqlite import unavailable as unavailable
from smartcity.services.monitoring.store.sqlite.connection import (
    CHECKPOINT_PAGES as CHECKPOINT_PAGES,
)
from smartcity.services.monitoring.store.sqlite.connection import WAL_SIZE_LIMIT as WAL_SIZE_LIMIT
from smartcity.services.monitoring.store.sqlite.reads import SqliteReads
from smartcity.services.monitoring.store.sqlite.statements import CHUNK_ROWS as CHUNK_ROWS
from smartcity.services.monitoring.store.sqlite.writes import RETENTION_CHUNK as RETENTION_CHUNK
from smartcity.services.monitoring.store.sqlite.writes import SqliteWrites


class SqliteStore(SqliteWrites, SqliteReads):
    """Time series in one SQLite file (see the module docstring). ``busy_timeout`` is how
    long (seconds) a statement waits for another process's lock before it fails as
    :class:`~smartcity.services.monitoring.store.base.StoreUnavailable`."""
