"""Access tokens: signing with the newest key, key rotation, and the list of revoked ids.

Claims are those identity.proto lists, plus ``sid`` and ``auth_time`` on tokens from a
login. ``exp`` and ``iat`` are whole seconds. Every token issued is stored by id with its
expiry, so that it can be revoked alone, with its session or with its principal.

Keys rotate every ``rotation_seconds``: the new key signs at once; the one it replaces stays
in the key set until the longest token it may have signed has expired (the service-token
cap), then it is dropped. Replicas sharing a database rotate once: the store refuses a second
key replacing the same one.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from smartcity.runtime.tokens import (
    DEFAULT_ISSUER,
    DEFAULT_LEEWAY_SECONDS,
    PLATFORM_AUDIENCE,
    RevocationList,
    TokenVerifier,
)
from smartcity.services.identity.keys import KeyRing
from smartcity.services.identity.model import IssuedToken, Principal, Session
from smartcity.services.identity.store import IdentityStore

IDENTITY_AUDIENCE = "identity"


@dataclass(frozen=True, slots=True)
class Lifetimes:
    """Seconds each kind of credential lives."""

    access: float = 15 * 60
    refresh: float = 7 * 24 * 3600
    session: float = 30 * 24 * 3600
    """A session ends this long after its login, however often it is refreshed."""
    service_max: float = 30 * 24 * 3600
    """Cap (and default) of service tokens: how long the IDENTITY stream keeps the
    revocation events services learn of revoked tokens from."""
    challenge: float = 300
    totp_enrolment: float = 600

    @property
    def longest(self) -> float:
        """The longest any access token may live: what a principal-wide revocation covers."""
        return max(self.access, self.service_max)


@dataclass(frozen=True, slots=True)
class Issued:
    token: str
    record: IssuedToken


class TokenIssuer:
    def __init__(
        self,
        store: IdentityStore,
        ring: KeyRing,
        lifetimes: Lifetimes,
        *,
        rotation_seconds: float = 30 * 24 * 3600,
        issuer: str = DEFAULT_ISSUER,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self.ring = ring
        self.lifetimes = lifetimes
        self.rotation_seconds = rotation_seconds
        self.issuer = issuer
        self._clock = clock
        self.revoked = RevocationList(clock=clock)
        self._verifier: TokenVerifier | None = None

    @property
    def verifier(self) -> TokenVerifier:
        """Verifies tokens with the ring's public keys and the revocation list."""
        if self._verifier is None:
            self._verifier = TokenVerifier(
                self.ring.key_set(),
                issuer=self.issuer,
                audiences=(PLATFORM_AUDIENCE, IDENTITY_AUDIENCE),
                leeway=DEFAULT_LEEWAY_SECONDS,
                is_revoked=self.revoked,
            )
        return self._verifier

    # -- keys -----------------------------------------------------------------------------

    async def refresh_keys(self) -> bool:
        """Load the stored keys, rotate if the newest is due, drop keys no token needs;
        whether the key set changed."""
        before = {entry.kid for entry in self.ring.stored}
        now = self._clock()
        stored = await self._store.signing_keys()
        self.ring.load(stored)
        newest = self.ring.signing
        if newest is None or now - newest.created >= self.rotation_seconds:
            fresh = self.ring.generate(now)
            await self._store.add_signing_key(fresh, newest.kid if newest else None)
        keep_after = now - self.lifetimes.longest - DEFAULT_LEEWAY_SECONDS
        await self._store.drop_signing_keys(keep_after)
        self.ring.load(await self._store.signing_keys())
        if self._verifier is not None:
            self._verifier.replace_keys(self.ring.key_set())
        return {entry.kid for entry in self.ring.stored} != before

    async def load_revocations(self) -> None:
        """Take in every revoked token that has not expired (revocations made by other
        replicas or by the command line)."""
        for jti, expires in await self._store.revoked_tokens(self._clock()):
            self.revoked.revoke(jti, expires)

    # -- tokens ---------------------------------------------------------------------------

    def issue(
        self,
        principal: Principal,
        *,
        amr: Sequence[str],
        ttl: float,
        session: Session | None = None,
        audiences: Sequence[str] = (PLATFORM_AUDIENCE,),
    ) -> Issued:
        now = self._clock()
        iat = int(now)
        exp = int(now + ttl)
        jti = uuid.uuid4().hex
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": principal.id,
            "aud": list(audiences),
            "iat": iat,
            "exp": exp,
            "jti": jti,
            "kind": principal.kind.value,
            "roles": sorted(str(binding) for binding in principal.roles),
            "amr": list(amr),
        }
        acr = principal.assurance.acr
        if acr is not None:
            claims["acr"] = acr
        if session is not None:
            claims["sid"] = session.id
            claims["auth_time"] = int(session.auth_time)
        record = IssuedToken(jti, principal.id, session.id if session else None, iat, exp)
        return Issued(self.ring.sign(claims), record)
