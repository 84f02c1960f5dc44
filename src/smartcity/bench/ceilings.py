"""What the storage engines do with the benchmark's readings when nothing else is asked of
them: the ceilings ``smartcity bench monitoring`` puts ingest next to.

Both write the very rows ingest writes to its ``points`` table (series id, time, sequence,
value, quality, reason), into a table with the same primary key, in transactions of the same
size as one ingest fetch, and nothing else: no batch ids, no latest values, no roll-ups, no
device registry, no decoding. SQLite gets a plain ``executemany`` with the same pragmas the
store uses; PostgreSQL a binary ``COPY``. The first tenth of the rows is a warm-up and not
timed, as for ingest.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from smartcity.telemetry.v1 import telemetry_pb2

PointRow = tuple[int, int, int, float, int, None]

WARM_UP = 0.1
"""Share of the work done before the clock starts."""

_SQLITE_TABLE = """
CREATE TABLE points (
    series_id INTEGER NOT NULL,
    time INTEGER NOT NULL,
    sequence INTEGER NOT NULL,
    value REAL,
    quality INTEGER NOT NULL,
    reason TEXT,
    PRIMARY KEY (series_id, time, sequence)
) STRICT, WITHOUT ROWID
"""

_POSTGRES_TABLE = """
CREATE TABLE points (
    series_id bigint NOT NULL,
    time bigint NOT NULL,
    sequence bigint NOT NULL,
    value double precision,
    quality smallint NOT NULL,
    reason text,
    PRIMARY KEY (series_id, time, sequence)
)
"""


def point_rows(payloads: Sequence[tuple[str, bytes]]) -> list[PointRow]:
    """The ``points`` rows of the benchmark's messages: one series per device and metric."""
    series: dict[tuple[str, str], int] = {}
    rows: list[PointRow] = []
    for _, data in payloads:
        batch = telemetry_pb2.TelemetryBatch.FromString(data)
        for reading in batch.readings:
            key = (batch.device, reading.metric)
            series_id = series.setdefault(key, len(series) + 1)
            stamp = reading.source_time if reading.HasField("source_time") else reading.read_time
            time_us = stamp.seconds * 1_000_000 + stamp.nanos // 1000
            rows.append((series_id, time_us, reading.sequence, reading.value, 1, None))
    return rows


def _chunks(rows: Sequence[PointRow], size: int) -> list[Sequence[PointRow]]:
    return [rows[start : start + size] for start in range(0, len(rows), size)]


def _timed_rate(chunks: list[Sequence[PointRow]], write: Any) -> float:
    """Rows per second over the chunks after the warm-up."""
    warm = max(1, int(len(chunks) * WARM_UP)) if len(chunks) > 1 else 0
    for chunk in chunks[:warm]:
        write(chunk)
    measured = chunks[warm:]
    started = time.perf_counter()
    for chunk in measured:
        write(chunk)
    elapsed = time.perf_counter() - started
    return sum(len(chunk) for chunk in measured) / elapsed


def sqlite_executemany_rate(path: Path, rows: Sequence[PointRow], per_transaction: int) -> float:
    """Rows/s of a plain ``executemany`` into a fresh SQLite file (WAL, synchronous=NORMAL)."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA cache_size=-65536")
        db.execute(_SQLITE_TABLE)
        insert = "INSERT INTO points VALUES (?, ?, ?, ?, ?, ?)"

        def write(chunk: Sequence[PointRow]) -> None:
            db.execute("BEGIN")
            db.executemany(insert, chunk)
            db.execute("COMMIT")

        return _timed_rate(_chunks(rows, per_transaction), write)


async def postgres_copy_rate(url: str, rows: Sequence[PointRow], per_transaction: int) -> float:
    """Rows/s of a binary ``COPY`` into a fresh table of the schema ``url`` names."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(_POSTGRES_TABLE)
        chunks = _chunks(rows, per_transaction)
        warm = max(1, int(len(chunks) * WARM_UP)) if len(chunks) > 1 else 0

        async def write(chunk: Sequence[PointRow]) -> None:
            async with conn.transaction():
                await conn.copy_records_to_table("points", records=chunk)

        for chunk in chunks[:warm]:
            await write(chunk)
        started = time.perf_counter()
        for chunk in chunks[warm:]:
            await write(chunk)
        elapsed = time.perf_counter() - started
        return sum(len(chunk) for chunk in chunks[warm:]) / elapsed
    finally:
        await conn.close()
