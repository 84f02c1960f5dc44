"""``smartcity streams ensure|status`` run as processes against real nats-servers: the
embedded one, one without JetStream, one whose user may not touch the JetStream API, and
none at all."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from nats.js.api import AckPolicy, ConsumerConfig
from support import eventually

from smartcity.runtime.bus import STREAM_SUBJECTS, TELEMETRY_STREAM, Bus
from smartcity.runtime.nats_server import EmbeddedNats, find_nats_server

SMARTCITY = [sys.executable, "-m", "smartcity.cli.main"]
ENV = {
    **{key: value for key, value in os.environ.items() if not key.startswith("SMARTCITY_")},
    "COLUMNS": "200",
    "NO_COLOR": "1",
}
PLATFORM = list(STREAM_SUBJECTS)


def smartcity(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SMARTCITY, *args], capture_output=True, text=True, timeout=timeout, env=ENV
    )


def status(url: str) -> tuple[int, dict]:
    done = smartcity("streams", "status", "--nats", url, "--json")
    return done.returncode, json.loads(done.stdout)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@asynccontextmanager
async def plain_nats(tmp_path: Path, config: str) -> AsyncIterator[str]:
    """A nats-server started from ``config`` (``{port}`` and ``{store}`` filled in)."""
    port = free_port()
    conf = tmp_path / "server.conf"
    conf.write_text(config.format(port=port, store=tmp_path / "js"), encoding="utf-8")
    log = (tmp_path / "server.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        str(find_nats_server()), "-c", str(conf), stdout=log, stderr=subprocess.STDOUT
    )

    async def accepts() -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return False
        writer.close()
        return True

    try:
        await eventually(accepts, what=f"nats-server on port {port}")
        yield f"nats://127.0.0.1:{port}"
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 10)
        log.close()


def test_ensure_creates_every_platform_stream(nats_server: EmbeddedNats) -> None:
    done = smartcity("streams", "ensure", "--nats", nats_server.url)
    assert done.returncode == 0, done.stderr
    assert f"JetStream streams on {nats_server.url}" in done.stdout
    for name, subjects in STREAM_SUBJECTS.items():
        row = next(line for line in done.stdout.splitlines() if f" {name} " in line)
        assert "created" in row
        assert subjects[0] in row
    telemetry = next(line for line in done.stdout.splitlines() if " TELEMETRY " in line)
    assert "file" in telemetry
    assert "7d" in telemetry  # the configured max age
    assert "1 MiB" in telemetry  # and max message size
    assert "400d" in next(line for line in done.stdout.splitlines() if " AUDIT " in line)


async def test_status_shows_messages_and_each_consumers_lag(
    nats_server: EmbeddedNats, bus: Bus
) -> None:
    assert smartcity("streams", "ensure", "--nats", nats_server.url).returncode == 0
    for n in range(5):
        await bus.jetstream_publish("city.telemetry.electricity.s1.d1", str(n).encode())
    sub = await bus.js.pull_subscribe(
        "city.telemetry.>",
        durable="dashboard",
        stream=TELEMETRY_STREAM,
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=300),
    )
    first, second, _third = await sub.fetch(3, timeout=5)
    await first.ack_sync()
    # A negative acknowledgement the server confirms (as ack_sync does for an ack), so that
    # the next fetch hands the same message out again: one redelivery.
    await bus.nc.request(second.reply, b"-NAK", timeout=5)
    (again,) = await sub.fetch(1, timeout=5)
    assert again.metadata.sequence.stream == 2
    assert again.metadata.num_delivered == 2

    code, document = status(nats_server.url)

    assert code == 0
    assert document["server"] == nats_server.url
    assert document["missing"] == []
    assert document["fix"] is None
    streams = {stream["name"]: stream for stream in document["streams"]}
    assert list(streams) == PLATFORM
    telemetry = streams[TELEMETRY_STREAM]
    assert telemetry["exists"] is True
    assert telemetry["subjects"] == ["city.telemetry.>"]
    assert telemetry["messages"] == 5
    assert telemetry["bytes"] > 0
    assert (telemetry["first_sequence"], telemetry["last_sequence"]) == (1, 5)
    assert telemetry["first_time"]
    assert telemetry["last_time"]
    assert telemetry["limits"]["storage"] == "file"
    assert telemetry["limits"]["max_age_seconds"] == 7 * 24 * 3600
    (consumer,) = telemetry["consumers"]
    assert consumer["name"] == "dashboard"
    assert consumer["durable"] is True
    assert consumer["pending"] == 2  # messages 4 and 5, never delivered
    assert consumer["ack_pending"] == 2  # 2 (redelivered) and 3, not acknowledged
    assert consumer["redelivered"] == 1
    assert consumer["delivered_sequence"] == 3
    assert consumer["ack_floor_sequence"] == 1
    assert consumer["last_active"]
    assert telemetry["consumer_count"] == 1
    for name in PLATFORM[1:]:
        assert streams[name]["exists"] is True
        assert streams[name]["messages"] == 0
        assert streams[name]["consumers"] == []

    table = smartcity("streams", "status", "--nats", nats_server.url)
    assert table.returncode == 0, table.stderr
    row = next(line for line in table.stdout.splitlines() if "dashboard" in line)
    cells = [cell.strip() for cell in row.split("│")]
    assert cells[3:6] == ["2", "2", "1"]  # pending, ack pending, redelivered


def test_a_second_ensure_reports_every_stream_unchanged(nats_server: EmbeddedNats) -> None:
    assert smartcity("streams", "ensure", "--nats", nats_server.url).returncode == 0
    again = smartcity("streams", "ensure", "--nats", nats_server.url)
    assert again.returncode == 0, again.stderr
    for name in PLATFORM:
        row = next(line for line in again.stdout.splitlines() if f" {name} " in line)
        assert "unchanged" in row
    assert "created" not in again.stdout
    assert "updated" not in again.stdout


def test_a_changed_limit_is_updated_and_an_impossible_change_refused(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    assert smartcity("streams", "ensure", "--nats", nats_server.url).returncode == 0
    config = tmp_path / "city.yaml"
    config.write_text("nats:\n  streams:\n    telemetry:\n      max_msgs: 1000\n")
    changed = smartcity("streams", "ensure", "--nats", nats_server.url, "--config", str(config))
    assert changed.returncode == 0, changed.stderr
    row = next(line for line in changed.stdout.splitlines() if " TELEMETRY " in line)
    assert "updated" in row
    assert "1,000" in row

    config.write_text("nats:\n  streams:\n    alerts:\n      storage: memory\n")
    refused = smartcity("streams", "ensure", "--nats", nats_server.url, "--config", str(config))
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: stream ALERTS: its storage is 'file'")
    assert len(refused.stderr.strip().splitlines()) == 1


def test_status_without_streams_fails_and_names_the_fix(nats_server: EmbeddedNats) -> None:
    fix = f"smartcity streams ensure --nats {nats_server.url}"
    table = smartcity("streams", "status", "--nats", nats_server.url)
    assert table.returncode == 1
    assert table.stdout.count("missing") == len(PLATFORM)
    assert "6 of 6 platform stream(s) missing" in table.stderr
    assert f"`{fix}`" in table.stderr

    code, document = status(nats_server.url)
    assert code == 1
    assert document["missing"] == PLATFORM
    assert document["fix"] == fix
    assert [stream["exists"] for stream in document["streams"]] == [False] * len(PLATFORM)
    assert document["streams"][0]["subjects"] == ["city.telemetry.>"]


def test_an_unreachable_server_is_one_line_and_exit_1() -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    for command in ("ensure", "status"):
        done = smartcity("streams", command, "--nats", url)
        assert done.returncode == 1
        assert done.stdout == ""
        assert done.stderr.startswith(f"error: cannot connect to NATS at {url}")
        assert len(done.stderr.strip().splitlines()) == 1


def test_no_url_is_a_usage_error() -> None:
    done = smartcity("streams", "status")
    assert done.returncode == 2
    assert "give --nats URL" in done.stderr


async def test_a_server_without_jetstream_is_named(tmp_path: Path) -> None:
    async with plain_nats(tmp_path, "listen: 127.0.0.1:{port}\n") as url:
        for command in ("ensure", "status"):
            done = smartcity("streams", command, "--nats", url)
            assert done.returncode == 1
            assert done.stderr.startswith("error: JetStream is not enabled on the NATS server")
            assert len(done.stderr.strip().splitlines()) == 1


PERMISSIONS = """
listen: 127.0.0.1:{port}
jetstream {{ store_dir: "{store}" }}
authorization {{
  users = [
    {{user: agent, password: agent,
      permissions: {{publish: ["city.>", "_INBOX.>"], subscribe: ["_INBOX.>"]}}}}
  ]
}}
"""


@pytest.mark.slow
async def test_permission_denied_is_named(tmp_path: Path) -> None:
    async with plain_nats(tmp_path, PERMISSIONS) as url:
        done = smartcity("streams", "ensure", "--nats", url.replace("//", "//agent:agent@"))
    assert done.returncode == 1
    assert done.stderr.startswith("error: permission denied: the NATS user at " + url)
    assert "$js.api.stream.info.telemetry" in done.stderr.lower()
    assert "agent:agent" not in done.stderr  # no credentials in the message
    assert len(done.stderr.strip().splitlines()) == 1
