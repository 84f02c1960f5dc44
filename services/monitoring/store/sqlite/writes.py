"""The SQLite store's write path, and retention.

Per :meth:`SqliteWrites.write` call (many batches, one transaction): the ``(field,
batch_id)`` pairs go in first, the statement answering which were new (a batch whose pair
was stored already is skipped whole); then the points, then the latest values, roll-up
increments and device updates worked out by :mod:`smartcity.services.monitoring.store.writes`,
each as multi-row statements (see :class:`~.statements.Bulk`, with the other statements in
:mod:`.statements`). ``BEGIN IMMEDIATE`` takes the write lock up front, so two processes on
one file serialise instead of failing half-way, and the batch-id check cannot race. A point
that is already stored (same series, time and sequence, from another batch) is kept once and
counted once in the roll-ups: the write is rolled back and done again, point by point (rare).

What a write costs is mostly the b-tree pages it dirties: points, minute and hour roll-ups
are kept in series order (so a range query reads one contiguous run), which makes every
series touched by a transaction cost a page in each. Larger writes, with several readings
per series, are therefore cheaper per reading.

A write whose caller is cancelled still runs to its end in the writer thread (a thread
cannot be interrupted): it commits or rolls back whole, and the caller, which never saw it
succeed, acknowledges nothing; the redelivered batches are then skipped by their ids.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from smartcity.runtime.storage.sqlite import transaction
from smartcity.services.monitoring.model import (
    HOUR,
    MINUTE,
    IngestBatch,
    Retention,
    RetentionStats,
    WriteStats,
)
from smartcity.services.monitoring.store import writes
from smartcity.services.monitoring.store.sqlite.connection import SqliteStoreBase
from smartcity.services.monitoring.store.sqlite.statements import (
    BATCHES,
    DEVICES,
    EXISTING_BATCHES,
    LATEST,
    PLAIN_POINTS,
    POINTS,
    ROLLUPS,
    SERIES,
    SERIES_IDS,
)

RETENTION_CHUNK = 200
"""Series per retention transaction: writes get the lock between chunks."""


class _StoredBefore(Exception):  # noqa: N818 - control flow inside a write
    """A point of the write is stored already: the write is rolled back and done again."""


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A write's rows, worked out before the writer thread takes it."""

    generation: int
    points: writes.Points
    summary: writes.Summary


class SqliteWrites(SqliteStoreBase):
    """Writes batches (in the writer thread), tells which are stored already, and applies
    retention."""

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
        return await self._read(lambda db: set(db.execute(EXISTING_BATCHES, (pairs,))))

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
            fresh = set(BATCHES.returning(db, [(b.field, b.batch_id, b.received) for b in unique]))
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
                points.plain = [row for row in points.plain if PLAIN_POINTS.run(db, [row])]
                points.other = [row for row in points.other if POINTS.run(db, [row])]
                summary = None
            elif PLAIN_POINTS.run(db, points.plain) + POINTS.run(db, points.other) != len(points):
                raise _StoredBefore
            if summary is None:
                summary = writes.summarize(points)
            LATEST.run(db, summary.latest)
            ROLLUPS[MINUTE].run(db, summary.minute)
            ROLLUPS[HOUR].run(db, summary.hour)
            DEVICES.run(db, [(*row[:5], row[4], row[5]) for row in writes.device_rows(accepted)])
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
        SERIES.run(db, [(*device, metric, unit) for metric, unit in missing.items()])
        found = db.execute(SERIES_IDS, (*device, json.dumps(list(missing)))).fetchall()
        ids = self._series.setdefault(device, {})
        ids.update(found)
        self._fresh.append((device, list(missing)))
        return ids

    # -- retention ------------------------------------------------------------------------

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
