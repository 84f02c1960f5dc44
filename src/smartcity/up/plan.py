"""What ``smartcity up`` runs and where: the sites, the ports and the data folder's layout.

Everything here is decided before the first process starts, so that a port that is taken is
reported at once, in one line naming the option that moves it, and so that the NATS
authorization (one user per service and per agent, each allowed only its own subjects) can
be written before the server starts: every simulated site's id, field and device id is known
in advance.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from smartcity.runtime.errors import FailedPrecondition, InvalidArgument

__all__ = [
    "DEFAULT_PORTS",
    "GRPC_OFFSETS",
    "SIM_COMMANDS",
    "SITES",
    "Layout",
    "PortRequest",
    "PortTaken",
    "Site",
    "resolve_ports",
    "wanted_ports",
]


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

GRPC_OFFSETS: Mapping[str, int] = {"monitoring": 0, "records": 1, "identity": 2, "alerts": 3}
"""Each service's port above ``--grpc-port`` (the defaults are the services' own)."""


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


# -- ports -----------------------------------------------------------------------------------


class PortTaken(FailedPrecondition):
    """A port that cannot be bound; the message names it and the option that moves it."""


@dataclass(frozen=True)
class PortRequest:
    """One port the city listens on: what it is for, the option that sets it, the port
    (0: pick a free one)."""

    key: str
    what: str
    option: str
    port: int


DEFAULT_PORTS: Mapping[str, int] = {
    "nats": 4222,
    "console": 8080,
    "grpc": 50051,
    "identity_http": 8053,
    "sim": 5020,
}
"""The ports of a fixed city: NATS's and the services' own defaults."""


def wanted_ports(
    *,
    nats: int | None,
    console: int | None,
    grpc_base: int | None,
    identity_http: int | None,
    sim_base: int | None,
    sites: tuple[Site, ...],
    auto: bool,
    with_console: bool,
) -> list[PortRequest]:
    """Every port of the city. A port not given is its default, or 0 (pick a free one)
    with ``auto``; a base given as 0 picks free ones for all it numbers."""

    def port(value: int | None, key: str) -> int:
        if value is None:
            return 0 if auto else DEFAULT_PORTS[key]
        return value

    def offset(base: int, by: int) -> int:
        return 0 if base == 0 else base + by

    grpc, sim = port(grpc_base, "grpc"), port(sim_base, "sim")
    requests = [PortRequest("nats", "NATS", "--nats-port", port(nats, "nats"))]
    for name, by in GRPC_OFFSETS.items():
        requests.append(PortRequest(name, f"{name} gRPC", "--grpc-port", offset(grpc, by)))
    requests.append(
        PortRequest(
            "identity_http",
            "identity key set (HTTP)",
            "--identity-http-port",
            port(identity_http, "identity_http"),
        )
    )
    if with_console:
        requests.append(
            PortRequest("console", "console", "--console-port", port(console, "console"))
        )
    for index, site in enumerate(sites):
        requests.append(
            PortRequest(f"sim:{site.id}", f"{site.id} simulator", "--sim-port", offset(sim, index))
        )
    return requests


def resolve_ports(host: str, requests: list[PortRequest]) -> dict[str, int]:
    """The port of every request: fixed ones checked free, the others picked free.

    Raises :class:`PortTaken` for a fixed port that something else holds (or that two
    requests share), :class:`InvalidArgument` for one out of range.
    """
    chosen: dict[str, int] = {}
    owners: dict[int, PortRequest] = {}
    for request in requests:
        if not 0 <= request.port <= 65535:
            raise InvalidArgument(
                f"port {request.port} ({request.what}) is out of range: {request.option}"
            )
        if request.port == 0:
            continue
        other = owners.get(request.port)
        if other is not None:
            raise PortTaken(
                f"port {request.port} is wanted for both {other.what} and {request.what}: "
                f"change {request.option}, or use --ports auto"
            )
        if not _bindable(host, request.port):
            raise PortTaken(
                f"port {request.port} ({request.what}) is taken on {host}: choose another with "
                f"{request.option}, or use --ports auto"
            )
        owners[request.port] = request
        chosen[request.key] = request.port
    for request in requests:
        if request.port == 0:
            port = _free_port(host, set(owners))
            owners[port] = request
            chosen[request.key] = port
    return chosen


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _bindable(host: str, port: int) -> bool:
    # SO_REUSEADDR as the servers themselves set it: a port in TIME_WAIT after the last run
    # is free for them, and so for this check.
    with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _free_port(host: str, taken: set[int]) -> int:
    """A port the kernel offers as free now and that no other request of this run holds."""
    for _ in range(100):
        with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
            with contextlib.suppress(OSError):
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, 0))
            port = int(probe.getsockname()[1])
        if port not in taken:
            return port
    raise PortTaken(f"found no free port on {host}")
