"""Keys and revocations from the IDENTITY stream on a real nats-server: what identity
announces is what every service trusts, within a second, and whatever else arrives on those
subjects changes nothing.

The announcements are published as identity publishes them (``IdentityEvent`` protobuf on
``city.identity.<event>``); the monitoring service at the end is the real one, run by
``run_service`` with ``auth.mode: identity``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import grpc.aio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import eventually
from token_support import Signer

from smartcity.identity.v1 import identity_pb2
from smartcity.monitoring.v1 import monitoring_pb2, monitoring_pb2_grpc
from smartcity.runtime import subjects
from smartcity.runtime.bus import IDENTITY_STREAM, Bus
from smartcity.runtime.config import NatsSettings, Settings
from smartcity.runtime.grpc_client import channel
from smartcity.runtime.nats_server import EmbeddedNats
from smartcity.runtime.service import Running, run_service
from smartcity.runtime.tokens import AuthMode, AuthSettings, TokenError, UnknownKeyError
from smartcity.runtime.trust import IdentityFeed
from smartcity.services.monitoring.app import MONITORING

KEYS = subjects.identity_subject("keys_rotated")
REVOKED = subjects.identity_subject("token_revoked")
DISABLED = subjects.identity_subject("principal_disabled")


@pytest.fixture
async def identity_bus(bus: Bus, nats_settings: NatsSettings) -> Bus:
    await bus.ensure_streams(nats_settings.streams)
    return bus


async def announce_keys(bus: Bus, *signers: Signer) -> None:
    jwks = {"keys": [signer.jwk() for signer in signers]}
    event = identity_pb2.IdentityEvent(
        type=identity_pb2.IdentityEvent.TYPE_KEYS_ROTATED, jwks=json.dumps(jwks)
    )
    await bus.jetstream_publish(KEYS, event.SerializeToString(), stream=IDENTITY_STREAM)


async def announce_revocation(bus: Bus, jti: str, *, until: float | None = None) -> None:
    event = identity_pb2.IdentityEvent(
        type=identity_pb2.IdentityEvent.TYPE_TOKEN_REVOKED, token_id=jti
    )
    event.token_expire_time.FromSeconds(int(until or time.time() + 900))
    event.event_time.GetCurrentTime()
    await bus.jetstream_publish(REVOKED, event.SerializeToString(), stream=IDENTITY_STREAM)


@contextlib.asynccontextmanager
async def feed_on(bus: Bus, wait: float = 5.0) -> AsyncIterator[IdentityFeed]:
    feed = IdentityFeed(bus, AuthSettings(mode=AuthMode.IDENTITY))
    await feed.start(wait=wait)
    try:
        yield feed
    finally:
        await feed.stop()


async def test_the_last_announced_key_set_is_trusted_and_rotation_follows(
    identity_bus: Bus,
) -> None:
    old, new = Signer(kid="k-old"), Signer(kid="k-new")
    await announce_keys(identity_bus, Signer(kid="k-retired"))
    await announce_keys(identity_bus, old)
    async with feed_on(identity_bus) as feed:
        assert feed.problem is None
        assert (await feed.authenticate(old.sign(sub="s-1"))).sub == "s-1"
        with pytest.raises(UnknownKeyError):
            await feed.authenticate(Signer(kid="k-retired").sign())
        await announce_keys(identity_bus, old, new)
        await eventually(lambda: "k-new" in feed.verifier.keys, what="the rotated key set")
        assert (await feed.authenticate(new.sign(sub="s-2"))).sub == "s-2"
        assert (await feed.authenticate(old.sign(sub="s-3"))).sub == "s-3"


async def test_a_service_started_before_identity_refuses_tokens_and_says_why(
    identity_bus: Bus,
) -> None:
    async with feed_on(identity_bus, wait=0.1) as feed:
        assert "no key set from identity yet" in (feed.problem or "")
        signer = Signer()
        with pytest.raises(TokenError, match="no key set from identity yet"):
            await feed.authenticate(signer.sign())
        await announce_keys(identity_bus, signer)
        await eventually(lambda: feed.problem is None, what="the key set to arrive")
        assert (await feed.authenticate(signer.sign())).kind.value == "staff"


async def test_revocations_arrive_within_a_second_and_are_replayed_at_start(
    identity_bus: Bus,
) -> None:
    signer = Signer()
    await announce_keys(identity_bus, signer)
    await announce_revocation(identity_bus, "leaked-before-start")
    async with feed_on(identity_bus) as feed:
        early = signer.sign(jti="leaked-before-start")
        await eventually(lambda: len(feed.revocations) == 1, what="the replayed revocation")
        with pytest.raises(TokenError, match="token revoked"):
            await feed.authenticate(early)
        token = signer.sign(jti="leaked-now")
        claims = await feed.authenticate(token)
        started = time.monotonic()
        await announce_revocation(identity_bus, "leaked-now")
        await eventually(lambda: feed.is_revoked(claims), within=1.0, what="the revocation")
        assert time.monotonic() - started < 1.0
        # Already expired: nothing to remember.
        await announce_revocation(identity_bus, "old", until=time.time() - 5)
        await announce_revocation(identity_bus, "marker")
        await eventually(lambda: len(feed.revocations) == 3, what="the marker")


async def test_a_disabled_principal_loses_the_tokens_it_held(identity_bus: Bus) -> None:
    signer = Signer()
    await announce_keys(identity_bus, signer)
    async with feed_on(identity_bus) as feed:
        held = await feed.authenticate(signer.sign(sub="p-9", iat=int(time.time()) - 5))
        event = identity_pb2.IdentityEvent(
            type=identity_pb2.IdentityEvent.TYPE_PRINCIPAL_DISABLED, token_id="*"
        )
        event.principal.id = "p-9"
        event.event_time.GetCurrentTime()
        event.token_expire_time.FromSeconds(int(time.time()) + 3600)
        await identity_bus.jetstream_publish(
            DISABLED, event.SerializeToString(), stream=IDENTITY_STREAM
        )
        await eventually(lambda: feed.is_revoked(held), what="the principal's revocation")
        other = await feed.authenticate(signer.sign(sub="p-10", iat=int(time.time()) - 5))
        assert not feed.is_revoked(other)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    subject=st.sampled_from([KEYS, REVOKED, DISABLED]),
    payload=st.binary(max_size=200)
    | st.builds(
        lambda jwks, token, sub: identity_pb2.IdentityEvent(
            jwks=jwks, token_id=token, principal={"id": sub}
        ).SerializeToString(),
        st.text(max_size=80),
        st.text(max_size=20),
        st.text(max_size=20),
    ),
)
async def test_whatever_arrives_on_the_identity_subjects_changes_nothing_it_should_not(
    identity_bus: Bus, subject: str, payload: bytes
) -> None:
    signer = Signer(kid="steady")
    await announce_keys(identity_bus, signer)
    async with feed_on(identity_bus) as feed:
        await identity_bus.jetstream_publish(subject, payload, stream=IDENTITY_STREAM)
        await announce_keys(identity_bus, signer)  # a marker after the payload
        token = signer.sign(jti="steady-token", sub="steady-sub")
        await eventually(lambda: feed.problem is None)
        assert (await feed.authenticate(token)).sub == "steady-sub"
        assert set(feed.verifier.keys) == {"steady"}


# -- a real service ----------------------------------------------------------------------------


async def test_revocation_reaches_a_running_monitoring_service_within_a_second(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    signer = Signer()
    nats = nats_server.client_settings()
    async with await Bus.connect(nats, name="identity-stand-in") as identity:
        await identity.ensure_streams(nats.streams)
        await announce_keys(identity, signer)
        settings = Settings(
            nats=nats,
            data_dir=tmp_path,
            auth=AuthSettings(mode=AuthMode.IDENTITY),
        )
        ready: asyncio.Future[Running] = asyncio.get_running_loop().create_future()
        stop = asyncio.Event()
        service = asyncio.create_task(
            run_service(MONITORING, settings, stop, on_ready=ready.set_result)
        )
        try:
            running = await asyncio.wait_for(ready, 30)
            token = signer.sign(roles=["viewer:*"], jti="operator-laptop")
            request = monitoring_pb2.ListFieldsRequest()
            async with channel(running.grpc_address, token=token) as connection:
                stub = monitoring_pb2_grpc.MonitoringServiceStub(connection)
                assert (await stub.ListFields(request)).fields
                started = time.monotonic()
                await announce_revocation(identity, "operator-laptop")

                async def refused() -> bool:
                    try:
                        await stub.ListFields(request)
                    except grpc.aio.AioRpcError as error:
                        return error.code() == grpc.StatusCode.UNAUTHENTICATED
                    return False

                while not await refused():
                    assert time.monotonic() - started < 1.0, "still accepted after a second"
                    await asyncio.sleep(0.02)
        finally:
            stop.set()
            await asyncio.wait_for(service, 30)
