"""``smartcity bench records``: bulk import and reads of the records service on PostgreSQL,
next to a raw ``COPY`` of the same rows in the same run.

* **raw COPY**: the rows' JSON documents, binary ``COPY`` into a bare table with a primary
  key: what the database can take at best for these documents;
* **COPY into the service's tables**: the rows an import writes (each record's version, its
  latest state, its search keys and its outbox event), built beforehand and only copied,
  into the service's own tables with their indexes, in transactions of ``chunk`` rows: the
  database doing the import's work with nothing read, checked or decided;
* **import**: the same rows as a JSON Lines file through ``import_file``: read and
  fingerprinted, parsed, validated against the type's schema, versions, latest states,
  search keys and outbox events written in transactions of ``chunk`` rows;
* **get**: ``RecordsService.get`` of random records (latest version), one at a time;
* **search**: ``RecordsService.search`` by an indexed field (``school_id``, 1 in
  ``schools`` records), first page of 20, one at a time.

Everything runs in schemas of its own, dropped afterwards. Targets: import at 30% or more of
raw COPY; get p99 under 10 ms; search p99 under 50 ms. The import is shown as a share of
both ceilings: the bare table says what the documents cost the database at best, the
service's tables what the import's writes cost it, so the gap between the two ceilings is
the price of history, search keys and events, and the gap to the import is this process.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from smartcity.bench.postgres import temporary_schema
from smartcity.fields import load_fields
from smartcity.services.records.bulk import import_file
from smartcity.services.records.files import reader
from smartcity.services.records.importer import Importer
from smartcity.services.records.model import ImportRow
from smartcity.services.records.schemas import TypeRegistry
from smartcity.services.records.search import Search
from smartcity.services.records.service import PageRequest, RecordsService
from smartcity.services.records.store import common, open_store

__all__ = ["RecordsBenchResult", "run_records_bench"]

TARGET_IMPORT_SHARE = 0.30
TARGET_GET_P99_MS = 10.0
TARGET_SEARCH_P99_MS = 50.0


@dataclass(frozen=True)
class RecordsBenchResult:
    rows: int
    copy_rows_per_second: float
    tables_rows_per_second: float
    """COPY of the import's rows into the service's own tables."""
    import_rows_per_second: float
    get_p50_ms: float
    get_p99_ms: float
    search_p50_ms: float
    search_p99_ms: float
    samples: int


def school_record(n: int, schools: int) -> dict[str, object]:
    return {
        "student_id": f"s-{n}",
        "student": {"full_name": f"Student {n}", "birth_date": "2012-09-05"},
        "school_id": f"school-{n % schools}",
        "school_year": "2025-2026",
        "grade": 1 + n % 12,
        "subjects": [{"subject": "math", "score": (n % 100) / 10}],
        "conduct": "good",
    }


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000


async def _timed(calls: int, call: Callable[[int], object]) -> list[float]:
    spent = []
    for n in range(calls):
        started = time.perf_counter()
        await call(n)  # type: ignore[misc]
        spent.append(time.perf_counter() - started)
    return spent


async def _copy_into_tables(url: str, source: Path, chunk: int) -> float:
    """Seconds the database takes to store what an import of ``source`` writes, copied in
    transactions of ``chunk`` records; the rows are built (untimed) by the importer's own
    code, so they are exactly the import's."""
    store = open_store(url)
    await store.open()
    await store.close()
    service = RecordsService(store, TypeRegistry.from_fields(load_fields()))
    importer = Importer(service, None)
    now = service.clock()
    conn = await asyncpg.connect(url)
    spent = 0.0
    try:
        with source.open("rb") as stream:
            rows = reader("jsonl", stream)
            while True:
                changes = []
                for row in itertools.islice(rows, chunk):
                    assert isinstance(row, ImportRow), row
                    made = importer.change(importer.prepare_row(row), {}, now)
                    assert made is not None
                    changes.append(made)
                if not changes:
                    return spent
                versions = [common.version_row(c.version, c.text) for c in changes]
                latest = [common.record_row(c, c.text) for c in changes]
                keys = [
                    (path, value, c.version.update_time, c.version.id)
                    for c in changes
                    for path, value in c.keys
                ]
                events = [common.outbox_row(c) for c in changes]
                started = time.perf_counter()
                async with conn.transaction():
                    await conn.copy_records_to_table(
                        "record_versions", records=versions, columns=common.VERSION_COLUMNS
                    )
                    await conn.copy_records_to_table(
                        "records", records=latest, columns=common.RECORD_COLUMNS
                    )
                    await conn.copy_records_to_table(
                        "record_keys",
                        records=keys,
                        columns=("path", "value", "update_time", "record_id"),
                    )
                    await conn.copy_records_to_table(
                        "outbox", records=events, columns=common.OUTBOX_COLUMNS
                    )
                spent += time.perf_counter() - started
    finally:
        await conn.close()


