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

Write path, per :meth:`PostgresStore.write` call (many batches, one transaction): the
``(field, batch_id)`` pairs go in first with ``ON CONFLICT DO NOTHING RETURNING``; a batch
whose pair was not inserted is skipped whole. A replica writing the same batch at the same
moment waits on that unique key until the first one commits, and then skips it, so the
gate makes a plain binary ``COPY`` of the points safe. Latest values and roll-ups are
upserted from the increments of :mod:`.common` as one ``unnest`` statement each, in key
order, so concurrent writers take row locks in one order and cannot deadlock.

Migrations run under a transaction-scoped advisory lock keyed by the schema, so replicas
starting together migrate once. Names use ``COLLATE "C"`` so that listings sort as in
SQLite.

Errors: :func:`unavailable` tells what a retry may cure (a lost connection, a server out of
resources or shutting down) from what it cannot, by exception class and SQLSTATE class.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from functools import lru_cache
from operator import itemgetter
from typing import Any

import asyncpg

from smartcity.runtime.storage.postgres import STALE_RETRIES, PostgresDatabase
from smartcity.runtime.storage.postgres import unavailable as unavailable
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
    TimeSeriesStore,
)

MIGRATION_LOCK = 0x534D_4D31
"""First key of the advisory lock migrations hold; the second is a hash of the schema."""

DEADLOCK_RETRIES = 3
RETENTION_TIMEOUT = 3600.0
"""Seconds a retention delete may take: the first run on a large database deletes a lot."""

_POINT_COLUMNS = ("series_id", "time", "sequence", "value", "quality", "reason")
_PLAIN_COLUMNS = ("series_id", "time", "sequence", "value")

_INSERT_BATCHES = """
INSERT INTO batches(field, batch_id, received)
SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
ON CONFLICT DO NOTHING
RETURNING field, batch_id
"""
_SELECT_BATCHES = """
SELECT b.field, b.batch_id FROM batches AS b
JOIN unnest($1::text[], $2::text[]) AS k(field, batch_id)
  ON b.field = k.field AND b.batch_id = k.batch_id
"""

_INSERT_POINTS = """
INSERT INTO points(series_id, time, sequence, value, quality, reason)
SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::float8[], $5::int2[],
                     $6::text[])
ON CONFLICT DO NOTHING
RETURNING series_id, time, sequence
"""

_UPSERT_LATEST = """
INSERT INTO latest AS l (series_id, time, sequence, value, quality, reason)
SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::float8[], $5::int2[],
                     $6::text[])
ON CONFLICT (series_id) DO UPDATE SET
    time = excluded.time, sequence = excluded.sequence, value = excluded.value,
    quality = excluded.quality, reason = excluded.reason
WHERE (excluded.time, excluded.sequence) > (l.time, l.sequence)
"""


def _upsert_rollup(table: str) -> str:
    newer = "(excluded.last_time, excluded.last_sequence) > (r.last_time, r.last_sequence)"
    return f"""
INSERT INTO {table} AS r
    (series_id, bucket, count, sum, min, max, last_time, last_sequence, last_value)
SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::float8[], $5::float8[],
                     $6::float8[], $7::bigint[], $8::bigint[], $9::float8[])
ON CONFLICT (series_id, bucket) DO UPDATE SET
    count = r.count + excluded.count,
    sum = r.sum + excluded.sum,
    min = least(r.min, excluded.min),
    max = greatest(r.max, excluded.max),
    last_time = CASE WHEN {newer} THEN excluded.last_time ELSE r.last_time END,
    last_sequence = CASE WHEN {newer} THEN excluded.last_sequence ELSE r.last_sequence END,
    last_value = CASE WHEN {newer} THEN excluded.last_value ELSE r.last_value END
"""


_UPSERT_ROLLUPS = {width: _upsert_rollup(table) for width, table in common.ROLLUP_TABLES.items()}

# One statement per batch (executemany, pipelined): several batches of one device in a write
# move the poll interval estimate one after the other, which one multi-row upsert cannot.
_UPSERT_DEVICE = f"""
INSERT INTO devices AS d (field, site, device, agent_id, first_seen, last_seen, poll_interval,
                          last_sequence)
VALUES ($1, $2, $3, $4, $5, $5, 0, $6)
ON CONFLICT (field, site, device) DO UPDATE SET
    agent_id = excluded.agent_id,
    first_seen = least(d.first_seen, excluded.first_seen),
    poll_interval = CASE
        WHEN excluded.last_seen <= d.last_seen THEN d.poll_interval
        WHEN d.poll_interval = 0 THEN excluded.last_seen - d.last_seen
        ELSE d.poll_interval + (excluded.last_seen - d.last_seen - d.poll_interval)
             / {common.POLL_INTERVAL_WEIGHT}
    END,
    last_seen = greatest(d.last_seen, excluded.last_seen),
    last_sequence = greatest(d.last_sequence, excluded.last_sequence)
"""

