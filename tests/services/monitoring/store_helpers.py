"""Readings for the storage tests and the answers computed directly from them in Python.

Values are multiples of 1/4 well inside 2^53, so every sum is exact in any order: the
stores' answers must then equal these computations exactly, roll-ups included.
"""

from __future__ import annotations

import random
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import asyncpg

from smartcity.services.monitoring.model import (
    HOUR,
    MICROS,
    MINUTE,
    Aggregation,
    IngestBatch,
    Quality,
    Selector,
    SeriesKey,
    StoredReading,
)
from smartcity.services.monitoring.store.common import POLL_INTERVAL_WEIGHT, load_migrations
from smartcity.services.monitoring.store.sqlite import sqlite_path

T0 = 1_767_225_600 * MICROS
"""2026-01-01 00:00 UTC, a whole hour."""

WATER = (("ph", "pH"), ("pressure", "bar"), ("turbidity", "NTU"))
POWER = (("current_a", "A"), ("frequency", "Hz"), ("voltage_an", "kV"))
DEVICES = (
    ("water_supply", "cau-do", "station-1", WATER),
    ("water_supply", "cau-do", "station-2", WATER),
    ("electricity", "hoa-khanh-110kv", "bay-1", POWER),
)

TABLES = (
    "series",
    "points",
    "batches",
    "latest",
    "rollup_1m",
    "rollup_1h",
    "devices",
    "schema_migrations",
)


def make_batches(
    seed: int = 7, start: int = T0 - 13 * MINUTE, end: int = T0 + 3 * HOUR + 17 * MINUTE
) -> list[IngestBatch]:
    """Polls of every device at irregular intervals, a few polls per batch, in arrival order.

    Most readings are GOOD (a few with a note in the reason); some are BAD without a value,
    BAD or UNCERTAIN with one (kept raw, never aggregated); now and then a metric is read
    twice at the same instant, so that LAST must break the tie by sequence.
    """
    rnd = random.Random(seed)
    batches = []
    for field, site, device, metrics in DEVICES:
        sequence = 1_000 * (1 + len(batches))
        at = start + rnd.randrange(0, 20 * MICROS)
        pending: list[StoredReading] = []
        polls = 0
        while at < end:
            for metric, unit in metrics:
                for _ in range(2 if rnd.random() < 0.03 else 1):
                    pending.append(_reading(rnd, metric, unit, at, sequence))
                    sequence += 1
            polls += 1
            if polls == 4:
                batches.append(_batch(field, site, device, pending, at + rnd.randrange(MICROS)))
                pending, polls = [], 0
            at += rnd.randrange(5 * MICROS, 45 * MICROS)
        if pending:
            batches.append(_batch(field, site, device, pending, at))
    batches.sort(key=lambda batch: batch.received)
    return batches


def _reading(rnd: random.Random, metric: str, unit: str, at: int, sequence: int) -> StoredReading:
    roll = rnd.random()
    value: float | None = rnd.randint(-4_000, 4_000) / 4
    quality, reason = Quality.GOOD, ""
    if roll < 0.04:
        value, quality, reason = None, Quality.BAD, "modbus: no response"
    elif roll < 0.08:
        quality, reason = Quality.BAD, "out of range"
    elif roll < 0.11:
        quality, reason = Quality.UNCERTAIN, "sensor warming up"
    elif roll < 0.14:
        reason = "read from the backup sensor"  # GOOD, with a note: aggregated too
    return StoredReading(metric, unit, value, quality, reason, at, sequence)


def _batch(
    field: str, site: str, device: str, readings: list[StoredReading], received: int
) -> IngestBatch:
    return IngestBatch(
        batch_id=f"{site}/{device}/{readings[0].sequence}",
        field=field,
        site=site,
        device=device,
        agent_id=f"agent-{site}",
        readings=tuple(readings),
        received=received,
    )


def readings_of(batches: Iterable[IngestBatch]) -> list[tuple[SeriesKey, StoredReading]]:
    return [
        (SeriesKey(batch.field, batch.site, batch.device, reading.metric), reading)
        for batch in batches
        for reading in batch.readings
    ]


def order(key: SeriesKey) -> tuple[str, str, str, str]:
    return (key.field, key.site, key.device, key.metric)


def value_of(aggregation: Aggregation, items: Sequence[tuple[int, int, float]]) -> float:
    values = [value for _, _, value in items]
    if aggregation is Aggregation.AVG:
        return sum(values) / len(values)
    if aggregation is Aggregation.SUM:
        return float(sum(values))
    if aggregation is Aggregation.MIN:
        return min(values)
    if aggregation is Aggregation.MAX:
        return max(values)
    if aggregation is Aggregation.COUNT:
        return float(len(values))
    return max(items)[2]


def expected_range(
    batches: Iterable[IngestBatch],
    selector: Selector,
    start: int,
    end: int,
    step: int,
    aggregation: Aggregation,
) -> dict[SeriesKey, list[tuple[int, float, int]]]:
    """``{series: [(bucket start, value, count)]}`` from the raw readings; series without a
    bucket are left out."""
    groups: dict[tuple[SeriesKey, int], list[tuple[int, int, float]]] = defaultdict(list)
    for key, reading in readings_of(batches):
        if (
            selector.matches(key)
            and reading.quality is Quality.GOOD
            and reading.value is not None
            and start <= reading.time < end
        ):
            bucket = reading.time - reading.time % step
            groups[(key, bucket)].append((reading.time, reading.sequence, reading.value))
    found: dict[SeriesKey, list[tuple[int, float, int]]] = defaultdict(list)
    for (key, bucket), items in sorted(groups.items(), key=lambda kv: (order(kv[0][0]), kv[0][1])):
        found[key].append((bucket, value_of(aggregation, items), len(items)))
    return dict(found)