async def _bench(
    url: str, rows: int, samples: int, chunk: int, schools: int, progress: Callable[[str], None]
) -> RecordsBenchResult:
    async with temporary_schema(url, "bench_records") as scoped:
        with tempfile.TemporaryDirectory() as folder:
            source = Path(folder) / "records.jsonl"
            progress(f"writing {rows:,} rows")
            documents = []
            with source.open("w") as out:
                for n in range(rows):
                    data = school_record(n, schools)
                    documents.append((f"r-{n}", json.dumps(data)))
                    out.write(json.dumps({"id": f"r-{n}", "type": "school_record", "data": data}))
                    out.write("\n")
            progress("raw COPY")
            conn = await asyncpg.connect(scoped)
            await conn.execute("CREATE TABLE raw_copy (id text PRIMARY KEY, data jsonb NOT NULL)")
            started = time.perf_counter()
            await conn.copy_records_to_table("raw_copy", records=documents, columns=("id", "data"))
            copy_seconds = time.perf_counter() - started
            await conn.close()
            del documents
            progress("COPY into the service's tables")
            async with temporary_schema(url, "bench_records_tables") as tables:
                tables_seconds = await _copy_into_tables(tables, source, chunk)
            store = open_store(scoped)
            await store.open()
            try:
                service = RecordsService(store, TypeRegistry.from_fields(load_fields()))
                progress("import")
                started = time.perf_counter()
                stats = await import_file(
                    service, None, source, "jsonl", report=Path(folder) / "report", chunk=chunk
                )
                import_seconds = time.perf_counter() - started
                if stats.created != rows:
                    raise RuntimeError(
                        f"imported {stats.created} of {rows} rows: {stats.errors[:3]}"
                    )
                picks = random.Random(7)
                progress("get")
                gets = await _timed(
                    samples, lambda n: service.get(None, f"r-{picks.randrange(rows)}")
                )
                progress("search")
                searches = await _timed(
                    samples,
                    lambda n: service.search(
                        None,
                        Search(
                            type="school_record",
                            query=f"school_id=school-{picks.randrange(schools)}",
                        ),
                        PageRequest(20),
                    ),
                )
            finally:
                await store.close()
    return RecordsBenchResult(
        rows=rows,
        copy_rows_per_second=rows / copy_seconds,
        tables_rows_per_second=rows / tables_seconds,
        import_rows_per_second=rows / import_seconds,
        get_p50_ms=statistics.median(gets) * 1000,
        get_p99_ms=_percentile(gets, 0.99),
        search_p50_ms=statistics.median(searches) * 1000,
        search_p99_ms=_percentile(searches, 0.99),
        samples=samples,
    )


def run_records_bench(
    url: str,
    *,
    rows: int = 1_500_000,
    samples: int = 2000,
    chunk: int = 2000,
    schools: int = 1000,
    progress: Callable[[str], None] = lambda message: None,
) -> RecordsBenchResult:
    return asyncio.run(_bench(url, rows, samples, chunk, schools, progress))
