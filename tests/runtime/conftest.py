"""NATS fixtures: a real nats-server per test, on a port it picks, in the test's tmp_path."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from smartcity.runtime.bus import Bus
from smartcity.runtime.config import NatsSettings
from smartcity.runtime.nats_server import EmbeddedNats


@pytest.fixture
def nats_settings(tmp_path) -> NatsSettings:
    # Short waits keep reconnect tests fast; port 0 keeps clear of any NATS on 4222.
    return NatsSettings(
        data_dir=tmp_path / "nats",
        port=0,
        reconnect_wait_seconds=0.1,
        connect_timeout_seconds=5,
    )


@pytest.fixture
def nats_server(nats_settings) -> Iterator[EmbeddedNats]:
    with EmbeddedNats(nats_settings) as server:
        yield server


@pytest.fixture
async def bus(nats_server) -> AsyncIterator[Bus]:
    connected = await Bus.connect(nats_server.client_settings(), name="test-bus")
    yield connected
    await connected.close()