def expected_latest(batches: Iterable[IngestBatch]) -> dict[SeriesKey, StoredReading]:
    newest: dict[SeriesKey, StoredReading] = {}
    for key, reading in readings_of(batches):
        old = newest.get(key)
        if old is None or (reading.time, reading.sequence) > (old.time, old.sequence):
            newest[key] = reading
    return newest


def truncated_division(numerator: int, denominator: int) -> int:
    """Integer division rounding towards zero, as SQL does."""
    quotient = abs(numerator) // denominator
    return quotient if numerator >= 0 else -quotient


def expected_poll_interval(received: Sequence[int]) -> int:
    estimate, last = 0, None
    for at in received:
        if last is not None and at > last:
            spacing = at - last
            estimate = (
                spacing
                if estimate == 0
                else estimate + truncated_division(spacing - estimate, POLL_INTERVAL_WEIGHT)
            )
        last = at if last is None else max(last, at)
    return estimate


def with_id(batch: IngestBatch, batch_id: str, **changes: Any) -> IngestBatch:
    return replace(batch, batch_id=batch_id, **changes)


def one_batch(
    field: str,
    site: str,
    device: str,
    batch_id: str,
    received: int,
    *readings: tuple[str, float, int],
    agent_id: str = "edge-1",
    from_device: bool = True,
) -> IngestBatch:
    """A batch of GOOD ``(metric, value, sequence)`` readings measured when received."""
    return IngestBatch(
        batch_id=batch_id,
        field=field,
        site=site,
        device=device,
        agent_id=agent_id,
        readings=tuple(
            StoredReading(metric, "u", value, Quality.GOOD, "", received, sequence)
            for metric, value, sequence in readings
        ),
        received=received,
        from_device=from_device,
    )


async def dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, sorted: two dumps are equal when nothing changed."""
    if url.startswith("sqlite:"):
        path, _ = sqlite_path(url)
        db = sqlite3.connect(path)
        try:
            return {table: sorted(db.execute(f"SELECT * FROM {table}")) for table in TABLES}
        finally:
            db.close()
    conn = await asyncpg.connect(url)
    try:
        return {
            table: sorted(tuple(row) for row in await conn.fetch(f"SELECT * FROM {table}"))
            for table in TABLES
        }
    finally:
        await conn.close()


async def fetch(url: str, sql: str) -> list[tuple[Any, ...]]:
    """The rows of one query on the database behind ``url``, beside the store."""
    if url.startswith("sqlite:"):
        path, _ = sqlite_path(url)
        db = sqlite3.connect(path)
        try:
            return db.execute(sql).fetchall()
        finally:
            db.close()
    conn = await asyncpg.connect(url)
    try:
        return [tuple(row) for row in await conn.fetch(sql)]
    finally:
        await conn.close()


async def create_at_version(
    url: str, version: int, rows: dict[str, Sequence[Sequence[Any]]] | None = None
) -> None:
    """A new database at schema ``version``, as an older release left it: the first
    ``version`` shipped migrations, recorded as the stores record them, then ``rows`` (by
    table, in that version's column order) inserted."""
    backend = "sqlite" if url.startswith("sqlite:") else "postgres"
    migrations = load_migrations(backend)[:version]
    ledger = (
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
        "applied_at INTEGER NOT NULL) STRICT"
        if backend == "sqlite"
        else "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, "
        "applied_at bigint NOT NULL)"
    )
    if backend == "sqlite":
        path, _ = sqlite_path(url)
        db = sqlite3.connect(path, isolation_level=None)
        try:
            db.executescript("\n".join([f"{ledger};", *(m.sql for m in migrations)]))
            with db:
                for migration in migrations:
                    db.execute(
                        "INSERT INTO schema_migrations VALUES (?, ?, 0)",
                        (migration.version, migration.name),
                    )
                for table, values in (rows or {}).items():
                    marks = ", ".join("?" * len(values[0]))
                    db.executemany(f"INSERT INTO {table} VALUES ({marks})", values)
        finally:
            db.close()
        return
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await conn.execute(ledger)
            for migration in migrations:
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations VALUES ($1, $2, 0)",
                    migration.version,
                    migration.name,
                )
            for table, values in (rows or {}).items():
                marks = ", ".join(f"${n}" for n in range(1, len(values[0]) + 1))
                await conn.executemany(f"INSERT INTO {table} VALUES ({marks})", values)
            if rows and "series" in rows:
                # Ids given explicitly: move the identity past them, as a restore does.
                await conn.execute(
                    "SELECT setval(pg_get_serial_sequence('series', 'id'), max(id)) FROM series"
                )
    finally:
        await conn.close()


async def execute(url: str, sql: str) -> None:
    """Runs one statement on the database behind ``url``, beside the store."""
    if url.startswith("sqlite:"):
        path, _ = sqlite_path(url)
        db = sqlite3.connect(path)
        try:
            with db:
                db.execute(sql)
        finally:
            db.close()
        return
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()
