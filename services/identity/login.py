"""Logging in: password, TOTP second factor, lockout.

Wrong credentials give one answer, "invalid credentials", whether the name is unknown, the
password wrong or the TOTP code wrong; an unknown name costs the same argon2 work as a known
one. Failures count towards the lockouts of :mod:`.lockout`; a locked key is refused before
any password is looked at. A login that succeeds opens a session (:mod:`.sessions`).
"""

from __future__ import annotations

import math
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pyotp
from pyotp.exceptions import OTPVerificationError

from smartcity.runtime.errors import InvalidArgument, ResourceExhausted, Unauthenticated
from smartcity.services.identity.audit import Recorder
from smartcity.services.identity.lockout import Lock, LockoutPolicy, account_key, source_key
from smartcity.services.identity.model import (
    MAX_PASSWORD,
    MAX_TEXT,
    Credentials,
    EventType,
    Principal,
    TotpChallenge,
    printable,
    refuse,
    text,
    well_formed,
)
from smartcity.services.identity.passwords import Passwords
from smartcity.services.identity.sessions import MAX_OPAQUE, Sessions, TokenSet
from smartcity.services.identity.store import IdentityStore

INVALID = "invalid credentials"
_TOTP_CODE = re.compile(r"[0-9]{6}")


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class LoginResult:
    tokens: TokenSet | None = None
    challenge: TotpChallenge | None = None


def totp_step(secret: str, code: str, now: float) -> int | None:
    """The time step ``code`` belongs to (now, or one step either side for clock drift), or
    None if it is not a current code of ``secret``."""
    if not _TOTP_CODE.fullmatch(code):
        return None
    try:
        return pyotp.TOTP(secret).verify_and_get_timecode(code, for_time=now, valid_window=1)
    except OTPVerificationError:
        return None


class Logins:
    def __init__(
        self,
        store: IdentityStore,
        sessions: Sessions,
        recorder: Recorder,
        passwords: Passwords,
        lockout: LockoutPolicy,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._sessions = sessions
        self._recorder = recorder
        self._passwords = passwords
        self._lockout = lockout
        self._clock = clock

    async def login(self, username: str, password: str, totp_code: str, source: str) -> LoginResult:
        if not username or not password:
            raise InvalidArgument("username and password are required")
        refuse(
            text(username, "username", limit=MAX_TEXT)
            + (["password is too long"] if len(password) > MAX_PASSWORD else [])
            + (["totp_code is too long"] if len(totp_code) > 16 else [])
        )
        now = self._clock()
        source = printable(source)
        locks = await self._check_locks(username, source, now)
        found = await self._store.principal_by_username(username.strip().casefold())
        principal, credentials = found if found else (None, None)
        valid = await self._passwords.verify(
            credentials.password_hash if credentials else None, password
        )
        if principal is None or credentials is None or not valid:
            await self._failed(locks, principal, source, now, "wrong password or unknown name")
            raise Unauthenticated(INVALID)
        if not principal.active:
            await self._failed(locks, principal, source, now, "principal disabled")
            raise Unauthenticated(INVALID)
        assert credentials.password_hash is not None
        if self._passwords.needs_rehash(credentials.password_hash):
            await self._store.set_password(principal.id, await self._passwords.hash(password), now)
        amr = ("pwd",)
        if credentials.totp_secret:
            if not totp_code:
                challenge = TotpChallenge(
                    secrets.token_urlsafe(32),
                    principal.id,
                    now + self._sessions.lifetimes.challenge,
                    source,
                )
                await self._store.add_challenge(challenge)
                return LoginResult(challenge=challenge)
            if not await self._totp_ok(principal.id, credentials, totp_code, now):
                await self._failed(locks, principal, source, now, "wrong TOTP code")
                raise Unauthenticated(INVALID)
            amr = ("pwd", "otp")
        return LoginResult(tokens=await self._succeeded(principal, amr, source, now))

    async def verify_totp(self, challenge_id: str, code: str, source: str) -> TokenSet:
        if not challenge_id or not code:
            raise InvalidArgument("challenge_id and totp_code are required")
        if not well_formed(challenge_id, MAX_OPAQUE) or len(code) > 16:
            raise Unauthenticated("TOTP challenge unknown or expired; log in again")
        now, source = self._clock(), printable(source)
        challenge = await self._store.take_challenge(challenge_id)
        if challenge is None or challenge.expires <= now:
            raise Unauthenticated("TOTP challenge unknown or expired; log in again")
        principal = await self._store.principal(challenge.principal_id)
        credentials = await self._store.credentials(challenge.principal_id)
        if principal is None or credentials is None or not principal.active:
            raise Unauthenticated("TOTP challenge unknown or expired; log in again")
        locks = await self._check_locks(principal.username, source, now)
        if not await self._totp_ok(principal.id, credentials, code, now):
            await self._failed(locks, principal, source, now, "wrong TOTP code")
            raise Unauthenticated(INVALID)
        return await self._succeeded(principal, ("pwd", "otp"), source, now)

    async def check_password(self, principal: Principal, password: str, source: str) -> None:
        """For a principal changing its own password: the current one, counted like a
        login (a stolen session must not become a way to guess the password)."""
        now, source = self._clock(), printable(source)
        locks = await self._check_locks(principal.username, source, now)
        credentials = await self._store.credentials(principal.id)
        hashed = credentials.password_hash if credentials else None
        if len(password) > MAX_PASSWORD or not await self._passwords.verify(hashed, password):
            await self._failed(locks, principal, source, now, "wrong current password")
            raise Unauthenticated("the current password is wrong")

    async def _totp_ok(
        self, principal_id: str, credentials: Credentials, code: str, now: float
    ) -> bool:
        assert credentials.totp_secret is not None
        step = totp_step(credentials.totp_secret, code, now)
        return step is not None and await self._store.use_totp_step(principal_id, step)

    async def _check_locks(self, username: str, source: str, now: float) -> list[Lock]:
        locks = list(
            (await self._store.locks([account_key(username), source_key(source)])).values()
        )
        until = max(lock.locked_until for lock in locks)
        if until > now:
            raise ResourceExhausted(
                f"too many failed logins; try again in {math.ceil(until - now)} s"
            )
        return locks

    async def _failed(
        self,
        locks: Sequence[Lock],
        principal: Principal | None,
        source: str,
        now: float,
        cause: str,
    ) -> None:
        after = [self._lockout.failed(lock, now) for lock in locks]
        await self._store.save_locks(after)
        events = [
            self._recorder.event(
                EventType.LOGIN_FAILED, principal=principal, reason=cause, source=source
            )
        ]
        for lock in after:
            if lock.locked(now) and lock.last_failure == now and lock.failures > 0:
                if any(
                    old.key == lock.key and old.locked_until == lock.locked_until for old in locks
                ):
                    continue
                events.append(
                    self._recorder.event(
                        EventType.LOCKED_OUT,
                        principal=principal if lock.key.startswith("user:") else None,
                        reason=f"{lock.key} locked until {iso(lock.locked_until)} after "
                        f"{lock.failures} failed logins",
                        source=source,
                    )
                )
        await self._recorder.record(*events)

    async def _succeeded(
        self, principal: Principal, amr: tuple[str, ...], source: str, now: float
    ) -> TokenSet:
        await self._store.clear_lock(account_key(principal.username))
        tokens = await self._sessions.open(principal, amr, now)
        await self._recorder.record(
            self._recorder.event(
                EventType.LOGIN_SUCCEEDED, principal=principal, reason=" ".join(amr), source=source
            )
        )
        return tokens
