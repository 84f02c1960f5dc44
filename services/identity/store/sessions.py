"""Sessions, refresh tokens, issued access tokens, TOTP challenges and lockout counters."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from smartcity.services.identity.lockout import Lock
from smartcity.services.identity.model import (
    IssuedToken,
    RefreshRecord,
    Session,
    TotpChallenge,
)
from smartcity.services.identity.store.base import (
    TOKEN_COLUMNS,
    StoreBase,
    Transaction,
    in_list,
    token_of,
)


class SessionTables(StoreBase):
    async def create_session(
        self, session: Session, refresh: RefreshRecord, token: IssuedToken
    ) -> None:
        async with self._transaction() as tx:
            await tx.execute(
                "INSERT INTO sessions (id, principal_id, auth_time, amr, created, expires) "
                "VALUES ($1, $2, $3, $4, $5, $6)",
                session.id,
                session.principal_id,
                session.auth_time,
                " ".join(session.amr),
                session.created,
                session.expires,
            )
            await self._add_refresh(tx, refresh)
            await self._add_token(tx, token)

    async def _add_refresh(self, tx: Transaction, refresh: RefreshRecord) -> None:
        await tx.execute(
            "INSERT INTO refresh_tokens (token_hash, session_id, created, expires) "
            "VALUES ($1, $2, $3, $4)",
            refresh.token_hash,
            refresh.session_id,
            refresh.created,
            refresh.expires,
        )

    async def _add_token(self, tx: Transaction, token: IssuedToken) -> None:
        await tx.execute(
            f"INSERT INTO access_tokens ({TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)",
            token.jti,
            token.principal_id,
            token.session_id,
            token.issued,
            token.expires,
            token.revoked,
        )

    async def add_token(self, token: IssuedToken) -> None:
        async with self._transaction() as tx:
            await self._add_token(tx, token)

    async def session(self, session_id: str) -> Session | None:
        rows = await self._query(
            "SELECT id, principal_id, auth_time, amr, created, expires, revoked "
            "FROM sessions WHERE id = $1",
            session_id,
        )
        if not rows:
            return None
        row = rows[0]
        return Session(row[0], row[1], row[2], tuple(row[3].split()), row[4], row[5], row[6])

    async def refresh_record(self, token_hash: str) -> RefreshRecord | None:
        rows = await self._query(
            "SELECT token_hash, session_id, created, expires, used FROM refresh_tokens "
            "WHERE token_hash = $1",
            token_hash,
        )
        return RefreshRecord(*rows[0]) if rows else None

    async def rotate_refresh(
        self, old_hash: str, now: float, new: RefreshRecord, token: IssuedToken
    ) -> bool:
        """Mark ``old_hash`` used and store its successor and the new access token, at once;
        False (and nothing stored) when it was used already, however close the race."""
        async with self._transaction() as tx:
            used = await tx.execute(
                "UPDATE refresh_tokens SET used = $2 WHERE token_hash = $1 AND used IS NULL",
                old_hash,
                now,
            )
            if not used:
                return False
            await self._add_refresh(tx, new)
            await self._add_token(tx, token)
            return True

    async def revoke_session(self, session_id: str, now: float) -> list[IssuedToken]:
        """End a session: its refresh tokens stop working and its unexpired access tokens
        are revoked; those newly revoked are returned."""
        async with self._transaction() as tx:
            await tx.execute(
                "UPDATE sessions SET revoked = $2 WHERE id = $1 AND revoked IS NULL",
                session_id,
                now,
            )
            await tx.execute(
                "UPDATE refresh_tokens SET used = $2 WHERE session_id = $1 AND used IS NULL",
                session_id,
                now,
            )
            return await self._revoke(tx, "session_id = $1", session_id, now)

    async def _revoke(self, tx: Transaction, where: str, key: str, now: float) -> list[IssuedToken]:
        rows = await tx.fetch(
            f"SELECT {TOKEN_COLUMNS} FROM access_tokens "
            f"WHERE {where} AND revoked IS NULL AND expires > $2",
            key,
            now,
        )
        await tx.execute(
            f"UPDATE access_tokens SET revoked = $2 WHERE {where} AND revoked IS NULL "
            "AND expires > $2",
            key,
            now,
        )
        return [token_of((*row[:5], now)) for row in rows]

    async def revoke_principal(self, principal_id: str, now: float) -> list[IssuedToken]:
        """End every session of a principal and revoke all its unexpired tokens."""
        async with self._transaction() as tx:
            await tx.execute(
                "UPDATE refresh_tokens SET used = $2 WHERE used IS NULL AND session_id IN "
                "(SELECT id FROM sessions WHERE principal_id = $1)",
                principal_id,
                now,
            )
            await tx.execute(
                "UPDATE sessions SET revoked = $2 WHERE principal_id = $1 AND revoked IS NULL",
                principal_id,
                now,
            )
            return await self._revoke(tx, "principal_id = $1", principal_id, now)

    async def token(self, jti: str) -> IssuedToken | None:
        rows = await self._query(f"SELECT {TOKEN_COLUMNS} FROM access_tokens WHERE jti = $1", jti)
        return token_of(rows[0]) if rows else None

    async def revoke_token(self, jti: str, now: float) -> IssuedToken | None:
        """Revoke one access token; the token as revoked, or None if unknown."""
        async with self._transaction() as tx:
            await tx.execute(
                "UPDATE access_tokens SET revoked = $2 WHERE jti = $1 AND revoked IS NULL",
                jti,
                now,
            )
            rows = await tx.fetch(f"SELECT {TOKEN_COLUMNS} FROM access_tokens WHERE jti = $1", jti)
            return token_of(rows[0]) if rows else None

    async def revoked_tokens(self, now: float) -> list[tuple[str, float]]:
        """``(jti, expiry)`` of every revoked token that has not expired yet."""
        rows = await self._query(
            "SELECT jti, expires FROM access_tokens WHERE revoked IS NOT NULL AND expires > $1",
            now,
        )
        return [(row[0], row[1]) for row in rows]

    async def add_challenge(self, challenge: TotpChallenge) -> None:
        async with self._transaction() as tx:
            await tx.execute(
                "INSERT INTO totp_challenges (id, principal_id, expires, source) "
                "VALUES ($1, $2, $3, $4)",
                challenge.id,
                challenge.principal_id,
                challenge.expires,
                challenge.source,
            )

    async def take_challenge(self, challenge_id: str) -> TotpChallenge | None:
        """The challenge, removed: whatever the code, it cannot be answered twice."""
        async with self._transaction() as tx:
            rows = await tx.fetch(
                "SELECT id, principal_id, expires, source FROM totp_challenges WHERE id = $1",
                challenge_id,
            )
            await tx.execute("DELETE FROM totp_challenges WHERE id = $1", challenge_id)
            return TotpChallenge(*rows[0]) if rows else None

    async def purge(self, now: float) -> None:
        """Forget what can no longer be used: expired tokens, sessions and challenges."""
        async with self._transaction() as tx:
            await tx.execute("DELETE FROM access_tokens WHERE expires <= $1", now)
            await tx.execute("DELETE FROM refresh_tokens WHERE expires <= $1", now)
            await tx.execute("DELETE FROM sessions WHERE expires <= $1", now)
            await tx.execute("DELETE FROM totp_challenges WHERE expires <= $1", now)

    # -- lockouts -------------------------------------------------------------------------

    async def locks(self, keys: Sequence[str]) -> dict[str, Lock]:
        rows = await self._query(
            "SELECT key, failures, last_failure, locked_until FROM lockouts "
            f"WHERE key IN {in_list(1, len(keys))}",
            *keys,
        )
        found = {row[0]: Lock(*row) for row in rows}
        return {key: found.get(key, Lock(key)) for key in keys}

    async def save_locks(self, locks: Iterable[Lock]) -> None:
        async with self._transaction() as tx:
            for lock in locks:
                await tx.execute(
                    "INSERT INTO lockouts (key, failures, last_failure, locked_until) "
                    "VALUES ($1, $2, $3, $4) ON CONFLICT (key) DO UPDATE SET "
                    "failures = excluded.failures, last_failure = excluded.last_failure, "
                    "locked_until = excluded.locked_until",
                    lock.key,
                    lock.failures,
                    lock.last_failure,
                    lock.locked_until,
                )

    async def clear_lock(self, key: str) -> None:
        async with self._transaction() as tx:
            await tx.execute("DELETE FROM lockouts WHERE key = $1", key)
