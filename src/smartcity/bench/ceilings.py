"""What the storage engines do with the benchmark's readings when nothing else is asked of
them: the ceilings ``smartcity bench monitoring`` puts ingest next to.

Both write the very rows ingest writes to its ``points`` table (series id, time, sequence,
value, quality, reason) into that table itself, made by the store's own migrations (the same
key and indexes), in transactions of the same size as one ingest fetch, and nothing else: no
batch ids, no latest values, no roll-ups, no device registry, no decoding. SQLite gets a
plain ``executemany`` with the store's pragmas; PostgreSQL a binary ``COPY``. The first
tenth of the rows is a warm-up and not timed, as for ingest.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from smartcity.services.monitoring.store import open_store
from smartcity.telemetry.v1 import telemetry_pb2

PointRow = tuple[int, int, int, float, int, None]

WARM_UP = 0.1
"""Share of the work done before the clock starts."""


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


async def _schema(url: str) -> None:
    """The monitoring store's tables at ``url``, made by its migrations."""
    store = open_store(url)
    await store.open()
    await store.close()


async def sqlite_executemany_rate(
    path: Path, rows: Sequence[PointRow], per_transaction: int
) -> float:
    """Rows/s of a plain ``executemany`` into the store's ``points`` table in a new SQLite
    file (WAL, synchronous=NORMAL and the cache the store uses)."""
    await _schema(f"sqlite:///{path}")
    return await asyncio.to_thread(_executemany_rate, path, rows, per_transaction)


def _executemany_rate(path: Path, rows: Sequence[PointRow], per_transaction: int) -> float:
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA cache_size=-65536")
        insert = "INSERT INTO points VALUES (?, ?, ?, ?, ?, ?)"

        def write(chunk: Sequence[PointRow]) -> None:
            db.execute("BEGIN")
            db.executemany(insert, chunk)
            db.execute("COMMIT")

        return _timed_rate(_chunks(rows, per_transaction), write)


async def postgres_copy_rate(url: str, rows: Sequence[PointRow], per_transaction: int) -> float:
    """Rows/s of a binary ``COPY`` into the store's ``points`` table in the (empty) schema
    ``url`` names."""
    import asyncpg

    await _schema(url)
    conn = await asyncpg.connect(url)
    try:
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
