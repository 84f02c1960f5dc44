"""``smartcity sim many``, as ``smartcity up`` runs it and as a user would: one process for a
substation, an air station and a water station, each on its own port with its own folder,
each saying when it is ready, each taking faults through its own protocol (sent by
``smartcity sim fault`` in a process of its own, as the city's schedule sends them); a site
that cannot listen ends them all; a plan that is wrong is refused, naming the file."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smartcity.agents.sim.plan import SimPlan, load_plan
from smartcity.runtime.errors import InvalidArgument
from smartcity.up.faults import FaultError, FaultTarget, inject

SMARTCITY = [sys.executable, "-m", "smartcity.cli.main"]
ENV = {**os.environ, "COLUMNS": "200"}
ENDPOINT = re.compile(r"(opc\.)?tcp://127\.0\.0\.1:\d+(/station)?")


def write_plan(folder: Path, simulators: list[dict[str, object]]) -> Path:
    plan = folder / "plan.yaml"
    plan.write_text(yaml.safe_dump({"simulators": simulators}), encoding="utf-8")
    return plan


async def start(plan: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *SMARTCITY,
        *("sim", "many", "--plan", str(plan)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=ENV,
    )


async def lines_until(process: asyncio.subprocess.Process, last: str, within: float) -> list[str]:
    """What ``process`` prints up to a line matching ``last``."""
    assert process.stdout is not None
    deadline = time.monotonic() + within
    lines: list[str] = []
    while not lines or not re.search(last, lines[-1]):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no line {last!r} within {within} s:\n" + "".join(lines)
        line = await asyncio.wait_for(process.stdout.readline(), remaining)
        assert line, "ended early:\n" + "".join(lines)
        lines.append(line.decode())
    return lines


async def test_one_process_serves_each_site_on_its_port_with_its_files(tmp_path: Path) -> None:
    plan = write_plan(
        tmp_path,
        [
            {"name": "sub", "kind": "modbus", "port": 0, "out": str(tmp_path / "sub"), "seed": 1},
            {"name": "air", "kind": "air", "port": 0, "out": str(tmp_path / "air"), "seed": 2},
            {"name": "water", "kind": "opcua", "port": 0, "out": str(tmp_path / "water")},
        ],
    )
    process = await start(plan)
    try:
        lines = await lines_until(process, r"^3 simulators ready$", 60)
        ready = {
            line.split(":", 1)[0]: line for line in lines if re.match(r"^\w+: \S.* ready ", line)
        }
        assert set(ready) == {"sub", "air", "water"}, "".join(lines)
        found = {name: ENDPOINT.search(line) for name, line in ready.items()}
        endpoints = {name: match.group(0) for name, match in found.items() if match}
        assert len(set(endpoints.values())) == 3  # a port each
        assert (tmp_path / "sub" / "substation-unit1.yaml").is_file()
        air = yaml.safe_load((tmp_path / "air" / "air-quality-station.yaml").read_text())
        assert (air["site"], air["endpoint"]) == ("son-tra-air", endpoints["air"])
        water = yaml.safe_load((tmp_path / "water" / "water-station.yaml").read_text())
        assert water["endpoint"] == endpoints["water"]
        assert (tmp_path / "water" / "trusted-servers" / "water-station.der").is_file()

        # Faults through each site's own protocol, as the city's schedule sends them.
        certs = tmp_path / "water" / "certs"
        said = await inject(FaultTarget("sub", endpoints["sub"], "voltage_sag", 5))
        assert said.startswith("voltage_sag on unit 1 of the substation"), said
        said = await inject(FaultTarget("air", endpoints["air"], "pollution_episode", 5))
        assert said.startswith("pollution_episode on unit 1 of the air-quality station"), said
        water_target = FaultTarget(
            "water",
            endpoints["water"],
            "turbidity_spike",
            5,
            certs / "agent.der",
            certs / "agent.pem",
        )
        said = await inject(water_target)
        assert said.startswith("turbidity_spike on Turbidity"), said
        with pytest.raises(FaultError, match="no fault 'voltage_sag'"):
            await inject(FaultTarget("air", endpoints["air"], "voltage_sag", 5))
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(process.wait(), 30) == 0
    assert process.stdout is not None
    assert "3 simulators stopped." in (await process.stdout.read()).decode()
    for endpoint in endpoints.values():
        port = int(endpoint.split(":")[2].split("/")[0])
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)


async def test_a_site_that_cannot_listen_ends_them_all(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        plan = write_plan(
            tmp_path,
            [
                {"name": "sub", "kind": "modbus", "port": 0, "out": str(tmp_path / "sub")},
                {"name": "air", "kind": "air", "port": port, "out": str(tmp_path / "air")},
            ],
        )
        process = await start(plan)
        out, _ = await asyncio.wait_for(process.communicate(), 60)
    text = " ".join(out.decode().split())
    assert process.returncode == 1, text
    assert f"error: air on 127.0.0.1:{port}: " in text, text
    assert "simulators ready" not in text


@pytest.mark.parametrize(
    ("simulators", "problem"),
    [
        ([], "simulators: List should have at least 1 item"),
        (
            [{"name": "a", "kind": "steam", "port": 1, "out": "x"}],
            "simulators.0: Input tag 'steam'",
        ),
        ([{"name": "a", "kind": "modbus", "out": "x"}], "simulators.0.modbus.port: Field required"),
        (
            [
                {"name": "a", "kind": "modbus", "port": 0, "out": "x"},
                {"name": "a", "kind": "air", "port": 0, "out": "y"},
            ],
            "site names must differ: a twice",
        ),
        (
            [
                {"name": "a", "kind": "modbus", "port": 5999, "out": "x"},
                {"name": "b", "kind": "air", "port": 5999, "out": "y"},
            ],
            "each site needs its own port: 127.0.0.1:5999 twice",
        ),
        ([{"name": "a b", "kind": "air", "port": 0, "out": "x"}], "simulators.0.air.name"),
        (
            [{"name": "a", "kind": "air", "port": 0, "out": "x", "site": "Son Tra"}],
            "site: 'Son Tra' must be",
        ),
    ],
)
async def test_a_wrong_plan_is_refused_naming_the_file(
    tmp_path: Path, simulators: list[dict[str, object]], problem: str
) -> None:
    plan = write_plan(tmp_path, simulators)
    process = await start(plan)
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    text = " ".join(out.decode().split())
    assert process.returncode == 2, text
    assert f"error: {plan}: " in text, text
    assert problem in text, text
    assert "ready" not in text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    document=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(
                st.sampled_from(["simulators", "name", "kind", "port", "out", "host", "seed", "x"])
                | st.text(max_size=5),
                inner,
                max_size=4,
            )
        ),
        max_leaves=12,
    )
    | st.builds(
        lambda kind, port, name: {
            "simulators": [{"kind": kind, "port": port, "name": name, "out": "o"}]
        },
        st.sampled_from(["modbus", "air", "opcua", "gas"]) | st.text(max_size=4),
        st.integers(-5, 70000) | st.text(max_size=4),
        st.text(max_size=12),
    ),
    raw=st.none() | st.binary(max_size=60),
)
def test_any_plan_file_is_a_plan_or_refused_with_its_name(
    document: object, raw: bytes | None
) -> None:
    """Whatever a plan file holds, it is a plan or refused with the file's name."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "plan.yaml"
        path.write_bytes(raw if raw is not None else json.dumps(document).encode())
        refused: InvalidArgument | None = None
        try:
            plan: SimPlan | None = load_plan(path)
        except InvalidArgument as exc:
            refused, plan = exc, None
        if refused is not None:
            assert refused.message.startswith(f"{path}: ")
        else:
            assert plan is not None
            assert plan.simulators
