"""The ports the city listens on, decided before the first process starts.

A port not given is its default (NATS's and each service's own), or with ``--ports auto`` a
free one; a port that is taken is reported at once, in one line naming the option that
moves it, before anything has started. Once resolved, :class:`Endpoints` gives every
process its addresses and URLs.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from smartcity.runtime.errors import FailedPrecondition, InvalidArgument
from smartcity.up.plan import Site

__all__ = [
    "DEFAULT_PORTS",
    "GRPC_OFFSETS",
    "Endpoints",
    "PortRequest",
    "PortTaken",
    "resolve_ports",
    "wanted_ports",
]

GRPC_OFFSETS: Mapping[str, int] = {"monitoring": 0, "records": 1, "identity": 2, "alerts": 3}
"""Each service's port above ``--grpc-port`` (the defaults are the services' own)."""


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


class Endpoints:
    """Where the city listens: the resolved ports on one host."""

    def __init__(self, host: str, ports: Mapping[str, int]) -> None:
        self.host = host
        self.ports = dict(ports)

    def address(self, key: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.ports[key]}"

    @property
    def nats_url(self) -> str:
        return f"nats://{self.address('nats')}"

    @property
    def console_url(self) -> str:
        return f"http://{self.address('console')}"

    @property
    def identity_http_url(self) -> str:
        return f"http://{self.address('identity_http')}"

    def sim_port(self, site: Site) -> int:
        return self.ports[f"sim:{site.id}"]


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
