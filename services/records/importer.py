"""One imported row's way into the store: checked on its own (type, schema, owner, id), then
turned into the change it makes given its record's latest version, with the service's own
checks (access, workflow), and written a chunk at a time.

A row without an ``id`` gets one derived from its type, owner and content, so importing the
same rows again changes nothing: a row identical to its record's latest version is counted
``unchanged``, a changed one becomes a new version.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from smartcity.runtime.errors import DomainError
from smartcity.runtime.tokens import Claims
from smartcity.services.records.files import RowError
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
from smartcity.services.records.service import MAX_ID, RecordsService, actor_of

__all__ = ["Chunk", "Importer", "derived_id"]

CONFLICT_RETRIES = 3
_IDS = uuid.UUID("6f1d1c3e-7a8e-4f0e-9a55-2f4a1b7c9d10")
"""Namespace of the ids derived from a row's content."""


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


@dataclass
class Chunk:
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