_INSERT_SERIES = """
INSERT INTO series(field, site, device, metric, unit)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
ORDER BY 1, 2, 3, 4
ON CONFLICT DO NOTHING
"""
_SELECT_SERIES = """
SELECT s.id, s.field, s.site, s.device, s.metric
FROM series AS s
JOIN unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS k(field, site, device, metric)
  ON s.field = k.field AND s.site = k.site AND s.device = k.device AND s.metric = k.metric
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

    # -- writes ---------------------------------------------------------------------------

    async def write(self, batches: Sequence[IngestBatch]) -> WriteStats:
        unique = common.first_of_each(batches)
        if not unique:
            return WriteStats(0, 0, 0)
        with self._errors():
            deadlocks = stale = 0
            while True:
                try:
                    accepted, stored = await self._write(unique)
                    break
                except asyncpg.DeadlockDetectedError:
                    deadlocks += 1
                    if deadlocks == DEADLOCK_RETRIES:
                        raise
                except asyncpg.InternalClientError:
                    stale += 1
                    if stale == STALE_RETRIES:
                        raise
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

    async def _write(self, batches: list[IngestBatch]) -> tuple[list[IngestBatch], int]:
        ordered = sorted(batches, key=common.batch_key)
        async with self._connection() as conn, conn.transaction():
            inserted = await conn.fetch(
                _INSERT_BATCHES,
                [batch.field for batch in ordered],
                [batch.batch_id for batch in ordered],
                [batch.received for batch in ordered],
            )
            fresh = {(row[0], row[1]) for row in inserted}
            accepted = [batch for batch in batches if (batch.field, batch.batch_id) in fresh]
            try:  # the common case: every series is known, no scan for new ones
                series = self._series
                points = common.point_rows(accepted, series, common.known_series_only)
            except common.NewSeries:
                series = await self._resolve(conn, accepted)
                points = common.point_rows(accepted, series, self._unknown)
            if points:
                try:
                    async with conn.transaction():
                        # GOOD readings without a reason go in with four columns: quality
                        # defaults to GOOD, and COPY encodes a third less.
                        if points.plain:
                            points.plain.sort(key=itemgetter(0))
                            await conn.copy_records_to_table(
                                "points", records=points.plain, columns=_PLAIN_COLUMNS
                            )
                        if points.other:
                            await conn.copy_records_to_table(
                                "points", records=points.other, columns=_POINT_COLUMNS
                            )
                except asyncpg.UniqueViolationError:
                    # Some of these points were stored before, by other batches (rare):
                    # keep the new ones only, so that roll-ups count every point once.
                    rows = common.distinct_points(points.full())
                    keys = await conn.fetch(_INSERT_POINTS, *_columns(rows, 6))
                    new = {(key[0], key[1], key[2]) for key in keys}
                    points = common.Points(
                        [], [row for row in rows if (row[0], row[1], row[2]) in new]
                    )
            summary = common.summarize(points)
            if summary.latest:
                await conn.execute(_UPSERT_LATEST, *_columns(summary.latest, 6))
            for width, increments in ((MINUTE, summary.minute), (HOUR, summary.hour)):
                if increments:
                    await conn.execute(_UPSERT_ROLLUPS[width], *_columns(increments, 9))
            devices = common.device_rows(accepted)
            if devices:
                await conn.executemany(_UPSERT_DEVICE, devices)
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
            for metric, unit in common.missing_metrics(batch, self._series).items():
                missing[(batch.field, batch.site, batch.device, metric)] = unit
        if not missing:
            return self._series
        keys = sorted(missing)
        columns = _columns(keys, 4)
        await conn.execute(_INSERT_SERIES, *columns, [missing[key] for key in keys])
        # A new statement, a new snapshot: it also sees series that another replica
        # inserted (and committed) while this one waited on the unique key.
        found = await conn.fetch(_SELECT_SERIES, *columns)
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
