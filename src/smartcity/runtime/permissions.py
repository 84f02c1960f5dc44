"""Who may call an RPC, as declared next to its handler: :func:`permission` with
:class:`Public`, :class:`Authenticated` or :class:`Requires`.

:func:`permission_table` collects the declarations of a server's servicers and refuses a
method without one, so that a new RPC cannot ship open by omission; the same table drives
the permission-matrix tests. Enforcing the declarations is
:class:`smartcity.runtime.auth.AuthInterceptor`'s.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from smartcity.runtime.claims import WILDCARD_FIELD, Claims, PrincipalKind, implied_roles
from smartcity.runtime.errors import PermissionDenied, Unauthenticated

PERMISSION_ATTRIBUTE = "__smartcity_permission__"

FieldOf = Callable[[Any], str | None]


class Permission:
    """What a caller must be to call an RPC; :meth:`check` raises the reason if not."""

    needs_token: bool = True

    def check(self, claims: Claims | None, request: Any) -> None:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class Public(Permission):
    """Anyone, with or without a token (a token that is given must still be valid)."""

    reason: str
    needs_token = False

    def check(self, claims: Claims | None, request: Any) -> None:
        return None

    def describe(self) -> str:
        return "public"


_ASSURANCE = {"vneid:1": 1, "vneid:2": 2}


@dataclass(frozen=True, kw_only=True)
class Authenticated(Permission):
    """Any verified caller, optionally of given kinds, eID level and login recency.

    ``min_assurance`` is the eID level (1 or 2) the token's ``acr`` must reach;
    ``strong_within`` asks for a login with a second factor no older than that many seconds
    (step-up): the token's ``amr`` must include ``otp`` and its ``auth_time`` be recent.
    """

    kinds: frozenset[PrincipalKind] | None = None
    min_assurance: int | None = None
    strong_within: float | None = None

    def check(self, claims: Claims | None, request: Any) -> None:
        if claims is None:
            raise Unauthenticated(
                "no access token: send 'authorization: Bearer <token>' metadata "
                "(a token from the identity service)"
            )
        if self.kinds is not None and claims.kind not in self.kinds:
            allowed = ", ".join(sorted(kind.value for kind in self.kinds))
            raise PermissionDenied(f"only {allowed} principals may call this")
        if self.min_assurance is not None:
            level = _ASSURANCE.get(claims.acr or "", 0)
            if level < self.min_assurance:
                raise PermissionDenied(
                    f"this call needs eID level {self.min_assurance} (VNeID); "
                    f"the token carries {'none' if level == 0 else f'level {level}'}"
                )
        if self.strong_within is not None:
            recent = claims.auth_time is not None and (
                time.time() - claims.auth_time.timestamp() <= self.strong_within
            )
            if "otp" not in claims.amr or not recent:
                raise PermissionDenied(
                    "this call needs a login with a second factor within the last "
                    f"{self.strong_within:g} s: log in again with your TOTP code"
                )

    def describe(self) -> str:
        parts = ["authenticated"]
        if self.kinds is not None:
            parts.append("kind in " + "|".join(sorted(kind.value for kind in self.kinds)))
        if self.min_assurance is not None:
            parts.append(f"eID level >= {self.min_assurance}")
        if self.strong_within is not None:
            parts.append(f"second factor within {self.strong_within:g} s")
        return ", ".join(parts)


@dataclass(frozen=True)
class Requires(Authenticated):
    """A role on the field the request is about.

    ``field`` is a field id, ``*`` (the role on every field, e.g. ``identity_admin``), or a
    function of the request returning the field id; when it returns ``None`` or an empty
    string the call is about no single field, and the role on any field suffices: the
    servicer then narrows its answer with :func:`principal`.
    """

    role: str = ""
    field: str | FieldOf | None = None

    def __post_init__(self) -> None:
        if not self.role:
            raise ValueError("Requires needs a role")

    def check(self, claims: Claims | None, request: Any) -> None:
        super().check(claims, request)
        assert claims is not None  # checked by Authenticated
        field = self.field(request) if callable(self.field) else self.field
        if field:
            if not claims.allows(self.role, field):
                raise PermissionDenied(denial(claims, self.role, field))
        elif not holds_anywhere(claims, self.role):
            raise PermissionDenied(denial(claims, self.role, None))

    def describe(self) -> str:
        field = "<from request>" if callable(self.field) else (self.field or "<any>")
        extra = Authenticated.describe(self).removeprefix("authenticated")
        return f"{self.role} on {field}{extra}"


def denial(claims: Claims, role: str, field: str | None) -> str:
    """Why ``claims`` may not act as ``role`` on ``field`` (``None``: on any field), naming
    the fields where the caller does hold the role, so that a caller of one field who forgot
    to name it learns what to ask instead."""
    held = sorted(
        {
            binding.field
            for binding in claims.roles
            if role in implied_roles(binding.role) and binding.field != WILDCARD_FIELD
        }
    )
    if field is None:
        where = "any field"
    elif field == WILDCARD_FIELD:
        where = "every field ('*')"
    else:
        where = f"field {field!r}"
    yours = f" (it holds it on: {', '.join(held)})" if held else ""
    return f"{claims.sub} lacks the {role} role on {where}{yours}"


def holds_anywhere(claims: Claims, role: str) -> bool:
    """Whether the caller holds ``role`` (or a role above it) on at least one field."""
    return any(role in implied_roles(binding.role) for binding in claims.roles)


def permission(declared: Permission) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare who may call the decorated servicer method."""
    if not isinstance(declared, Permission):
        raise TypeError(f"permission() takes a Permission, not {declared!r}")

    def mark(method: Callable[..., Any]) -> Callable[..., Any]:
        setattr(method, PERMISSION_ATTRIBUTE, declared)
        return method

    return mark


class UndeclaredPermission(TypeError):  # noqa: N818 - named for what is wrong
    """A servicer whose methods do not all declare a permission."""


def _service_descriptor(add: Callable[..., Any]) -> Any:
    """The protobuf service descriptor behind a generated ``add_XServicer_to_server``."""
    module = importlib.import_module(add.__module__.removesuffix("_grpc"))
    name = add.__name__.removeprefix("add_").removesuffix("Servicer_to_server")
    try:
        return module.DESCRIPTOR.services_by_name[name]
    except (AttributeError, KeyError):
        raise UndeclaredPermission(
            f"{add.__qualname__} is not a generated registration function"
        ) from None


def permission_table(
    registrations: Sequence[tuple[Callable[..., Any], Any]],
) -> dict[str, Permission]:
    """Every RPC of the registered servicers by its full method path
    (``/smartcity.monitoring.v1.MonitoringService/GetLatest``) with its declared permission.
    Raises :class:`UndeclaredPermission` naming every method without one."""
    table: dict[str, Permission] = {}
    missing: list[str] = []
    for add, servicer in registrations:
        service = _service_descriptor(add)
        for method in service.methods:
            declared = getattr(getattr(servicer, method.name, None), PERMISSION_ATTRIBUTE, None)
            if declared is None:
                missing.append(f"{service.full_name}.{method.name}")
            else:
                table[f"/{service.full_name}/{method.name}"] = declared
    if missing:
        raise UndeclaredPermission(
            "no permission declared for " + ", ".join(missing) + ": decorate each with "
            "@permission(...) from smartcity.runtime.auth"
        )
    return table
