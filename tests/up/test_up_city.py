"""``smartcity up`` end to end, as a user runs it: a subprocess in a temporary folder, on
free ports.

One city, one run of checks, because starting it is what costs: readings of every simulated
device reach monitoring; a turbidity spike injected through the fault endpoint of
``city.json`` raises an alert that arrives on the ALERTS subjects (read with the console's
NATS credentials from the data folder); an operator acknowledges it over gRPC and its
history says so; monitoring, SIGKILLed, is restarted and every device's stored sequences are
contiguous afterwards (JetStream kept what came meanwhile); SIGTERM stops everything, with
no process of the city left; a second ``up`` on the folder resumes with the accounts, the
credentials and the data of the first.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import grpc.aio
import pytest
import yaml
from google.protobuf import duration_pb2
from support import eventually
from up_support import alive, city_processes

from smartcity.alerts.v1 import alerts_pb2, alerts_pb2_grpc
from smartcity.common.v1 import common_pb2
from smartcity.identity.v1 import identity_pb2, identity_pb2_grpc
from smartcity.monitoring.v1 import monitoring_pb2, monitoring_pb2_grpc
from smartcity.runtime.bus import Bus
from smartcity.runtime.config import NatsSettings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

ADMIN_PASSWORD = "city-admin-8e1f2a"
OPERATOR_PASSWORD = "duty-operator-51c9"
WATER_SITE = "cau-do-water"
RULE = "test_turbidity_now"


class City:
    """A running ``smartcity up`` and what it wrote."""

    def __init__(self, process: asyncio.subprocess.Process, folder: Path, output: Path) -> None:
        self.process = process
        self.folder = folder
        self.output = output

    @property
    def info(self) -> dict[str, Any]:
        return json.loads((self.folder / "city.json").read_text())

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    async def wait_ready(self, within: float = 150) -> None:
        async def ready() -> bool:
            if self.process.returncode is not None:
                raise AssertionError(f"smartcity up ended early:\n{self.text()}")
            return "ready in" in self.text()

        await eventually(ready, within=within, interval=0.2, what="smartcity up ready")

    async def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), 60)


async def start_city(folder: Path, output: Path, *extra: str) -> City:
    env = {name: value for name, value in os.environ.items() if not name.startswith("SMARTCITY_")}
    env.update(
        SMARTCITY_ADMIN_PASSWORD=ADMIN_PASSWORD, SMARTCITY_OPERATOR_PASSWORD=OPERATOR_PASSWORD
    )
    with output.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "smartcity.cli.main", "up", "--data-dir", str(folder)),
            *("--ports", "auto", "--no-faults", "--duration", "300", *extra),
            stdout=log,
            stderr=log,
            env=env,
        )
    return City(process, folder, output)


async def login(identity: str, username: str, password: str) -> str:
    async with grpc.aio.insecure_channel(identity) as channel:
        answer = await identity_pb2_grpc.IdentityServiceStub(channel).Login(
            identity_pb2.LoginRequest(username=username, password=password), timeout=10
        )
    return str(answer.tokens.access_token)


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


def simulated_devices(info: dict[str, Any]) -> set[tuple[str, str]]:
    devices = set()
    for agent in info["agents"].values():
        for path in agent["profiles"]:
            profile = yaml.safe_load(Path(path).read_text())
            devices.add((profile["site"], profile["device"]))
    return devices


async def devices_in_monitoring(monitoring: str, token: str) -> set[tuple[str, str]]:
    async with grpc.aio.insecure_channel(monitoring) as channel:
        stub = monitoring_pb2_grpc.MonitoringServiceStub(channel)
        answer = await stub.ListDevices(
            monitoring_pb2.ListDevicesRequest(), metadata=bearer(token), timeout=10
        )
        latest = await stub.GetLatest(
            monitoring_pb2.GetLatestRequest(page=common_pb2.PageRequest(page_size=1000)),
            metadata=bearer(token),
            timeout=10,
        )
    with_readings = {(item.site, item.device) for item in latest.readings}
    return {(d.site, d.device) for d in answer.devices} & with_readings


def stored_sequences(folder: Path) -> dict[tuple[str, str], list[int]]:
    with contextlib.closing(
        sqlite3.connect(f"file:{folder / 'data' / 'monitoring.db'}?mode=ro", uri=True)
    ) as db:
        rows = db.execute(
            "SELECT DISTINCT s.site, s.device, p.sequence FROM points p "
            "JOIN series s ON s.id = p.series_id ORDER BY 1, 2, 3"
        ).fetchall()
    found: dict[tuple[str, str], list[int]] = {}
    for site, device, sequence in rows:
        found.setdefault((site, device), []).append(sequence)
    return found


async def test_up_runs_the_city_heals_it_stops_it_and_resumes(tmp_path: Path) -> None:
    folder = tmp_path / "city"
    began = time.monotonic()
    city = await start_city(folder, tmp_path / "up-1.out")
    try:
        await city.wait_ready()
        info = city.info
        services = info["services"]
        admin = await login(services["identity"]["grpc"], "ioc.admin", ADMIN_PASSWORD)
        operator = await login(services["identity"]["grpc"], "ioc.operator", OPERATOR_PASSWORD)

        # Every simulated site in one process, listed once; NATS is nats-server itself.
        assert {entry["process"] for entry in info["simulators"].values()} == {"sim"}
        assert all("pid" not in entry for entry in info["simulators"].values())
        assert info["sim"]["ready"]
        assert alive(info["sim"]["pid"])
        assert os.readlink(f"/proc/{info['nats']['pid']}/exe").endswith("/nats-server")
        assert "alert rule(s) for the simulated sites" in city.text()  # seeded by a step
        assert "site record(s)" in city.text()

        # Readings of every simulated device reach monitoring.
        expected = simulated_devices(info)
        assert {site for site, _ in expected} >= {WATER_SITE, "hoa-khanh-110kv"}
        monitoring = services["monitoring"]["grpc"]

        async def every_device_reports() -> bool:
            return await devices_in_monitoring(monitoring, admin) >= expected

        await eventually(every_device_reports, within=30, interval=0.5, what="every device")

        # A turbidity spike raises an alert that arrives on the ALERTS subjects.
        credentials = Path(info["nats"]["credentials_dir"]) / "console.yaml"
        bus = await Bus.connect(
            NatsSettings(url=info["nats"]["url"], credentials_file=credentials), name="test"
        )
        events: list[alerts_pb2.AlertEvent] = []

        async def collect(msg: Any) -> None:
            event = alerts_pb2.AlertEvent()
            event.ParseFromString(msg.data)
            events.append(event)

        await bus.subscribe("city.alerts.>", cb=collect)
        rule = alerts_pb2.Rule(
            id=RULE,
            display_name="turbidity above 2 NTU, at once",
            field="water_supply",
            selector=common_pb2.SeriesSelector(
                field="water_supply", site=WATER_SITE, metric="turbidity"
            ),
            severity=alerts_pb2.SEVERITY_CRITICAL,
            threshold=alerts_pb2.ThresholdCondition(
                comparison=alerts_pb2.COMPARISON_GREATER, threshold=2.0, hysteresis=0.2
            ),
            for_duration=duration_pb2.Duration(seconds=0),
            enabled=True,
        )
        alerts = services["alerts"]["grpc"]
        async with grpc.aio.insecure_channel(alerts) as channel:
            stub = alerts_pb2_grpc.AlertsServiceStub(channel)
            await stub.CreateRule(
                alerts_pb2.CreateRuleRequest(rule=rule), metadata=bearer(admin), timeout=10
            )
            simulator = info["simulators"][WATER_SITE]
            fault = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "smartcity.cli.main", "sim", "fault"),
                *(simulator["fault_endpoint"], "turbidity_spike", "--seconds", "60"),
                *("--cert", simulator["cert"], "--key", simulator["key"]),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            said, _ = await fault.communicate()
            assert fault.returncode == 0, said.decode()

            def firing() -> alerts_pb2.AlertEvent | None:
                for event in events:
                    if (
                        event.type == alerts_pb2.AlertEvent.TYPE_FIRING
                        and event.alert.rule_id == RULE
                    ):
                        return event
                return None

            await eventually(lambda: firing() is not None, within=30, what="the alert event")
            event = firing()
            assert event is not None
            assert event.alert.labels["site"] == WATER_SITE

            # Acknowledged by an operator, and its history says so.
            fingerprint = event.alert.fingerprint
            acknowledged = await stub.AcknowledgeAlert(
                alerts_pb2.AcknowledgeAlertRequest(fingerprint=fingerprint, comment="crew sent"),
                metadata=bearer(operator),
                timeout=10,
            )
            assert acknowledged.alert.acknowledge_comment == "crew sent"
            history = await stub.GetAlertHistory(
                alerts_pb2.GetAlertHistoryRequest(fingerprint=fingerprint),
                metadata=bearer(operator),
                timeout=10,
            )
        kinds = [item.type for item in history.events]
        assert alerts_pb2.AlertEvent.TYPE_FIRING in kinds
        acks = [e for e in history.events if e.type == alerts_pb2.AlertEvent.TYPE_ACKNOWLEDGED]
        assert [(e.comment, bool(e.actor.id)) for e in acks] == [("crew sent", True)]
        await bus.close()

        # Monitoring SIGKILLed: restarted, and nothing lost meanwhile.
        killed = services["monitoring"]["pid"]
        before = stored_sequences(folder)
        os.kill(killed, signal.SIGKILL)

        def restarted() -> bool:
            again = city.info["services"]["monitoring"]
            return again["ready"] and again["pid"] not in (None, killed)

        await eventually(restarted, within=30, interval=0.2, what="monitoring restarted")
        assert "monitoring (pid" in city.text()
        assert "killed by SIGKILL" in city.text()

        def caught_up() -> bool:
            after = stored_sequences(folder)
            return all(max(after.get(key, [0])) > max(seq) + 5 for key, seq in before.items())

        await eventually(caught_up, within=30, interval=0.5, what="storing after the restart")
        for device, sequences in stored_sequences(folder).items():
            gaps = [b for a, b in itertools.pairwise(sequences) if b != a + 1]
            assert gaps == [], f"{device}: sequences missing before {gaps[:5]}"
        running = city.info
        pids = [entry["pid"] for entry in running["services"].values()]
        pids += [entry["pid"] for entry in running["agents"].values()]
        pids += [running["nats"]["pid"], running["sim"]["pid"], killed]
    finally:
        code = await city.stop()
    output = city.text()
    assert code == 0, output
    assert "stopped; nothing left running" in output
    assert city_processes(folder) == []
    assert [pid for pid in pids if pid and alive(pid)] == []
    first_run = time.monotonic() - began

    # A second run resumes: same accounts and credentials, the data kept, nothing seeded.
    credentials = (folder / "nats-auth" / "credentials" / "monitoring.yaml").read_text()
    seeded = (folder / "seeded.json").read_text()
    city = await start_city(folder, tmp_path / "up-2.out")
    try:
        await city.wait_ready()
        services = city.info["services"]
        admin = await login(services["identity"]["grpc"], "ioc.admin", ADMIN_PASSWORD)
        known = await devices_in_monitoring(services["monitoring"]["grpc"], admin)
        assert known >= expected
        async with grpc.aio.insecure_channel(services["alerts"]["grpc"]) as channel:
            history = await alerts_pb2_grpc.AlertsServiceStub(channel).GetAlertHistory(
                alerts_pb2.GetAlertHistoryRequest(fingerprint=fingerprint),
                metadata=bearer(admin),
                timeout=10,
            )
        assert alerts_pb2.AlertEvent.TYPE_ACKNOWLEDGED in [e.type for e in history.events]
    finally:
        assert await city.stop() == 0, city.text()
    assert "resumed" in city.text()
    assert "password" not in city.text().split("ready in", 1)[1].split("Log in:", 1)[0]
    assert (folder / "seeded.json").read_text() == seeded
    assert (folder / "nats-auth" / "credentials" / "monitoring.yaml").read_text() == credentials
    assert city_processes(folder) == []
    print(f"first run with its checks {first_run:.0f} s, both {time.monotonic() - began:.0f} s")
