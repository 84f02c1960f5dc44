"""The identity gRPC API: protobuf in and out, and each RPC's declared permission.

Everything the service decides lives in :mod:`.service`, :mod:`.login` and :mod:`.sessions`;
this module names the caller (:func:`smartcity.runtime.auth.principal`) and the source
address (the gRPC peer), declares each RPC's permission, and turns a store that cannot answer
now into UNAVAILABLE. Messages are translated by :mod:`.convert`.
Who may do what beyond "has a token" is decided by the service (self or admin).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import grpc.aio

from smartcity.common.v1 import common_pb2
from smartcity.identity.v1 import identity_pb2, identity_pb2_grpc
from smartcity.runtime.auth import Authenticated, Public, Requires, permission, principal
from smartcity.runtime.errors import Unavailable
from smartcity.runtime.grpc_server import Registration
from smartcity.runtime.storage import StoreUnavailable
from smartcity.runtime.tokens import WILDCARD_FIELD, Claims, Role
from smartcity.services.identity.convert import (
    audit_filter,
    introspect_pb,
    new_principal,
    page_size,
    principal_filter,
    principal_pb,
    profile_values,
    role_binding,
    token_set_pb,
)
from smartcity.services.identity.events import event_pb
from smartcity.services.identity.events import timestamp as ts
from smartcity.services.identity.lockout import FORWARDED_FOR, client_source
from smartcity.services.identity.service import IdentityService

__all__ = ["DEFAULT_PORT", "SERVICE_NAME", "IdentityServicer", "servicer"]

SERVICE_NAME = identity_pb2.DESCRIPTOR.services_by_name["IdentityService"].full_name
DEFAULT_PORT = 50053

T = TypeVar("T")
ADMIN = Requires(role=Role.IDENTITY_ADMIN, field=WILDCARD_FIELD)


async def _answer(call: Awaitable[T]) -> T:
    try:
        return await call
    except StoreUnavailable as exc:
        raise Unavailable(f"identity storage is unavailable now: {exc}") from None


def _actor() -> Claims | None:
    return principal()


class IdentityServicer(identity_pb2_grpc.IdentityServiceServicer):
    def __init__(
        self, service: IdentityService, trusted_proxies: frozenset[str] = frozenset()
    ) -> None:
        self.service = service
        self.trusted_proxies = trusted_proxies
        self.sessions = service.sessions
        self.logins = service.logins

    def _source(self, context: grpc.aio.ServicerContext) -> str:
        metadata = dict(context.invocation_metadata() or ())
        forwarded = metadata.get(FORWARDED_FOR)
        return client_source(
            context.peer(), forwarded if isinstance(forwarded, str) else None, self.trusted_proxies
        )

    # -- login and tokens -----------------------------------------------------------------

    @permission(Public("logging in is how a caller gets a token"))
    async def Login(  # noqa: N802 - gRPC method names
        self, request: identity_pb2.LoginRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.LoginResponse:
        result = await _answer(
            self.logins.login(
                request.username, request.password, request.totp_code, self._source(context)
            )
        )
        if result.tokens is not None:
            return identity_pb2.LoginResponse(tokens=token_set_pb(result.tokens))
        assert result.challenge is not None
        return identity_pb2.LoginResponse(
            totp_challenge=identity_pb2.TotpChallenge(
                challenge_id=result.challenge.id, expire_time=ts(result.challenge.expires)
            )
        )

    @permission(Public("the challenge id from a password login is the credential"))
    async def VerifyTotp(  # noqa: N802
        self, request: identity_pb2.VerifyTotpRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.VerifyTotpResponse:
        tokens = await _answer(
            self.logins.verify_totp(request.challenge_id, request.totp_code, self._source(context))
        )
        return identity_pb2.VerifyTotpResponse(tokens=token_set_pb(tokens))

    @permission(Public("the refresh token is the credential"))
    async def RefreshToken(  # noqa: N802
        self, request: identity_pb2.RefreshTokenRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.RefreshTokenResponse:
        tokens = await _answer(self.sessions.refresh(request.refresh_token))
        return identity_pb2.RefreshTokenResponse(tokens=token_set_pb(tokens))

    @permission(Public("the refresh token is the credential"))
    async def Logout(  # noqa: N802
        self, request: identity_pb2.LogoutRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.LogoutResponse:
        await _answer(self.sessions.logout(request.refresh_token))
        return identity_pb2.LogoutResponse()

    @permission(Authenticated())  # its own tokens, or any as identity_admin: the service says
    async def RevokeToken(  # noqa: N802
        self, request: identity_pb2.RevokeTokenRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.RevokeTokenResponse:
        actor = _actor()
        assert actor is not None
        await _answer(self.sessions.revoke_token(request.token_id, request.reason, actor))
        return identity_pb2.RevokeTokenResponse()

    @permission(ADMIN)
    async def IssueServiceToken(  # noqa: N802
        self, request: identity_pb2.IssueServiceTokenRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.IssueServiceTokenResponse:
        ttl = request.ttl.seconds + request.ttl.nanos / 1e9
        issued = await _answer(
            self.service.issue_service_token(request.id, ttl, list(request.audiences), _actor())
        )
        return identity_pb2.IssueServiceTokenResponse(
            access_token=issued.token,
            token_id=issued.record.jti,
            expire_time=ts(issued.record.expires),
        )

    @permission(Public("services fetch the key set to verify tokens before they have one"))
    async def GetJwks(  # noqa: N802
        self, request: identity_pb2.GetJwksRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.GetJwksResponse:
        keys = self.service.issuer.ring.jwks()["keys"]
        return identity_pb2.GetJwksResponse(keys=[identity_pb2.Jwk(**key) for key in keys])

    @permission(Public("the token examined is the credential"))
    async def Introspect(  # noqa: N802
        self, request: identity_pb2.IntrospectRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.IntrospectResponse:
        found = await _answer(self.sessions.introspect(request.token))
        return introspect_pb(found)

    # -- principals -----------------------------------------------------------------------

    @permission(Public("citizens register themselves; other kinds need identity_admin"))
    async def CreatePrincipal(  # noqa: N802
        self, request: identity_pb2.CreatePrincipalRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.CreatePrincipalResponse:
        new = new_principal(request.principal)
        created = await _answer(
            self.service.create_principal(new, request.password, request.request_id, _actor())
        )
        return identity_pb2.CreatePrincipalResponse(principal=principal_pb(created))

    @permission(Authenticated())  # itself, or any as identity_admin: the service says
    async def GetPrincipal(  # noqa: N802
        self, request: identity_pb2.GetPrincipalRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.GetPrincipalResponse:
        found = await _answer(self.service.get_principal(request.id, _actor()))
        return identity_pb2.GetPrincipalResponse(principal=principal_pb(found))

    @permission(ADMIN)
    async def ListPrincipals(  # noqa: N802
        self, request: identity_pb2.ListPrincipalsRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.ListPrincipalsResponse:
        where = principal_filter(request)
        page = await _answer(
            self.service.list_principals(
                where, page_size(request.page), request.page.page_token, _actor()
            )
        )
        return identity_pb2.ListPrincipalsResponse(
            principals=[principal_pb(item) for item in page.items],
            page=common_pb2.PageResponse(next_page_token=page.next_page_token or ""),
        )

    @permission(Authenticated())  # itself, or any as identity_admin: the service says
    async def UpdatePrincipal(  # noqa: N802
        self, request: identity_pb2.UpdatePrincipalRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.UpdatePrincipalResponse:
        given = request.principal
        values = profile_values(request)
        updated = await _answer(self.service.update_principal(given.id, values, _actor()))
        return identity_pb2.UpdatePrincipalResponse(principal=principal_pb(updated))

    @permission(ADMIN)
    async def DisablePrincipal(  # noqa: N802
        self, request: identity_pb2.DisablePrincipalRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.DisablePrincipalResponse:
        updated = await _answer(self.service.set_state(request.id, False, request.reason, _actor()))
        return identity_pb2.DisablePrincipalResponse(principal=principal_pb(updated))

    @permission(ADMIN)
    async def EnablePrincipal(  # noqa: N802
        self, request: identity_pb2.EnablePrincipalRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.EnablePrincipalResponse:
        updated = await _answer(self.service.set_state(request.id, True, request.reason, _actor()))
        return identity_pb2.EnablePrincipalResponse(principal=principal_pb(updated))

    @permission(Authenticated())  # its own (with the current one), or any as identity_admin
    async def SetPassword(  # noqa: N802
        self, request: identity_pb2.SetPasswordRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.SetPasswordResponse:
        await _answer(
            self.service.set_password(
                request.id,
                request.current_password,
                request.new_password,
                _actor(),
                self._source(context),
            )
        )
        return identity_pb2.SetPasswordResponse()

    @permission(Authenticated())  # principals enrol themselves
    async def EnrollTotp(  # noqa: N802
        self, request: identity_pb2.EnrollTotpRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.EnrollTotpResponse:
        secret, uri, expires = await _answer(self.service.enroll_totp(request.id, _actor()))
        return identity_pb2.EnrollTotpResponse(
            secret=secret, provisioning_uri=uri, expire_time=ts(expires)
        )

    @permission(Authenticated())
    async def ConfirmTotp(  # noqa: N802
        self, request: identity_pb2.ConfirmTotpRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.ConfirmTotpResponse:
        updated = await _answer(self.service.confirm_totp(request.id, request.totp_code, _actor()))
        return identity_pb2.ConfirmTotpResponse(principal=principal_pb(updated))

    @permission(ADMIN)
    async def AssignRole(  # noqa: N802
        self, request: identity_pb2.AssignRoleRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.AssignRoleResponse:
        updated = await _answer(
            self.service.change_role(request.id, role_binding(request), True, _actor())
        )
        return identity_pb2.AssignRoleResponse(principal=principal_pb(updated))

    @permission(ADMIN)
    async def RevokeRole(  # noqa: N802
        self, request: identity_pb2.RevokeRoleRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.RevokeRoleResponse:
        updated = await _answer(
            self.service.change_role(request.id, role_binding(request), False, _actor())
        )
        return identity_pb2.RevokeRoleResponse(principal=principal_pb(updated))

    @permission(ADMIN)
    async def ListAuditEvents(  # noqa: N802
        self, request: identity_pb2.ListAuditEventsRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.ListAuditEventsResponse:
        where = audit_filter(request)
        page = await _answer(
            self.service.audit(where, page_size(request.page), request.page.page_token, _actor())
        )
        return identity_pb2.ListAuditEventsResponse(
            events=[event_pb(event) for event in page.items],
            page=common_pb2.PageResponse(next_page_token=page.next_page_token or ""),
        )


def servicer(
    service: IdentityService, trusted_proxies: frozenset[str] = frozenset()
) -> Registration:
    """The identity API as a registration for a :class:`GrpcServer`."""
    return (
        identity_pb2_grpc.add_IdentityServiceServicer_to_server,
        IdentityServicer(service, trusted_proxies),
    )
