"""``smartcity identity nats-config`` and ``smartcity nats --auth`` run as processes: the
folder of device profiles becomes users and credentials files, and the embedded server
admits only those users, each within its permissions."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from support import eventually

from smartcity.runtime.bus import TELEMETRY_STREAM, Bus, BusError, BusPermissionError
from smartcity.runtime.config import NatsSettings
from smartcity.runtime.nats_auth.credentials import read_credentials_file
from smartcity.runtime.nats_server import find_nats_server

SMARTCITY = [sys.executable, "-m", "smartcity.cli.main"]
ENV = {
    **{key: value for key, value in os.environ.items() if not key.startswith("SMARTCITY_")},
    "COLUMNS": "250",
    "NO_COLOR": "1",
}
DEADLINE = 60

PROFILE = """\
site: {site}
field: {field}
device: {device}
protocol: modbus
endpoint: tcp://127.0.0.1:1502
points:
  - {{name: value, unit: kV, address: 0}}
"""


def smartcity(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SMARTCITY, *args], capture_output=True, text=True, timeout=DEADLINE, env=ENV
    )


@pytest.fixture
def profiles(tmp_path: Path) -> Path:
    folder = tmp_path / "profiles"
    (folder / "north").mkdir(parents=True)
    # Directly in the folder: the agent named after its site.
    (folder / "station.yaml").write_text(
        PROFILE.format(site="cau-do", field="water_supply", device="station-1")
    )
    # In a sub-folder: the agent named after the folder, with both its devices.
    for device in ("bay-1-meter", "bay-2-meter"):
        (folder / "north" / f"{device}.yaml").write_text(
            PROFILE.format(site="hoa-khanh-110kv", field="electricity", device=device)
        )
    return folder


def nats_config(profiles: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return smartcity(
        "identity", "nats-config", "--profiles", str(profiles), "--out", str(out),
        "--bcrypt-rounds", "4", *extra,
    )  # fmt: skip


def test_nats_config_writes_users_and_says_how_to_use_them(profiles, tmp_path):
    out = tmp_path / "auth"
    done = nats_config(profiles, out)
    assert done.returncode == 0, done.stderr
    users = ["admin", "identity", "records", "monitoring", "alerts", "console"]
    users += ["agent-cau-do", "agent-north"]
    for user in users:
        path = out / "credentials" / f"{user}.yaml"
        assert re.search(rf"^ {user} +\w+ +{re.escape(str(path))} +new", done.stdout, re.M)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert read_credentials_file(path).user == user
    assert 'include "authorization.conf"' in done.stdout
    assert f"smartcity nats --auth {out}" in done.stdout
    assert f"SMARTCITY_NATS__CREDENTIALS_FILE={out / 'credentials' / 'admin.yaml'}" in done.stdout
    config = (out / "authorization.conf").read_text()
    assert '"city.telemetry.electricity.hoa-khanh-110kv.bay-2-meter"' in config
    assert '"city.agents.cau-do.cau-do"' in config

    again = nats_config(profiles, out, "--services", "monitoring")
    assert again.returncode == 0, again.stderr
    assert re.search(r"^ monitoring .* kept", again.stdout, re.M)
    assert 'user: "records"' not in (out / "authorization.conf").read_text()


def test_a_wrong_profile_or_service_is_refused_with_the_reason(profiles, tmp_path):
    (profiles / "north" / "broken.yaml").write_text("site: x\n")
    done = nats_config(profiles, tmp_path / "auth")
    assert done.returncode == 2
    assert f"{profiles / 'north' / 'broken.yaml'}: invalid device profile" in done.stderr
    assert not (tmp_path / "auth").exists()

    (profiles / "north" / "broken.yaml").unlink()
    done = nats_config(profiles, tmp_path / "auth", "--services", "monitoring,billing")
    assert done.returncode == 2
    assert "unknown service(s) 'billing'" in done.stderr

    (profiles / "Bad.Agent").mkdir()
    (profiles / "north" / "bay-1-meter.yaml").rename(profiles / "Bad.Agent" / "m.yaml")
    done = nats_config(profiles, tmp_path / "auth")
    assert done.returncode == 2
    assert "agent id 'Bad.Agent' must be 1 to 63 lower case" in done.stderr


# -- the embedded server with that authorization -----------------------------------------------


def _endpoints(cli: subprocess.Popen[str]) -> dict[str, str]:
    endpoints: dict[str, str] = {}
    assert cli.stdout is not None
    for line in cli.stdout:
        if line.startswith("  "):
            name, value = re.split(r"\s{2,}", line.strip(), maxsplit=1)
            endpoints[name] = value
        if line.startswith("Other processes"):
            return endpoints
    raise AssertionError(f"the command ended early: {cli.wait()} {cli.stderr.read()}")


async def publish_as_agent(url: str, out: Path) -> None:
    agent = NatsSettings(url=url, credentials_file=out / "credentials" / "agent-north.yaml")
    async with await Bus.connect(agent, name="agent-north") as bus:
        subject = "city.telemetry.electricity.hoa-khanh-110kv.bay-2-meter"
        assert (await bus.jetstream_publish(subject, b"batch")).stream == TELEMETRY_STREAM
        with pytest.raises(BusPermissionError, match="'agent-north' may not publish"):
            await bus.jetstream_publish("city.telemetry.water_supply.cau-do.x", b"", timeout=1)
    with pytest.raises(BusError, match="requires a user"):
        await Bus.connect(NatsSettings(url=url), name="anonymous")


def test_smartcity_nats_admits_only_the_generated_users(profiles, tmp_path):
    out = tmp_path / "auth"
    assert nats_config(profiles, out).returncode == 0
    cli = subprocess.Popen(
        [*SMARTCITY, "nats", "--auth", str(out), "--port", "0", "--data-dir", str(tmp_path / "d")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        endpoints = _endpoints(cli)
        assert endpoints["users"] == str(out / "authorization.conf")
        assert endpoints["streams"].startswith("created TELEMETRY")  # as the admin
        asyncio.run(publish_as_agent(endpoints["client URL"], out))
        cli.send_signal(signal.SIGTERM)
        out_text, err = cli.communicate(timeout=DEADLINE)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert cli.returncode == 0, err
    assert "NATS stopped." in out_text


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_an_external_server_includes_the_same_authorization(profiles, tmp_path):
    """Written once, used by a nats-server that has its own configuration file."""
    out = tmp_path / "auth"
    assert nats_config(profiles, out).returncode == 0
    server_dir = tmp_path / "server"
    server_dir.mkdir()
    shutil.copy(out / "authorization.conf", server_dir / "authorization.conf")
    port = free_port()
    (server_dir / "nats-server.conf").write_text(
        f'port: {port}\njetstream {{ store_dir: "{tmp_path / "js"}" }}\n'
        'include "authorization.conf"\n'
    )
    with (tmp_path / "server.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            str(find_nats_server()), "-c", str(server_dir / "nats-server.conf"),
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"nats://127.0.0.1:{port}"
    try:

        async def accepts() -> bool:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                return False
            writer.close()
            return True

        await eventually(accepts, what="the external nats-server")
        admin = {"SMARTCITY_NATS__CREDENTIALS_FILE": str(out / "credentials" / "admin.yaml")}
        ensure = await asyncio.create_subprocess_exec(
            *SMARTCITY, "streams", "ensure", "--nats", url, env={**ENV, **admin},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        stdout, stderr = await asyncio.wait_for(ensure.communicate(), DEADLINE)
        assert ensure.returncode == 0, stderr.decode()
        assert "created" in stdout.decode()
        await publish_as_agent(url, out)
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 10)


def test_smartcity_nats_without_the_generated_folder_says_what_to_run(tmp_path):
    done = smartcity("nats", "--auth", str(tmp_path / "none"), "--port", "0")
    assert done.returncode == 2
    assert "smartcity identity nats-config --out" in done.stderr
    assert "ready" not in done.stdout
