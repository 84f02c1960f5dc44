"""Helpers for the OPC-UA tests: certificates, a simulated station, profiles, a reading sink.

Everything here is real: certificates are generated, the station is an asyncua server on a
loopback port, profiles go through ``load_profile`` like a user's file would.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from smartcity.agents.opcua.certificates import default_application_uri, generate_certificate
from smartcity.agents.profile import OpcuaDevice, load_profile
from smartcity.agents.resilience import Backoff, CircuitBreaker
from smartcity.agents.sim.water_station import CERT_FILE, WaterStation

USERS = {"operator": "s3cret-pass"}

POINTS = {
    "flow_rate": "Flow",
    "total_volume": "TotalVolume",
    "pressure": "Pressure",
    "tank_level": "TankLevel",
    "level_setpoint": "LevelSetpoint",
    "turbidity": "Turbidity",
    "ph": "pH",
    "raw_water_salinity": "Salinity",
    "residual_chlorine": "ResidualChlorine",
    "chlorine_dose_setpoint": "ChlorineDoseSetpoint",
    "pump_1_running": "Pump1.Running",
    "pump_2_running": "Pump2.Running",
    "pump_3_running": "Pump3.Running",
}
"""Profile point name → station variable."""


@dataclass(frozen=True)
class Pki:
    folder: Path
    agent_cert: Path
    agent_key: Path
    stranger_cert: Path
    """A valid client certificate that the station was not told to trust."""
    stranger_key: Path
    station_dir: Path


def make_pki(folder: Path) -> Pki:
    folder.mkdir(parents=True, exist_ok=True)
    agent = generate_certificate(
        folder / "agent.der",
        folder / "agent.pem",
        application_uri=default_application_uri("agent"),
        role="client",
    )
    stranger = generate_certificate(
        folder / "stranger.der",
        folder / "stranger.pem",
        application_uri="urn:elsewhere:smartcity:agent",
        role="client",
    )
    return Pki(folder, agent.cert, agent.key, stranger.cert, stranger.key, folder / "station")


def station_for(pki: Pki, **options: Any) -> WaterStation:
    """A station on an ephemeral loopback port that trusts the agent and wants a user name.
    Values only change on ``step()`` unless ``update_interval`` is given."""
    settings: dict[str, Any] = {
        "certificate_dir": pki.station_dir,
        "trusted_certificates": [pki.agent_cert],
        "users": USERS,
        "update_interval": None,
        "seed": 7,
    }
    settings.update(options)
    return WaterStation("127.0.0.1", 0, **settings)


def profile_for(
    station: WaterStation,
    pki: Pki,
    *,
    mode: str = "subscribe",
    points: Sequence[dict[str, Any]] | None = None,
    security: dict[str, Any] | None = None,
    **fields: Any,
) -> OpcuaDevice:
    """A profile file for ``station`` written next to the certificates and loaded the way
    the agent loads one (relative certificate paths included). The station's certificate is
    put in the default trust folder beside it, as the engineer commissioning it would."""
    trust(station, pki.folder / "trusted-servers")
    data: dict[str, Any] = {
        "site": "cau-do",
        "field": "water_supply",
        "device": "station-1",
        "protocol": "opcua",
        "endpoint": station.url,
        "mode": mode,
        "poll_interval": "200ms",
        "timeout": "2s",
        "security": security
        if security is not None
        else {
            "policy": "Basic256Sha256",
            "mode": "SignAndEncrypt",
            "cert": pki.agent_cert.name,
            "key": pki.agent_key.name,
            "username": "operator",
            "password": USERS["operator"],
        },
        "points": list(points)
        if points is not None
        else [{"name": name, "node": station.node_id(node)} for name, node in POINTS.items()],
    }
    data.update(fields)
    path = pki.folder / f"profile-{uuid.uuid4().hex[:8]}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    profile = load_profile(path)
    assert isinstance(profile, OpcuaDevice)
    return profile


def trust(station: WaterStation, folder: Path) -> Path | None:
    """Copy the station's certificate into ``folder`` (a trust list); None when it has none."""
    if station.certificate_dir is None or not (station.certificate_dir / CERT_FILE).exists():
        return None
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(station.certificate_dir / CERT_FILE, folder / CERT_FILE))


def fast_breaker() -> CircuitBreaker:
    """Retries within a fraction of a second, so that recovery tests stay short."""
    return CircuitBreaker(threshold=2, backoff=Backoff(initial=0.1, maximum=0.4))


def expected(station: WaterStation, variable: str) -> Any:
    data = station.read(variable)
    return data.Value.Value if data.Value is not None else None


class FreezableProxy:
    """A TCP relay between the agent and the station that can stop relaying while keeping
    both connections open: a half-open link, as a failing switch or a hung PLC leaves it."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._thawed = asyncio.Event()
        self._thawed.set()
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def freeze(self) -> None:
        self._thawed.clear()

    def thaw(self) -> None:
        self._thawed.set()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            await self._server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        await self._thawed.wait()
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.append(upstream_writer)

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await source.read(65536):
                    await self._thawed.wait()
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pump(reader, upstream_writer), pump(upstream_reader, writer))
