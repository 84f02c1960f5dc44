"""The runtime's auth interceptor on a real grpc.aio server: declared permissions enforced,
every bad token refused with UNAUTHENTICATED and a reason, the caller handed to the servicer,
and a stream ended when its token expires or is revoked.

The servicer under test implements the monitoring API with a different declaration on each
method, so that every kind of permission is exercised through real calls."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import eventually
from token_support import Signer

from smartcity.common.v1 import common_pb2
from smartcity.monitoring.v1 import monitoring_pb2, monitoring_pb2_grpc
from smartcity.runtime.auth import (
    Authenticated,
    AuthInterceptor,
    Public,
    Requires,
    UndeclaredPermission,
    permission,
    permission_table,
    principal,
)
from smartcity.runtime.config import GrpcSettings
from smartcity.runtime.grpc_client import channel
from smartcity.runtime.grpc_server import GrpcServer
from smartcity.runtime.tokens import PrincipalKind, RevocationList, Role, TokenVerifier
from smartcity.runtime.trust import LocalAuthenticator

SERVICE = monitoring_pb2.DESCRIPTOR.services_by_name["MonitoringService"].full_name
LATEST = monitoring_pb2.GetLatestRequest()


class Declared(monitoring_pb2_grpc.MonitoringServiceServicer):
    """Answers with who called; each method declares another kind of permission."""

    def __init__(self) -> None:
        self.streaming = asyncio.Event()

    @permission(Public("the test's open door"))
    async def GetLatest(self, request: Any, context: Any) -> Any:  # noqa: N802
        caller = principal()
        token = common_pb2.PageResponse(next_page_token=caller.sub if caller else "anonymous")
        return monitoring_pb2.GetLatestResponse(page=token)

    @permission(Requires(Role.VIEWER, field=lambda request: request.selector.field or "*"))
    async def QueryRange(self, request: Any, context: Any) -> Any:  # noqa: N802
        return monitoring_pb2.QueryRangeResponse()

    @permission(Requires(Role.VIEWER, field=lambda request: request.selector.field or None))
    async def StreamReadings(self, request: Any, context: Any) -> AsyncIterator[Any]:  # noqa: N802
        yield monitoring_pb2.StreamReadingsResponse()
        self.streaming.set()
        await asyncio.Event().wait()  # idle: only the interceptor can end it
        yield monitoring_pb2.StreamReadingsResponse()

    @permission(Authenticated(min_assurance=2))
    async def ListDevices(self, request: Any, context: Any) -> Any:  # noqa: N802
        return monitoring_pb2.ListDevicesResponse()

    @permission(Authenticated(strong_within=300))
    async def GetDevice(self, request: Any, context: Any) -> Any:  # noqa: N802
        return monitoring_pb2.GetDeviceResponse()

    @permission(Authenticated(kinds=frozenset({PrincipalKind.SERVICE})))
    async def GetFieldSummary(self, request: Any, context: Any) -> Any:  # noqa: N802
        return monitoring_pb2.GetFieldSummaryResponse()

    @permission(Requires(Role.IDENTITY_ADMIN, field="*"))
    async def ListFields(self, request: Any, context: Any) -> Any:  # noqa: N802
        return monitoring_pb2.ListFieldsResponse()


@pytest.fixture
def signer() -> Signer:
    return Signer()


@pytest.fixture
def revoked() -> RevocationList:
    return RevocationList()


@pytest.fixture
def servicer() -> Declared:
    return Declared()


@pytest.fixture
async def server(
    signer: Signer, revoked: RevocationList, servicer: Declared
) -> AsyncIterator[GrpcServer]:
    verifier = TokenVerifier(signer.key_set(), is_revoked=revoked)
    registrations = [(monitoring_pb2_grpc.add_MonitoringServiceServicer_to_server, servicer)]
    async with GrpcServer(
        GrpcSettings(port=0),
        registrations,
        service_names=[SERVICE],
        auth=AuthInterceptor.for_servicers(registrations, LocalAuthenticator(verifier)),
    ) as started:
        yield started


async def call(server: GrpcServer, method: str, request: Any, token: str | None = None) -> Any:
    """The response, or the status code and details of the refusal."""
    async with channel(server.address, token=token) as connection:
        stub = monitoring_pb2_grpc.MonitoringServiceStub(connection)
        try:
            return await getattr(stub, method)(request)
        except grpc.aio.AioRpcError as error:
            return error.code(), error.details()


def test_an_undeclared_method_is_refused_when_the_server_is_built() -> None:
    class Forgetful(Declared):
        async def ListFields(self, request: Any, context: Any) -> Any:  # noqa: N802
            return monitoring_pb2.ListFieldsResponse()

    registration = (monitoring_pb2_grpc.add_MonitoringServiceServicer_to_server, Forgetful())
    with pytest.raises(UndeclaredPermission, match=rf"{SERVICE}\.ListFields"):
        permission_table([registration])
    table = permission_table(
        [(monitoring_pb2_grpc.add_MonitoringServiceServicer_to_server, Declared())]
    )
    assert len(table) == len(
        monitoring_pb2.DESCRIPTOR.services_by_name["MonitoringService"].methods
    )


async def test_public_calls_need_no_token_but_see_the_caller_when_given(
    server: GrpcServer, signer: Signer
) -> None:
    anonymous = await call(server, "GetLatest", LATEST)
    assert anonymous.page.next_page_token == "anonymous"
    known = await call(server, "GetLatest", LATEST, signer.sign(sub="staff-9"))
    assert known.page.next_page_token == "staff-9"
    code, details = await call(server, "GetLatest", LATEST, signer.sign(exp=int(time.time()) - 99))
    assert (code, details) == (grpc.StatusCode.UNAUTHENTICATED, "token expired")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}."


def _bad_tokens(signer: Signer) -> dict[str, tuple[str, str]]:
    public_pem = signer.public_pem()
    now = int(time.time())
    return {
        "malformed": ("not-a-jwt", "malformed token"),
        "unknown kid": (Signer(kid="elsewhere").sign(), "unknown key id 'elsewhere'"),
        "alg none": (
            _unsigned({"alg": "none", "kid": signer.kid}, signer.claims()),
            "algorithm 'none' not accepted",
        ),
        "HS256 with the public key as secret": (
            _unsigned({"alg": "HS256", "kid": signer.kid}, signer.claims()) + _b64(public_pem[:32]),
            "algorithm 'HS256' not accepted",
        ),
        "wrong audience": (signer.sign(aud=["records"]), "wrong audience"),
        "wrong issuer": (signer.sign(iss="evil"), "wrong issuer"),
        "expired": (signer.sign(exp=now - 3600), "token expired"),
        "not yet valid": (signer.sign(iat=now + 3600), "not yet valid"),
        "oversized": ("x" * 17_000, "token too large"),
        "forged signature": (
            jwt.encode(signer.claims(), Signer().key, algorithm="EdDSA", headers={"kid": "key-1"}),
            "signature invalid",
        ),
    }


async def test_every_bad_token_is_unauthenticated_with_its_reason(
    server: GrpcServer, signer: Signer
) -> None:
    request = monitoring_pb2.QueryRangeRequest(selector=common_pb2.SeriesSelector(field="x"))
    for name, (token, reason) in _bad_tokens(signer).items():
        code, details = await call(server, "QueryRange", request, token)
        assert code == grpc.StatusCode.UNAUTHENTICATED, name
        assert reason in details, (name, details)
    code, details = await call(server, "QueryRange", request)
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert "no access token" in details


async def test_a_wrong_authorization_scheme_is_refused(server: GrpcServer, signer: Signer) -> None:
    async with grpc.aio.insecure_channel(server.address) as connection:
        stub = monitoring_pb2_grpc.MonitoringServiceStub(connection)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ListDevices(
                monitoring_pb2.ListDevicesRequest(),
                metadata=(("authorization", f"Basic {signer.sign()}"),),
            )
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "Bearer <token>" in (caught.value.details() or "")


async def test_roles_fields_assurance_step_up_and_kinds(server: GrpcServer, signer: Signer) -> None:
    water = monitoring_pb2.QueryRangeRequest(selector=common_pb2.SeriesSelector(field="water"))
    everything = monitoring_pb2.QueryRangeRequest()
    viewer = signer.sign(roles=["viewer:water"])
    assert not isinstance(await call(server, "QueryRange", water, viewer), tuple)
    code, details = await call(server, "QueryRange", everything, viewer)
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert (
        details == "p-operator-1 lacks the viewer role on every field ('*') (it holds it on: water)"
    )
    city = signer.sign(roles=["engineer:*"])  # a role above viewer, on every field
    assert not isinstance(await call(server, "QueryRange", everything, city), tuple)

    devices = monitoring_pb2.ListDevicesRequest()
    assert not isinstance(await call(server, "ListDevices", devices, signer.sign()), tuple)
    code, details = await call(server, "ListDevices", devices, signer.sign(acr="vneid:1"))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert "needs eID level 2" in details
    assert "carries level 1" in details

    device = monitoring_pb2.GetDeviceRequest()
    now = int(time.time())
    fresh = signer.sign(amr=["pwd", "otp"], auth_time=now - 10)
    stale = signer.sign(amr=["pwd", "otp"], auth_time=now - 3600)
    no_otp = signer.sign(amr=["pwd"], auth_time=now)
    assert not isinstance(await call(server, "GetDevice", device, fresh), tuple)
    for token in (stale, no_otp):
        code, details = await call(server, "GetDevice", device, token)
        assert code == grpc.StatusCode.PERMISSION_DENIED
        assert "second factor" in details

    summary = monitoring_pb2.GetFieldSummaryRequest()
    code, details = await call(server, "GetFieldSummary", summary, signer.sign())
    assert (code, details) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "only service principals may call this",
    )
    assert not isinstance(
        await call(server, "GetFieldSummary", summary, signer.sign(kind="service")), tuple
    )

    fields = monitoring_pb2.ListFieldsRequest()
    code, _ = await call(server, "ListFields", fields, signer.sign(roles=["identity_admin:water"]))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    admin = signer.sign(roles=["identity_admin:*"])
    assert not isinstance(await call(server, "ListFields", fields, admin), tuple)


async def _open_stream(
    server: GrpcServer, servicer: Declared, token: str
) -> tuple[grpc.aio.Channel, Any]:
    connection = grpc.aio.insecure_channel(server.address)
    stub = monitoring_pb2_grpc.MonitoringServiceStub(connection)
    stream = stub.StreamReadings(
        monitoring_pb2.StreamReadingsRequest(), metadata=(("authorization", f"Bearer {token}"),)
    )
    await asyncio.wait_for(stream.read(), 10)
    await asyncio.wait_for(servicer.streaming.wait(), 10)
    return connection, stream


async def test_an_idle_stream_ends_when_its_token_is_revoked(
    server: GrpcServer, servicer: Declared, signer: Signer, revoked: RevocationList
) -> None:
    token = signer.sign(roles=["viewer:water"], jti="leaked")
    connection, stream = await _open_stream(server, servicer, token)
    try:
        revoked.revoke("leaked", until=time.time() + 900)
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await asyncio.wait_for(stream.read(), 10)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert caught.value.details() == "token revoked during the stream"
        assert time.monotonic() - started < 2.5
    finally:
        await connection.close()


async def test_an_idle_stream_ends_when_its_token_expires(
    server: GrpcServer, servicer: Declared, signer: Signer
) -> None:
    token = signer.sign(roles=["viewer:water"], exp=int(time.time()) + 2)
    connection, stream = await _open_stream(server, servicer, token)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await asyncio.wait_for(stream.read(), 10)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "token expired during the stream" in (caught.value.details() or "")
    finally:
        await connection.close()


async def test_a_stream_cancelled_by_its_client_frees_its_watch(
    server: GrpcServer, servicer: Declared, signer: Signer
) -> None:
    connection, stream = await _open_stream(server, servicer, signer.sign(roles=["viewer:a"]))
    before = len(asyncio.all_tasks())
    stream.cancel()
    await connection.close()
    await eventually(lambda: len(asyncio.all_tasks()) < before, what="the watch task to end")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=st.binary(max_size=300) | st.text(max_size=300))
async def test_arbitrary_authorization_metadata_gets_a_verdict(
    server: GrpcServer, value: bytes | str
) -> None:
    """Whatever a client puts in the header, the answer is a refusal with a reason (or, on a
    public method, the answer), never an internal error."""
    if isinstance(value, str):
        try:
            value.encode("ascii")
        except UnicodeEncodeError:
            return  # gRPC itself refuses non-ASCII text metadata on the client side
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
            return
    key = "authorization-bin" if isinstance(value, bytes) else "authorization"
    async with grpc.aio.insecure_channel(server.address) as connection:
        stub = monitoring_pb2_grpc.MonitoringServiceStub(connection)
        for method, request in (
            ("QueryRange", monitoring_pb2.QueryRangeRequest()),
            ("GetLatest", LATEST),
        ):
            try:
                await getattr(stub, method)(request, metadata=((key, value),))
            except grpc.aio.AioRpcError as error:
                refusal = error
            else:
                assert method == "GetLatest"
                continue
            assert refusal.code() == grpc.StatusCode.UNAUTHENTICATED, (method, refusal.details())
            assert refusal.details()
