"""``run_service``: a service started in order with a real nats-server and gRPC server, its
health following NATS and its own checks, stopped in reverse, and a failing background task
ending it with that failure."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support import eventually

from smartcity.runtime import service as service_module
from smartcity.runtime.config import NatsSettings, Settings
from smartcity.runtime.grpc_client import channel
from smartcity.runtime.nats_server import EmbeddedNats
from smartcity.runtime.service import (
    Running,
    ServiceContext,
    ServiceParts,
    ServiceSpec,
    run_service,
)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Toy:
    """A service with no API of its own: a background task, a check and a record of events."""

    def __init__(self, *, fail_after: float | None = None, end_quietly: bool = False) -> None:
        self.events: list[str] = []
        self.problem: str | None = None
        self.fail_after = fail_after
        self.end_quietly = end_quietly

    @contextlib.asynccontextmanager
    async def setup(self, context: ServiceContext) -> AsyncIterator[ServiceParts]:
        self.events.append("setup")
        assert context.bus.nc.is_connected

        async def work() -> None:
            if self.end_quietly:
                return
            if self.fail_after is None:
                await asyncio.Event().wait()
            await asyncio.sleep(self.fail_after or 0)
            raise RuntimeError("the toy's work failed")

        async def check() -> str | None:
            return self.problem

        try:
            yield ServiceParts(
                registrations=[],
                service_names=["toy.v1.Toy"],
                tasks={"work": work},
                checks={"toy": check},
                on_stop=lambda: self.events.append("on_stop"),
                details={"toy": "yes"},
            )
        finally:
            self.events.append("teardown")


@pytest.fixture(autouse=True)
def quick_health(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service_module, "HEALTH_INTERVAL_SECONDS", 0.05)


def settings(nats: EmbeddedNats | None, tmp_path: Path) -> Settings:
    if nats is None:
        return Settings(nats=NatsSettings(data_dir=tmp_path / "nats", port=0))
    return Settings(nats=nats.client_settings())


async def health(address: str, service: str = "") -> int:
    async with channel(address) as connection:
        stub = health_pb2_grpc.HealthStub(connection)
        answer = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        return int(answer.status)


async def test_health_follows_the_checks_and_nats_and_stop_goes_in_reverse(
    tmp_path: Path,
) -> None:
    nats = EmbeddedNats(NatsSettings(data_dir=tmp_path / "nats", port=0))
    await nats.astart()
    toy = Toy()
    ready: list[Running] = []
    stop = asyncio.Event()
    spec = ServiceSpec("toy", 0, toy.setup)
    running = asyncio.create_task(
        run_service(spec, settings(nats, tmp_path), stop, on_ready=ready.append)
    )
    try:
        await eventually(lambda: ready, what="the service to be ready")
        (where,) = ready
        assert where.details == {"toy": "yes"}
        assert await health(where.grpc_address) == SERVING
        toy.problem = "storage unreachable"
        await eventually(lambda: _is(where.grpc_address, NOT_SERVING), what="NOT_SERVING")
        toy.problem = None
        await eventually(lambda: _is(where.grpc_address, SERVING), what="SERVING again")
        await nats.astop()
        await eventually(lambda: _is(where.grpc_address, NOT_SERVING), what="NATS down")
    finally:
        stop.set()
        await asyncio.wait_for(running, 20)
        await nats.astop()
    assert toy.events == ["setup", "on_stop", "teardown"]


async def _is(address: str, status: int) -> bool:
    return await health(address) == status and await health(address, "toy.v1.Toy") == status


async def test_a_failing_background_task_ends_the_service_with_its_error(tmp_path: Path) -> None:
    toy = Toy(fail_after=0.1)
    spec = ServiceSpec("toy", 0, toy.setup)
    with pytest.raises(RuntimeError, match="the toy's work failed"):
        await asyncio.wait_for(run_service(spec, settings(None, tmp_path), asyncio.Event()), 30)
    assert toy.events == ["setup", "on_stop", "teardown"]


async def test_a_background_task_that_just_ends_ends_the_service(tmp_path: Path) -> None:
    toy = Toy(end_quietly=True)
    spec = ServiceSpec("toy", 0, toy.setup)
    with pytest.raises(RuntimeError, match="its background task 'work' ended on its own"):
        await asyncio.wait_for(run_service(spec, settings(None, tmp_path), asyncio.Event()), 30)
    assert toy.events == ["setup", "on_stop", "teardown"]
