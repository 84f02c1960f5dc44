"""The statements of a SQLite write (see :mod:`.writes` for the path they take): each
table's rows go in as multi-row ``INSERT`` statements (:class:`Bulk`), with the upsert that
adds them to what is stored. The queries are :mod:`.reads`'s.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from itertools import chain
from typing import Any

from smartcity.services.monitoring.store import common
from smartcity.services.monitoring.store.ranges import ROLLUP_TABLES

CHUNK_ROWS = 4096
"""Rows per multi-row statement, unless SQLite's variable limit (32,766 by default) allows
fewer."""


class Bulk:
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
EXISTING_BATCHES = (
    "SELECT field, batch_id FROM batches WHERE (field, batch_id) IN (SELECT "
    "json_extract(j.value, '$[0]'), json_extract(j.value, '$[1]') FROM json_each(?) AS j)"
)
# The pairs actually inserted come back: a batch whose pair was stored already is skipped.
BATCHES = Bulk(
    "INSERT INTO batches(field, batch_id, received) VALUES ",
    "(?, ?, ?)",
    " ON CONFLICT DO NOTHING RETURNING field, batch_id",
)

POINTS = Bulk(
    "INSERT INTO points(series_id, time, sequence, value, quality, reason) VALUES ",
    "(?, ?, ?, ?, ?, ?)",
    " ON CONFLICT DO NOTHING",
)

PLAIN_POINTS = Bulk(
    "INSERT INTO points(series_id, time, sequence, value, quality, reason) "
    f"SELECT column1, column2, column3, column4, {common.GOOD}, NULL FROM (VALUES ",
    "(?, ?, ?, ?)",
    ") WHERE true ON CONFLICT DO NOTHING",
)

LATEST = Bulk(
    "INSERT INTO latest(series_id, time, sequence, value, quality, reason) VALUES ",
    "(?, ?, ?, ?, ?, ?)",
    """
ON CONFLICT (series_id) DO UPDATE SET
    time = excluded.time, sequence = excluded.sequence, value = excluded.value,
    quality = excluded.quality, reason = excluded.reason
WHERE (excluded.time, excluded.sequence) > (latest.time, latest.sequence)""",
)


def _rollup(table: str) -> Bulk:
    newer = (
        f"(excluded.last_time, excluded.last_sequence) > ({table}.last_time, {table}.last_sequence)"
    )
    return Bulk(
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


ROLLUPS = {width: _rollup(table) for width, table in ROLLUP_TABLES.items()}

# Rows of one statement are applied in order, so several batches of one device in a write
# move the poll interval estimate one after the other.
DEVICES = Bulk(
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

SERIES = Bulk(
    "INSERT INTO series(field, site, device, metric, unit) VALUES ",
    "(?, ?, ?, ?, ?)",
    " ON CONFLICT DO NOTHING",
)
SERIES_IDS = (
    "SELECT metric, id FROM series WHERE field = ? AND site = ? AND device = ? "
    "AND metric IN (SELECT j.value FROM json_each(?) AS j)"
)
