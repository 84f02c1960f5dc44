"""The agent as a whole (in-process): drivers, buffer, uplink, heartbeat and write commands
wired together against a real Modbus simulator and a real nats-server."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support import eventually

from smartcity.agents.agent import Agent
from smartcity.agents.profile import Function
from smartcity.agents.sim.substation import Substation
from smartcity.runtime.bus import TELEMETRY_STREAM, Bus
from smartcity.runtime.config import StreamsSettings, load_settings
from smartcity.runtime.nats_server import EmbeddedNats
from smartcity.telemetry.v1 import telemetry_pb2


def token(key: Ed25519PrivateKey, roles: list[str]) -> str:
    now = int(time.time())
    claims = {
        "iss": "smartcity-identity",
        "sub": "p-operator-1",
        "aud": ["smartcity"],
        "iat": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
        "kind": "staff",
        "roles": roles,
    }
    return jwt.encode(claims, key, algorithm="EdDSA")


async def test_agent_publishes_heartbeats_and_executes_authorised_writes(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    key = Ed25519PrivateKey.generate()
    pem = tmp_path / "identity.pem"
    pem.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    bus = await Bus.connect(nats_server.client_settings(), name="ioc")
    await bus.ensure_streams(StreamsSettings())
    beats: list[telemetry_pb2.AgentHeartbeat] = []
    await bus.subscribe(
        "city.agents.>", lambda msg: beats.append(telemetry_pb2.AgentHeartbeat.FromString(msg.data))
    )
    settings = load_settings(
        data_dir=str(tmp_path),
        agent={"id": "edge-1", "heartbeat_interval_seconds": 0.2},
        auth={"public_keys": [str(pem)]},
    )
    stop = asyncio.Event()
    async with Substation("127.0.0.1", 0, devices=1, period=0.1) as simulator:
        profile = simulator.profile_for(1, poll_interval=0.1)
        agent = Agent([profile], settings, nats_url=nats_server.url)
        running = asyncio.create_task(agent.run(stop))
        try:

            async def stored() -> bool:
                return (await bus.js.stream_info(TELEMETRY_STREAM)).state.messages >= 3

            await eventually(stored, within=15, what="telemetry stored")

            async def beating() -> bool:
                return any(
                    d.device == profile.device and d.polls_total > 0
                    for beat in beats
                    for d in beat.devices
                )

            await eventually(beating, within=15, what="heartbeat with polls")
            assert beats[-1].agent_id == "edge-1"
            assert beats[-1].site == profile.site

            command = telemetry_pb2.WriteCommand(
                command_id="open-hv",
                site=profile.site,
                device=profile.device,
                field=profile.field,
                point="breaker_hv_closed",
                bool_value=False,
                reason="maintenance switching",
                token=token(key, [f"operator:{profile.field}"]),
            )
            subject = f"city.commands.{profile.site}.{profile.device}"
            reply = telemetry_pb2.WriteCommandReply.FromString(
                (await bus.request(subject, command.SerializeToString(), timeout=10)).data
            )
            assert reply.outcome == telemetry_pb2.WriteCommandReply.OUTCOME_ACCEPTED, reply
            (closed,) = await simulator.read_bits(1, Function.COIL, 0, 1)
            assert closed is False

            command.command_id = "close-hv"
            command.bool_value = True
            command.token = token(key, ["viewer:electricity"])
            reply = telemetry_pb2.WriteCommandReply.FromString(
                (await bus.request(subject, command.SerializeToString(), timeout=10)).data
            )
            assert reply.outcome == telemetry_pb2.WriteCommandReply.OUTCOME_REFUSED
            assert reply.error.reason == "PERMISSION_DENIED"
            (still_open,) = await simulator.read_bits(1, Function.COIL, 0, 1)
            assert still_open is False
        finally:
            stop.set()
            await asyncio.wait_for(running, 30)
    await bus.close()
