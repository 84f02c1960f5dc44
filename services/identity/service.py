"""The identity domain: principals, roles, passwords and TOTP enrolment; logging in is
:mod:`.login`, sessions and tokens :mod:`.sessions`, who may do what :mod:`.access`. No
protobuf here: callers pass plain values and get :mod:`.model` values or the exceptions of
:mod:`smartcity.runtime.errors`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import pyotp

from smartcity.runtime.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from smartcity.runtime.storage import InvalidQuery
from smartcity.runtime.tokens import WILDCARD_FIELD, Claims, PrincipalKind, RoleBinding
from smartcity.services.identity.access import (
    is_admin,
    local_operator,
    require_admin,
    require_self_or_admin,
)
from smartcity.services.identity.audit import Recorder
from smartcity.services.identity.issuer import Issued, TokenIssuer
from smartcity.services.identity.lockout import LockoutPolicy
from smartcity.services.identity.login import Logins, totp_step
from smartcity.services.identity.model import (
    AssuranceLevel,
    AuditEvent,
    AuditFilter,
    EventType,
    NewPrincipal,
    Page,
    Principal,
    PrincipalFilter,
    PrincipalState,
    check_binding,
    refuse,
    text,
    well_formed,
)
from smartcity.services.identity.passwords import PasswordPolicy, Passwords
from smartcity.services.identity.sessions import Sessions
from smartcity.services.identity.store import Conflict, IdentityStore

# local_operator (from .access) is re-exported: callers of the service take it from here.
__all__ = ["MAX_ID", "PROFILE_FIELDS", "TOTP_ISSUER", "IdentityService", "local_operator"]

TOTP_ISSUER = "Da Nang Smart City"
PROFILE_FIELDS = frozenset({"display_name", "email", "labels", "assurance_level"})
MAX_ID = 64


class IdentityService:
    def __init__(
        self,
        store: IdentityStore,
        issuer: TokenIssuer,
        recorder: Recorder,
        *,
        passwords: Passwords,
        password_policy: PasswordPolicy | None = None,
        lockout: LockoutPolicy | None = None,
        known_fields: frozenset[str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.issuer = issuer
        self.recorder = recorder
        self.passwords = passwords
        self.policy = password_policy or PasswordPolicy()
        self.known_fields = known_fields
        self._clock = clock
        self.sessions = Sessions(store, issuer, recorder, clock=clock)
        self.logins = Logins(
            store, self.sessions, recorder, passwords, lockout or LockoutPolicy(), clock=clock
        )

    async def _get(self, principal_id: str) -> Principal:
        principal = None
        if well_formed(principal_id, MAX_ID):
            principal = await self.store.principal(principal_id)
        if principal is None:
            raise NotFound(f"no principal with id {principal_id[:80]!r}")
        return principal

    # -- principals -----------------------------------------------------------------------

    async def create_principal(
        self, new: NewPrincipal, password: str, request_id: str, actor: Claims | None
    ) -> Principal:
        if not is_admin(actor):
            if new.kind is not PrincipalKind.CITIZEN:
                require_admin(actor)
            if new.assurance is not AssuranceLevel.NONE:
                raise PermissionDenied("only an identity_admin sets an eID assurance level")
        problems = new.problems() + text(request_id, "request_id", limit=MAX_ID)
        if new.kind in (PrincipalKind.CITIZEN, PrincipalKind.STAFF):
            try:
                self.policy.check(password, new.username)
            except InvalidArgument as exc:
                problems.append(exc.message)
        elif password:
            problems.append("devices and services have no password; they use service tokens")
        refuse(problems)
        now = self._clock()
        principal = Principal(
            id=str(uuid.uuid4()),
            kind=new.kind,
            username=new.username,
            display_name=new.display_name or new.username,
            email=new.email,
            personal_id=new.personal_id,
            assurance=new.assurance,
            roles=frozenset(),
            state=PrincipalState.ACTIVE,
            totp_enabled=False,
            labels=dict(new.labels),
            created=now,
            updated=now,
        )
        hashed = await self.passwords.hash(password) if password else None
        try:
            created, fresh = await self.store.create_principal(principal, hashed, request_id)
        except Conflict as exc:
            raise AlreadyExists(str(exc)) from None
        if fresh:
            await self.recorder.record(
                self.recorder.event(EventType.PRINCIPAL_CREATED, principal=created, actor=actor)
            )
        return created

    async def get_principal(self, principal_id: str, actor: Claims | None) -> Principal:
        require_self_or_admin(actor, principal_id)
        return await self._get(principal_id)

    async def list_principals(
        self, where: PrincipalFilter, page_size: int, page_token: str, actor: Claims | None
    ) -> Page[Principal]:
        require_admin(actor)
        refuse(text(where.role, "role", limit=64) + text(where.field, "field", limit=64))
        refuse(text(where.name_prefix, "name_prefix", limit=MAX_ID))
        try:
            return await self.store.list_principals(
                where, page_size=page_size, page_token=page_token or None
            )
        except InvalidQuery as exc:
            raise InvalidArgument(str(exc)) from None

    async def update_principal(
        self, principal_id: str, values: Mapping[str, Any], actor: Claims | None
    ) -> Principal:
        """Change the profile fields named in ``values`` (``display_name``, ``email``,
        ``labels``, ``assurance_level``)."""
        actor = require_self_or_admin(actor, principal_id)
        unknown = sorted(set(values) - PROFILE_FIELDS)
        if unknown:
            raise InvalidArgument(
                f"cannot change {', '.join(unknown)}; update_mask may name "
                f"{', '.join(sorted(PROFILE_FIELDS))}"
            )
        if not values:
            raise InvalidArgument("update_mask names no field to change")
        current = await self._get(principal_id)
        changes = dict(values)
        probe = NewPrincipal(
            kind=current.kind,
            username=current.username,
            display_name=changes.get("display_name", current.display_name),
            email=changes.get("email", current.email),
            personal_id=current.personal_id,
            labels=changes.get("labels", current.labels),
        )
        probe.check()
        if "assurance_level" in changes:
            level = changes.pop("assurance_level")
            if not is_admin(actor):
                raise PermissionDenied("only an identity_admin changes an eID assurance level")
            if not isinstance(level, AssuranceLevel):
                raise InvalidArgument("assurance_level must be NONE, LEVEL_1 or LEVEL_2")
            changes["assurance"] = level
        updated = await self.store.update_principal(principal_id, changes, self._clock())
        if updated is None:
            raise NotFound(f"no principal with id {principal_id[:80]!r}")
        await self.recorder.record(
            self.recorder.event(
                EventType.PRINCIPAL_UPDATED,
                principal=updated,
                actor=actor,
                reason="changed " + ", ".join(sorted(values)),
            )
        )
        return updated

    async def set_state(
        self, principal_id: str, enabled: bool, reason: str, actor: Claims | None
    ) -> Principal:
        actor = require_admin(actor)
        refuse(text(reason, "reason"))
        current = await self._get(principal_id)
        if not enabled and actor.sub == principal_id:
            raise FailedPrecondition("an identity_admin cannot disable itself")
        state = PrincipalState.ACTIVE if enabled else PrincipalState.DISABLED
        if current.state is state:
            return current
        updated = await self.store.set_state(principal_id, state, self._clock())
        assert updated is not None
        kind = EventType.PRINCIPAL_ENABLED if enabled else EventType.PRINCIPAL_DISABLED
        await self.recorder.record(
            self.recorder.event(kind, principal=updated, actor=actor, reason=reason)
        )
        if not enabled:
            await self.sessions.revoke_principal(updated, actor, reason or "principal disabled")
        return updated

    async def set_password(
        self,
        principal_id: str,
        current_password: str,
        new_password: str,
        actor: Claims | None,
        source: str,
    ) -> None:
        actor = require_self_or_admin(actor, principal_id)
        principal = await self._get(principal_id)
        if principal.kind not in (PrincipalKind.CITIZEN, PrincipalKind.STAFF):
            raise FailedPrecondition("devices and services have no password")
        self.policy.check(new_password, principal.username)
        if actor.sub == principal_id:
            if not current_password:
                raise InvalidArgument("current_password is required to change your password")
            await self.logins.check_password(principal, current_password, source)
        await self.store.set_password(
            principal_id, await self.passwords.hash(new_password), self._clock()
        )
        await self.recorder.record(
            self.recorder.event(
                EventType.PRINCIPAL_UPDATED,
                principal=principal,
                actor=actor,
                reason="password changed",
            )
        )

    # -- TOTP -----------------------------------------------------------------------------

    async def enroll_totp(self, principal_id: str, actor: Claims | None) -> tuple[str, str, float]:
        """A new pending secret: ``(secret, otpauth URI, expiry)``."""
        require_self_or_admin(actor, principal_id)
        principal = await self._get(principal_id)
        if principal.totp_enabled:
            raise FailedPrecondition("TOTP is enrolled already")
        secret = pyotp.random_base32()
        expires = self._clock() + self.issuer.lifetimes.totp_enrolment
        await self.store.set_totp(
            principal_id, secret=None, pending=secret, pending_expires=expires, now=self._clock()
        )
        uri = pyotp.TOTP(secret).provisioning_uri(name=principal.username, issuer_name=TOTP_ISSUER)
        return secret, uri, expires

    async def confirm_totp(self, principal_id: str, code: str, actor: Claims | None) -> Principal:
        actor = require_self_or_admin(actor, principal_id)
        principal = await self._get(principal_id)
        credentials = await self.store.credentials(principal_id)
        now = self._clock()
        pending = credentials.totp_pending if credentials else None
        expires = credentials.totp_pending_expires if credentials else None
        if principal.totp_enabled or pending is None or expires is None or expires <= now:
            raise FailedPrecondition("no TOTP enrolment is pending; call EnrollTotp first")
        step = totp_step(pending, code, now)
        if step is None:
            raise InvalidArgument("the code does not match the pending secret")
        await self.store.use_totp_step(principal_id, step)
        updated = await self.store.set_totp(
            principal_id, secret=pending, pending=None, pending_expires=None, now=now
        )
        assert updated is not None
        await self.recorder.record(
            self.recorder.event(
                EventType.PRINCIPAL_UPDATED, principal=updated, actor=actor, reason="TOTP enrolled"
            )
        )
        return updated

    # -- roles ----------------------------------------------------------------------------

    async def change_role(
        self, principal_id: str, binding: RoleBinding, grant: bool, actor: Claims | None
    ) -> Principal:
        actor = require_admin(actor)
        problems = check_binding(binding)
        fields = self.known_fields
        if fields is not None and binding.field not in fields | {WILDCARD_FIELD}:
            problems.append(f"no field {binding.field[:80]!r} is installed")
        refuse(problems)
        principal = await self._get(principal_id)
        now = self._clock()
        if grant:
            if principal.kind is PrincipalKind.CITIZEN:
                raise FailedPrecondition("citizens hold no roles; they own their records")
            changed = await self.store.add_role(principal_id, binding, now)
        else:
            changed = await self.store.remove_role(principal_id, binding, now)
            if not changed:
                raise NotFound(f"{principal.username} does not hold {binding}")
        updated = await self._get(principal_id)
        if changed:
            kind = EventType.ROLE_ASSIGNED if grant else EventType.ROLE_REVOKED
            await self.recorder.record(
                self.recorder.event(kind, principal=updated, actor=actor, role=binding)
            )
        return updated

    # -- tokens and audit -----------------------------------------------------------------

    async def issue_service_token(
        self, principal_id: str, ttl: float, audiences: list[str], actor: Claims | None
    ) -> Issued:
        require_admin(actor)
        return await self.sessions.issue_service_token(
            await self._get(principal_id), ttl, audiences
        )

    async def audit(
        self, where: AuditFilter, page_size: int, page_token: str, actor: Claims | None
    ) -> Page[AuditEvent]:
        require_admin(actor)
        refuse(text(where.principal_id, "principal_id", limit=MAX_ID))
        try:
            return await self.store.audit(where, page_size=page_size, page_token=page_token or None)
        except InvalidQuery as exc:
            raise InvalidArgument(str(exc)) from None
