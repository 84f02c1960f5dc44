"""What the identity service keeps, as typed values that check themselves.

Times are seconds since the epoch (floats), as in JWT claims. Every value that comes from a
caller is checked where it is built (:func:`check_username`, :class:`NewPrincipal`), and all
that is wrong with it is reported at once, as :class:`~smartcity.runtime.errors.InvalidArgument`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Generic, TypeVar

from smartcity.runtime.errors import InvalidArgument
from smartcity.runtime.tokens import WILDCARD_FIELD, PrincipalKind, Role, RoleBinding

__all__ = [
    "AssuranceLevel",
    "AuditEvent",
    "AuditFilter",
    "Credentials",
    "EventType",
    "IssuedToken",
    "NewPrincipal",
    "Page",
    "Principal",
    "PrincipalFilter",
    "PrincipalKind",
    "PrincipalState",
    "RefreshRecord",
    "RoleBinding",
    "Session",
    "TotpChallenge",
]

T = TypeVar("T")

MAX_TEXT = 256
"""Longest display name, e-mail address, label key or value, reason."""
MAX_LABELS = 32
MAX_PASSWORD = 1024
"""Longer passwords are refused before hashing: argon2 would hash them, at a cost an
attacker chooses."""

_NAME = r"[a-z0-9][a-z0-9_-]{0,62}"
_USERNAME = re.compile(r"[a-z0-9][a-z0-9._@+-]{2,63}")
_DEVICE_USERNAME = re.compile(f"{_NAME}/{_NAME}")
"""``<site>/<device>``: both parts become NATS subject tokens, so no dots."""
_SERVICE_USERNAME = re.compile(r"[a-z][a-z0-9-]{1,62}")
_PERSONAL_ID = re.compile(r"[0-9]{12}")
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+")
_FIELD = re.compile(r"[a-z][a-z0-9_]{0,62}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class AssuranceLevel(IntEnum):
    """eID assurance under Vietnam's eID rules; the numbers are the proto's."""

    NONE = 1
    LEVEL_1 = 2
    LEVEL_2 = 3

    @property
    def acr(self) -> str | None:
        """The ``acr`` claim: ``vneid:1``, ``vneid:2``, or none without eID verification."""
        return {AssuranceLevel.LEVEL_1: "vneid:1", AssuranceLevel.LEVEL_2: "vneid:2"}.get(self)

    @classmethod
    def from_acr(cls, acr: str | None) -> AssuranceLevel:
        return {"vneid:1": cls.LEVEL_1, "vneid:2": cls.LEVEL_2}.get(acr or "", cls.NONE)


class PrincipalState(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


class EventType(StrEnum):
    """``IdentityEvent.Type`` without its prefix, lower case: the subject's last token."""

    PRINCIPAL_CREATED = "principal_created"
    PRINCIPAL_UPDATED = "principal_updated"
    PRINCIPAL_DISABLED = "principal_disabled"
    PRINCIPAL_ENABLED = "principal_enabled"
    ROLE_ASSIGNED = "role_assigned"
    ROLE_REVOKED = "role_revoked"
    LOGIN_SUCCEEDED = "login_succeeded"
    LOGIN_FAILED = "login_failed"
    TOKEN_REVOKED = "token_revoked"
    KEYS_ROTATED = "keys_rotated"
    LOCKED_OUT = "locked_out"


def text(value: str, what: str, *, limit: int = MAX_TEXT, empty: bool = True) -> list[str]:
    """What is wrong with a free text (none, one or more problems)."""
    problems = []
    if not empty and not value.strip():
        problems.append(f"{what} must not be empty")
    if len(value) > limit:
        problems.append(f"{what} is longer than {limit} characters")
    if _CONTROL.search(value):
        problems.append(f"{what} contains control characters")
    return problems


def printable(value: str, limit: int = 128) -> str:
    """``value`` fit to store and log as it is: control characters replaced, length capped.
    For what the transport reports (a peer address), which is recorded, not refused."""
    return _CONTROL.sub("?", value[:limit])


def well_formed(value: str, limit: int) -> bool:
    """Whether a caller's id or token could be one the service issued: not empty, not too
    long, no control characters. Anything else is looked up nowhere."""
    return 0 < len(value) <= limit and not _CONTROL.search(value)


def check_username(username: str, kind: PrincipalKind) -> list[str]:
    """What is wrong with ``username`` for a principal of ``kind``."""
    if kind is PrincipalKind.DEVICE:
        if not _DEVICE_USERNAME.fullmatch(username):
            return [
                f"a device's username is <site>/<device>, each part lower-case letters, digits, "
                f"'-' or '_' (up to 63); not {username[:80]!r}"
            ]
    elif kind is PrincipalKind.SERVICE:
        if not _SERVICE_USERNAME.fullmatch(username):
            return [
                f"a service's username is its name: a lower-case letter, then letters, digits "
                f"or '-' (2 to 63); not {username[:80]!r}"
            ]
    elif not _USERNAME.fullmatch(username):
        return [
            f"a username is 3 to 64 lower-case letters, digits or . _ @ + -, starting with a "
            f"letter or digit; not {username[:80]!r}"
        ]
    return []


