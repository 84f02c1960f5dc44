"""``smartcity console`` as a process: one ready line once it listens, ``/healthz`` without a
login, a clean stop on SIGTERM, and one clear line when the port is taken or a target is
malformed."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import urllib.request
from collections.abc import AsyncIterator

import pytest

from smartcity.services.console.settings import Targets

COMMAND = [sys.executable, "-m", "smartcity.cli.main", "console"]
# Nothing listens on these: /healthz and the start and stop need no service.
TARGETS = ["--identity", "127.0.0.1:9", "--monitoring", "127.0.0.1:9",
           "--records", "127.0.0.1:9", "--alerts", "127.0.0.1:9"]  # fmt: skip


@pytest.fixture
async def taken_port() -> AsyncIterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


async def _run(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *COMMAND, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return reply.status, reply.read()


async def test_it_says_where_it_listens_answers_healthz_and_stops_on_sigterm() -> None:
    process = await _run("--port", "0", *TARGETS)
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode().strip()
        assert line.startswith("Console ready at http://127.0.0.1:"), line
        url = line.removeprefix("Console ready at ")
        status, body = await asyncio.to_thread(_get, f"{url}/healthz")
        assert status == 200
        assert body == b'{"status":"serving"}'
        process.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0
        assert out.decode().strip().endswith("Console stopped.")
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_a_port_in_use_is_one_line_naming_the_port_and_the_option(taken_port: int) -> None:
    process = await _run("--port", str(taken_port), *TARGETS)
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1
    assert out == b""
    assert err.decode().strip() == (
        f"error: port {taken_port} on 127.0.0.1 is already in use; choose another with --port"
    )


async def test_a_malformed_target_is_refused_naming_the_option() -> None:
    process = await _run("--port", "0", "--alerts", "alerts.city")
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert err.decode().strip() == "error: --alerts 'alerts.city': expected host:port"


def test_the_default_targets_are_the_services_default_ports() -> None:
    targets = Targets.defaults(alerts="alerts.city:443")
    assert targets == Targets(
        identity="127.0.0.1:50053",
        monitoring="127.0.0.1:50051",
        records="127.0.0.1:50052",
        alerts="alerts.city:443",
    )
