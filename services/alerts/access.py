"""Who may ask the alerts API: what each RPC's permission reads from its request, and the
checks a handler makes once it knows the field an alert, rule or silence belongs to.

The interceptor (``smartcity.runtime.auth``) checks the role on the field a request names;
a request that names only a fingerprint or an id is checked again here, against the field
of what it names. With no verified caller (auth off), every check here passes.
"""

from __future__ import annotations

from typing import Any

from smartcity.alerts.v1 import alerts_pb2 as pb
from smartcity.runtime.auth import denial, principal
from smartcity.runtime.errors import PermissionDenied
from smartcity.runtime.tokens import WILDCARD_FIELD, Claims, Role

__all__ = ["require", "rule_field", "silence_field", "user", "viewable"]


def rule_field(request: Any) -> str:
    return str(request.rule.field)


def silence_field(request: Any) -> str:
    """The field a silence's equality matcher on ``field`` names; every field otherwise."""
    for item in request.silence.matchers:
        if item.name == "field" and item.type == pb.Matcher.TYPE_EQUAL and item.value:
            return str(item.value)
    return WILDCARD_FIELD


def user() -> str | None:
    """The acting user: the subject of the caller's token; ``None`` with no caller."""
    claims = principal()
    return None if claims is None else claims.sub


def viewable(claims: Claims | None, fields: Any) -> frozenset[str] | None:
    """The fields whose alerts and rules ``claims`` may view; ``None`` for every field."""
    if claims is None or claims.allows(Role.VIEWER, WILDCARD_FIELD):
        return None
    return frozenset(f.id for f in fields if claims.allows(Role.VIEWER, f.id))


def require(role: str, field: str) -> None:
    """:class:`PermissionDenied` unless the caller has ``role`` on ``field``."""
    claims = principal()
    if claims is not None and not claims.allows(role, field):
        raise PermissionDenied(denial(claims, role, field))
