"""What follows a login: sessions, refresh-token rotation, logout, revocation, introspection
and service tokens (logging in itself is :mod:`.login`).

A refresh token is good once. Presenting one that was used already means two parties hold
it, so the whole session is revoked: its refresh tokens and its unexpired access tokens,
each announced on ``city.identity.token_revoked``.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from smartcity.runtime.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unauthenticated,
)
from smartcity.runtime.tokens import PLATFORM_AUDIENCE, Claims, PrincipalKind, Role, TokenError
from smartcity.services.identity.audit import Recorder
from smartcity.services.identity.issuer import Issued, TokenIssuer
from smartcity.services.identity.model import (
    EventType,
    IssuedToken,
    Principal,
    RefreshRecord,
    Session,
    refuse,
    text,
    well_formed,
)
from smartcity.services.identity.store import IdentityStore

MAX_OPAQUE = 512
"""Longest refresh token or challenge id looked up; the service issues 43 characters."""
_AUDIENCE = re.compile(r"[a-z][a-z0-9-]{0,62}")


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class TokenSet:
    access_token: str
    access_expires: float
    refresh_token: str
    refresh_expires: float
    principal: Principal


@dataclass(frozen=True, slots=True)
class Introspection:
    active: bool
    reason: str = ""
    claims: Claims | None = None


class Sessions:
    def __init__(
        self,
        store: IdentityStore,
        issuer: TokenIssuer,
        recorder: Recorder,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._issuer = issuer
        self._recorder = recorder
        self._clock = clock
        self.lifetimes = issuer.lifetimes

    async def open(self, principal: Principal, amr: tuple[str, ...], now: float) -> TokenSet:
        """A new session for a principal that has just authenticated, with its first tokens."""
        session = Session(
            secrets.token_hex(16), principal.id, now, amr, now, now + self.lifetimes.session
        )
        issued = self._access(principal, session)
        refresh, record = self._refresh_token(session, now)
        await self._store.create_session(session, record, issued.record)
        return TokenSet(issued.token, issued.record.expires, refresh, record.expires, principal)

    def _access(self, principal: Principal, session: Session) -> Issued:
        return self._issuer.issue(
            principal, amr=session.amr, ttl=self.lifetimes.access, session=session
        )

    def _refresh_token(self, session: Session, now: float) -> tuple[str, RefreshRecord]:
        token = secrets.token_urlsafe(32)
        expires = min(now + self.lifetimes.refresh, session.expires)
        return token, RefreshRecord(digest(token), session.id, now, expires)

    # -- refresh, logout, revocation ------------------------------------------------------

    async def refresh(self, refresh_token: str) -> TokenSet:
        record, session = await self._session_of(refresh_token)
        now = self._clock()
        if session.revoked is not None:
            raise Unauthenticated("the session has ended; log in again")
        if record.used is not None:
            await self._end(session, "refresh token presented twice", now)
            raise Unauthenticated("refresh token used before; the session is revoked")
        if record.expires <= now:
            raise Unauthenticated("refresh token expired; log in again")
        principal = await self._store.principal(session.principal_id)
        if principal is None or not principal.active:
            raise Unauthenticated("the principal is disabled")
        issued = self._access(principal, session)
        token, fresh = self._refresh_token(session, now)
        if not await self._store.rotate_refresh(record.token_hash, now, fresh, issued.record):
            await self._end(session, "refresh token presented twice", now)
            raise Unauthenticated("refresh token used before; the session is revoked")
        return TokenSet(issued.token, issued.record.expires, token, fresh.expires, principal)

    async def logout(self, refresh_token: str) -> None:
        _, session = await self._session_of(refresh_token)
        if session.revoked is None:
            await self._end(session, "logout", self._clock())

    async def _session_of(self, refresh_token: str) -> tuple[RefreshRecord, Session]:
        if not refresh_token:
            raise InvalidArgument("refresh_token is required")
        record = None
        if well_formed(refresh_token, MAX_OPAQUE):
            record = await self._store.refresh_record(digest(refresh_token))
        session = await self._store.session(record.session_id) if record else None
        if record is None or session is None:
            raise Unauthenticated("refresh token not recognised")
        return record, session

    async def _end(self, session: Session, reason: str, now: float) -> None:
        revoked = await self._store.revoke_session(session.id, now)
        principal = await self._store.principal(session.principal_id)
        await self._announce(revoked, principal, None, reason)

    async def _announce(
        self,
        tokens: Sequence[IssuedToken],
        principal: Principal | None,
        actor: Claims | None,
        reason: str,
    ) -> None:
        for token in tokens:
            self._issuer.revoked.revoke(token.jti, token.expires)
        await self._recorder.record(
            *(
                self._recorder.event(
                    EventType.TOKEN_REVOKED,
                    principal=principal,
                    actor=actor,
                    token_id=token.jti,
                    token_expires=token.expires,
                    reason=reason,
                )
                for token in tokens
            )
        )

    async def revoke_token(self, jti: str, reason: str, actor: Claims) -> None:
        """Revoke one token; its own principal or an identity admin may."""
        refuse(text(jti, "token_id", empty=False) + text(reason, "reason"))
        token = await self._store.token(jti)
        admin = actor.allows(Role.IDENTITY_ADMIN, "*")
        if token is None or not (admin or token.principal_id == actor.sub):
            raise NotFound(f"no unexpired token with id {jti[:80]!r}")
        revoked = await self._store.revoke_token(jti, self._clock())
        assert revoked is not None
        principal = await self._store.principal(token.principal_id)
        await self._announce([revoked], principal, actor, reason or "revoked")

    async def revoke_principal(self, principal: Principal, actor: Claims, reason: str) -> None:
        """Every token of ``principal`` issued until now stops working: one ``*`` event,
        valid as long as the longest token lives."""
        now = self._clock()
        await self._store.revoke_principal(principal.id, now)
        self._issuer.revoked.revoke_subject(principal.id, now, now + self.lifetimes.longest)
        await self._recorder.record(
            self._recorder.event(
                EventType.TOKEN_REVOKED,
                principal=principal,
                actor=actor,
                token_id="*",
                token_expires=now + self.lifetimes.longest,
                reason=reason,
                time=now,
            )
        )

    # -- service tokens and introspection -------------------------------------------------

    async def issue_service_token(
        self, principal: Principal, ttl: float, audiences: Sequence[str]
    ) -> Issued:
        problems = []
        if principal.kind not in (PrincipalKind.DEVICE, PrincipalKind.SERVICE):
            raise FailedPrecondition(
                f"service tokens are for devices and services; {principal.username} is a "
                f"{principal.kind.value}"
            )
        if not principal.active:
            raise FailedPrecondition(f"{principal.username} is disabled")
        limit = self.lifetimes.service_max
        if ttl == 0:
            ttl = limit
        if not 0 < ttl <= limit:
            problems.append(f"ttl must be between 1 s and {limit:.0f} s (or 0 for that maximum)")
        for audience in audiences:
            if not _AUDIENCE.fullmatch(audience):
                problems.append(f"{audience[:80]!r} is not a service name")
        if len(audiences) > 16:
            problems.append("at most 16 audiences")
        refuse(problems)
        issued = self._issuer.issue(
            principal, amr=("svc",), ttl=ttl, audiences=list(audiences) or [PLATFORM_AUDIENCE]
        )
        await self._store.add_token(issued.record)
        return issued

    async def introspect(self, token: str) -> Introspection:
        try:
            claims = self._issuer.verifier.verify(token)
        except TokenError as exc:
            return Introspection(False, exc.message)
        principal = await self._store.principal(claims.sub)
        if principal is None or not principal.active:
            return Introspection(False, "principal disabled", claims)
        return Introspection(True, "", claims)
