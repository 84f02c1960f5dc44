"""The embedded backend: one SQLite file in WAL mode, shared by the service and its readers.

Threads: every write runs in one dedicated writer thread that owns the only writing
connection, so writes are serialised without locks and the event loop never waits on disk;
reads run in a small pool of reader threads, each with its own connection (WAL lets them
read while the writer writes). SQLite releases the GIL while it works, so the database work
of a write can overlap what the event loop does meanwhile; but each return from SQLite must
take the GIL back, which waits up to a switch interval while the loop is busy
(:data:`smartcity.readings.decode.INGEST_SWITCH_INTERVAL` in ingest), so a write runs as
few, large statements (see :class:`_Bulk`).

Write path, per :meth:`SqliteStore.write` call (many batches, one transaction): the
``(field, batch_id)`` pairs go in first, the statement answering which were new (a batch
whose pair was stored already is skipped whole); then the points, then the latest values,
roll-up increments and device updates worked out by :mod:`.writes`, each as multi-row
statements (see :class:`_Bulk`). ``BEGIN IMMEDIATE`` takes the write lock up front, so two
processes on one file serialise instead of failing half-way, and the batch-id check cannot
race. A point that is already stored (same series, time and sequence, from another batch)
is kept once and counted once in the roll-ups: the write is rolled back and done again,
point by point (rare).

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

import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from typing import Any, TypeVar

from smartcity.runtime.storage.sqlite import BUSY_TIMEOUT, SqliteDatabase, snapshot, transaction
from smartcity.runtime.storage.sqlite import sqlite_path as sqlite_path
from smartcity.runtime.storage.sqlite import unavailable as unavailable
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
from smartcity.services.monitoring.store import common, writes
from smartcity.services.monitoring.store.base import (
    StoreError,
    TimeSeriesStore,
)

T = TypeVar("T")

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
        return sum(cursor.rowcount for cursor in self._chunks(db, rows))

    def returning(self, db: sqlite3.Connection, rows: Sequence[Sequence[Any]]) -> list[Any]:
        """Inserts ``rows`` with a statement that has a ``RETURNING`` tail; its rows."""
        return [row for cursor in self._chunks(db, rows) for row in cursor.fetchall()]

    def _chunks(
        self, db: sqlite3.Connection, rows: Sequence[Sequence[Any]]
    ) -> Iterator[sqlite3.Cursor]:
        done = 0
        size = min(CHUNK_ROWS, db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // self._columns)
        while done < len(rows):
            while size > len(rows) - done:
                size //= 2
            chunk = rows[done : done + size]
            yield db.execute(self.sql(size), list(chain.from_iterable(chunk)))
            done += size


# Each pair is one primary key search; ``->>`` would need SQLite 3.38.
_EXISTING_BATCHES = (
    "SELECT field, batch_id FROM batches WHERE (field, batch_id) IN (SELECT "
    "json_extract(j.value, '$[0]'), json_extract(j.value, '$[1]') FROM json_each(?) AS j)"
)
# The pairs actually inserted come back: a batch whose pair was stored already is skipped.
_BATCHES = _Bulk(
    "INSERT INTO batches(field, batch_id, received) VALUES ",
    "(?, ?, ?)",
    " ON CONFLICT DO NOTHING RETURNING field, batch_id",
)

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


class _StoredBefore(Exception):  # noqa: N818 - control flow inside a write
    """A point of the write is stored already: the write is rolled back and done again."""


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A write's rows, worked out before the writer thread takes it."""

    generation: int
    points: writes.Points
    summary: writes.Summary


class SqliteStore(TimeSeriesStore):
    """Time series in one SQLite file (see the module docstring). ``busy_timeout`` is how
    long (seconds) a statement waits for another process's lock before it fails as
    :class:`~.base.StoreUnavailable`."""

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
        unique = writes.first_of_each(batches)
        try:
            points = writes.point_rows(unique, self._series, writes.known_series_only)
        except writes.NewSeries:
            return None
        return _Prepared(generation, points, writes.summarize(points))

    async def has_batches(self, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        if not keys:
            return set()
        pairs = json.dumps([list(key) for key in keys])
        return await self._read(lambda db: set(db.execute(_EXISTING_BATCHES, (pairs,))))

    def _write(self, batches: Sequence[IngestBatch], prepared: _Prepared | None) -> WriteStats:
        try:
            return self._transaction(batches, prepared, one_by_one=False)
        except _StoredBefore:
            # Some of these points were stored before, by other batches (rare): the write
            # is done again point by point, keeping the new ones only, so that roll-ups
            # count every point once.
            return self._transaction(batches, None, one_by_one=True)

    def _transaction(
        self, batches: Sequence[IngestBatch], prepared: _Prepared | None, *, one_by_one: bool
    ) -> WriteStats:
        db = self._db
        assert db is not None
        unique = writes.first_of_each(batches)
        db.execute("BEGIN IMMEDIATE")
        try:
            fresh = set(_BATCHES.returning(db, [(b.field, b.batch_id, b.received) for b in unique]))
            accepted = [batch for batch in unique if (batch.field, batch.batch_id) in fresh]
            summary: writes.Summary | None = None
            if (
                prepared is not None
                and len(accepted) == len(unique)
                and prepared.generation == self._generation
            ):
                points, summary = prepared.points, prepared.summary
            else:  # a new series, a batch already stored, or ids forgotten since
                points = writes.point_rows(accepted, self._series, self._resolve)
            if one_by_one:
                points.plain = [row for row in points.plain if _PLAIN_POINTS.run(db, [row])]
                points.other = [row for row in points.other if _POINTS.run(db, [row])]
                summary = None
            elif _PLAIN_POINTS.run(db, points.plain) + _POINTS.run(db, points.other) != len(points):
                raise _StoredBefore
            if summary is None:
                summary = writes.summarize(points)
            _LATEST.run(db, summary.latest)
            _ROLLUPS[MINUTE].run(db, summary.minute)
            _ROLLUPS[HOUR].run(db, summary.hour)
            _DEVICES.run(db, [(*row[:5], row[4], row[5]) for row in writes.device_rows(accepted)])
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
        missing = writes.missing_metrics(batch, self._series)
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
        with transaction(db):
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
        with transaction(db):
            return db.execute("DELETE FROM batches WHERE received < ?", (cutoff,)).rowcount

    # -- reads ----------------------------------------------------------------------------

    async def ping(self) -> None:
        await self._sqlite.ping()

    async def schema_version(self) -> int:
        return await self._sqlite.schema_version()

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
        with snapshot(db):
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
            with snapshot(db):
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