def check_binding(binding: RoleBinding) -> list[str]:
    """What is wrong with a role binding a caller asks for."""
    problems = []
    roles = ", ".join(role.value for role in Role)
    if binding.role not in set(Role):
        problems.append(f"unknown role {binding.role[:80]!r}; the roles are {roles}")
    if binding.field != WILDCARD_FIELD and not _FIELD.fullmatch(binding.field):
        problems.append(f"{binding.field[:80]!r} is not a field id (or '*' for every field)")
    if binding.role == Role.IDENTITY_ADMIN and binding.field != WILDCARD_FIELD:
        problems.append("identity_admin is granted on '*' only: principals belong to no field")
    return problems


def check_labels(labels: Mapping[str, str]) -> list[str]:
    problems = []
    if len(labels) > MAX_LABELS:
        problems.append(f"at most {MAX_LABELS} labels")
    for key, value in labels.items():
        problems += text(key, f"label key {key[:40]!r}", limit=63, empty=False)
        problems += text(value, f"label {key[:40]!r}")
    return problems


def refuse(problems: Sequence[str]) -> None:
    """Raise :class:`InvalidArgument` with every problem, if there is any."""
    if problems:
        raise InvalidArgument("; ".join(problems))


@dataclass(frozen=True, slots=True)
class Principal:
    """A citizen, staff member, device or service."""

    id: str
    kind: PrincipalKind
    username: str
    display_name: str
    email: str
    personal_id: str
    assurance: AssuranceLevel
    roles: frozenset[RoleBinding]
    state: PrincipalState
    totp_enabled: bool
    labels: Mapping[str, str]
    created: float
    updated: float

    @property
    def active(self) -> bool:
        return self.state is PrincipalState.ACTIVE


@dataclass(frozen=True, slots=True)
class NewPrincipal:
    """What a caller asks to create; :meth:`check` reports every problem at once."""

    kind: PrincipalKind
    username: str
    display_name: str = ""
    email: str = ""
    personal_id: str = ""
    assurance: AssuranceLevel = AssuranceLevel.NONE
    labels: Mapping[str, str] = field(default_factory=dict)

    def check(self) -> None:
        refuse(self.problems())

    def problems(self) -> list[str]:
        problems = check_username(self.username, self.kind)
        problems += text(self.display_name, "display_name")
        problems += text(self.email, "email")
        if self.email and not _EMAIL.fullmatch(self.email):
            problems.append(f"{self.email[:80]!r} is not an e-mail address")
        if self.kind is PrincipalKind.CITIZEN:
            if not _PERSONAL_ID.fullmatch(self.personal_id):
                problems.append("a citizen needs a personal_id of 12 digits")
        elif self.personal_id:
            problems.append("only citizens have a personal_id")
        problems += check_labels(self.labels)
        return problems


@dataclass(frozen=True, slots=True)
class Credentials:
    """How a principal proves who it is; never leaves the service."""

    password_hash: str | None
    totp_secret: str | None
    totp_pending: str | None
    totp_pending_expires: float | None
    totp_last_step: int
    """The last TOTP time step accepted: a code is good once (RFC 6238 section 5.2)."""


@dataclass(frozen=True, slots=True)
class Session:
    """A login, from the password to the logout: what its refresh tokens continue."""

    id: str
    principal_id: str
    auth_time: float
    amr: tuple[str, ...]
    created: float
    expires: float
    """The session ends here, however often it is refreshed."""
    revoked: float | None = None


@dataclass(frozen=True, slots=True)
class RefreshRecord:
    """A refresh token as stored: its SHA-256, never the token."""

    token_hash: str
    session_id: str
    created: float
    expires: float
    used: float | None = None


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """An access token the service signed, kept until it expires so that it can be revoked
    by id, with its session, or with its principal."""

    jti: str
    principal_id: str
    session_id: str | None
    issued: float
    expires: float
    revoked: float | None = None


@dataclass(frozen=True, slots=True)
class TotpChallenge:
    id: str
    principal_id: str
    expires: float
    source: str


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One identity event: published on ``city.identity.<type>`` and kept for the audit."""

    id: str
    time: float
    type: EventType
    principal_id: str = ""
    principal_kind: PrincipalKind | None = None
    principal_name: str = ""
    actor_id: str = ""
    actor_kind: PrincipalKind | None = None
    actor_name: str = ""
    role: RoleBinding | None = None
    token_id: str = ""
    token_expires: float | None = None
    reason: str = ""
    source: str = ""
    jwks: str = ""


@dataclass(frozen=True, slots=True)
class PrincipalFilter:
    kind: PrincipalKind | None = None
    role: str = ""
    field: str = ""
    name_prefix: str = ""
    include_disabled: bool = False


@dataclass(frozen=True, slots=True)
class AuditFilter:
    principal_id: str = ""
    types: frozenset[EventType] = frozenset()
    start: float | None = None
    end: float | None = None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_page_token: str | None
