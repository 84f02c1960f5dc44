"""Bulk import and export of records, for moving sector databases onto the platform.

Import (:func:`import_file`) reads the file twice, streaming both times. The first pass
only reads: a file that cannot be read as a whole (see :mod:`.files`) is refused before
anything is written, and the pass counts the rows for the progress bar and fingerprints the
content. The second pass imports chunks of rows, each chunk one transaction holding its
records, their events and the import's checkpoint (rows done, keyed by the fingerprint), so
an import that is interrupted (killed, the database gone) resumes after the last committed
chunk, and every row is imported exactly once. A row is whole or absent: one that is wrong
(unknown type, data against its schema, too large or too deep) is written with its reason to
the report file and skipped.

How a row is checked and what change it makes is :mod:`.importer`'s.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

from smartcity.runtime.tokens import Claims
from smartcity.services.records.files import (
    FileRefused,
    count_rows,
    reader,
    write_header,
    write_rows,
)
from smartcity.services.records.importer import Chunk, Importer
from smartcity.services.records.model import (
    Actor,
    ImportStats,
)
from smartcity.services.records.search import Search
from smartcity.services.records.service import PageRequest, RecordsService

CHUNK_ROWS = 500
YIELD_ROWS = 32
"""Rows prepared between two turns of the event loop while a chunk is being written."""

Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class Scan:
    rows: int
    fingerprint: str


def scan(path: Path, fmt: str) -> Scan:
    """Read the whole file once without importing: :class:`FileRefused` if it cannot be read,
    else its row count and a fingerprint of its bytes."""
    digest = hashlib.sha256()

    class _Hashing:
        def __init__(self, stream: IO[bytes]) -> None:
            self._stream = stream

        def __iter__(self) -> Iterator[bytes]:
            for line in self._stream:
                digest.update(line)
                yield line

    with path.open("rb") as stream:
        rows = count_rows(fmt, _Hashing(stream))  # type: ignore[arg-type]
    return Scan(rows, f"{fmt}:{digest.hexdigest()}")


async def import_file(
    service: RecordsService,
    caller: Claims | None,
    path: Path,
    fmt: str,
    *,
    report: Path,
    chunk: int = CHUNK_ROWS,
    actor: Actor | None = None,
    on_total: Callable[[int, int], None] | None = None,
    on_progress: Progress | None = None,
) -> ImportStats:
    """Import ``path`` (see the module docstring); row errors are appended to ``report`` as
    JSON Lines (``{"row": n, "error": "..."}``); ``actor`` is who the versions say wrote
    them (the caller by default). ``on_total(rows, already_done)`` is called
    once the file is read, ``on_progress(rows)`` after each committed chunk.

    Rows are read and checked while the chunk before them is written: the database works
    on one chunk while this process prepares the next. Chunks are still written one after
    the other, in file order, so the checkpoint only ever moves forward over committed
    rows."""
    scanned = scan(path, fmt)
    done = await service.store.import_progress(scanned.fingerprint)
    if on_total is not None:
        on_total(scanned.rows, done)
    stats = ImportStats(skipped=done)
    importer = Importer(service, caller, actor)
    with path.open("rb") as stream, report.open("a", encoding="utf-8") as errors_out:

        async def write(part: Chunk) -> None:
            errors = await importer.write_chunk(
                part.prepared, part.early, (scanned.fingerprint, part.end), stats
            )
            stats.refused += len(part.unreadable)
            stats.errors.extend(part.unreadable)
            # Written once the chunk has committed, so a resumed import reports a row once.
            for number, message in sorted(errors + part.unreadable):
                errors_out.write(json.dumps({"row": number, "error": message}) + "\n")
            errors_out.flush()
            if on_progress is not None:
                on_progress(part.rows)

        writing: asyncio.Task[None] | None = None
        part = Chunk()
        position = 0
        try:
            for item in reader(fmt, stream):
                position += 1
                if position <= done:
                    continue
                part.add(importer, item)
                if writing is not None and part.rows % YIELD_ROWS == 0:
                    await asyncio.sleep(0)  # the chunk being written goes on meanwhile
                if part.rows >= chunk:
                    if writing is not None:
                        await writing
                    part.end = position
                    writing = asyncio.create_task(write(part))
                    part = Chunk()
            if writing is not None:
                await writing
            writing = None
            if part.rows:
                part.end = position
                await write(part)
        finally:
            if writing is not None:
                # Interrupted: the chunk in flight commits whole or not at all.
                writing.cancel()
                await asyncio.gather(writing, return_exceptions=True)
    return stats


async def export_records(
    service: RecordsService,
    caller: Claims | None,
    out: IO[str],
    fmt: str,
    search: Search,
    *,
    on_progress: Progress | None = None,
) -> int:
    """Write every record ``search`` finds (latest versions, oldest first) to ``out``."""
    search = replace(search, order_by="create_time")
    write_header(fmt, out)
    token: str | None = None
    total = 0
    while True:
        page = await service.search(caller, search, PageRequest(1000, token))
        count = write_rows(fmt, out, page.items)
        total += count
        if on_progress is not None:
            on_progress(count)
        token = page.next_page_token
        if token is None:
            return total


__all__ = ["FileRefused", "Importer", "export_records", "import_file", "scan"]
