"""Identity values to and from protobuf, for the gRPC API.

Requests become the plain values of :mod:`.model` (a malformed message, such as an unknown
enum value or an impossible timestamp, is refused here with ``INVALID_ARGUMENT``); principals,
token sets and introspection results become messages. Identity events have their own
conversion in :mod:`.events`, shared with the publisher.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from smartcity.common.v1 import common_pb2
from smartcity.identity.v1 import identity_pb2
from smartcity.runtime.errors import InvalidArgument
from smartcity.runtime.tokens import RoleBinding
from smartcity.services.identity.events import KIND_TO_PB, PB_TO_KIND, PB_TO_TYPE
from smartcity.services.identity.events import timestamp as ts
from smartcity.services.identity.model import (
    AssuranceLevel,
    AuditFilter,
    NewPrincipal,
    Principal,
    PrincipalFilter,
    PrincipalState,
)
from smartcity.services.identity.sessions import Introspection, TokenSet

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "STATE_TO_PB",
    "audit_filter",
    "introspect_pb",
    "new_principal",
    "page_size",
    "principal_filter",
    "principal_pb",
    "profile_values",
    "role_binding",
    "token_set_pb",
]

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000

STATE_TO_PB = {
    PrincipalState.ACTIVE: identity_pb2.PRINCIPAL_STATE_ACTIVE,
    PrincipalState.DISABLED: identity_pb2.PRINCIPAL_STATE_DISABLED,
}


def page_size(page: common_pb2.PageRequest) -> int:
    if page.page_size < 0:
        raise InvalidArgument("page.page_size must not be negative")
    return min(page.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def _seconds(stamp: Timestamp, what: str) -> float:
    seconds = stamp.seconds + stamp.nanos / 1e9
    if not (-62135596800 <= stamp.seconds <= 253402300799 and 0 <= stamp.nanos < 10**9):
        raise InvalidArgument(f"{what} is not a valid timestamp")
    return seconds


def _assurance(value: int) -> AssuranceLevel:
    if value == identity_pb2.ASSURANCE_LEVEL_UNSPECIFIED:
        return AssuranceLevel.NONE
    try:
        return AssuranceLevel(value)
    except ValueError:
        raise InvalidArgument(f"unknown assurance_level {value}") from None


def role_binding(request: Any) -> RoleBinding:
    """The ``role_binding`` of an ``AssignRole`` or ``RevokeRole`` request."""
    if not request.HasField("role_binding"):
        raise InvalidArgument("role_binding is required")
    return RoleBinding(request.role_binding.role, request.role_binding.field)


def new_principal(given: identity_pb2.Principal) -> NewPrincipal:
    """The principal a ``CreatePrincipal`` request asks for."""
    kind = PB_TO_KIND.get(given.kind)
    if kind is None:
        raise InvalidArgument("principal.kind must be CITIZEN, STAFF, DEVICE or SERVICE")
    return NewPrincipal(
        kind=kind,
        username=given.username,
        display_name=given.display_name,
        email=given.email,
        personal_id=given.personal_id,
        assurance=_assurance(given.assurance_level),
        labels=dict(given.labels),
    )


def profile_values(request: identity_pb2.UpdatePrincipalRequest) -> dict[str, Any]:
    """The profile fields an ``UpdatePrincipal`` request's mask names, with their new values."""
    given = request.principal
    values: dict[str, Any] = {}
    for path in request.update_mask.paths:
        if path == "assurance_level":
            values[path] = _assurance(given.assurance_level)
        elif path == "labels":
            values[path] = dict(given.labels)
        elif path in ("display_name", "email"):
            values[path] = getattr(given, path)
        else:
            values[path] = None  # refused by the service, with the paths it accepts
    return values


def principal_filter(request: identity_pb2.ListPrincipalsRequest) -> PrincipalFilter:
    """Which principals a ``ListPrincipals`` request asks for."""
    kind = None
    if request.kind != common_pb2.PRINCIPAL_KIND_UNSPECIFIED:
        kind = PB_TO_KIND.get(request.kind)
        if kind is None:
            raise InvalidArgument(f"unknown kind {request.kind}")
    return PrincipalFilter(
        kind=kind,
        role=request.role,
        field=request.field,
        name_prefix=request.name_prefix,
        include_disabled=request.include_disabled,
    )


def audit_filter(request: identity_pb2.ListAuditEventsRequest) -> AuditFilter:
    """Which events a ``ListAuditEvents`` request asks for."""
    types = set()
    for value in request.types:
        if value not in PB_TO_TYPE:
            raise InvalidArgument(f"unknown event type {value}")
        types.add(PB_TO_TYPE[value])
    return AuditFilter(
        principal_id=request.principal_id,
        types=frozenset(types),
        start=_seconds(request.start_time, "start_time")
        if request.HasField("start_time")
        else None,
        end=_seconds(request.end_time, "end_time") if request.HasField("end_time") else None,
    )


def principal_pb(principal: Principal) -> identity_pb2.Principal:
    return identity_pb2.Principal(
        id=principal.id,
        kind=KIND_TO_PB[principal.kind],
        username=principal.username,
        display_name=principal.display_name,
        email=principal.email,
        assurance_level=int(principal.assurance),
        role_bindings=[
            identity_pb2.RoleBinding(role=binding.role, field=binding.field)
            for binding in sorted(principal.roles, key=str)
        ],
        state=STATE_TO_PB[principal.state],
        totp_enabled=principal.totp_enabled,
        labels=dict(principal.labels),
        create_time=ts(principal.created),
        update_time=ts(principal.updated),
        personal_id=principal.personal_id,
    )


def _ref(principal: Principal) -> common_pb2.PrincipalRef:
    return common_pb2.PrincipalRef(
        id=principal.id, kind=KIND_TO_PB[principal.kind], display_name=principal.display_name
    )


def token_set_pb(tokens: TokenSet) -> identity_pb2.TokenSet:
    return identity_pb2.TokenSet(
        access_token=tokens.access_token,
        token_type="Bearer",
        access_token_expire_time=ts(tokens.access_expires),
        refresh_token=tokens.refresh_token,
        refresh_token_expire_time=ts(tokens.refresh_expires),
        principal=_ref(tokens.principal),
    )


def introspect_pb(found: Introspection) -> identity_pb2.IntrospectResponse:
    response = identity_pb2.IntrospectResponse(active=found.active, reason=found.reason)
    claims = found.claims
    if claims is not None:
        response.principal.CopyFrom(common_pb2.PrincipalRef(id=claims.sub))
        response.principal.kind = KIND_TO_PB[claims.kind]
        response.role_bindings.extend(
            identity_pb2.RoleBinding(role=binding.role, field=binding.field)
            for binding in sorted(claims.roles, key=str)
        )
        response.assurance_level = int(AssuranceLevel.from_acr(claims.acr))
        response.token_id = claims.jti
        response.audiences.extend(claims.aud)
        response.issue_time.CopyFrom(ts(claims.iat.timestamp()))
        response.expire_time.CopyFrom(ts(claims.exp.timestamp()))
    return response
