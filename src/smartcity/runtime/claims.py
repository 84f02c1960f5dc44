"""What a verified token says about its bearer: who it is, of what kind, with which roles.

Roles are bound to a field (``operator:electricity``) or to every field (``*``); a role
grants the roles below it (``viewer`` < ``operator`` < ``engineer``). :class:`Claims` is what
:class:`smartcity.runtime.tokens.TokenVerifier` returns once a token has passed every check.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

WILDCARD_FIELD = "*"


class Role(StrEnum):
    """The roles of identity.proto. ``viewer`` < ``operator`` < ``engineer``; the other two
    stand apart: a records officer is not an operator, and administering principals grants
    nothing in the fields."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ENGINEER = "engineer"
    RECORDS_OFFICER = "records_officer"
    IDENTITY_ADMIN = "identity_admin"


_IMPLIED: Mapping[str, frozenset[str]] = {
    Role.VIEWER: frozenset({Role.VIEWER}),
    Role.OPERATOR: frozenset({Role.OPERATOR, Role.VIEWER}),
    Role.ENGINEER: frozenset({Role.ENGINEER, Role.OPERATOR, Role.VIEWER}),
    Role.RECORDS_OFFICER: frozenset({Role.RECORDS_OFFICER}),
    Role.IDENTITY_ADMIN: frozenset({Role.IDENTITY_ADMIN}),
}


def implied_roles(role: str) -> frozenset[str]:
    """Every role that holding ``role`` grants, itself included. A role this version does not
    know grants only itself, so that a newer identity service can add roles safely."""
    return _IMPLIED.get(role, frozenset({role}))


@dataclass(frozen=True, slots=True)
class RoleBinding:
    """A role on one field, or on every field when ``field`` is ``*``."""

    role: str
    field: str

    @classmethod
    def parse(cls, text: str) -> RoleBinding:
        """``operator:electricity`` → ``RoleBinding("operator", "electricity")``."""
        role, colon, field = text.partition(":")
        if not colon or not role or not field or ":" in field or text != text.strip():
            raise ValueError(f"{text[:80]!r} is not a role binding of the form <role>:<field>")
        return cls(role, field)

    def __str__(self) -> str:
        return f"{self.role}:{self.field}"

    def grants(self, role: str, field: str) -> bool:
        """Whether this binding gives ``role`` on ``field``. Asking for ``*`` (every field)
        is answered only by a ``*`` binding."""
        return role in implied_roles(self.role) and self.field in (field, WILDCARD_FIELD)


class PrincipalKind(StrEnum):
    CITIZEN = "citizen"
    STAFF = "staff"
    DEVICE = "device"
    SERVICE = "service"


@dataclass(frozen=True, slots=True)
class Claims:
    """What a verified token says about its bearer."""

    sub: str
    kind: PrincipalKind
    roles: frozenset[RoleBinding]
    iss: str
    aud: tuple[str, ...]
    iat: datetime
    exp: datetime
    jti: str
    acr: str | None = None
    """eID assurance (``vneid:1``, ``vneid:2``); ``None`` without eID verification."""
    amr: tuple[str, ...] = ()
    """How the principal authenticated (RFC 8176): ``pwd``, ``otp``, ``svc``."""
    sid: str | None = None
    """The login session the token belongs to; ``None`` for service tokens."""
    auth_time: datetime | None = None
    """When the principal authenticated for this session (OpenID Connect ``auth_time``); a
    refresh keeps it, so that a step-up check sees how recent the login really is."""

    def allows(self, role: str, field: str) -> bool:
        """Whether the bearer holds ``role`` (or a role above it) on ``field``."""
        return any(binding.grants(role, field) for binding in self.roles)


def role_bindings(texts: Iterable[str]) -> frozenset[RoleBinding]:
    """Parse ``<role>:<field>`` strings; raises ``ValueError`` naming the first bad one."""
    return frozenset(RoleBinding.parse(text) for text in texts)
