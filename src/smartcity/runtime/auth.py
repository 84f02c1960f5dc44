"""Who may call what: permissions declared next to each RPC, enforced by one interceptor.

A servicer declares, on every method, what the caller must be::

    class AlertsServicer(alerts_pb2_grpc.AlertsServiceServicer):
        @permission(Requires(Role.OPERATOR, field=lambda request: request.field))
        async def AcknowledgeAlert(self, request, context): ...

        @permission(Public("the key set is what callers verify tokens with"))
        async def GetJwks(self, request, context): ...

and reads the verified caller with :func:`principal` where the answer depends on who asks
(a list filtered to the fields the caller may view). :class:`AuthInterceptor` does the rest
for every service, in one place: it takes the bearer token from the ``authorization``
metadata, verifies it locally (:mod:`smartcity.runtime.tokens`), checks the declared
permission against the request, and, on a server stream, ends the stream with UNAUTHENTICATED
once the token expires or is revoked. Servicers never parse tokens.

A servicer with an undeclared method is refused when the server is built
(:func:`permission_table`), so a new RPC cannot ship open by omission; the same table drives
the permission-matrix tests.

With auth ``off`` (a laptop without identity) every call is let through and :func:`principal`
is ``None``; servicers treat ``None`` as "may see everything", which is what off means.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import importlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
import grpc.aio

from smartcity.runtime.errors import PermissionDenied, Unauthenticated
from smartcity.runtime.interceptors import invoke, iterate, rewrap
from smartcity.runtime.logs import get_logger
from smartcity.runtime.tokens import (
    WILDCARD_FIELD,
    Claims,
    PrincipalKind,
    TokenError,
    implied_roles,
)

__all__ = [
    "AuthInterceptor",
    "Authenticated",
    "Authenticator",
    "Permission",
    "Public",
    "Requires",
    "UndeclaredPermission",
    "bearer_token",
    "denial",
    "holds_anywhere",
    "permission",
    "permission_table",
    "principal",
]

_log = get_logger(__name__)

PERMISSION_ATTRIBUTE = "__smartcity_permission__"
STREAM_CHECK_SECONDS = 1.0
"""How often a server stream re-checks its caller's token for revocation."""

FieldOf = Callable[[Any], str | None]

_principal: contextvars.ContextVar[Claims | None] = contextvars.ContextVar(
    "smartcity_principal", default=None
)


def principal() -> Claims | None:
    """The verified caller of the current RPC; ``None`` on a public RPC called without a
    token, and whenever auth is off."""
    return _principal.get()


# -- declarations ----------------------------------------------------------------------------


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


# -- enforcement -----------------------------------------------------------------------------


class Authenticator(Protocol):
    """Turns a bearer token into a verified caller; :class:`TokenVerifier`-backed in every
    mode (see :mod:`smartcity.runtime.keys`)."""

    async def authenticate(self, token: str) -> Claims: ...

    def is_revoked(self, claims: Claims) -> bool: ...


def bearer_token(metadata: Sequence[tuple[str, Any]] | None) -> str | None:
    """The token of an ``authorization: Bearer <token>`` metadata entry, if any."""
    for key, value in metadata or ():
        if key == "authorization":
            text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
            scheme, _, token = text.strip().partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("the authorization metadata must be 'Bearer <token>'")
            return token.strip()
    return None


Behavior = Callable[[Any, grpc.aio.ServicerContext], Any]


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Enforces ``table`` with ``authenticator``; ``None`` lets every call through (auth off).

    Methods absent from the table (health, reflection) pass untouched. Put it innermost in
    the chain, inside the error interceptor, so that its refusals become status codes."""

    def __init__(
        self, table: Mapping[str, Permission], authenticator: Authenticator | None
    ) -> None:
        self._table = dict(table)
        self._authenticator = authenticator
        if authenticator is None:
            _log.warning(
                "auth is off: every caller may call every RPC and read every field; "
                "set auth.mode (identity or keys) for anything but a single machine",
                methods=len(self._table),
            )

    @classmethod
    def for_servicers(
        cls,
        registrations: Sequence[tuple[Callable[..., Any], Any]],
        authenticator: Authenticator | None,
    ) -> AuthInterceptor:
        """Enforce what ``registrations``' servicers declare (see :func:`permission_table`)."""
        return cls(permission_table(registrations), authenticator)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        declared = self._table.get(handler_call_details.method)
        handler = await continuation(handler_call_details)
        if declared is None or self._authenticator is None:
            return handler
        metadata = tuple(handler_call_details.invocation_metadata or ())
        method = handler_call_details.method

        def wrap(behavior: Behavior, response_streaming: bool) -> Behavior:
            if response_streaming:
                return self._guard_stream(behavior, declared, metadata, method)
            return self._guard_unary(behavior, declared, metadata, method)

        return rewrap(handler, wrap)

    async def _caller(
        self, declared: Permission, metadata: Sequence[tuple[str, Any]], request: Any, method: str
    ) -> Claims | None:
        assert self._authenticator is not None
        try:
            token = bearer_token(metadata)
            claims = None if token is None else await self._authenticator.authenticate(token)
            declared.check(claims, request)
        except (Unauthenticated, PermissionDenied) as exc:
            _log.info("call refused", method=method, reason=exc.message)
            raise
        return claims

    def _guard_unary(
        self, behavior: Behavior, declared: Permission, metadata: Any, method: str
    ) -> Behavior:
        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            claims = await self._caller(declared, metadata, request, method)
            _principal.set(claims)
            return await invoke(behavior, request, context)

        return unary

    def _guard_stream(
        self, behavior: Behavior, declared: Permission, metadata: Any, method: str
    ) -> Behavior:
        async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            claims = await self._caller(declared, metadata, request, method)
            _principal.set(claims)
            if claims is None:
                async with contextlib.aclosing(iterate(behavior, request, context)) as items:
                    async for item in items:
                        yield item
                return
            ended = _StreamGuard(self._authenticator, claims)
            ended.start()
            try:
                async with contextlib.aclosing(iterate(behavior, request, context)) as items:
                    async for item in items:
                        yield item
            except asyncio.CancelledError:
                reason = ended.reason
                if reason is None:
                    raise
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
                _log.info("stream ended", method=method, reason=reason)
                raise Unauthenticated(reason) from None
            finally:
                ended.stop()

        return stream


class _StreamGuard:
    """Cancels the task serving a stream once the caller's token expires or is revoked,
    even while the stream is idle; :attr:`reason` says which."""

    def __init__(self, authenticator: Authenticator, claims: Claims) -> None:
        self._authenticator = authenticator
        self._claims = claims
        self._task: asyncio.Task[None] | None = None
        self.reason: str | None = None

    def start(self) -> None:
        serving = asyncio.current_task()
        assert serving is not None
        self._task = asyncio.create_task(self._watch(serving))

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _watch(self, serving: asyncio.Task[Any]) -> None:
        expiry = self._claims.exp.timestamp()
        while True:
            remaining = expiry - time.time()
            if remaining <= 0:
                self.reason = "token expired during the stream: call again with a fresh token"
                break
            await asyncio.sleep(min(STREAM_CHECK_SECONDS, remaining))
            try:
                revoked = self._authenticator.is_revoked(self._claims)
            except TokenError:
                revoked = True
            if revoked:
                self.reason = "token revoked during the stream"
                break
        serving.cancel()
