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

Write path, per :meth:`PostgresStore.write` call (many batches, one transaction). The rows
are worked out (:mod:`.writes`) before a connection is taken. In the common case (no batch
stored yet, every series known) the points go in by a plain binary ``COPY``, the latest
values and roll-ups by another into a temporary table, then one statement inserts the
``(field, batch_id)`` pairs and upserts the latest values and roll-ups from there: a
transaction of few round trips, so the rows the next write waits for are locked briefly.
A batch stored already shows there (its points collide with the stored ones, or its pair
does): the transaction is rolled back and the write taken the long way, below. A replica
writing the same batch at the same moment waits on those unique keys until the first one
commits, and then takes the long way too.

The long way: the pairs go in first with ``ON CONFLICT DO NOTHING RETURNING``; a batch
whose pair was not inserted is skipped whole; points already stored by another batch are
kept once. Latest values and roll-ups are upserted in key order, so concurrent writers take
row locks in one order and cannot deadlock.

Migrations run under a transaction-scoped advisory lock keyed by the schema, so replicas
starting together migrate once. Names use ``COLLATE "C"`` so that listings sort as in
SQLite.

Errors: :func:`unavailable` tells what a retry may cure (a lost connection, a server out of
resources or shutting down) from what it cannot, by exception class and SQLSTATE class.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Sequence
from functools import lru_cache
from typing import Any

import asyncpg

