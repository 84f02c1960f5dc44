"""Principals, their credentials and role bindings."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from smartcity.runtime.storage import InvalidQuery
from smartcity.runtime.storage.paging import decode_page_token, encode_page_token
from smartcity.runtime.tokens import RoleBinding
from smartcity.services.identity.model import (
    Credentials,
    Page,
    Principal,
    PrincipalFilter,
    PrincipalState,
    well_formed,
)
from smartcity.services.identity.store.base import (
    CREDENTIAL_COLUMNS,
    PRINCIPAL_COLUMNS,
    UPDATABLE,
    Conflict,
    StoreBase,
    check_page_size,
    in_list,
    principal_of,
)


class PrincipalTables(StoreBase):
    async def _roles(self, source: Any, ids: Sequence[str]) -> dict[str, list[RoleBinding]]:
        found: dict[str, list[RoleBinding]] = {id_: [] for id_ in ids}
        if ids:
            rows = await source(
                "SELECT principal_id, role, field FROM role_bindings "
                f"WHERE principal_id IN {in_list(1, len(ids))}",
                *ids,
            )
            for principal_id, role, field in rows:
                found[principal_id].append(RoleBinding(role, field))
        return found

    async def _load(self, source: Any, where: str, *args: Any) -> Principal | None:
        rows = await source(f"SELECT {PRINCIPAL_COLUMNS} FROM principals AS p WHERE {where}", *args)
        if not rows:
            return None
        roles = await self._roles(source, [rows[0][0]])
        return principal_of(rows[0], roles[rows[0][0]])

    async def principal(self, principal_id: str) -> Principal | None:
        return await self._load(self._query, "p.id = $1", principal_id)

    async def principal_by_username(self, username: str) -> tuple[Principal, Credentials] | None:
        principal = await self._load(self._query, "p.username = $1", username)
        if principal is None:
            return None
        credentials = await self.credentials(principal.id)
        assert credentials is not None
        return principal, credentials

    async def credentials(self, principal_id: str) -> Credentials | None:
        rows = await self._query(
            f"SELECT {CREDENTIAL_COLUMNS} FROM principals WHERE id = $1", principal_id
        )
        return Credentials(*rows[0]) if rows else None

    async def create_principal(
        self, principal: Principal, password_hash: str | None, request_id: str | None
    ) -> tuple[Principal, bool]:
        """Insert ``principal``; ``(the principal, whether it is new)``. A ``request_id``
        seen before returns the principal it created."""
        async with self._transaction() as tx:
            if request_id:
                earlier = await self._load(tx.fetch, "p.request_id = $1", request_id)
                if earlier is not None:
                    return earlier, False
            taken = await tx.fetch(
                "SELECT username, personal_id FROM principals "
                "WHERE username = $1 OR personal_id = $2",
                principal.username,
                principal.personal_id or None,
            )
            for username, personal_id in taken:
                if username == principal.username:
                    raise Conflict(f"the username {principal.username!r} is taken")
                raise Conflict(f"a citizen with personal_id {personal_id} is registered already")
            await tx.execute(
                "INSERT INTO principals (id, kind, username, display_name, search_name, email, "
                "personal_id, assurance, state, labels, password_hash, created, updated, "
                "request_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                principal.id,
                principal.kind.value,
                principal.username,
                principal.display_name,
                principal.display_name.casefold(),
                principal.email,
                principal.personal_id or None,
                int(principal.assurance),
                principal.state.value,
                json.dumps(dict(principal.labels), sort_keys=True),
                password_hash,
                principal.created,
                principal.updated,
                request_id or None,
            )
            for binding in principal.roles:
                await tx.execute(
                    "INSERT INTO role_bindings (principal_id, role, field) VALUES ($1, $2, $3)",
                    principal.id,
                    binding.role,
                    binding.field,
                )
        return principal, True

    async def update_principal(
        self, principal_id: str, changes: Mapping[str, Any], now: float
    ) -> Principal | None:
        """Set the named profile columns (``display_name``, ``email``, ``labels``,
        ``assurance``)."""
        unknown = set(changes) - UPDATABLE
        if unknown:
            raise InvalidQuery(f"cannot update {sorted(unknown)}")
        values = dict(changes)
        if "labels" in values:
            values["labels"] = json.dumps(dict(values["labels"]), sort_keys=True)
        if "assurance" in values:
            values["assurance"] = int(values["assurance"])
        if "display_name" in values:
            values["search_name"] = values["display_name"].casefold()
        columns = sorted(values)
        assignments = ", ".join(f"{column} = ${n}" for n, column in enumerate(columns, start=3))
        async with self._transaction() as tx:
            changed = await tx.execute(
                f"UPDATE principals SET updated = $2, {assignments} WHERE id = $1",
                principal_id,
                now,
                *(values[column] for column in columns),
            )
            return await self._load(tx.fetch, "p.id = $1", principal_id) if changed else None

    async def set_state(
        self, principal_id: str, state: PrincipalState, now: float
    ) -> Principal | None:
        async with self._transaction() as tx:
            changed = await tx.execute(
                "UPDATE principals SET state = $2, updated = $3 WHERE id = $1",
                principal_id,
                state.value,
                now,
            )
            return await self._load(tx.fetch, "p.id = $1", principal_id) if changed else None

    async def set_password(self, principal_id: str, password_hash: str, now: float) -> bool:
        async with self._transaction() as tx:
            return bool(
                await tx.execute(
                    "UPDATE principals SET password_hash = $2, updated = $3 WHERE id = $1",
                    principal_id,
                    password_hash,
                    now,
                )
            )

    async def set_totp(
        self,
        principal_id: str,
        *,
        secret: str | None,
        pending: str | None,
        pending_expires: float | None,
        now: float,
    ) -> Principal | None:
        async with self._transaction() as tx:
            changed = await tx.execute(
                "UPDATE principals SET totp_secret = $2, totp_pending = $3, "
                "totp_pending_expires = $4, updated = $5 WHERE id = $1",
                principal_id,
                secret,
                pending,
                pending_expires,
                now,
            )
            return await self._load(tx.fetch, "p.id = $1", principal_id) if changed else None

    async def use_totp_step(self, principal_id: str, step: int) -> bool:
        """Record ``step`` as used; False if it or a later one was used already (a code is
        good once, even when two requests race with it)."""
        async with self._transaction() as tx:
            return bool(
                await tx.execute(
                    "UPDATE principals SET totp_last_step = $2 "
                    "WHERE id = $1 AND totp_last_step < $2",
                    principal_id,
                    step,
                )
            )

    async def add_role(self, principal_id: str, binding: RoleBinding, now: float) -> bool:
        """Grant ``binding``; False if the principal held it already."""
        async with self._transaction() as tx:
            held = await tx.fetch(
                "SELECT 1 FROM role_bindings WHERE principal_id = $1 AND role = $2 AND field = $3",
                principal_id,
                binding.role,
                binding.field,
            )
            if held:
                return False
            await tx.execute(
                "INSERT INTO role_bindings (principal_id, role, field) VALUES ($1, $2, $3)",
                principal_id,
                binding.role,
                binding.field,
            )
            await tx.execute("UPDATE principals SET updated = $2 WHERE id = $1", principal_id, now)
            return True

    async def remove_role(self, principal_id: str, binding: RoleBinding, now: float) -> bool:
        """Withdraw ``binding``; False if the principal did not hold it."""
        async with self._transaction() as tx:
            removed = await tx.execute(
                "DELETE FROM role_bindings WHERE principal_id = $1 AND role = $2 AND field = $3",
                principal_id,
                binding.role,
                binding.field,
            )
            if removed:
                await tx.execute(
                    "UPDATE principals SET updated = $2 WHERE id = $1", principal_id, now
                )
            return bool(removed)

    async def list_principals(
        self, where: PrincipalFilter, *, page_size: int = 100, page_token: str | None = None
    ) -> Page[Principal]:
        """Principals matching ``where``, ordered by username."""
        check_page_size(page_size)
        after = decode_page_token(page_token, "principals", 1)
        conditions: list[str] = []
        args: list[Any] = []

        def arg(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        if where.kind is not None:
            conditions.append(f"p.kind = {arg(where.kind.value)}")
        if not where.include_disabled:
            conditions.append(f"p.state = {arg(PrincipalState.ACTIVE.value)}")
        if where.role or where.field:
            parts = ["r.principal_id = p.id"]
            if where.role:
                parts.append(f"r.role = {arg(where.role)}")
            if where.field:
                parts.append(f"r.field = {arg(where.field)}")
            held = " AND ".join(parts)
            conditions.append(f"EXISTS (SELECT 1 FROM role_bindings AS r WHERE {held})")
        if where.name_prefix:
            prefix = where.name_prefix.casefold()
            length = len(prefix)
            conditions.append(
                f"(substr(p.username, 1, {length}) = {arg(prefix)} "
                f"OR substr(p.search_name, 1, {length}) = {arg(prefix)})"
            )
        if after is not None:
            if not well_formed(after[0], 256):
                raise InvalidQuery("invalid page token: not a token this service issued")
            conditions.append(f"p.username > {arg(after[0])}")
        clause = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        rows = await self._query(
            f"SELECT {PRINCIPAL_COLUMNS} FROM principals AS p {clause} "
            f"ORDER BY p.username LIMIT {page_size + 1}",
            *args,
        )
        more = len(rows) > page_size
        rows = list(rows[:page_size])
        roles = await self._roles(self._query, [row[0] for row in rows])
        items = [principal_of(row, roles[row[0]]) for row in rows]
        token = encode_page_token("principals", [items[-1].username]) if more else None
        return Page(items, token)
