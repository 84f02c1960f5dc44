"""The service example of src/smartcity/runtime/README.md, run as written against a real
nats-server: it starts, serves health, consumes every record event (dead-lettering the one
that is not one) and stops."""

from __future__ import annotations

import asyncio
import re
import types
from pathlib import Path

from grpc_health.v1 import health_pb2, health_pb2_grpc
from support import eventually

from smartcity.runtime.bus import DEADLETTER_STREAM, RECORDS_STREAM, Bus
from smartcity.runtime.config import GrpcSettings, Settings, StreamsSettings
from smartcity.runtime.grpc_client import channel
from smartcity.runtime.nats_server import EmbeddedNats
from smartcity.runtime.service import Running, run_service

README = Path(__file__).resolve().parents[2] / "src" / "smartcity" / "runtime" / "README.md"


def example() -> types.ModuleType:
    (code,) = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    module = types.ModuleType("event_counter")
    exec(compile(code, str(README), "exec"), module.__dict__)
    return module


async def test_the_readme_service_runs_as_written(nats_server: EmbeddedNats, bus: Bus) -> None:
    counter = example()
    await bus.ensure_streams(StreamsSettings())
    for subject in ("city.records.feedback_ticket.created", "city.records.x"):
        await bus.jetstream_publish(subject, b"{}")
    settings = Settings(nats=nats_server.client_settings(), grpc=GrpcSettings(port=0))
    ready: list[Running] = []
    stop = asyncio.Event()
    running = asyncio.create_task(
        run_service(counter.EVENT_COUNTER, settings, stop, on_ready=ready.append)
    )
    try:
        await eventually(lambda: ready, what="the example to start")
        assert ready[0].details == {"counting": "city.records.>"}
        async with channel(ready[0].grpc_address) as connection:
            answer = await health_pb2_grpc.HealthStub(connection).Check(
                health_pb2.HealthCheckRequest(service="example.v1.EventCounter"), timeout=5
            )
        assert answer.status == health_pb2.HealthCheckResponse.SERVING

        async def consumed() -> bool:
            info = await bus.js.consumer_info(RECORDS_STREAM, "event-counter")
            return info.ack_floor is not None and info.ack_floor.stream_seq == 2

        await eventually(consumed, what="both record events acknowledged")
        letters = await bus.js.stream_info(DEADLETTER_STREAM)
        assert letters.state.messages == 1
    finally:
        stop.set()
        await asyncio.wait_for(running, 20)
