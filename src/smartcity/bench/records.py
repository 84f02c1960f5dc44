"""``smartcity bench records``: bulk import and reads of the records service on PostgreSQL,
next to a raw ``COPY`` of the same rows in the same run.

* **raw COPY**: the rows' JSON documents, binary ``COPY`` into a bare table with a primary
  key: what the database can take at best, the ceiling of any import;
* **import**: the same rows as a JSON Lines file through ``import_file``: read and
  fingerprinted, parsed, validated against the type's schema, versions, latest states,
  search keys and outbox events written in transactions of ``chunk`` rows;
* **get**: ``RecordsService.get`` of random records (latest version), one at a time;
* **search**: ``RecordsService.search`` by an indexed field (``school_id``, 1 in
  ``schools`` records), first page of 20, one at a time.

Everything runs in a schema of its own, dropped afterwards. Targets (issue 11): import at
30% or more of raw COPY; get p99 under 10 ms; search p99 under 50 ms.
"""

from __future__ import annotations

import asyncio
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
from smartcity.services.records.schemas import TypeRegistry
from smartcity.services.records.search import Search
from smartcity.services.records.service import PageRequest, RecordsService
from smartcity.services.records.store import open_store

__all__ = ["RecordsBenchResult", "run_records_bench"]

TARGET_IMPORT_SHARE = 0.30
TARGET_GET_P99_MS = 10.0
TARGET_SEARCH_P99_MS = 50.0


@dataclass(frozen=True)
class RecordsBenchResult:
    rows: int
    copy_rows_per_second: float
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
