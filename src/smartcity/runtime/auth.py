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

The declarations (:class:`Permission` and its kinds, :func:`permission`,
:func:`permission_table`) are in :mod:`smartcity.runtime.permissions`, importable from here
too; this module enforces them.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

import grpc
import grpc.aio

from smartcity.runtime.claims import Claims
from smartcity.runtime.errors import PermissionDenied, Unauthenticated
from smartcity.runtime.interceptors import invoke, iterate, rewrap
from smartcity.runtime.logs import get_logger
from smartcity.runtime.permissions import (
    Authenticated,
    Permission,
    Public,
    Requires,
    UndeclaredPermission,
    denial,
    holds_anywhere,
    permission,
    permission_table,
)
from smartcity.runtime.tokens import TokenError

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

STREAM_CHECK_SECONDS = 1.0
"""How often a server stream re-checks its caller's token for revocation."""

_principal: contextvars.ContextVar[Claims | None] = contextvars.ContextVar(
    "smartcity_principal", default=None
)


def principal() -> Claims | None:
    """The verified caller of the current RPC; ``None`` on a public RPC called without a
    token, and whenever auth is off."""
    return _principal.get()


class Authenticator(Protocol):
    """Turns a bearer token into a verified caller; :class:`TokenVerifier`-backed in every
    mode (see :mod:`smartcity.runtime.trust`)."""

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
