"""The embedded backend: one SQLite file in WAL mode, shared by the service and its readers.

Threads: every write runs in one dedicated writer thread that owns the only writing
connection, so writes are serialised without locks and the event loop never waits on disk;
reads run in a small pool of reader threads, each with its own connection (WAL lets them
read while the writer writes). SQLite releases the GIL while it works, so the database work
of a write can overlap what the event loop does meanwhile; but each return from SQLite must
take the GIL back, which waits up to a switch interval (5 ms) while the loop is busy, so a
write runs as few, large statements (see :class:`_Bulk`).

Write path, per :meth:`SqliteStore.write` call (many batches, one transaction): the
``(field, batch_id)`` pairs already stored are looked up first (such a batch is skipped
whole) and the new ones inserted, then the points, then the latest values, roll-up
increments and device updates computed in :mod:`.common`, each as multi-row statements (see
:class:`_Bulk`).
``BEGIN IMMEDIATE`` takes the write lock up front, so two processes on one file serialise
instead of failing half-way, and the batch-id check cannot race. A point that is already
stored (same series, time and sequence, from another batch) is kept once and counted once
in the roll-ups.

What a write costs is mostly the b-tree pages it dirties: points, minute and hour roll-ups
are kept in series order (so a range query reads one contiguous run), which makes every
series touched by a transaction cost a page in each. Larger writes, with several readings
per series, are therefore cheaper per reading. The WAL is checkpointed every
:data:`CHECKPOINT_PAGES` pages rather than SQLite's 1000, since one write of a few hundred
batches alone dirties more than that.

A write whose caller is cancelled still runs to its end in the writer thread (a thread
cannot be interrupted): it commits or rolls back whole, and the caller, which never saw it
succeed, acknowledges nothing; the redelivered batches are then skipped by their ids.

Durability: ``synchronous=NORMAL`` (default) survives a crash of the process, which is what
acknowledging JetStream messages needs; add ``?synchronous=FULL`` to the URL to survive
power loss too, at the cost of an fsync per write.

Errors: :func:`unavailable` tells what a retry may cure (a lock held past the busy timeout,
a full or failing disk) from what it cannot.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache, partial
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

from smartcity.services.monitoring.model import (
    HOUR,
    MINUTE,
    Aggregation,
    DeviceRecord,
    IngestBatch,
    LatestValue,
    Page,
    RangeQuery,
    RangeResult,
    Retention,
    RetentionStats,
    Selector,
    SeriesKey,
    SeriesRange,
    WriteStats,
)
from smartcity.services.monitoring.store import common
from smartcity.services.monitoring.store.base import (
    StoreError,
    StoreUnavailable,
    TimeSeriesStore,
)

T = TypeVar("T")

MIN_SQLITE = (3, 37, 0)
"""STRICT tables; upserts, row values, window functions and JSON are older."""

BUSY_TIMEOUT = 30.0
"""Seconds a statement waits for another connection's lock before failing as busy."""
CHECKPOINT_PAGES = 10_000
"""WAL pages (4 KiB) after which a commit checkpoints; the WAL file is cut back to
:data:`WAL_SIZE_LIMIT` bytes afterwards."""
WAL_SIZE_LIMIT = 64 * 1024 * 1024
RETENTION_CHUNK = 200
"""Series per retention transaction: writes get the lock between chunks."""


def _placeholder(number: int) -> str:
    return f"?{number}"


def _named(number: int) -> str:
    return f":s{number}"


def sqlite_path(url: str) -> tuple[Path, str]:
    """The file and the ``synchronous`` level named by a ``sqlite:`` URL.

    ``sqlite:///relative/monitoring.db`` and ``sqlite:////absolute/monitoring.db``, as in
    SQLAlchemy. An in-memory database is refused: readers and other processes (the CLI,
    a second replica) must see the same data, and nothing would be durable.
    """
    form = "use sqlite:///relative/path.db or sqlite:////absolute/path.db"
    parts = urlsplit(url)
    if parts.scheme != "sqlite":
        raise StoreError(f"{url!r} is not a SQLite URL: {form}")
    if parts.netloc:
        raise StoreError(f"{url!r} names a host; a SQLite file is local: {form}")
    if not url.startswith("sqlite:///"):
        raise StoreError(f"{url!r} is not a SQLite URL: {form}")
    path = parts.path[1:]
    if not path or path.endswith("/"):
        raise StoreError(f"{url!r} names no file: {form}")
    if path == ":memory:" or "mode=memory" in parts.query:
        raise StoreError(
            f"{url!r}: an in-memory SQLite database is not supported; the service, its readers "
            f"and the CLI share one file, and it must outlive the process: {form}"
        )
    synchronous = "NORMAL"
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name == "synchronous" and value.upper() in ("NORMAL", "FULL"):
            synchronous = value.upper()
        else:
            raise StoreError(
                f"{url!r}: unknown option {name}={value!r}; the only option is "
                "synchronous=NORMAL|FULL"
            )
    return Path(path), synchronous


