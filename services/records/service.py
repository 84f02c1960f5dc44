"""The records service's domain: create, read, update, delete, history and search, with the
type's schema, the access rules and the version precondition, free of protobuf.

Every write appends a version and its event in one store transaction (the outbox), so an
event exists exactly for each committed change. Reads of sensitive records need a reason
and are audited before the record is returned.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from smartcity.runtime.errors import FailedPrecondition, InvalidArgument, NotFound
from smartcity.runtime.storage.paging import decode_page_token, encode_page_token
from smartcity.runtime.tokens import Claims
from smartcity.services.records.access import AccessPolicy
from smartcity.services.records.model import (
    DAY,
    Actor,
    AuditEntry,
    Change,
    EventType,
    Page,
    RecordVersion,
    VersionConflict,
)
from smartcity.services.records.schemas import (
    Limits,
    SchemaViolation,
    TypeInfo,
    TypeRegistry,
    Violation,
    canonical,
    encode,
    pointer,
)
from smartcity.services.records.search import Search, scope
from smartcity.services.records.store import RecordStore

DEFAULT_PAGE = 100
MAX_PAGE = 1000
MAX_ID = 200
MAX_REASON = 2000
ANONYMOUS = Actor("anonymous", "")


class StaleVersion(FailedPrecondition):
    """The record moved on since the caller read it (gRPC ``ABORTED``): read it again."""

    def __init__(self, record_id: str, expected: int, actual: int) -> None:
        super().__init__(
            f"record {record_id} is at version {actual}, not the expected {expected}: "
            "someone changed it since you read it; read it again and reapply your change"
        )
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True, slots=True)
class PageRequest:
    size: int = 0
    token: str | None = None

    def limit(self) -> int:
        if self.size < 0:
            raise InvalidArgument(f"page_size must not be negative, got {self.size}")
        return min(self.size or DEFAULT_PAGE, MAX_PAGE)


def actor_of(caller: Claims | None) -> Actor:
    return ANONYMOUS if caller is None else Actor(caller.sub, caller.kind.value)


def _check_id(record_id: str) -> str:
    if not record_id or len(record_id) > MAX_ID or not record_id.isprintable():
        raise InvalidArgument(f"record id must be 1 to {MAX_ID} printable characters")
    return record_id


def _check_reason(reason: str) -> str:
    if len(reason) > MAX_REASON:
        raise InvalidArgument(f"reason is longer than {MAX_REASON} characters")
    return _no_nul(reason, "reason")


def _no_nul(text: str, what: str) -> str:
    """``text``, unless it holds U+0000, which no text column (PostgreSQL's) can store."""
    if "\x00" in text:
        raise InvalidArgument(f"{what} must not contain NUL characters")
    return text


class RecordsService:
    def __init__(
        self,
        store: RecordStore,
        types: TypeRegistry,
        *,
        policy: AccessPolicy | None = None,
        limits: Limits | None = None,
        retention: int = 365 * DAY,
        clock: Callable[[], int] | None = None,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.types = types
        self.policy = policy or AccessPolicy()
        self.limits = limits or Limits()
        self.retention = retention
        self.clock = clock or (lambda: time.time_ns() // 1000)
        self._on_commit = on_commit or (lambda: None)

    def notify(self) -> None:
        """Changes committed (by an import, say): the outbox has events to publish."""
        self._on_commit()

    # -- documents -------------------------------------------------------------------------

    def document(self, info: TypeInfo, data: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
        """``data`` in canonical form, within the limits and valid against the type, with
        its text (:func:`encode`), which the store writes as it is."""
        doc = canonical(data, self.limits)
        text = encode(doc)
        size = len(text.encode())
        if size > self.limits.max_bytes:
            raise SchemaViolation(
                [Violation("", f"{size} bytes, more than the {self.limits.max_bytes} allowed")]
            )
        info.validate(doc)
        return doc, text

    def check_workflow(self, info: TypeInfo, doc: Mapping[str, Any], before: Any) -> None:
        flow = info.spec.workflow
        if flow is None:
            return
        after = doc.get(flow.property)
        where = pointer([flow.property])
        if before is None and after not in flow.initial:
            first = ", ".join(flow.initial)
            raise SchemaViolation([Violation(where, f"a new record starts as {first}")])
        if before is not None and not flow.allows(before, after):
            following = ", ".join(flow.transitions.get(before, ())) or "none: it is final"
            raise SchemaViolation(
                [Violation(where, f"cannot move from {before!r} to {after!r} (next: {following})")]
            )

    # -- writes ----------------------------------------------------------------------------

    async def create(
        self,
        caller: Claims | None,
        type_name: str,
        data: Mapping[str, Any],
        *,
        owner_id: str = "",
        reason: str = "",
        request_id: str = "",
    ) -> RecordVersion:
        info = self.types.get(type_name)
        doc, text = self.document(info, data)
        declared = info.owner_in(doc)
        if owner_id and declared and owner_id != declared:
            where = pointer([info.spec.owner_property])
            raise SchemaViolation([Violation(where, f"must be the owner_id {owner_id!r}")])
        owner = owner_id or declared or (caller.sub if caller is not None else "")
        if not owner or len(owner) > MAX_ID or not owner.isprintable():
            raise InvalidArgument(f"owner_id must be 1 to {MAX_ID} printable characters")
        self.policy.check_write(caller, info, owner, creating=True)
        self.check_workflow(info, doc, None)
        if len(request_id) > MAX_ID:
            raise InvalidArgument(f"request_id is longer than {MAX_ID} characters")
        me = actor_of(caller)
        kind = me.kind if owner == me.id else ("citizen" if declared else "")
        now = self.clock()
        version = RecordVersion(
            id=uuid.uuid4().hex,
            type=info.name,
            field=info.field,
            owner=Actor(owner, kind),
            version=1,
            data=doc,
            deleted=False,
            schema_version=info.spec.version,
            create_time=now,
            update_time=now,
            created_by=me,
            updated_by=me,
            reason=_check_reason(reason),
        )
        key = f"{me.id}\n{request_id}" if request_id else None
        change = Change(
            version, 0, EventType.CREATED, uuid.uuid4().hex, info.keys(doc), key, text=text
        )
        (outcome,) = await self.store.write([change])
        if not outcome.repeated:
            self._on_commit()
        return outcome.version

    async def _current(self, record_id: str) -> tuple[RecordVersion, TypeInfo]:
        latest = (await self.store.latest([_check_id(record_id)])).get(record_id)
        if latest is None:
            raise NotFound(f"record {record_id} does not exist")
        if latest.type not in self.types:
            raise FailedPrecondition(
                f"record {record_id} is of type {latest.type!r}, which no installed field "
                "plugin declares any more"
            )
        return latest, self.types.get(latest.type)

    async def _append(self, change: Change) -> RecordVersion:
        try:
            await self.store.write([change])
        except VersionConflict as exc:
            raise StaleVersion(exc.record_id, exc.expected, exc.actual) from None
        self._on_commit()
        return change.version

    def _precondition(self, latest: RecordVersion, expected: int) -> None:
        if expected <= 0:
            raise InvalidArgument("expected_version must be the version you read (1 or more)")
        if expected > latest.version:
            raise InvalidArgument(
                f"expected_version {expected} is ahead of record {latest.id}'s latest "
                f"version {latest.version}"
            )
        if latest.deleted:
            raise FailedPrecondition(f"record {latest.id} is deleted")
        if expected != latest.version:
            raise StaleVersion(latest.id, expected, latest.version)

    async def update(
        self,
        caller: Claims | None,
        record_id: str,
        data: Mapping[str, Any],
        *,
        expected_version: int,
        reason: str = "",
    ) -> RecordVersion:
        latest, info = await self._current(record_id)
        self.policy.check_write(caller, info, latest.owner.id, creating=False)
        self._precondition(latest, expected_version)
        doc, text = self.document(info, data)
        declared = info.owner_in(doc)
        if declared is not None and declared != latest.owner.id:
            where = pointer([info.spec.owner_property])
            raise SchemaViolation([Violation(where, "the owner of a record cannot change")])
        flow = info.spec.workflow
        self.check_workflow(info, doc, (latest.data or {}).get(flow.property) if flow else None)
        version = replace(
            latest,
            version=latest.version + 1,
            data=doc,
            schema_version=info.spec.version,
            update_time=self.clock(),
            updated_by=actor_of(caller),
            reason=_check_reason(reason),
        )
        return await self._append(
            Change(
                version,
                latest.version,
                EventType.UPDATED,
                uuid.uuid4().hex,
                info.keys(doc),
                text=text,
            )
        )

    async def delete(
        self, caller: Claims | None, record_id: str, *, expected_version: int, reason: str = ""
    ) -> RecordVersion:
        latest, info = await self._current(record_id)
        self.policy.check_write(caller, info, latest.owner.id, creating=False)
        self._precondition(latest, expected_version)
        now = self.clock()
        version = replace(
            latest,
            version=latest.version + 1,
            data=None,
            deleted=True,
            update_time=now,
            updated_by=actor_of(caller),
            reason=_check_reason(reason),
        )
        purge = now + self.retention if self.retention > 0 else None
        return await self._append(
            Change(version, latest.version, EventType.DELETED, uuid.uuid4().hex, (), None, purge)
        )

    # -- reads -----------------------------------------------------------------------------

    async def _audit(
        self,
        caller: Claims | None,
        info: TypeInfo,
        found: list[RecordVersion],
        action: str,
        why: str,
    ) -> None:
        """Audit reads of sensitive records (before they are returned)."""
        if not info.spec.sensitive or not found:
            return
        now = self.clock()
        me = actor_of(caller)
        await self.store.audit(
            [AuditEntry(now, me, item.id, item.version, action, why) for item in found]
        )

    def _reason_for(self, info: TypeInfo, reason: str) -> str:
        if info.spec.sensitive and not reason.strip():
            raise InvalidArgument(
                f"reading {info.name} records needs a reason (it is audited with the read)"
            )
        return _check_reason(reason)

    async def get(
        self, caller: Claims | None, record_id: str, *, version: int = 0, reason: str = ""
    ) -> RecordVersion:
        latest, info = await self._current(record_id)
        self.policy.check_read(caller, info, record_id, latest.owner.id)
        why = self._reason_for(info, reason)
        if version < 0:
            raise InvalidArgument("version must be 0 (the latest) or a version number")
        if version == 0:
            if latest.deleted:
                raise NotFound(
                    f"record {record_id} was deleted at version {latest.version}; ask for an "
                    "earlier version explicitly"
                )
            found = latest
        elif version > latest.version:
            raise NotFound(
                f"record {record_id} has no version {version} (latest: {latest.version})"
            )
        else:
            stored = await self.store.version(record_id, version)
            if stored is None:
                raise NotFound(f"record {record_id} has no version {version}")
            found = stored
        await self._audit(caller, info, [found], "get", why)
        return found

    async def history(
        self, caller: Claims | None, record_id: str, page: PageRequest, *, reason: str = ""
    ) -> Page[RecordVersion]:
        latest, info = await self._current(record_id)
        self.policy.check_read(caller, info, record_id, latest.owner.id)
        why = self._reason_for(info, reason)
        limit = page.limit()
        after = decode_page_token(page.token, "records.history", 2)
        if after is not None and after[0] != record_id:
            raise InvalidArgument("page_token belongs to another record's history")
        before = int(after[1]) if after is not None and after[1].isdigit() else None
        items = await self.store.history(record_id, limit=limit + 1, before=before)
        shown = items[:limit]
        token = None
        if len(items) > limit:
            token = encode_page_token("records.history", [record_id, str(shown[-1].version)])
        await self._audit(caller, info, shown, "history", why)
        return Page(shown, token)

    async def search(
        self, caller: Claims | None, search: Search, page: PageRequest
    ) -> Page[RecordVersion]:
        limit = page.limit()
        reason = _check_reason(search.reason)
        for what in ("type", "owner_id", "field", "query", "order_by"):
            _no_nul(getattr(search, what), what)
        scoped = scope(self.types, self.policy, caller, search)
        if scoped is None:
            return Page([])
        query, candidates = scoped
        items, token = await self.store.search(query, limit=limit, token=page.token)
        for info in candidates:
            found = [item for item in items if item.type == info.name]
            await self._audit(caller, info, found, "search", reason)
        return Page(items, token)

    def list_types(self, field: str, page: PageRequest) -> Page[TypeInfo]:
        limit = page.limit()
        after = decode_page_token(page.token, "records.types", 1)
        items = [
            info
            for info in self.types.all()
            if (not field or info.field == field) and (after is None or info.name > after[0])
        ]
        token = (
            encode_page_token("records.types", [items[limit - 1].name])
            if len(items) > limit
            else None
        )
        return Page(items[:limit], token)
