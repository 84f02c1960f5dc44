"""The identity process end to end, as ``smartcity serve identity`` runs it: a real
nats-server, the SQLite store, gRPC through a real channel, the key set over HTTP read by an
independent JOSE library (joserfc, not PyJWT), and a running monitoring service that learns of
a logout over NATS."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import grpc.aio
import pyotp
import pytest
from identity_support import (
    PASSWORD,
    add_staff,
    bearer,
    clock_now,
    identity_settings,
    opened,
    running_identity,
    running_service,
)
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet as JoseKeySet
from nats.aio.msg import Msg
from support import eventually

from smartcity.common.v1 import common_pb2
from smartcity.identity.v1 import identity_pb2, identity_pb2_grpc
from smartcity.monitoring.v1 import monitoring_pb2, monitoring_pb2_grpc
from smartcity.runtime.bus import Bus
from smartcity.runtime.config import Settings
from smartcity.runtime.nats_server import EmbeddedNats
from smartcity.runtime.service import Running
from smartcity.runtime.tokens import AuthMode, AuthSettings, KeySet, TokenVerifier
from smartcity.services.monitoring.app import MONITORING

CITIZEN = identity_pb2.Principal(
    kind=common_pb2.PRINCIPAL_KIND_CITIZEN, username="tran.thi.b", personal_id="048090004321"
)


@pytest.fixture
def settings(nats_server: EmbeddedNats, tmp_path: Path) -> Settings:
    return Settings(
        nats=nats_server.client_settings(),
        data_dir=tmp_path,
        identity=identity_settings(f"sqlite:///{tmp_path / 'identity.db'}"),
    )


@pytest.fixture
async def admin_id(settings: Settings) -> str:
    """The first administrator, made on the store before the service starts (as
    ``smartcity users add`` does)."""
    async with opened(settings, clock_now()) as service:
        return await add_staff(service, "ioc.admin", "identity_admin:*")


class Events:
    """Identity events as they arrive on the bus."""

    def __init__(self) -> None:
        self.received: list[tuple[str, identity_pb2.IdentityEvent]] = []

    async def __call__(self, msg: Msg) -> None:
        self.received.append((msg.subject, identity_pb2.IdentityEvent.FromString(msg.data)))

    def of(self, subject: str) -> list[identity_pb2.IdentityEvent]:
        return [event for got, event in self.received if got == subject]


@pytest.fixture
async def events(bus: Bus) -> AsyncIterator[Events]:
    collected = Events()
    subscription = await bus.subscribe("city.identity.>", cb=collected)
    yield collected
    await subscription.unsubscribe()


@pytest.fixture
async def identity(settings: Settings, admin_id: str, events: Events) -> AsyncIterator[Running]:
    async with running_identity(settings) as running:
        yield running


@pytest.fixture
async def stub(identity: Running) -> AsyncIterator[identity_pb2_grpc.IdentityServiceStub]:
    async with grpc.aio.insecure_channel(identity.grpc_address) as channel:
        yield identity_pb2_grpc.IdentityServiceStub(channel)


async def login(
    stub: identity_pb2_grpc.IdentityServiceStub, username: str
) -> identity_pb2.TokenSet:
    response = await stub.Login(identity_pb2.LoginRequest(username=username, password=PASSWORD))
    return response.tokens


async def code_of(call: object) -> grpc.StatusCode:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def fetch_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.headers["Content-Type"].startswith("application/json")
        return json.loads(response.read())


async def test_register_login_and_a_reused_refresh_token_revoke_the_session(
    stub: identity_pb2_grpc.IdentityServiceStub, events: Events
) -> None:
    created = await stub.CreatePrincipal(
        identity_pb2.CreatePrincipalRequest(principal=CITIZEN, password=PASSWORD)
    )
    first = await login(stub, "tran.thi.b")
    me = identity_pb2.GetPrincipalRequest(id=created.principal.id)
    got = await stub.GetPrincipal(me, metadata=bearer(first.access_token))
    assert got.principal.personal_id == "048090004321"
    assert await code_of(stub.GetPrincipal(me)) == grpc.StatusCode.UNAUTHENTICATED

    second = (
        await stub.RefreshToken(identity_pb2.RefreshTokenRequest(refresh_token=first.refresh_token))
    ).tokens
    assert (
        await code_of(
            stub.RefreshToken(identity_pb2.RefreshTokenRequest(refresh_token=first.refresh_token))
        )
        == grpc.StatusCode.UNAUTHENTICATED
    )
    for tokens in (first, second):
        assert (
            await code_of(stub.GetPrincipal(me, metadata=bearer(tokens.access_token)))
            == grpc.StatusCode.UNAUTHENTICATED
        )
    introspected = await stub.Introspect(identity_pb2.IntrospectRequest(token=second.access_token))
    assert not introspected.active
    assert "revoked" in introspected.reason

    def revoked() -> set[str]:
        return {event.token_id for event in events.of("city.identity.token_revoked")}

    await eventually(lambda: len(revoked()) == 2, within=5, what="two token_revoked events")
    for event in events.of("city.identity.token_revoked"):
        assert event.principal.id == created.principal.id
        assert event.token_expire_time.seconds > event.event_time.seconds
    assert events.of("city.identity.principal_created")
    assert events.of("city.identity.login_succeeded")


async def test_totp_login_and_lockout_over_grpc(
    stub: identity_pb2_grpc.IdentityServiceStub, events: Events
) -> None:
    admin = (await login(stub, "ioc.admin")).access_token
    staff = identity_pb2.Principal(kind=common_pb2.PRINCIPAL_KIND_STAFF, username="engineer.e")
    created = await stub.CreatePrincipal(
        identity_pb2.CreatePrincipalRequest(principal=staff, password=PASSWORD),
        metadata=bearer(admin),
    )
    staff_id = created.principal.id
    await stub.AssignRole(
        identity_pb2.AssignRoleRequest(
            id=staff_id, role_binding=identity_pb2.RoleBinding(role="engineer", field="electricity")
        ),
        metadata=bearer(admin),
    )
    own = (await login(stub, "engineer.e")).access_token
    enrolled = await stub.EnrollTotp(
        identity_pb2.EnrollTotpRequest(id=staff_id), metadata=bearer(own)
    )
    totp = pyotp.TOTP(enrolled.secret)
    confirmed_at = time.time()
    confirmed = await stub.ConfirmTotp(
        identity_pb2.ConfirmTotpRequest(id=staff_id, totp_code=totp.at(confirmed_at)),
        metadata=bearer(own),
    )
    assert confirmed.principal.totp_enabled

    challenge = await stub.Login(
        identity_pb2.LoginRequest(username="engineer.e", password=PASSWORD)
    )
    assert challenge.WhichOneof("result") == "totp_challenge"
    # The step after the confirmed one (that one is spent): still within the one step of drift
    # the service allows, however the clock has moved since.
    code = totp.at(confirmed_at + 30)
    verified = await stub.VerifyTotp(
        identity_pb2.VerifyTotpRequest(
            challenge_id=challenge.totp_challenge.challenge_id, totp_code=code
        )
    )
    assert verified.tokens.principal.id == staff_id
    granted = await stub.Introspect(
        identity_pb2.IntrospectRequest(token=verified.tokens.access_token)
    )
    assert granted.active
    assert [(b.role, b.field) for b in granted.role_bindings] == [("engineer", "electricity")]

    wrong = identity_pb2.LoginRequest(username="engineer.e", password="not the password")
    for _ in range(5):
        assert await code_of(stub.Login(wrong)) == grpc.StatusCode.UNAUTHENTICATED
    assert (
        await code_of(
            stub.Login(identity_pb2.LoginRequest(username="engineer.e", password=PASSWORD))
        )
        == grpc.StatusCode.RESOURCE_EXHAUSTED
    )
    await eventually(lambda: bool(events.of("city.identity.locked_out")), within=5)
    audit = await stub.ListAuditEvents(
        identity_pb2.ListAuditEventsRequest(
            principal_id=staff_id, types=[identity_pb2.IdentityEvent.TYPE_LOGIN_FAILED]
        ),
        metadata=bearer(admin),
    )
    assert len(audit.events) == 5
    assert all(event.source.startswith("ipv") for event in audit.events)


async def test_disabling_a_principal_ends_its_tokens_everywhere(
    stub: identity_pb2_grpc.IdentityServiceStub, events: Events
) -> None:
    admin = (await login(stub, "ioc.admin")).access_token
    created = await stub.CreatePrincipal(
        identity_pb2.CreatePrincipalRequest(principal=CITIZEN, password=PASSWORD)
    )
    citizen = (await login(stub, "tran.thi.b")).access_token
    me = identity_pb2.GetPrincipalRequest(id=created.principal.id)
    await stub.GetPrincipal(me, metadata=bearer(citizen))
    await stub.DisablePrincipal(
        identity_pb2.DisablePrincipalRequest(id=created.principal.id, reason="reported stolen"),
        metadata=bearer(admin),
    )
    assert await code_of(stub.GetPrincipal(me, metadata=bearer(citizen))) == (
        grpc.StatusCode.UNAUTHENTICATED
    )
    assert (
        await code_of(
            stub.Login(identity_pb2.LoginRequest(username="tran.thi.b", password=PASSWORD))
        )
        == grpc.StatusCode.UNAUTHENTICATED
    )
    await eventually(lambda: bool(events.of("city.identity.token_revoked")), within=5)
    (everything,) = events.of("city.identity.token_revoked")
    assert everything.token_id == "*"
    assert everything.principal.id == created.principal.id
    assert everything.token_expire_time.seconds - everything.event_time.seconds == pytest.approx(
        30 * 24 * 3600, abs=1
    )
    assert events.of("city.identity.principal_disabled")


# joserfc warns that RFC 9864 prefers the algorithm name "Ed25519"; identity.proto names
# "EdDSA", which every JOSE library still accepts.
@pytest.mark.filterwarnings("ignore:EdDSA is deprecated")
async def test_the_http_key_set_verifies_tokens_with_an_independent_library(
    identity: Running, stub: identity_pb2_grpc.IdentityServiceStub, events: Events
) -> None:
    base = identity.details["http"]
    discovery = await asyncio.to_thread(fetch_json, f"{base}/.well-known/openid-configuration")
    assert discovery["issuer"] == "smartcity-identity"
    assert "EdDSA" in discovery["id_token_signing_alg_values_supported"]
    document = await asyncio.to_thread(fetch_json, discovery["jwks_uri"])
    tokens = await login(stub, "ioc.admin")

    decoded = jose_jwt.decode(
        tokens.access_token, JoseKeySet.import_key_set(document), algorithms=["EdDSA"]
    )
    assert decoded.claims["iss"] == "smartcity-identity"
    assert decoded.claims["roles"] == ["identity_admin:*"]
    assert decoded.header["kid"] in {key["kid"] for key in document["keys"]}

    over_grpc = await stub.GetJwks(identity_pb2.GetJwksRequest())
    assert [key.kid for key in over_grpc.keys] == [key["kid"] for key in document["keys"]]
    TokenVerifier(KeySet.from_jwks(document)).verify(tokens.access_token)
    await eventually(lambda: bool(events.of("city.identity.keys_rotated")), within=5)
    announced = json.loads(events.of("city.identity.keys_rotated")[-1].jwks)
    assert announced == document


async def test_a_logout_reaches_a_running_monitoring_service_within_a_second(
    settings: Settings, stub: identity_pb2_grpc.IdentityServiceStub, tmp_path: Path
) -> None:
    admin = (await login(stub, "ioc.admin")).access_token
    staff = identity_pb2.Principal(kind=common_pb2.PRINCIPAL_KIND_STAFF, username="viewer.v")
    created = await stub.CreatePrincipal(
        identity_pb2.CreatePrincipalRequest(principal=staff, password=PASSWORD),
        metadata=bearer(admin),
    )
    await stub.AssignRole(
        identity_pb2.AssignRoleRequest(
            id=created.principal.id, role_binding=identity_pb2.RoleBinding(role="viewer", field="*")
        ),
        metadata=bearer(admin),
    )
    tokens = await login(stub, "viewer.v")
    monitoring = Settings(
        nats=settings.nats,
        data_dir=tmp_path / "monitoring",
        auth=AuthSettings(mode=AuthMode.IDENTITY),
    )
    request = monitoring_pb2.ListFieldsRequest()
    async with (
        running_service(MONITORING, monitoring) as running,
        grpc.aio.insecure_channel(running.grpc_address) as connection,
    ):
        fields = monitoring_pb2_grpc.MonitoringServiceStub(connection)
        assert (await fields.ListFields(request, metadata=bearer(tokens.access_token))).fields
        await stub.Logout(identity_pb2.LogoutRequest(refresh_token=tokens.refresh_token))
        started = time.monotonic()

        async def refused() -> bool:
            code = await code_of(fields.ListFields(request, metadata=bearer(tokens.access_token)))
            return code == grpc.StatusCode.UNAUTHENTICATED

        await eventually(refused, within=5, what="monitoring refusing the logged-out token")
        assert time.monotonic() - started < 1.0


async def test_a_trusted_proxy_names_the_client_that_the_lockout_counts(
    settings: Settings, admin_id: str
) -> None:
    # The console logs everyone in from one address: behind it, one guesser must lock out
    # that guesser only. An untrusted peer's x-forwarded-for is ignored.
    options = settings.identity.model_copy(
        update={"trusted_proxies": ["127.0.0.1", "::1"], "lockout_source_threshold": 3}
    )
    proxied = settings.model_copy(update={"identity": options})
    wrong = identity_pb2.LoginRequest(username="ioc.admin", password="not the password")
    right = identity_pb2.LoginRequest(username="ioc.admin", password=PASSWORD)
    guesser = (("x-forwarded-for", "203.0.113.9, 10.0.0.1"),)
    async with (
        running_identity(proxied) as running,
        grpc.aio.insecure_channel(running.grpc_address) as channel,
    ):
        stub = identity_pb2_grpc.IdentityServiceStub(channel)
        for _ in range(3):
            assert await code_of(stub.Login(wrong, metadata=guesser)) == (
                grpc.StatusCode.UNAUTHENTICATED
            )
        assert await code_of(stub.Login(right, metadata=guesser)) == (
            grpc.StatusCode.RESOURCE_EXHAUSTED
        )
        other = (("x-forwarded-for", "198.51.100.7"),)
        admin = (await stub.Login(right, metadata=other)).tokens.access_token
        assert admin
        audit = await stub.ListAuditEvents(
            identity_pb2.ListAuditEventsRequest(
                types=[identity_pb2.IdentityEvent.TYPE_LOGIN_FAILED]
            ),
            metadata=bearer(admin),
        )
        assert {event.source for event in audit.events} == {"ipv4:203.0.113.9:0"}


async def test_an_untrusted_peer_cannot_name_its_client(
    stub: identity_pb2_grpc.IdentityServiceStub,
) -> None:
    wrong = identity_pb2.LoginRequest(username="ioc.admin", password="not the password")
    await code_of(stub.Login(wrong, metadata=(("x-forwarded-for", "203.0.113.9"),)))
    admin = (await login(stub, "ioc.admin")).access_token
    audit = await stub.ListAuditEvents(
        identity_pb2.ListAuditEventsRequest(types=[identity_pb2.IdentityEvent.TYPE_LOGIN_FAILED]),
        metadata=bearer(admin),
    )
    assert [event.source.startswith("ipv4:127.0.0.1:") for event in audit.events] == [True]
