"""The monitoring service process killed mid-batch and started again: every reading published
is stored exactly once (counted), on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from store_helpers import fetch
from support import eventually

from smartcity.agents.buffer import DiskBuffer
from smartcity.agents.profile import parse_profile
from smartcity.agents.publisher import TelemetryPublisher
from smartcity.agents.reading import Reading
from smartcity.runtime.bus import Bus
from smartcity.runtime.config import StreamsSettings
from smartcity.runtime.nats_server import EmbeddedNats

pytestmark = pytest.mark.slow

DEVICES = 4
BATCHES = 200  # per device
READINGS = 50  # per batch


def start_service(url: str, nats: str, data: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SMARTCITY_DATA_DIR": str(data),
        # One message per transaction: slow enough that the kill below lands mid-stream.
        "SMARTCITY_MONITORING__INGEST__FETCH_BATCH": "1",
        "SMARTCITY_MONITORING__INGEST__ACK_WAIT_SECONDS": "2",
        "SMARTCITY_MONITORING__INGEST__FETCH_TIMEOUT_SECONDS": "0.2",
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "smartcity.cli.main",
            "serve",
            "monitoring",
            "--port",
            "0",
            "--store",
            url,
            "--nats",
            nats,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(data / "service.log", "ab"),
    )


async def stored(url: str) -> int:
    """Readings stored, read beside the service: opening a store of its own would wait for
    the service's write lock (SQLite) and see the kill come too late."""
    try:
        ((count,),) = await fetch(
            url,
            "SELECT count(*) FROM points AS p JOIN series AS s ON s.id = p.series_id "
            "WHERE s.field = 'water_supply' AND p.quality = 1",
        )
    except (sqlite3.OperationalError, asyncpg.UndefinedTableError):
        return 0  # the service has not made its tables yet
    return int(count)


async def test_killed_mid_batch_loses_nothing_and_duplicates_nothing(
    nats_server: EmbeddedNats, store_url: str, tmp_path: Path
) -> None:
    bus = await Bus.connect(nats_server.client_settings(), name="agents")
    await bus.ensure_streams(StreamsSettings())
    produced = 0
    for device in range(DEVICES):
        profile = parse_profile(
            {
                "site": "cau-do",
                "field": "water_supply",
                "device": f"station-{device}",
                "protocol": "modbus",
                "endpoint": "tcp://127.0.0.1:502",
                "points": [{"name": "ph", "unit": "pH", "address": 0}],
            }
        )
        publisher = TelemetryPublisher(
            DiskBuffer(tmp_path / f"agent-{device}.db"), agent_id="a", max_batch=READINGS
        )
        publisher.submit(
            profile,
            [Reading.good("ph", 6.5 + (i % 100) / 100, "pH") for i in range(BATCHES * READINGS)],
        )
        assert await publisher.drain(bus, timeout=30)
        produced += BATCHES * READINGS
    data = tmp_path / "service"
    data.mkdir()

    service = start_service(store_url, nats_server.url, data)
    try:
        await eventually(lambda: stored_at_least(store_url, 1), within=60, what="some readings")
        service.send_signal(signal.SIGKILL)  # mid-stream: fetched, maybe written, not acked
        service.wait(timeout=10)
        partial = await stored(store_url)
        assert 0 < partial < produced, "the kill came too late to test anything"

        service = start_service(store_url, nats_server.url, data)
        await eventually(
            lambda: stored_at_least(store_url, produced), within=90, what="all readings"
        )
    finally:
        service.send_signal(signal.SIGTERM)
        assert service.wait(timeout=30) == 0, (data / "service.log").read_text()[-3000:]
    # counted: the PK keeps a reading once, and the count says none is missing
    assert await stored(store_url) == produced
    await bus.close()


async def stored_at_least(url: str, count: int) -> bool:
    return await stored(url) >= count
