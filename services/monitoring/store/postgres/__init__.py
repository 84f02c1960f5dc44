"""The scale-out backend: PostgreSQL through an asyncpg pool, shared by every replica.

Points are one table with a btree primary key ``(series_id, time, sequence)`` and a BRIN
index on ``time``, not time partitions. The primary key answers every per-series query (the
series' points lie together in index order); the BRIN index is a few pages because points
arrive roughly in time order, and lets retention delete by time without a scan. Partitions
would turn retention into ``DROP TABLE``, but they need DDL on the write path (under a lock
shared by every replica), a policy for readings far from now (a clock reset sends a reading
to 1970), and a default partition that every new partition must then be checked against.
At the volume of one city that is not worth it: retention deletes one interval's worth of
points per run and autovacuum reuses the space. A later migration can still partition.

Migrations run under a transaction-scoped advisory lock keyed by the schema, so replicas
starting together migrate once. Names use ``COLLATE "C"`` so that listings sort as in
SQLite.

Errors: :func:`unavailable` tells what a retry may cure (a lost connection, a server out of
resources or shutting down) from what it cannot, by exception class and SQLSTATE class.

Where things are:

- :mod:`.connection`: the pool, opening (migrations) and closing, the connections a write
  takes, the cache of series ids;
- :mod:`.writes`: the write path and retention; :mod:`.statements`: the statements and
  copies it runs;
- :mod:`.reads`: every query;
- the schema: the migrations in ``store/migrations/postgres``.
"""

from __future__ import annotations

from smartcity.runtime.storage.postgres import unavailable as unavailable
from smartcity.services.monitoring.store.postgres.connection import (
    MIGRATION_LOCK as MIGRATION_LOCK,
)
from smartcity.services.monitoring.store.postgres.reads import PostgresReads
from smartcity.services.monitoring.store.postgres.writes import (
    DEADLOCK_RETRIES as DEADLOCK_RETRIES,
)
from smartcity.services.monitoring.store.postgres.writes import (
    RETENTION_TIMEOUT as RETENTION_TIMEOUT,
)
from smartcity.services.monitoring.store.postgres.writes import PostgresWrites


class PostgresStore(PostgresWrites, PostgresReads):
    """Time series in PostgreSQL (see the module docstring).

    The URL goes to asyncpg as it is; its query parameters that are not connection options
    (``search_path``, ``application_name`` …) become server settings of every connection.
    """
