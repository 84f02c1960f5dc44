"""A simulated water station served by a real OPC-UA server (asyncua).

A :class:`WaterStation` runs its process on a clock and publishes every value to the node
that holds it. What it is made of lives beside it: the physics in :mod:`.water_model`, the
address space in :mod:`.water_nodes`, the faults and the ``InjectFault`` method in
:mod:`.water_faults`, the server's security (policies, certificates, users) in
:mod:`.water_server`. The names a user of the station needs are importable from here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from asyncua import Server, ua

from smartcity.agents.opcua.certificates import default_application_uri
from smartcity.agents.sim.water_faults import (
    FAULTS,
    SENSORS,
    FaultError,
    FaultInjection,
    faulted,
)
from smartcity.agents.sim.water_model import VIETNAM_UTC_OFFSET, StationModel
from smartcity.agents.sim.water_nodes import BY_NAME, NAMESPACE_URI, VARIABLES, add_station
from smartcity.agents.sim.water_server import (
    CERT_FILE,
    KEY_FILE,
    PRODUCT_URI,
    Mode,
    StationUsers,
    new_server,
    security_problems,
)

__all__ = [
    "CERT_FILE",
    "FAULTS",
    "KEY_FILE",
    "NAMESPACE_URI",
    "PRODUCT_URI",
    "SENSORS",
    "VARIABLES",
    "VIETNAM_UTC_OFFSET",
    "FaultError",
    "Mode",
    "StationModel",
    "WaterStation",
    "serve_water_station",
]

log = structlog.get_logger(__name__)


class WaterStation(FaultInjection):
    """A water station on ``opc.tcp://host:port/path``; use ``async with`` or start/stop.

    ``modes`` are the Basic256Sha256 message security modes served; ``"None"`` adds an
    unsecured endpoint and is only served when listed. Secure modes need
    ``certificate_dir`` (the station's certificate and key are created there when missing)
    and either ``trusted_certificates`` (client certificate files or folders) or
    ``accept_any_certificate=True``. ``users`` maps user names to passwords; without it the
    station accepts anonymous sessions. ``update_interval`` is the simulation step in
    seconds (``None``: values change only on :meth:`step`); ``speed`` runs simulated time
    faster than the wall clock, to watch a whole day of demand in minutes.
    ``extra_tags`` adds that many static Double nodes (``Station1.Load.Tag00001``…) for
    read-throughput checks. ``max_nodes_per_read`` and ``max_monitored_items_per_call`` are
    advertised in the server's OperationLimits, as a small PLC would, to check that clients
    honour them.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 4840,
        *,
        name: str = "Station1",
        path: str = "/station",
        modes: Sequence[Mode] = ("Sign", "SignAndEncrypt"),
        certificate_dir: str | Path | None = None,
        trusted_certificates: Sequence[str | Path] = (),
        accept_any_certificate: bool = False,
        users: Mapping[str, str] | None = None,
        update_interval: float | None = 1.0,
        speed: float = 1.0,
        seed: int | None = None,
        extra_tags: int = 0,
        max_nodes_per_read: int | None = None,
        max_monitored_items_per_call: int | None = None,
    ) -> None:
        problems = security_problems(
            modes, certificate_dir, trusted_certificates, accept_any_certificate
        )
        if not 0 <= port <= 65535:
            problems.append(f"port {port} is not 0..65535")
        if not path.startswith("/"):
            problems.append(f"path {path!r} must start with /")
        if not name.isidentifier():
            problems.append(f"name {name!r} must be letters, digits and _ (like Station1)")
        if update_interval is not None and not update_interval > 0:
            problems.append("update_interval must be a positive number of seconds or None")
        if not (speed > 0 and math.isfinite(speed)):
            problems.append("speed must be a positive number")
        if not 0 <= extra_tags <= 1_000_000:
            problems.append("extra_tags must be between 0 and 1,000,000")
        for user, password in (users or {}).items():
            if not user or not password:
                problems.append("every user needs a non-empty name and password")
        for label, limit in (
            ("max_nodes_per_read", max_nodes_per_read),
            ("max_monitored_items_per_call", max_monitored_items_per_call),
        ):
            if limit is not None and not 1 <= limit <= 2**32 - 1:
                problems.append(f"{label} must be a positive 32-bit number")
        if problems:
            raise ValueError("water station: " + "; ".join(problems))
        super().__init__()
        self.host = host
        self.port = port
        self.name = name
        self.path = path
        self.modes = tuple(dict.fromkeys(modes))
        self.certificate_dir = Path(certificate_dir) if certificate_dir is not None else None
        self.trusted_certificates = [Path(p) for p in trusted_certificates]
        self.accept_any_certificate = accept_any_certificate
        self.users = dict(users or {})
        self.update_interval = update_interval
        self.speed = speed
        self.extra_tags = extra_tags
        self.operation_limits = {
            ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead: (
                max_nodes_per_read
            ),
            ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall: (
                max_monitored_items_per_call
            ),
        }
        self.model = StationModel(seed=seed)
        self.namespace_index = 2
        self.application_uri = default_application_uri("water-station")
        self._server: Server | None = None
        self._nodes: dict[str, ua.NodeId] = {}
        self._clock: asyncio.Task[None] | None = None
        self._epoch = (time.time(), time.monotonic())
        self._values: dict[str, float | bool] = {}
        self._users = StationUsers(self.users)

    @property
    def sessions(self) -> int:
        """Sessions activated since the station was created (across restarts)."""
        return self._users.logins

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"opc.tcp://{self.host}:{self.port}{self.path}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def node_id(self, variable: str) -> str:
        """The node id text of a variable, for profiles: ``ns=2;s=Station1.Turbidity``."""
        if variable not in BY_NAME and not variable.startswith("Load.Tag"):
            raise KeyError(f"{variable!r} is not a variable of the water station")
        return f"ns={self.namespace_index};s={self.name}.{variable}"

    async def __aenter__(self) -> WaterStation:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Build the address space and listen. After :meth:`stop` it starts again on the
        same port (a port of 0 is replaced by the one picked at the first start)."""
        if self._server is not None:
            return
        server = await self._build()
        try:
            await server.start()
        except OSError as exc:
            await server.stop()
            raise OSError(exc.errno, f"water station cannot listen on {self.url}: {exc}") from None
        assert server.bserver is not None
        self.port = server.bserver.port
        for endpoint in server.iserver.endpoints:  # bound port replaces a requested port 0
            endpoint.EndpointUrl = self.url
            endpoint.Server.DiscoveryUrls = [self.url]
        self._server = server
        await self.step()
        if self.update_interval is not None:
            self._clock = asyncio.create_task(self._run_clock(self.update_interval))
        log.info("water station listening", url=self.url, modes=list(self.modes))

    async def stop(self) -> None:
        """Stop serving; the simulated state is kept for the next :meth:`start`."""
        for task in (self._outage, self._clock):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._outage = None
        await self._stop_server()

    async def _stop_server(self) -> None:
        if self._clock is not None and self._clock is not asyncio.current_task():
            self._clock.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._clock
        self._clock = None
        server, self._server = self._server, None
        if server is not None:
            await server.stop()
            log.info("water station stopped", url=self.url)

    async def _build(self) -> Server:
        server, self.application_uri = await new_server(
            self.url,
            self.name,
            self.host,
            modes=self.modes,
            users=self._users,
            certificate_dir=self.certificate_dir,
            trusted=None if self.accept_any_certificate else self.trusted_certificates,
            operation_limits=self.operation_limits,
        )
        self._refuse_subscriptions_on_demand(server)
        self.namespace_index = await server.register_namespace(NAMESPACE_URI)
        values = self._values or self.model.step(self._simulated_now(), {})
        station, self._nodes = await add_station(
            server, self.name, self.namespace_index, values, self.extra_tags
        )
        await self._add_fault_method(station, self.name, self.namespace_index)
        return server

    # -- simulation --------------------------------------------------------------------

    def _simulated_now(self) -> float:
        wall, mono = self._epoch
        return wall + (time.monotonic() - mono) * self.speed

    async def _run_clock(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.step()
            except Exception:
                log.exception("water station step failed")

    async def step(self) -> dict[str, float | bool]:
        """Advance the simulation to now and publish every value; returns what the nodes
        hold (a failed sensor's value is left out)."""
        self._expire_faults()
        self._read_setpoints()
        values = self.model.step(self._simulated_now(), self._faults)
        self._values = values
        server = self._server
        if server is None:
            return {}
        now = datetime.now(UTC)
        published: dict[str, float | bool] = {}
        for name, measured in values.items():
            value, status = faulted(self._faults.get(name), measured)
            if value is None:
                variant = ua.Variant(None, ua.VariantType.Null)
            else:
                variant = ua.Variant(value, BY_NAME[name].kind)
                published[name] = value
            data = ua.DataValue(
                variant,
                StatusCode=ua.StatusCode(status),
                SourceTimestamp=now,
                ServerTimestamp=now,
            )
            await server.write_attribute_value(self._nodes[name], data)
        return published

    def _read_setpoints(self) -> None:
        """Pick up set-points written by OPC-UA clients since the last step."""
        server = self._server
        if server is None:
            return
        for name, attribute in (
            ("LevelSetpoint", "level_setpoint"),
            ("ChlorineDoseSetpoint", "dose_setpoint"),
        ):
            data = server.read_attribute_value(self._nodes[name])
            value = data.Value.Value if data.Value is not None else None
            if isinstance(value, float) and math.isfinite(value):
                setattr(self.model, attribute, value)

    def read(self, variable: str) -> ua.DataValue:
        """What the server holds for ``variable`` right now (value, status, timestamps)."""
        if self._server is None:
            raise RuntimeError("the water station is not running")
        return self._server.read_attribute_value(ua.NodeId.from_string(self.node_id(variable)))


async def serve_water_station(
    host: str = "127.0.0.1",
    port: int = 4840,
    *,
    stop_event: asyncio.Event | None = None,
    on_ready: Callable[[WaterStation], Awaitable[None] | None] | None = None,
    **options: Any,
) -> None:
    """Run a :class:`WaterStation` (``options`` are its keyword arguments) until
    ``stop_event`` is set or the task is cancelled. ``on_ready`` is called once it listens,
    e.g. to print its URL and node ids."""
    async with WaterStation(host, port, **options) as station:
        if on_ready is not None:
            outcome = on_ready(station)
            if asyncio.iscoroutine(outcome):
                await outcome
        await (stop_event or asyncio.Event()).wait()
