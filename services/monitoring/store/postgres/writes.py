"""The PostgreSQL store's write path, and retention.

Per :meth:`PostgresWrites.write` call (many batches, one transaction). The rows are worked
out (:mod:`smartcity.services.monitoring.store.writes`) before a connection is taken. In the
common case (no batch stored yet, every series known) the points go in by a plain binary
``COPY``, the latest values and roll-ups by another into a temporary table, then one
statement inserts the ``(field, batch_id)`` pairs and upserts the latest values and roll-ups
from there: a transaction of few round trips, so the rows the next write waits for are locked
briefly. A batch stored already shows there (its points collide with the stored ones, or its
pair does): the transaction is rolled back and the write taken the long way, below. A
replica writing the same batch at the same moment waits on those unique keys until the first
one commits, and then takes the long way too.

The long way: the pairs go in first with ``ON CONFLICT DO NOTHING RETURNING``; a batch
whose pair was not inserted is skipped whole; points already stored by another batch are
kept once. Latest values and roll-ups are upserted in key order, so concurrent writers take
row locks in one order and cannot deadlock.

The statements and the copies are :mod:`.statements`'s.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import asyncpg

from smartcity.runtime.storage.postgres import STALE_RETRIES
from smartcity.services.monitoring.model import IngestBatch, Retention, RetentionStats, WriteStats
from smartcity.services.monitoring.store import writes
from smartcity.services.monitoring.store.base import StoreError
from smartcity.services.monitoring.store.postgres import statements as sql
from smartcity.services.monitoring.store.postgres.connection import PostgresStoreBase

DEADLOCK_RETRIES = 3
RETENTION_TIMEOUT = 3600.0
"""Seconds a retention delete may take: the first run on a large database deletes a lot."""


class PostgresWrites(PostgresStoreBase):
    """Writes batches, tells which are stored already, and applies retention."""

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
        rows = await self._fetch(sql.SELECT_BATCHES, *_columns(keys, 2))
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

    # -- retention ------------------------------------------------------------------------

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


def _affected(status: str) -> int:
    """The row count of a command status such as ``DELETE 42``."""
    match = re.search(r"(\d+)$", status)
    return int(match.group(1)) if match else 0


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows turned into one list per column, for ``unnest``."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(column) for column in zip(*rows, strict=True)]