from smartcity.runtime.storage.postgres import STALE_RETRIES, PostgresDatabase
from smartcity.runtime.storage.postgres import unavailable as unavailable
from smartcity.services.monitoring.model import (
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
from smartcity.services.monitoring.store import postgres_writes as sql
from smartcity.services.monitoring.store.base import (
    StoreError,
    TimeSeriesStore,
)

MIGRATION_LOCK = 0x534D_4D31
"""First key of the advisory lock migrations hold; the second is a hash of the schema."""

DEADLOCK_RETRIES = 3
RETENTION_TIMEOUT = 3600.0
"""Seconds a retention delete may take: the first run on a large database deletes a lot."""

_SELECT_BATCHES = """
SELECT b.field, b.batch_id FROM batches AS b
JOIN unnest($1::text[], $2::text[]) AS k(field, batch_id)
  ON b.field = k.field AND b.batch_id = k.batch_id
"""

_SERIES_COLUMNS = "s.field, s.site, s.device, s.metric"
_DEVICE_SELECT = (
    f"SELECT {common.DEVICE_KEY}, d.agent_id, d.first_seen, d.last_seen, d.poll_interval, "
    "d.last_sequence, array(SELECT s.metric FROM series AS s WHERE s.field = d.field "
    "AND s.site = d.site AND s.device = d.device ORDER BY s.metric) FROM devices AS d"
)


def _placeholder(number: int) -> str:
    return f"${number}"


@lru_cache(maxsize=64)
def _partials_sql(width: int, last: bool, bucketed: bool, series: str) -> str:
    """Partial aggregates ``(series_id, bucket, count, sum, min, max, last_time,
    last_sequence, last_value)`` of one segment: from raw points (``width`` 0) or a roll-up
    table, over the series that the condition ``series`` admits. Parameters: ``$1`` and
    ``$2`` the segment, ``$3`` the step when ``bucketed``, then those of ``series``."""
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
    bucket = common.bucket_sql(column, "$3::bigint") if bucketed else "0::bigint"
    where = f"{series} AND {column} >= $1 AND {column} < $2{good}"
    if not last:
        return (
            f"SELECT series_id, {bucket} AS b, sum({count})::bigint, sum({total}), min({low}), "
            f"max({high}), NULL::bigint, NULL::bigint, NULL::float8 FROM {table} "
            f"WHERE {where} GROUP BY series_id, b"
        )
    return (
        f"SELECT series_id, b, n, total, low, high, {last_time}, {last_sequence}, {last_value} "
        f"FROM (SELECT series_id, {bucket} AS b, {last_time}, {last_sequence}, {last_value}, "
        f"sum({count}) OVER w AS n, sum({total}) OVER w AS total, min({low}) OVER w AS low, "
        f"max({high}) OVER w AS high, row_number() OVER (w ORDER BY {last_time} DESC, "
        f"{last_sequence} DESC) AS position FROM {table} WHERE {where} "
        f"WINDOW w AS (PARTITION BY series_id, {bucket})) AS ranked WHERE position = 1"
    )


def _affected(status: str) -> int:
    """The row count of a command status such as ``DELETE 42``."""
    match = re.search(r"(\d+)$", status)
    return int(match.group(1)) if match else 0


class PostgresStore(TimeSeriesStore):
    """Time series in PostgreSQL (see the module docstring).

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
        """A pooled connection for a write: one with the staging table (:data:`sql.STAGE`),
        made on its first write."""
        async with self._connection() as conn:
            backend = conn.get_server_pid()
            if backend not in self._staged:
                await conn.execute(sql.CREATE_STAGE)
                self._staged.add(backend)
            yield conn

    # -- writes ---------------------------------------------------------------------------

    async def write(self, batches: Sequence[IngestBatch]) -> WriteStats:
        unique = writes.first_of_each(batches)
        if not unique:
            return WriteStats(0, 0, 0)
        # Worked out before a connection is taken, so that the transaction is only the
        # database's work: none of these batches stored yet, every series known (else None).
        prepared = self._prepare(unique)
        with self._errors():
            deadlocks = stale = missing = 0
            while True:
                try:
                    written = None
                    if prepared is not None:
                        written = await self._write_fresh(unique, *prepared)
                    accepted, stored = written or await self._write(unique)
                    break
                except asyncpg.DeadlockDetectedError:
                    deadlocks += 1
                    if deadlocks == DEADLOCK_RETRIES:
                        raise
                except asyncpg.InternalClientError:
                    stale += 1
                    if stale == STALE_RETRIES:
                        raise
                except asyncpg.UndefinedTableError:
                    # A connection lost its staging table (the server ended its session and
                    # another one took its process id): make it again on every connection.
                    missing += 1
                    if missing == 2:
                        raise
                    self._staged.clear()
        return WriteStats(
            batches_written=len(accepted),
            batches_skipped=len(batches) - len(accepted),
            readings_written=stored,
            written=tuple(accepted),
        )

    async def has_batches(self, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        if not keys:
            return set()
        rows = await self._fetch(_SELECT_BATCHES, *_columns(keys, 2))
        return {(row[0], row[1]) for row in rows}

    def _prepare(
        self, batches: Sequence[IngestBatch]
    ) -> tuple[writes.Points, writes.Summary] | None:
        """The rows of ``batches`` as if none of them were stored yet; ``None`` when one of
        their series is new."""
        try:
            points = writes.point_rows(batches, self._series, writes.known_series_only)
        except writes.NewSeries:
            return None
        return points, writes.summarize(points)

    async def _write_fresh(
        self, batches: list[IngestBatch], points: writes.Points, summary: writes.Summary
    ) -> tuple[list[IngestBatch], int] | None:
        """The common case in few round trips: copy the points, then add the batch ids and
        the summary in one statement. When a batch turns out to be stored already (its
        points collide with the stored ones, or its id does), the whole transaction is
        rolled back and ``None`` returned: :meth:`_write` then sorts the batches out."""
        ordered = sorted(batches, key=writes.batch_key)
        devices = writes.device_rows(batches)
        try:
            async with self._writing() as conn, conn.transaction():
                await sql.copy_points(conn, points)
                await sql.stage_summary(conn, summary)
                fresh = await conn.fetchval(
                    sql.WRITE_FRESH,
                    [batch.field for batch in ordered],
                    [batch.batch_id for batch in ordered],
                    [batch.received for batch in ordered],
                )
                if fresh != len(ordered):
                    raise sql.AlreadyStored
                if devices:
                    await conn.executemany(sql.UPSERT_DEVICE, devices)
        except (asyncpg.UniqueViolationError, sql.AlreadyStored):
            return None
        return batches, len(points)

    async def _write(self, batches: list[IngestBatch]) -> tuple[list[IngestBatch], int]:
        """Any write: the batch ids first (those stored already are skipped), then the new
        batches' points, each stored once."""
        ordered = sorted(batches, key=writes.batch_key)
        async with self._writing() as conn, conn.transaction():
            inserted = await conn.fetch(
                sql.INSERT_BATCHES,
                [batch.field for batch in ordered],
                [batch.batch_id for batch in ordered],
                [batch.received for batch in ordered],
            )
            fresh = {(row[0], row[1]) for row in inserted}
            accepted = [batch for batch in batches if (batch.field, batch.batch_id) in fresh]
            try:  # the common case: every series is known, no scan for new ones
                series = self._series
                points = writes.point_rows(accepted, series, writes.known_series_only)
            except writes.NewSeries:
                series = await self._resolve(conn, accepted)
                points = writes.point_rows(accepted, series, self._unknown)
            if points:
                try:
                    async with conn.transaction():
                        await sql.copy_points(conn, points)
                except asyncpg.UniqueViolationError:
                    # Some of these points were stored before, by other batches (rare):
                    # keep the new ones only, so that roll-ups count every point once.
                    rows = writes.distinct_points(points.full())
                    keys = await conn.fetch(sql.INSERT_POINTS, *_columns(rows, 6))
                    new = {(key[0], key[1], key[2]) for key in keys}
                    points = writes.Points(
                        [], [row for row in rows if (row[0], row[1], row[2]) in new]
                    )
            await sql.stage_summary(conn, writes.summarize(points))
            await conn.execute(sql.UPSERT_SUMMARY)
            devices = writes.device_rows(accepted)
            if devices:
                await conn.executemany(sql.UPSERT_DEVICE, devices)
        if series is not self._series:
            # Committed: the series this write created exist for everyone now.
            for device, ids in series.items():
                if ids is not self._series.get(device):
                    self._series.setdefault(device, {}).update(ids)
        return accepted, len(points)

    def _unknown(self, batch: IngestBatch) -> dict[str, int]:
        raise StoreError(f"batch {batch.batch_id!r} has a metric whose series was not resolved")

    async def _resolve(
        self, conn: asyncpg.Connection, batches: Sequence[IngestBatch]
    ) -> dict[tuple[str, str, str], dict[str, int]]:
        """Series ids for every metric of ``batches``: the store's cache, or when some are
        new, a copy of it with them added. The new series are inserted in the write's
        transaction, so a failed write leaves none behind; the copy joins the cache only
        once the write commits, so a concurrent write never uses an id that may vanish."""
        missing: dict[tuple[str, str, str, str], str] = {}
        for batch in batches:
            for metric, unit in writes.missing_metrics(batch, self._series).items():
                missing[(batch.field, batch.site, batch.device, metric)] = unit
        if not missing:
            return self._series
        keys = sorted(missing)
        columns = _columns(keys, 4)
        await conn.execute(sql.INSERT_SERIES, *columns, [missing[key] for key in keys])
        # A new statement, a new snapshot: it also sees series that another replica
        # inserted (and committed) while this one waited on the unique key.
        found = await conn.fetch(sql.SELECT_SERIES, *columns)
        if len(found) != len(keys):
            raise StoreError(f"{self.url}: could not create {len(keys) - len(found)} series")
        series = dict(self._series)
        for series_id, field, site, device, metric in found:
            device_key = (field, site, device)
            if series.get(device_key) is self._series.get(device_key):
                series[device_key] = dict(self._series.get(device_key, {}))
            series[device_key][metric] = series_id
        return series

    async def apply_retention(self, now: int, retention: Retention) -> RetentionStats:
        deleted = dict.fromkeys(("points", "rollup_1m", "rollup_1h", "batches"), 0)
        limits = (
            ("points", "time", retention.raw),
            ("rollup_1m", "bucket", retention.minute),
            ("rollup_1h", "bucket", retention.hour),
            ("batches", "received", retention.raw),
        )
        with self._errors():
            async with self._connection() as conn:
                for table, column, keep in limits:
                    if keep > 0:
                        status = await conn.execute(
                            f"DELETE FROM {table} WHERE {column} < $1",
                            now - keep,
                            timeout=RETENTION_TIMEOUT,
                        )
                        deleted[table] = _affected(status)
        return RetentionStats(
            raw_deleted=deleted["points"],
            minute_deleted=deleted["rollup_1m"],
            hour_deleted=deleted["rollup_1h"],
            batch_ids_deleted=deleted["batches"],
        )

    # -- reads ----------------------------------------------------------------------------

    async def ping(self) -> None:
        await self._fetch("SELECT 1")

    async def schema_version(self) -> int:
        return await self._database.schema_version()

    async def latest(
        self, selector: Selector, *, page_size: int = 100, page_token: str | None = None
    ) -> Page[LatestValue]:
        common.check_page_size(page_size)
        after = common.decode_page_token(page_token, common.SERIES_PAGES, 4)
        conditions, params = _series_conditions(selector, after)
        rows = await self._fetch(
            f"SELECT {_SERIES_COLUMNS}, s.unit, l.value, l.quality, l.reason, l.time, "
            f"l.sequence FROM series AS s JOIN latest AS l ON l.series_id = s.id "
            f"{common.where(conditions)} ORDER BY {_SERIES_COLUMNS} LIMIT {page_size + 1}",
            *params,
        )
        items = [common.latest_value(row) for row in rows[:page_size]]
        return Page(items, common.next_page_token(rows, page_size, common.SERIES_PAGES, 4))

    async def count_series(self, selector: Selector, at_most: int) -> int:
        sql, params = common.count_series_sql(selector, at_most, _placeholder)
        return int((await self._fetch(sql, *params))[0][0])

    async def range(self, query: RangeQuery) -> RangeResult:
        common.check_range(query)
        after = common.decode_page_token(query.page_token, common.SERIES_PAGES, 4)
        segments = common.plan(query.start, query.end, query.step)
        last = query.aggregation is Aggregation.LAST
        conditions, params = _series_conditions(query.selector, after)
        partials: dict[tuple[int, int], common.Partial] = {}
        with self._errors():
            async with (
                self._connection() as conn,
                conn.transaction(isolation="repeatable_read", readonly=True),
            ):
                # One snapshot for the series and every segment: a write that lands in
                # between cannot show up in one segment and not in another.
                series = await conn.fetch(
                    f"SELECT s.id, {_SERIES_COLUMNS}, s.unit FROM series AS s "
                    f"{common.where(conditions)} ORDER BY {_SERIES_COLUMNS} "
                    f"LIMIT {query.page_size + 1}",
                    *params,
                )
                page = series[: query.page_size]
                ids = [row[0] for row in page]
                for segment in segments:
                    sql = _partials_sql(segment.width, last, True, "series_id = ANY($4::bigint[])")
                    rows = await conn.fetch(sql, segment.start, segment.end, query.step, ids)
                    common.merge_partials(rows, partials)
        buckets = common.buckets_by_series(query.aggregation, partials)
        return RangeResult(
            series=[
                SeriesRange(SeriesKey(*row[1:5]), row[5], buckets.get(row[0], [])) for row in page
            ],
            resolution=common.resolution(segments),
            next_page_token=common.next_page_token(
                [tuple(row)[1:] for row in series], query.page_size, common.SERIES_PAGES, 4
            ),
        )

    async def aggregate(
        self, selector: Selector, aggregation: Aggregation, start: int, end: int
    ) -> tuple[float | None, int]:
        common.check_interval(start, end)
        segments = common.plan(start, end, None)
        last = aggregation is Aggregation.LAST
        conditions, params = common.selector_filter(selector, "s", _placeholder, first=3)
        series = f"series_id IN (SELECT s.id FROM series AS s {common.where(conditions)})"
        partials: dict[tuple[int, int], common.Partial] = {}
        with self._errors():
            async with (
                self._connection() as conn,
                conn.transaction(isolation="repeatable_read", readonly=True),
            ):
                for segment in segments:
                    sql = _partials_sql(segment.width, last, False, series)
                    rows = await conn.fetch(sql, segment.start, segment.end, *params)
                    # One bucket for everything: fold the per-series rows into series 0.
                    common.merge_partials(((0, 0, *tuple(row)[2:]) for row in rows), partials)
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
        rows = await self._fetch(
            "SELECT count(*) FILTER (WHERE ($3::float8 IS NULL OR value <= $3) "
            "AND ($4::float8 IS NULL OR value >= $4)), count(*) FROM points "
            f"WHERE series_id IN (SELECT s.id FROM series AS s {common.where(conditions)}) "
            f"AND time >= $1 AND time < $2 AND quality = {common.GOOD} AND value IS NOT NULL",
            start,
            end,
            at_most,
            at_least,
            *params,
        )
        return int(rows[0][0]), int(rows[0][1])

    async def readings_since(self, field: str, since: int) -> int:
        rows = await self._fetch(
            "SELECT count(*) FROM points WHERE series_id IN "
            "(SELECT id FROM series WHERE field = $1) AND time >= $2",
            field,
            since,
        )
        return int(rows[0][0])

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
        rows = await self._fetch(
            f"{_DEVICE_SELECT} {common.where(conditions)} ORDER BY {common.DEVICE_KEY} "
            f"LIMIT {page_size + 1}",
            *params,
        )
        return Page(
            [_device(row) for row in rows[:page_size]],
            common.next_page_token(rows, page_size, common.DEVICE_PAGES, 3),
        )

    async def device(self, field: str, site: str, device: str) -> DeviceRecord | None:
        rows = await self._fetch(
            f"{_DEVICE_SELECT} WHERE d.field = $1 AND d.site = $2 AND d.device = $3",
            field,
            site,
            device,
        )
        return _device(rows[0]) if rows else None


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows turned into one list per column, for ``unnest``."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(column) for column in zip(*rows, strict=True)]


def _series_conditions(
    selector: Selector, after: tuple[str, ...] | None
) -> tuple[list[str], list[Any]]:
    conditions, params = common.selector_filter(selector, "s", _placeholder)
    if after is not None:
        first = len(params) + 1
        placeholders = ", ".join(f"${number}" for number in range(first, first + 4))
        conditions.append(f"({_SERIES_COLUMNS}) > ({placeholders})")
        params.extend(after)
    return conditions, params


def _device(row: Sequence[Any]) -> DeviceRecord:
    return common.device_record(row, list(row[8]))
