"""A write command sent right after the agent's command service started finds it.

The service's connection may be busy sending something else at that moment (a window of
telemetry batches): the subscription must still be known to the server when ``start``
returns, or a command from another connection meets "no responders". Asked once each, with no
retry: a single "no responders" fails the test.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from smartcity.agents.commands import CommandService
from smartcity.agents.profile import parse_profile
from smartcity.runtime.bus import Bus
from smartcity.runtime.config import AuthSettings
from smartcity.runtime.nats_server import EmbeddedNats
from smartcity.runtime.subjects import command_subject
from smartcity.runtime.tokens import TokenVerifier
from smartcity.telemetry.v1.telemetry_pb2 import WriteCommand, WriteCommandReply

ROUNDS = 30


def verifier(folder: Path) -> TokenVerifier:
    pem = folder / "issuer.pem"
    pem.write_bytes(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return TokenVerifier.from_settings(AuthSettings(public_keys=[{"file": pem, "kid": "k"}]))


async def test_a_command_right_after_start_is_answered(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    agent_bus = await Bus.connect(nats_server.client_settings(), name="agent")
    operator = await Bus.connect(nats_server.client_settings(), name="operator")
    keys = verifier(tmp_path)
    answered = 0
    try:
        for n in range(ROUNDS):
            profile = parse_profile(
                {
                    "site": "cau-do",
                    "field": "water_supply",
                    "device": f"station-{n}",
                    "protocol": "modbus",
                    "endpoint": "tcp://127.0.0.1:502",
                    "points": [{"name": "level", "address": 0, "writable": True}],
                }
            )
            service = CommandService(
                agent_bus,
                site=profile.site,
                agent_id="edge-1",
                devices={profile.device: (profile, None)},  # type: ignore[dict-item]
                authenticator=keys,
            )
            # telemetry the agent's connection is still writing out
            await agent_bus.nc.publish("city.telemetry.water_supply.x.y", b"t" * 900_000)
            await service.start()
            try:
                command = WriteCommand(
                    command_id=f"c{n}",
                    site=profile.site,
                    device=profile.device,
                    field=profile.field,
                    point="level",
                    value=1.0,
                    reason="commissioning",
                    token="not-a-token",
                )
                msg = await operator.request(
                    command_subject(profile.site, profile.device),
                    command.SerializeToString(),
                    timeout=10,
                )
                reply = WriteCommandReply.FromString(msg.data)
                assert reply.error.reason == "UNAUTHENTICATED"  # answered, and refused
                answered += 1
            finally:
                await service.stop()
    finally:
        await operator.close()
        await agent_bus.close()
    assert answered == ROUNDS
