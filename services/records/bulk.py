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

A row without an ``id`` gets one derived from its type, owner and content, so importing the
same rows again changes nothing: a row identical to its record's latest version is counted
``unchanged``, a changed one becomes a new version.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from smartcity.runtime.errors import DomainError
from smartcity.runtime.tokens import Claims
from smartcity.services.records.files import (
    FileRefused,
    RowError,
    count_rows,
    reader,
    write_header,
    write_rows,
)
from smartcity.services.records.model import (
    Actor,
    Change,
    EventType,
    ImportRow,
    ImportStats,
    RecordVersion,
    VersionConflict,
)
from smartcity.services.records.schemas import TypeInfo
from smartcity.services.records.search import Search
from smartcity.services.records.service import MAX_ID, PageRequest, RecordsService, actor_of

CHUNK_ROWS = 500
CONFLICT_RETRIES = 3
YIELD_ROWS = 32
"""Rows prepared between two turns of the event loop while a chunk is being written."""
_IDS = uuid.UUID("6f1d1c3e-7a8e-4f0e-9a55-2f4a1b7c9d10")
"""Namespace of the ids derived from a row's content."""

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


def derived_id(type_name: str, owner: str, document: str) -> str:
    return uuid.uuid5(_IDS, f"{type_name}\n{owner}\n{document}").hex


@dataclass(frozen=True, slots=True)
class _Prepared:
    row: ImportRow
    info: TypeInfo
    doc: dict[str, Any]
    text: str
    owner: str
    declared: bool
    record_id: str


class Importer:
    """Turns parsed rows into changes with the service's checks, and writes them."""

    def __init__(
        self, service: RecordsService, caller: Claims | None, actor: Actor | None = None
    ) -> None:
        self.service = service
        self.caller = caller
        self.actor = actor or actor_of(caller)

    def prepare_row(self, row: ImportRow) -> _Prepared:
        """A row checked on its own (type, schema, owner, id); refusals raise."""
        info = self.service.types.get(row.type)
        doc, text = self.service.document(info, row.data)
        declared = info.owner_in(doc)
        owner = row.owner_id or declared or ""
        if not owner or len(owner) > MAX_ID:
            raise DomainError(f"owner_id: required (1 to {MAX_ID} characters)")
        if declared is not None and declared != owner:
            raise DomainError(f"owner_id {owner!r} differs from the data's owner {declared!r}")
        record_id = row.id or derived_id(info.name, owner, text)
        if len(record_id) > MAX_ID or not record_id.isprintable():
            raise DomainError(f"id: 1 to {MAX_ID} printable characters")
        return _Prepared(row, info, doc, text, owner, declared is not None, record_id)

    def change(self, item: _Prepared, current: dict[str, RecordVersion], now: int) -> Change | None:
        """The change a row makes given its record's latest version (``None``: the record
        holds this content already); refusals raise."""
        info, doc, row = item.info, item.doc, item.row
        latest = current.get(item.record_id)
        self.service.policy.check_write(self.caller, info, item.owner, creating=latest is None)
        flow = info.spec.workflow
        reason = row.reason or "bulk import"
        if latest is None:
            self.service.check_workflow(info, doc, None)
            owner = Actor(item.owner, "citizen" if item.declared else "")
            version = RecordVersion(
                id=item.record_id,
                type=info.name,
                field=info.field,
                owner=owner,
                version=1,
                data=doc,
                deleted=False,
                schema_version=info.spec.version,
                create_time=now,
                update_time=now,
                created_by=self.actor,
                updated_by=self.actor,
                reason=reason,
            )
            event = EventType.CREATED
        else:
            if latest.type != info.name or latest.owner.id != item.owner:
                raise DomainError(f"id {item.record_id} is another type's or owner's record")
            if latest.deleted:
                raise DomainError(f"record {item.record_id} is deleted")
            if latest.data == doc:
                return None
            before = (latest.data or {}).get(flow.property) if flow else None
            self.service.check_workflow(info, doc, before)
            version = replace(
                latest,
                version=latest.version + 1,
                data=doc,
                schema_version=info.spec.version,
                update_time=now,
                updated_by=self.actor,
                reason=reason,
            )
            event = EventType.UPDATED
        current[item.record_id] = version
        expected = 0 if latest is None else latest.version
        return Change(version, expected, event, uuid.uuid4().hex, info.keys(doc), text=item.text)

    async def write_chunk(
        self,
        prepared: Sequence[_Prepared],
        errors: Sequence[tuple[int, str]],
        checkpoint: tuple[str, int],
        stats: ImportStats,
    ) -> list[tuple[int, str]]:
        """Write one prepared chunk with its checkpoint, retried when a concurrent writer
        moved one of its records on; returns the chunk's row errors."""
        for attempt in range(CONFLICT_RETRIES):
            current = await self.service.store.latest(sorted({p.record_id for p in prepared}))
            now = self.service.clock()
            changes: list[Change] = []
            refused: list[tuple[int, str]] = []
            unchanged = 0
            for item in prepared:
                try:
                    change = self.change(item, current, now)
                except DomainError as exc:
                    refused.append((item.row.number, exc.message))
                    continue
                if change is None:
                    unchanged += 1
                else:
                    changes.append(change)
            try:
                await self.service.store.write(changes, checkpoint=checkpoint)
            except VersionConflict:
                if attempt == CONFLICT_RETRIES - 1:
                    raise
                continue
            found = sorted([*errors, *refused])
            stats.created += sum(1 for c in changes if c.event is EventType.CREATED)
            stats.updated += sum(1 for c in changes if c.event is EventType.UPDATED)
            stats.unchanged += unchanged
            stats.refused += len(found)
            stats.errors.extend(found)
            if changes:
                self.service.notify()
            return found
        raise AssertionError("unreachable")


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

        async def write(part: _Chunk) -> None:
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
        part = _Chunk()
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
                    part = _Chunk()
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


@dataclass
class _Chunk:
    """Rows read for one transaction: prepared, refused on their own, or unreadable."""

    prepared: list[_Prepared] = field(default_factory=list)
    early: list[tuple[int, str]] = field(default_factory=list)
    unreadable: list[tuple[int, str]] = field(default_factory=list)
    rows: int = 0
    end: int = 0
    """The file position after the chunk's last row: its checkpoint."""

    def add(self, importer: Importer, item: ImportRow | RowError) -> None:
        self.rows += 1
        if isinstance(item, RowError):
            self.unreadable.append((item.number, item.message))
            return
        try:
            self.prepared.append(importer.prepare_row(item))
        except DomainError as exc:
            self.early.append((item.number, exc.message))


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
