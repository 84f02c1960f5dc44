"""Who may do what in the identity domain (``actor`` is the verified caller, ``None``
without a token):

* anyone may register a citizen (self-registration), at assurance NONE and without roles;
  every other creation needs ``identity_admin``;
* a principal may read and edit its own profile (not its assurance level), set its own
  password (giving the current one) and enrol TOTP; ``identity_admin`` may do all of this
  for anyone, and raise assurance levels;
* roles, listing, disabling, enabling, service tokens and the audit need ``identity_admin``.

The checks here answer "admin?" and "self or admin?"; :mod:`.service` applies them to each
operation. :func:`local_operator` is the actor of the command line.
"""

from __future__ import annotations

from datetime import UTC, datetime

from smartcity.runtime.errors import PermissionDenied, Unauthenticated
from smartcity.runtime.tokens import WILDCARD_FIELD, Claims, PrincipalKind, Role, RoleBinding

__all__ = ["is_admin", "local_operator", "require_admin", "require_self_or_admin"]


def local_operator(name: str = "local-operator") -> Claims:
    """The actor of the command line, which works on the store directly: whoever may read
    the configuration and open the database administers identity already, and the first
    administrator has to come from somewhere."""
    now = datetime.now(UTC)
    return Claims(
        sub=name,
        kind=PrincipalKind.SERVICE,
        roles=frozenset({RoleBinding(Role.IDENTITY_ADMIN, WILDCARD_FIELD)}),
        iss="local",
        aud=(),
        iat=now,
        exp=now,
        jti=name,
    )


def is_admin(actor: Claims | None) -> bool:
    return actor is not None and actor.allows(Role.IDENTITY_ADMIN, WILDCARD_FIELD)


def require_admin(actor: Claims | None) -> Claims:
    if actor is None:
        raise Unauthenticated("this needs a token of an identity_admin")
    if not is_admin(actor):
        raise PermissionDenied("this needs the identity_admin role on '*'")
    return actor


def require_self_or_admin(actor: Claims | None, principal_id: str) -> Claims:
    if actor is None:
        raise Unauthenticated("this needs a token")
    if actor.sub != principal_id and not is_admin(actor):
        raise PermissionDenied("a principal may only do this for itself, or be an identity_admin")
    return actor