# -- Statements -----------------------------------------------------------------------------

CHUNK_ROWS = 4096
"""Rows per multi-row statement, unless SQLite's variable limit (32,766 by default) allows
fewer."""


class _Bulk:
    """An INSERT of many rows in few statements: ``VALUES (…), (…), …`` in chunks of
    :data:`CHUNK_ROWS`, the remainder in halving sizes, so about a dozen distinct
    statements exist per table and all stay prepared in the connection's cache.

    Not ``executemany``: it steps the statement once per row and gives up and re-takes the
    GIL around every step; while the event loop is busy decoding messages each re-take can
    wait a whole switch interval (5 ms), which starves the writer. A chunk hands the GIL over
    once, and binds faster besides.
    """

    def __init__(self, head: str, row: str, tail: str = "") -> None:
        self._head, self._row, self._tail = head, row, tail
        self._columns = row.count("?")
        self._sql: dict[int, str] = {}

    def sql(self, rows: int) -> str:
        text = self._sql.get(rows)
        if text is None:
            text = self._sql[rows] = self._head + ",".join([self._row] * rows) + self._tail
        return text

    def run(self, db: sqlite3.Connection, rows: Sequence[Sequence[Any]]) -> int:
        """Inserts ``rows``; returns how many rows the statements changed."""
        changed = done = 0
        size = min(CHUNK_ROWS, db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // self._columns)
        while done < len(rows):
            while size > len(rows) - done:
                size //= 2
            chunk = rows[done : done + size]
            changed += db.execute(self.sql(size), list(chain.from_iterable(chunk))).rowcount
            done += size
        return changed


# Each pair is one primary key search; ``->>`` would need SQLite 3.38.
_EXISTING_BATCHES = (
    "SELECT field, batch_id FROM batches WHERE (field, batch_id) IN (SELECT "
    "json_extract(j.value, '$[0]'), json_extract(j.value, '$[1]') FROM json_each(?) AS j)"
)
_BATCHES = _Bulk("INSERT INTO batches(field, batch_id, received) VALUES ", "(?, ?, ?)")

_POINTS = _Bulk(
    "INSERT INTO points(series_id, time, sequence, value, quality, reason) VALUES ",
    "(?, ?, ?, ?, ?, ?)",
    " ON CONFLICT DO NOTHING",
)

_PLAIN_POINTS = _Bulk(
    "INSERT INTO points(series_id, time, sequence, value, quality, reason) "
    f"SELECT column1, column2, column3, column4, {common.GOOD}, NULL FROM (VALUES ",
    "(?, ?, ?, ?)",
    ") WHERE true ON CONFLICT DO NOTHING",
)

_LATEST = _Bulk(
    "INSERT INTO latest(series_id, time, sequence, value, quality, reason) VALUES ",
    "(?, ?, ?, ?, ?, ?)",
    """
ON CONFLICT (series_id) DO UPDATE SET
    time = excluded.time, sequence = excluded.sequence, value = excluded.value,
    quality = excluded.quality, reason = excluded.reason
WHERE (excluded.time, excluded.sequence) > (latest.time, latest.sequence)""",
)


def _rollup(table: str) -> _Bulk:
    newer = (
        f"(excluded.last_time, excluded.last_sequence) > ({table}.last_time, {table}.last_sequence)"
    )
    return _Bulk(
        f"INSERT INTO {table}(series_id, bucket, count, sum, min, max, last_time, "
        "last_sequence, last_value) VALUES ",
        "(?, ?, ?, ?, ?, ?, ?, ?, ?)",
        f"""
ON CONFLICT (series_id, bucket) DO UPDATE SET
    count = {table}.count + excluded.count,
    sum = {table}.sum + excluded.sum,
    min = min({table}.min, excluded.min),
    max = max({table}.max, excluded.max),
    last_time = iif({newer}, excluded.last_time, {table}.last_time),
    last_sequence = iif({newer}, excluded.last_sequence, {table}.last_sequence),
    last_value = iif({newer}, excluded.last_value, {table}.last_value)""",
    )


_ROLLUPS = {width: _rollup(table) for width, table in common.ROLLUP_TABLES.items()}

# Rows of one statement are applied in order, so several batches of one device in a write
# move the poll interval estimate one after the other.
_DEVICES = _Bulk(
    "INSERT INTO devices(field, site, device, agent_id, first_seen, last_seen, poll_interval, "
    "last_sequence) VALUES ",
    "(?, ?, ?, ?, ?, ?, 0, ?)",
    f"""
ON CONFLICT (field, site, device) DO UPDATE SET
    agent_id = excluded.agent_id,
    first_seen = min(devices.first_seen, excluded.first_seen),
    poll_interval = CASE
        WHEN excluded.last_seen <= devices.last_seen THEN devices.poll_interval
        WHEN devices.poll_interval = 0 THEN excluded.last_seen - devices.last_seen
        ELSE devices.poll_interval + (excluded.last_seen - devices.last_seen
             - devices.poll_interval) / {common.POLL_INTERVAL_WEIGHT}
    END,
    last_seen = max(devices.last_seen, excluded.last_seen),
    last_sequence = max(devices.last_sequence, excluded.last_sequence)""",
)

_SERIES = _Bulk(
    "INSERT INTO series(field, site, device, metric, unit) VALUES ",
    "(?, ?, ?, ?, ?)",
    " ON CONFLICT DO NOTHING",
)
_SERIES_IDS = (
    "SELECT metric, id FROM series WHERE field = ? AND site = ? AND device = ? "
    "AND metric IN (SELECT j.value FROM json_each(?) AS j)"
)

_SERIES_COLUMNS = "s.field, s.site, s.device, s.metric"
_IDS = "(SELECT j.value FROM json_each(:ids) AS j)"


@lru_cache(maxsize=64)
def _partials_sql(width: int, last: bool, bucketed: bool, series: str) -> str:
    """Partial aggregates ``(series_id, bucket, count, sum, min, max, last_time,
    last_sequence, last_value)`` of one segment: from raw points (``width`` 0) or a roll-up
    table, over the series that the SQL ``series`` lists. Named parameters: ``start`` and
    ``end`` of the segment, ``step`` (when ``bucketed``) and those of ``series``."""
    if width:
        table, column = common.ROLLUP_TABLES[width], "bucket"
        count, total, low, high = "count", "sum", "min", "max"
        last_time, last_sequence, last_value = "last_time", "last_sequence", "last_value"
        good = ""
    else:
        table, column = "points", "time"
        count, total, low, high = "1", "value", "value", "value"
        last_time, last_sequence, last_value = "time", "sequence", "value"
        good = f" AND quality = {common.GOOD} AND value IS NOT NULL"
    bucket = common.bucket_sql(column, ":step") if bucketed else "0"
    where = f"series_id IN {series} AND {column} >= :start AND {column} < :end{good}"
    if not last:
        return (
            f"SELECT series_id, {bucket} AS b, sum({count}), sum({total}), min({low}), "
            f"max({high}), NULL, NULL, NULL FROM {table} WHERE {where} GROUP BY series_id, b"
        )
    return (
        f"SELECT series_id, b, n, total, low, high, {last_time}, {last_sequence}, {last_value} "
        f"FROM (SELECT series_id, {bucket} AS b, {last_time}, {last_sequence}, {last_value}, "
        f"sum({count}) OVER w AS n, sum({total}) OVER w AS total, min({low}) OVER w AS low, "
        f"max({high}) OVER w AS high, row_number() OVER (w ORDER BY {last_time} DESC, "
        f"{last_sequence} DESC) AS position FROM {table} WHERE {where} "
        f"WINDOW w AS (PARTITION BY series_id, {bucket})) WHERE position = 1"
    )


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A write's rows, worked out before the writer thread takes it."""

    generation: int
    points: common.Points
    summary: common.Summary


def _statements(script: str) -> Iterator[str]:
    """The statements of an SQL script, split where SQLite itself says one is complete
    (``sqlite3.complete_statement`` knows about strings, comments and trigger bodies)."""
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            yield pending
            pending = ""
    if pending.strip(" \t\r\n;"):
        raise StoreError(f"incomplete SQL statement at the end of a migration: {pending[:80]!r}")


_UNAVAILABLE_CODES = frozenset(
    {
        sqlite3.SQLITE_BUSY,  # another connection held the lock past the busy timeout
        sqlite3.SQLITE_LOCKED,  # a conflict inside this process (shared cache)
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_IOERR,  # "disk I/O error", whichever operation failed
        sqlite3.SQLITE_FULL,  # the disk (or quota) is full
        sqlite3.SQLITE_CANTOPEN,  # the file cannot be opened now (a missing mount, no fds)
        sqlite3.SQLITE_PROTOCOL,  # the WAL locking race, lost more often than SQLite retries
    }
)
_UNAVAILABLE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.ENOMEM, errno.EMFILE, errno.ENFILE}
)


