"""The commands a SCADA engineer types on site, run as processes: ``smartcity sim modbus``,
``smartcity agent check`` against it, and ``smartcity sim fault``."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SMARTCITY = [sys.executable, "-m", "smartcity.cli.main"]
ENV = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SMARTCITY, *args], capture_output=True, text=True, timeout=timeout, env=ENV
    )


@pytest.fixture(scope="module")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    out = tmp_path_factory.mktemp("sim")
    process = subprocess.Popen(
        [*SMARTCITY, "sim", "modbus", "--port", "0", "--devices", "2", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=ENV,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 30
    endpoint = None
    while endpoint is None and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        match = re.search(r"tcp://127\.0\.0\.1:\d+", line)
        endpoint = match.group(0) if match else None
    assert endpoint, "the simulator did not say where it listens"
    yield endpoint, out
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=20) == 0


def test_check_reads_and_decodes_every_point(simulator: tuple[str, Path]) -> None:
    endpoint, out = simulator
    done = run("agent", "check", "--profile", str(out / "substation-unit1.yaml"), "--orders")
    assert done.returncode == 0, done.stdout + done.stderr
    assert endpoint in done.stdout
    row = next(line for line in done.stdout.splitlines() if "voltage_mv_an" in line)
    # raw registers, the decoded value and the value in every order are all on the row
    assert re.search(r"[0-9A-F]{4} [0-9A-F]{4}", row)
    assert "good" in row
    assert "CDAB" in row
    assert "not read" not in done.stdout


def test_a_fault_makes_check_fail_with_the_reason(simulator: tuple[str, Path]) -> None:
    endpoint, out = simulator
    fault = run("sim", "fault", endpoint, "no_answer", "--seconds", "30", "--unit", "2")
    assert fault.returncode == 0, fault.stderr
    assert "no_answer on unit 2" in fault.stdout
    done = run("agent", "check", "--profile", str(out / "substation-unit2.yaml"))
    assert done.returncode == 1
    assert re.search(r"timeout|unreachable|no answer|no response", done.stdout + done.stderr)
    # the other bay is untouched
    assert run("agent", "check", "--profile", str(out / "substation-unit1.yaml")).returncode == 0
    # a silent unit cannot be told anything, and the command says so instead of hanging
    again = run("sim", "fault", endpoint, "clear", "--unit", "2")
    assert again.returncode == 1
    assert "does not answer" in again.stderr


def test_unknown_fault_is_refused(simulator: tuple[str, Path]) -> None:
    endpoint, _ = simulator
    done = run("sim", "fault", endpoint, "meltdown")
    assert done.returncode == 1
    assert "unknown Modbus fault 'meltdown'" in done.stderr


def test_bad_profile_is_refused_before_connecting(tmp_path: Path) -> None:
    profile = tmp_path / "bad.yaml"
    profile.write_text(
        "site: s\nfield: electricity\ndevice: d\nprotocol: modbus\nendpoint: tcp://127.0.0.1:1\n"
        "points:\n  - {name: v, address: 0, type: float32, registers: 1}\n",
        encoding="utf-8",
    )
    done = run("agent", "check", "--profile", str(profile))
    assert done.returncode == 2
    assert "registers: 1 does not fit float32" in done.stderr


def test_agent_without_nats_url_says_what_to_do(tmp_path: Path, simulator) -> None:
    _, out = simulator
    env_free = run("agent", "--profile", str(out / "substation-unit1.yaml"))
    assert env_free.returncode == 2
    assert "--nats URL" in env_free.stderr
    # with workers too, before any worker is started
    workers = run("agent", "--workers", "2", "--profile", str(out / "substation-unit1.yaml"))
    assert workers.returncode == 2
    assert "--nats URL" in workers.stderr
