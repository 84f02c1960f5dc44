"""Signing keys and identity events (the audit trail and the outbox)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from smartcity.runtime.storage import InvalidQuery
from smartcity.runtime.storage.paging import decode_page_token, encode_page_token
from smartcity.services.identity.keys import StoredKey
from smartcity.services.identity.model import (
    AuditEvent,
    AuditFilter,
    Page,
)
from smartcity.services.identity.store.base import (
    EVENT_COLUMNS,
    StoreBase,
    check_page_size,
    event_of,
    in_list,
)


class KeyAndEventTables(StoreBase):
    async def signing_keys(self) -> list[StoredKey]:
        rows = await self._query(
            "SELECT kid, private_pem, public_jwk, created, retired FROM signing_keys"
        )
        return [StoredKey(row[0], bytes(row[1]), row[2], row[3], row[4]) for row in rows]

    async def add_signing_key(self, key: StoredKey, replaces: str | None) -> bool:
        """Store ``key`` as the newest, retiring ``replaces``, unless another replica
        rotated first: then False and nothing changes. Retiring is the gate: of two
        replicas retiring the same key at once, the second waits for the first's commit and
        then finds it retired already."""
        async with self._transaction() as tx:
            if replaces is None:
                if await tx.fetch("SELECT 1 FROM signing_keys LIMIT 1"):
                    return False
            elif not await tx.execute(
                "UPDATE signing_keys SET retired = $2 WHERE kid = $1 AND retired IS NULL",
                replaces,
                key.created,
            ):
                return False
            await tx.execute(
                "INSERT INTO signing_keys (kid, private_pem, public_jwk, created) "
                "VALUES ($1, $2, $3, $4)",
                key.kid,
                key.private_pem,
                key.public_jwk,
                key.created,
            )
            return True

    async def drop_signing_keys(self, retired_before: float) -> int:
        async with self._transaction() as tx:
            return await tx.execute(
                "DELETE FROM signing_keys WHERE retired IS NOT NULL AND retired < $1",
                retired_before,
            )

    # -- events ---------------------------------------------------------------------------

    async def add_events(self, events: Sequence[AuditEvent]) -> None:
        async with self._transaction() as tx:
            for event in events:
                await tx.execute(
                    "INSERT INTO events (id, time, type, principal_id, principal_kind, "
                    "principal_name, actor_id, actor_kind, actor_name, role, token_id, "
                    "token_expires, reason, source, jwks) VALUES ($1, $2, $3, $4, $5, $6, $7, "
                    "$8, $9, $10, $11, $12, $13, $14, $15)",
                    event.id,
                    event.time,
                    event.type.value,
                    event.principal_id,
                    event.principal_kind.value if event.principal_kind else "",
                    event.principal_name,
                    event.actor_id,
                    event.actor_kind.value if event.actor_kind else "",
                    event.actor_name,
                    str(event.role) if event.role else "",
                    event.token_id,
                    event.token_expires,
                    event.reason,
                    event.source,
                    event.jwks,
                )

    async def unpublished(self, limit: int = 100) -> list[AuditEvent]:
        """Events not yet acknowledged by the stream, oldest first."""
        rows = await self._query(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE published = 0 "
            f"ORDER BY seq LIMIT {int(limit)}"
        )
        return [event_of(row) for row in rows]

    async def mark_published(self, event_ids: Sequence[str]) -> None:
        if not event_ids:
            return
        async with self._transaction() as tx:
            await tx.execute(
                f"UPDATE events SET published = 1 WHERE id IN {in_list(1, len(event_ids))}",
                *event_ids,
            )

    async def audit(
        self, where: AuditFilter, *, page_size: int = 100, page_token: str | None = None
    ) -> Page[AuditEvent]:
        """Events matching ``where``, newest first."""
        check_page_size(page_size)
        after = decode_page_token(page_token, "events", 1)
        conditions: list[str] = []
        args: list[Any] = []

        def arg(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        if where.principal_id:
            conditions.append(f"principal_id = {arg(where.principal_id)}")
        if where.types:
            names = ", ".join(arg(kind.value) for kind in sorted(where.types))
            conditions.append(f"type IN ({names})")
        if where.start is not None:
            conditions.append(f"time >= {arg(where.start)}")
        if where.end is not None:
            conditions.append(f"time < {arg(where.end)}")
        if after is not None:
            if not after[0].isdigit():
                raise InvalidQuery("invalid page token: not a token this service issued")
            conditions.append(f"seq < {arg(int(after[0]))}")
        clause = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        rows = await self._query(
            f"SELECT {EVENT_COLUMNS} FROM events {clause} ORDER BY seq DESC LIMIT {page_size + 1}",
            *args,
        )
        more = len(rows) > page_size
        rows = list(rows[:page_size])
        token = encode_page_token("events", [str(rows[-1][0])]) if more else None
        return Page([event_of(row) for row in rows], token)