def unavailable(error: BaseException) -> bool:
    """Whether ``error`` means the database cannot do it now but may later
    (:class:`~.base.StoreUnavailable`), rather than that it refuses this data or this
    setup. SQLite errors are told by their primary result code (the low byte of
    ``sqlite_errorcode``, so every extended I/O or busy code counts), operating system
    errors (creating the folder, say) by errno: a full disk is transient, a missing
    permission is not. Errors the sqlite3 module raises itself carry no code: not these.
    The whole :func:`~.common.error_chain` counts (a failed rollback after a disk error)."""
    for link in common.error_chain(error):
        if isinstance(link, sqlite3.Error):
            code = getattr(link, "sqlite_errorcode", None)
            if code is not None and code & 0xFF in _UNAVAILABLE_CODES:
                return True
        elif isinstance(link, OSError) and link.errno in _UNAVAILABLE_ERRNOS:
            return True
    return False


def _failure(where: str, error: BaseException) -> StoreError:
    kind = StoreUnavailable if unavailable(error) else StoreError
    return kind(f"{where}: {error}")


class SqliteStore(TimeSeriesStore):
    """Time series in one SQLite file (see the module docstring). ``busy_timeout`` is how
    long (seconds) a statement waits for another process's lock before it fails as
    :class:`~.base.StoreUnavailable`."""

    def __init__(self, url: str, *, readers: int = 2, busy_timeout: float = BUSY_TIMEOUT) -> None:
        self.url = common.mask_url(url)
        self.path, self._synchronous = sqlite_path(url)
        self._reader_count = readers
        self._busy_timeout = busy_timeout
        self._db: sqlite3.Connection | None = None
        self._writer: ThreadPoolExecutor | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._reader_connections: list[sqlite3.Connection] = []
        self._reader_lock = threading.Lock()
        self._series: dict[tuple[str, str, str], dict[str, int]] = {}
        self._fresh: list[tuple[tuple[str, str, str], list[str]]] = []
        self._generation = 0
        """Bumped when a rolled-back write forgets series ids it had cached."""
        self._migrations = common.load_migrations("sqlite")

    # -- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise StoreError(
                f"SQLite {sqlite3.sqlite_version} is too old for the monitoring store; "
                f"it needs {'.'.join(map(str, MIN_SQLITE))} or newer"
            )
        if self._writer is not None:
            raise StoreError(f"{self.url} is already open")
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="monitoring-sqlite-writer")
        self._readers = ThreadPoolExecutor(
            self._reader_count, thread_name_prefix="monitoring-sqlite-reader"
        )
        try:
            await self._in_writer(self._open)
        except BaseException:
            await self.close()
            raise

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = self._connect()
        self._db = db
        mode = _journal_mode_wal(db, self._busy_timeout)
        if str(mode).lower() != "wal":
            raise StoreError(
                f"{self.url}: SQLite cannot use WAL mode for this file (journal mode stays "
                f"{mode!r}); put the database on a local file system"
            )
        db.execute(f"PRAGMA synchronous={self._synchronous}")
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
        self._migrate(db)
        for series_id, field, site, device, metric in db.execute(
            "SELECT id, field, site, device, metric FROM series"
        ):
            self._series.setdefault((field, site, device), {})[metric] = series_id

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(
            self.path,
            isolation_level=None,
            check_same_thread=False,
            timeout=self._busy_timeout,
            cached_statements=256,
        )
        db.execute(f"PRAGMA busy_timeout={round(self._busy_timeout * 1000)}")
        return db

    def _migrate(self, db: sqlite3.Connection) -> None:
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                "name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT"
            )
            current = db.execute("SELECT coalesce(max(version), 0) FROM schema_migrations")
            version = int(current.fetchone()[0])
            if version > len(self._migrations):
                raise common.newer_schema_error(version, len(self._migrations), self.url)
            for migration in self._migrations[version:]:
                for statement in _statements(migration.sql):
                    db.execute(statement)
                db.execute(
                    "INSERT INTO schema_migrations(version, name, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.name, time.time_ns() // 1000),
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    async def close(self) -> None:
        writer, readers = self._writer, self._readers
        self._writer = self._readers = None
        loop = asyncio.get_running_loop()
        for pool in (readers, writer):
            if pool is not None:
                await loop.run_in_executor(None, partial(pool.shutdown, wait=True))
        with self._reader_lock:
            connections, self._reader_connections = self._reader_connections, []
        for db in connections:
            db.close()
        if self._db is not None:
            self._db.close()
            self._db = None
        self._series.clear()

    # -- plumbing -------------------------------------------------------------------------

    async def _in_writer(self, function: Callable[..., T], *args: Any) -> T:
        if self._writer is None:
            raise StoreUnavailable(f"{self.url} is not open")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._writer, function, *args)
        except (sqlite3.Error, OSError, OverflowError) as exc:
            # OverflowError: an integer SQLite cannot hold (past 64 bits), refused in binding.
            raise _failure(self.url, exc) from exc

    async def _read(self, function: Callable[..., T], *args: Any) -> T:
        if self._readers is None:
            raise StoreUnavailable(f"{self.url} is not open")
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._readers, self._with_reader, function, args
            )
        except sqlite3.Error as exc:
            raise _failure(self.url, exc) from exc

    def _with_reader(self, function: Callable[..., T], args: Sequence[Any]) -> T:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = self._connect()
            db.execute("PRAGMA query_only=ON")
            self._local.db = db
            with self._reader_lock:
                self._reader_connections.append(db)
        return function(db, *args)

    # -- writes ---------------------------------------------------------------------------

    async def write(self, batches: Sequence[IngestBatch]) -> WriteStats:
        if not batches:
            return WriteStats(0, 0, 0)
        # The rows are worked out here, in the caller's thread, while the writer thread is
        # still busy with the previous write: Python work done in the writer thread would
        # wait for the interpreter lock that the caller's decoding holds, and lengthen the
        # write, which is ingest's critical path.
        return await self._in_writer(self._write, batches, self._prepare(batches))

    def _prepare(self, batches: Sequence[IngestBatch]) -> _Prepared | None:
        """The rows of ``batches`` from the series ids known now; ``None`` when one of their
        series is new (the writer then creates it and works the rows out itself)."""
        generation = self._generation
        unique = common.first_of_each(batches)
        try:
            points = common.point_rows(unique, self._series, common.known_series_only)
        except common.NewSeries:
            return None
        points.plain.sort(key=itemgetter(0))
        return _Prepared(generation, points, common.summarize(points))

    async def has_batches(self, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        if not keys:
            return set()
        pairs = json.dumps([list(key) for key in keys])
        return await self._read(lambda db: set(db.execute(_EXISTING_BATCHES, (pairs,))))

    def _write(self, batches: Sequence[IngestBatch], prepared: _Prepared | None) -> WriteStats:
        db = self._db
        assert db is not None
        unique = common.first_of_each(batches)
        db.execute("BEGIN IMMEDIATE")
        try:
            keys = json.dumps([[batch.field, batch.batch_id] for batch in unique])
            seen = set(db.execute(_EXISTING_BATCHES, (keys,)))
            accepted = [batch for batch in unique if (batch.field, batch.batch_id) not in seen]
            _BATCHES.run(db, [(b.field, b.batch_id, b.received) for b in accepted])
            summary: common.Summary | None = None
            if prepared is not None and not seen and prepared.generation == self._generation:
                points, summary = prepared.points, prepared.summary
            else:  # a new series, a batch already stored, or ids forgotten since
                points = common.point_rows(accepted, self._series, self._resolve)
                # In series order, one series' points go into one b-tree page after another.
                points.plain.sort(key=itemgetter(0))
            db.execute("SAVEPOINT points")
            if _PLAIN_POINTS.run(db, points.plain) + _POINTS.run(db, points.other) != len(points):
                # Some of these points were stored before, by other batches (rare): keep
                # the new ones only, so that roll-ups count every point once.
                db.execute("ROLLBACK TO points")
                points.plain = [row for row in points.plain if _PLAIN_POINTS.run(db, [row])]
                points.other = [row for row in points.other if _POINTS.run(db, [row])]
                summary = None
            db.execute("RELEASE points")
            if summary is None:
                summary = common.summarize(points)
            _LATEST.run(db, summary.latest)
            _ROLLUPS[MINUTE].run(db, summary.minute)
            _ROLLUPS[HOUR].run(db, summary.hour)
            _DEVICES.run(db, [(*row[:5], row[4], row[5]) for row in common.device_rows(accepted)])
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            for device, metrics in self._fresh:
                for metric in metrics:
                    self._series.get(device, {}).pop(metric, None)
            # After the ids are gone: rows prepared with any of them are not used.
            self._generation += 1
            raise
        finally:
            self._fresh.clear()
        return WriteStats(
            batches_written=len(accepted),
            batches_skipped=len(batches) - len(accepted),
            readings_written=len(points),
            written=tuple(accepted),
        )

    def _resolve(self, batch: IngestBatch) -> dict[str, int]:
        """Series ids for every metric of ``batch``, creating the new series. Runs inside
        the write transaction, so a rolled-back write also forgets the ids it cached."""
        db = self._db
        assert db is not None
        device = (batch.field, batch.site, batch.device)
        missing = common.missing_metrics(batch, self._series)
        _SERIES.run(db, [(*device, metric, unit) for metric, unit in missing.items()])
        found = db.execute(_SERIES_IDS, (*device, json.dumps(list(missing)))).fetchall()
        ids = self._series.setdefault(device, {})
        ids.update(found)
        self._fresh.append((device, list(missing)))
        return ids

    async def apply_retention(self, now: int, retention: Retention) -> RetentionStats:
        series = await self._read(
            lambda db: [row[0] for row in db.execute("SELECT id FROM series ORDER BY id")]
        )
        limits = (
            ("points", "time", retention.raw),
            ("rollup_1m", "bucket", retention.minute),
            ("rollup_1h", "bucket", retention.hour),
        )
        deleted = dict.fromkeys(("points", "rollup_1m", "rollup_1h", "batches"), 0)
        # One short transaction per chunk of series: ingest gets the writer between them.
        for first in range(0, len(series), RETENTION_CHUNK):
            chunk = series[first : first + RETENTION_CHUNK]
            for table, count in (await self._in_writer(self._expire, chunk, now, limits)).items():
                deleted[table] += count
        if retention.raw > 0:
            deleted["batches"] = await self._in_writer(self._expire_batches, now - retention.raw)
        return RetentionStats(
            raw_deleted=deleted["points"],
            minute_deleted=deleted["rollup_1m"],
            hour_deleted=deleted["rollup_1h"],
            batch_ids_deleted=deleted["batches"],
        )

    def _expire(
        self, series: list[int], now: int, limits: Sequence[tuple[str, str, int]]
    ) -> dict[str, int]:
        db = self._db
        assert db is not None
        counts = {}
        with _transaction(db):
            for table, column, keep in limits:
                if keep <= 0:
                    continue
                statement = f"DELETE FROM {table} WHERE series_id = ? AND {column} < ?"
                cutoff = now - keep
                counts[table] = db.executemany(statement, ((s, cutoff) for s in series)).rowcount
        return counts

    def _expire_batches(self, cutoff: int) -> int:
        db = self._db
        assert db is not None
        with _transaction(db):
            return db.execute("DELETE FROM batches WHERE received < ?", (cutoff,)).rowcount

    # -- reads ----------------------------------------------------------------------------

    async def ping(self) -> None:
        # Reads the file's header: a reader that answers and a file that is there.
        await self._read(lambda db: db.execute("PRAGMA schema_version").fetchone())

    async def schema_version(self) -> int:
        return await self._read(
            lambda db: int(
                db.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0]
            )
        )

    async def latest(
        self, selector: Selector, *, page_size: int = 100, page_token: str | None = None
    ) -> Page[LatestValue]:
        common.check_page_size(page_size)
        after = common.decode_page_token(page_token, common.SERIES_PAGES, 4)
        conditions, params = common.selector_filter(selector, "s", _placeholder)
        if after is not None:
            # A bare ? is numbered one past the largest ?n before it: after the selector's.
            conditions.append(f"({_SERIES_COLUMNS}) > (?, ?, ?, ?)")
            params.extend(after)
        sql = (
            f"SELECT {_SERIES_COLUMNS}, s.unit, l.value, l.quality, l.reason, l.time, "
            f"l.sequence FROM series AS s JOIN latest AS l ON l.series_id = s.id "
            f"{common.where(conditions)} ORDER BY {_SERIES_COLUMNS} LIMIT {page_size + 1}"
        )
        rows = await self._read(lambda db: db.execute(sql, params).fetchall())
        items = [common.latest_value(row) for row in rows[:page_size]]
        return Page(items, common.next_page_token(rows, page_size, common.SERIES_PAGES, 4))

    async def count_series(self, selector: Selector, at_most: int) -> int:
        sql, params = common.count_series_sql(selector, at_most, _placeholder)
        return await self._read(lambda db: int(db.execute(sql, params).fetchone()[0]))

    async def range(self, query: RangeQuery) -> RangeResult:
        common.check_range(query)
        after = common.decode_page_token(query.page_token, common.SERIES_PAGES, 4)
        segments = common.plan(query.start, query.end, query.step)
        last = query.aggregation is Aggregation.LAST
        return await self._read(self._range, query, after, segments, last)

    def _range(
        self,
        db: sqlite3.Connection,
        query: RangeQuery,
        after: tuple[str, ...] | None,
        segments: list[common.Segment],
        last: bool,
    ) -> RangeResult:
        conditions, params = common.selector_filter(query.selector, "s", _placeholder)
        if after is not None:
            conditions.append(f"({_SERIES_COLUMNS}) > (?, ?, ?, ?)")
            params.extend(after)
        partials: dict[tuple[int, int], common.Partial] = {}
        # One snapshot for the series and every segment: a write that lands in between
        # cannot show up in one segment and not in another.
        with _snapshot(db):
            series = db.execute(
                f"SELECT s.id, {_SERIES_COLUMNS}, s.unit FROM series AS s "
                f"{common.where(conditions)} "
                f"ORDER BY {_SERIES_COLUMNS} LIMIT {query.page_size + 1}",
                params,
            ).fetchall()
            page = series[: query.page_size]
            ids = json.dumps([row[0] for row in page])
            for segment in segments:
                sql = _partials_sql(segment.width, last, True, _IDS)
                arguments = {
                    "ids": ids,
                    "start": segment.start,
                    "end": segment.end,
                    "step": query.step,
                }
                common.merge_partials(db.execute(sql, arguments), partials)
        buckets = common.buckets_by_series(query.aggregation, partials)
        return RangeResult(
            series=[
                SeriesRange(SeriesKey(*row[1:5]), row[5], buckets.get(row[0], [])) for row in page
            ],
            resolution=common.resolution(segments),
            next_page_token=common.next_page_token(
                [row[1:] for row in series], query.page_size, common.SERIES_PAGES, 4
            ),
        )

    async def aggregate(
        self, selector: Selector, aggregation: Aggregation, start: int, end: int
    ) -> tuple[float | None, int]:
        common.check_interval(start, end)
        segments = common.plan(start, end, None)
        last = aggregation is Aggregation.LAST
        conditions, params = common.selector_filter(selector, "s", _named)
        series = f"(SELECT s.id FROM series AS s {common.where(conditions)})"
        named = {f"s{number}": value for number, value in enumerate(params, start=1)}

        def compute(db: sqlite3.Connection) -> dict[tuple[int, int], common.Partial]:
            partials: dict[tuple[int, int], common.Partial] = {}
            with _snapshot(db):
                for segment in segments:
                    sql = _partials_sql(segment.width, last, False, series)
                    rows = db.execute(sql, {**named, "start": segment.start, "end": segment.end})
                    # One bucket for everything: fold the per-series rows into series 0.
                    common.merge_partials(((0, 0, *row[2:]) for row in rows), partials)
            return partials

        partials = await self._read(compute)
        if not partials:
            return None, 0
        part = partials[(0, 0)]
        return common.final_value(aggregation, part), int(part[0])

    async def count_share(
        self,
        selector: Selector,
        start: int,
        end: int,
        *,
        at_most: float | None = None,
        at_least: float | None = None,
    ) -> tuple[int, int]:
        common.check_interval(start, end)
        common.check_bound("at_most", at_most)
        common.check_bound("at_least", at_least)
        conditions, params = common.selector_filter(selector, "s", _placeholder, first=5)
        sql = (
            "SELECT coalesce(sum(iif((?3 IS NULL OR value <= ?3) AND (?4 IS NULL OR value >= ?4), "
            "1, 0)), 0), count(*) FROM points "
            f"WHERE series_id IN (SELECT s.id FROM series AS s {common.where(conditions)}) "
            f"AND time >= ?1 AND time < ?2 AND quality = {common.GOOD} AND value IS NOT NULL"
        )
        row = await self._read(
            lambda db: db.execute(sql, [start, end, at_most, at_least, *params]).fetchone()
        )
        return int(row[0]), int(row[1])

    async def readings_since(self, field: str, since: int) -> int:
        sql = (
            "SELECT count(*) FROM points WHERE series_id IN "
            "(SELECT id FROM series WHERE field = ?) AND time >= ?"
        )
        return await self._read(lambda db: int(db.execute(sql, (field, since)).fetchone()[0]))

    async def devices(
        self,
        *,
        field: str | None = None,
        site: str | None = None,
        device: str | None = None,
        page_size: int = 100,
        page_token: str | None = None,
    ) -> Page[DeviceRecord]:
        common.check_page_size(page_size)
        after = common.decode_page_token(page_token, common.DEVICE_PAGES, 3)
        conditions, params = common.device_filter(field, site, device, after, _placeholder)
        sql = (
            f"{_DEVICE_SELECT} {common.where(conditions)} ORDER BY {common.DEVICE_KEY} "
            f"LIMIT {page_size + 1}"
        )
        rows = await self._read(lambda db: db.execute(sql, params).fetchall())
        return Page(
            [_device(row) for row in rows[:page_size]],
            common.next_page_token(rows, page_size, common.DEVICE_PAGES, 3),
        )

    async def device(self, field: str, site: str, device: str) -> DeviceRecord | None:
        sql = f"{_DEVICE_SELECT} WHERE d.field = ? AND d.site = ? AND d.device = ?"
        row = await self._read(lambda db: db.execute(sql, (field, site, device)).fetchone())
        return None if row is None else _device(row)


_DEVICE_SELECT = (
    f"SELECT {common.DEVICE_KEY}, d.agent_id, d.first_seen, d.last_seen, d.poll_interval, "
    "d.last_sequence, (SELECT group_concat(s.metric, char(31)) FROM series AS s "
    "WHERE s.field = d.field AND s.site = d.site AND s.device = d.device) FROM devices AS d"
)


def _device(row: Sequence[Any]) -> DeviceRecord:
    return common.device_record(row, sorted(row[8].split("\x1f")) if row[8] else [])


def _journal_mode_wal(db: sqlite3.Connection, timeout: float) -> str:
    """Switches a database to WAL, or finds it there. On a new file, two processes opening
    it at once may both try; SQLite answers the loser "busy" at once instead of waiting (the
    busy timeout does not apply to this switch), so it asks again until ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return str(db.execute("PRAGMA journal_mode=WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@contextlib.contextmanager
def _snapshot(db: sqlite3.Connection) -> Iterator[None]:
    """A read transaction: every statement inside sees the same committed state."""
    db.execute("BEGIN")
    try:
        yield
    finally:
        db.execute("COMMIT")


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
