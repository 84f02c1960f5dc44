"""Write commands in ``auth.mode: identity``: the agent verifies senders with the key set
identity announces on the IDENTITY stream and refuses a token once identity revokes it, on a
real nats-server. The device is never reached in these cases (the point does not exist, or
the sender is refused first), so none is needed."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from token_support import Signer

from smartcity.agents.commands import CommandService
from smartcity.agents.profile import ModbusDevice, parse_profile
from smartcity.identity.v1 import identity_pb2
from smartcity.runtime import subjects
from smartcity.runtime.bus import IDENTITY_STREAM, Bus
from smartcity.runtime.config import NatsSettings
from smartcity.runtime.tokens import AuthMode, AuthSettings
from smartcity.runtime.trust import IdentityFeed
from smartcity.telemetry.v1.telemetry_pb2 import WriteCommand, WriteCommandReply

SITE, DEVICE, FIELD = "hoa-khanh-110kv", "bay-1", "electricity"
PROFILE = {
    "site": SITE,
    "field": FIELD,
    "device": DEVICE,
    "protocol": "modbus",
    "endpoint": "tcp://127.0.0.1:1",
    "unit_id": 1,
    "poll_interval": "1s",
    "points": [{"name": "voltage_an", "unit": "kV", "address": 0, "type": "float32"}],
}


@pytest.fixture
async def commands(
    bus: Bus, nats_settings: NatsSettings
) -> AsyncIterator[tuple[CommandService, Signer, Bus]]:
    await bus.ensure_streams(nats_settings.streams)
    signer = Signer()
    event = identity_pb2.IdentityEvent(
        type=identity_pb2.IdentityEvent.TYPE_KEYS_ROTATED,
        jwks=json.dumps({"keys": [signer.jwk()]}),
    )
    await bus.jetstream_publish(
        subjects.identity_subject("keys_rotated"), event.SerializeToString(), stream=IDENTITY_STREAM
    )
    feed = IdentityFeed(bus, AuthSettings(mode=AuthMode.IDENTITY))
    await feed.start()
    profile = parse_profile(PROFILE)
    assert isinstance(profile, ModbusDevice)
    service = CommandService(
        bus, site=SITE, agent_id="a1", devices={DEVICE: (profile, None)}, authenticator=feed
    )  # type: ignore[dict-item]  (the driver is never reached)
    await service.start()
    try:
        yield service, signer, bus
    finally:
        await service.stop()
        await feed.stop()


async def send(bus: Bus, token: str) -> WriteCommandReply:
    command = WriteCommand(
        command_id=uuid.uuid4().hex,
        site=SITE,
        device=DEVICE,
        field=FIELD,
        point="no_such_point",
        value=1,
        reason="commissioning",
        token=token,
    )
    reply = await bus.request(
        subjects.command_subject(SITE, DEVICE), command.SerializeToString(), timeout=10
    )
    return WriteCommandReply.FromString(reply.data)


async def test_identity_keys_admit_a_sender_and_its_revocation_refuses_it(commands) -> None:
    _service, signer, bus = commands
    token = signer.sign(roles=[f"operator:{FIELD}"], jti="field-laptop")
    reply = await send(bus, token)
    assert reply.error.reason == "UNKNOWN_POINT"  # past the checks

    viewer = await send(bus, signer.sign(roles=[f"viewer:{FIELD}"]))
    assert viewer.error.reason == "PERMISSION_DENIED"

    revoked = identity_pb2.IdentityEvent(
        type=identity_pb2.IdentityEvent.TYPE_TOKEN_REVOKED, token_id="field-laptop"
    )
    revoked.token_expire_time.FromSeconds(int(time.time()) + 900)
    await bus.jetstream_publish(
        subjects.identity_subject("token_revoked"),
        revoked.SerializeToString(),
        stream=IDENTITY_STREAM,
    )
    deadline = time.monotonic() + 5
    while True:
        reply = await send(bus, token)
        if reply.error.reason == "UNAUTHENTICATED":
            break
        assert time.monotonic() < deadline, "the revocation never reached the agent"
    assert "token revoked" in reply.error.description
