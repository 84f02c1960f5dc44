"""What ``smartcity up`` runs and where: the simulated sites and the data folder's layout.

Everything here is decided before the first process starts, so that the NATS authorization
(one user per service and per agent, each allowed only its own subjects) can be written
before the server starts: every simulated site's id, field and device id is known in
advance. The ports, decided then too, are in :mod:`smartcity.up.ports`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SIM_COMMANDS", "SITES", "Layout", "Site"]


@dataclass(frozen=True)
class Site:
    """A simulated station of the demo city and the agent that reads it."""

    id: str
    """Site id in subjects and records; also the id of the site's agent."""
    name: str
    name_vi: str
    kind: str
    field: str
    lat: float
    lon: float
    simulator: str
    """``modbus``, ``opcua`` or ``air``: the ``smartcity sim`` command that plays it."""
    device: str
    """The device id the agent publishes under."""
    template: str | None
    """The field plugin's device profile the agent reads it with (catalogue metric names);
    ``None``: the profile the simulator writes."""
    seed: int


# Approximate coordinates (WGS 84) of real places in Da Nang.
SITES: tuple[Site, ...] = (
    Site(
        "hoa-khanh-110kv",
        "Hoa Khanh 110 kV substation",
        "Trạm biến áp 110 kV Hòa Khánh",
        "substation",
        "electricity",
        16.0690,
        108.1480,
        "modbus",
        "t1-bay-22kv",
        "sim-substation-bay",
        11,
    ),
    Site(
        "lien-chieu-110kv",
        "Lien Chieu 110 kV substation",
        "Trạm biến áp 110 kV Liên Chiểu",
        "substation",
        "electricity",
        16.0920,
        108.1410,
        "modbus",
        "t1-bay-22kv",
        "sim-substation-bay",
        12,
    ),
    Site(
        "cau-do-water",
        "Cau Do water treatment plant",
        "Nhà máy nước Cầu Đỏ",
        "water_station",
        "water_supply",
        16.0085,
        108.1870,
        "opcua",
        "station-1",
        "sim-water-station",
        21,
    ),
    Site(
        "san-bay-water",
        "San Bay water treatment plant",
        "Nhà máy nước Sân Bay",
        "water_station",
        "water_supply",
        16.0590,
        108.1950,
        "opcua",
        "station-1",
        "sim-water-station",
        22,
    ),
    Site(
        "son-tra-air",
        "Son Tra air quality monitoring station",
        "Trạm quan trắc không khí Sơn Trà",
        "air_quality_station",
        "environment",
        16.0680,
        108.2400,
        "air",
        "air-quality-station",
        None,
        31,
    ),
)

SIM_COMMANDS: Mapping[str, str] = {"modbus": "sim modbus", "opcua": "sim opcua", "air": "sim air"}
"""The command each kind of simulator needs (``sim air`` may not be installed)."""


@dataclass(frozen=True)
class Layout:
    """Where everything lives in the data folder; the same on every run, so a second run
    finds the data, the credentials and the accounts of the first."""

    root: Path

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def config(self) -> Path:
        return self.root / "config"

    @property
    def nats_auth(self) -> Path:
        return self.root / "nats-auth"

    @property
    def nats_data(self) -> Path:
        return self.root / "nats"

    @property
    def stores(self) -> Path:
        """The services' ``data_dir``: identity.db, records.db, monitoring.db, alerts.db."""
        return self.root / "data"

    @property
    def agents(self) -> Path:
        return self.root / "agents"

    @property
    def sims(self) -> Path:
        return self.root / "sim"

    @property
    def city_file(self) -> Path:
        return self.root / "city.json"

    @property
    def seed_file(self) -> Path:
        return self.root / "seeded.json"

    @property
    def lock_file(self) -> Path:
        return self.root / "up.lock"

    def agent_dir(self, agent_id: str) -> Path:
        return self.agents / agent_id

    def sim_dir(self, site_id: str) -> Path:
        return self.sims / site_id
