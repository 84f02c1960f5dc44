"""A simulated water station served by a real OPC-UA server (asyncua).

The station pumps treated water from a clear-water tank into the city network. Its physics
are simple but coupled the way an operator expects them to be:

- the network draws water along a daily demand curve (low at night, peaks at breakfast and
  dinner time, Vietnam time) with slow random variation; that draw is the station's outflow;
- duty pumps start and stop with the demand, and the discharge pressure sags as the flow
  per running pump rises;
- the tank level integrates inflow minus outflow; the inflow from the treatment plant
  follows a proportional controller toward the level set-point (writable);
- turbidity, pH and residual chlorine wander around treated-water values (QCVN 01-1:2018/BYT
  ranges); residual chlorine follows the dose set-point (writable) minus a chlorine demand
  that grows with turbidity;
- raw-water salinity at the intake, in per mille (g/kg) as the ``water_supply`` field
  reports it, rises and falls with the semi-diurnal tide of the Han river mouth.

Faults are injected on command, from Python (:meth:`WaterStation.inject`) or by any OPC-UA
client through the ``InjectFault(fault, seconds)`` method on the station object, so that an
agent, the alert rules and the IOC dashboard can be tried against the failures they exist
for: a turbidity spike, a frozen sensor, a failed sensor (Bad status on its node only), an
inaccurate sensor (Uncertain status) and a station that stops answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import math
import random
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import structlog
from asyncua import Server, ua
from asyncua.common.utils import ServiceError
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from asyncua.server.monitored_item_service import MonitoredItemService, MonitoredItemValues
from cryptography import x509

from smartcity.agents.opcua.certificates import (
    application_uri_of,
    certificate_der,
    default_application_uri,
    generate_certificate,
    load_certificate,
)

log = structlog.get_logger(__name__)

NAMESPACE_URI = "urn:smartcity:sim:water-station"
PRODUCT_URI = "urn:smartcity:sim:water-station"
CERT_FILE = "water-station.der"
KEY_FILE = "water-station-key.pem"

Mode = Literal["None", "Sign", "SignAndEncrypt"]
_POLICY_TYPES = {
    "None": ua.SecurityPolicyType.NoSecurity,
    "Sign": ua.SecurityPolicyType.Basic256Sha256_Sign,
    "SignAndEncrypt": ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
}

VIETNAM_UTC_OFFSET = 7 * 3600
TIDE_PERIOD = 12.42 * 3600  # principal lunar semi-diurnal tide, seconds
DESIGN_FLOW = 1000.0  # m3/h drawn at a demand factor of 1
PUMP_CAPACITY = 500.0  # m3/h per duty pump at its best efficiency point
PUMPS = 3
TANK_AREA = 600.0  # m2
TANK_HEIGHT = 6.0  # m
LEVEL_GAIN = 400.0  # m3/h of extra inflow per metre below the set-point
MAX_INFLOW = 1800.0  # m3/h the treatment plant can deliver


@dataclass(frozen=True)
class Variable:
    """One node of the station: its browse name, unit and OPC-UA type."""

    name: str
    unit: str
    kind: ua.VariantType = ua.VariantType.Double
    writable: bool = False
    description: str = ""


VARIABLES: tuple[Variable, ...] = (
    Variable("Flow", "m3/h", description="Outflow to the network"),
    Variable("TotalVolume", "m3", description="Outflow totaliser"),
    Variable("Pressure", "bar", description="Discharge pressure"),
    Variable("TankLevel", "m", description="Clear-water tank level"),
    Variable("LevelSetpoint", "m", writable=True, description="Tank level set-point"),
    Variable("Turbidity", "NTU", description="Treated-water turbidity"),
    Variable("pH", "pH", description="Treated-water pH"),
    Variable("Salinity", "g/kg", description="Raw-water salinity at the intake (per mille)"),
    Variable("ResidualChlorine", "mg/L", description="Free residual chlorine at the outlet"),
    Variable("ChlorineDoseSetpoint", "mg/L", writable=True, description="Chlorine dose set-point"),
    *(
        Variable(f"Pump{n}.Running", "", ua.VariantType.Boolean, description=f"Pump {n} running")
        for n in range(1, PUMPS + 1)
    ),
)
_BY_NAME = {variable.name: variable for variable in VARIABLES}
SENSORS = ("Flow", "Pressure", "TankLevel", "Turbidity", "pH", "Salinity", "ResidualChlorine")
"""Variables that come from a measuring instrument and so can freeze or fail."""

FAULTS = {
    "turbidity_spike": "turbidity jumps to about 8 NTU and decays (filter breakthrough)",
    "frozen_sensor": "the sensor keeps its last value (Good status) while the process moves",
    "sensor_failure": "the node has no value and status BadSensorFailure",
    "uncertain_sensor": "the value keeps coming with status UncertainSensorNotAccurate",
    "offline": "the station stops answering (its server goes away) and then comes back",
    "no_subscriptions": "sessions open, but every CreateSubscription is refused "
    "(BadTooManySubscriptions), as an overloaded server answers",
    "clear": "end every fault now",
}
"""Fault names; frozen_sensor, sensor_failure and uncertain_sensor take a target, e.g.
``sensor_failure:pH`` (Turbidity when none is given)."""


class FaultError(ValueError):
    """A fault command that cannot be carried out; nothing was changed."""


@dataclass
class _Fault:
    kind: str
    started: float
    until: float
    held: float | bool | None = None


@dataclass
class StationModel:
    """The station's state and physics, independent of OPC-UA (deterministic for a seed)."""

    seed: int | None = None
    level: float = 4.0
    level_setpoint: float = 4.0
    dose_setpoint: float = 1.0
    total_volume: float = 0.0
    _rng: random.Random = field(init=False, repr=False)
    _demand_noise: float = field(default=0.0, init=False, repr=False)
    _last: float | None = field(default=None, init=False, repr=False)
    _pumps: int = field(default=2, init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    @staticmethod
    def demand_factor(moment: float) -> float:
        """Network demand relative to the design flow at Unix time ``moment``."""
        hour = ((moment + VIETNAM_UTC_OFFSET) % 86400) / 3600

        def bump(centre: float, width: float) -> float:
            distance = min(abs(hour - centre), 24 - abs(hour - centre))
            return math.exp(-0.5 * (distance / width) ** 2)

        return 0.5 + 0.8 * bump(6.5, 1.4) + 0.4 * bump(11.5, 1.6) + 0.7 * bump(18.5, 1.7)

    def step(self, moment: float, faults: Mapping[str, _Fault]) -> dict[str, float | bool]:
        """Advance to ``moment`` (Unix seconds of simulated time) and return every value."""
        hours = 0.0 if self._last is None else max(0.0, moment - self._last) / 3600
        self._last = moment
        gauss = self._rng.gauss
        self._demand_noise = 0.95 * self._demand_noise + gauss(0, 0.01)
        outflow = max(0.0, DESIGN_FLOW * self.demand_factor(moment) * (1 + self._demand_noise))
        # duty pumps with hysteresis, so they do not chatter around a threshold
        wanted = min(PUMPS, max(1, math.ceil(outflow / (0.9 * PUMP_CAPACITY))))
        if wanted > self._pumps or outflow < (self._pumps - 1) * 0.8 * PUMP_CAPACITY:
            self._pumps = wanted
        per_pump = outflow / (self._pumps * PUMP_CAPACITY)
        pressure = 4.3 - 1.4 * per_pump**2 + gauss(0, 0.02)
        inflow = min(
            MAX_INFLOW, max(0.0, outflow + LEVEL_GAIN * (self.level_setpoint - self.level))
        )
        self.level = min(TANK_HEIGHT, max(0.0, self.level + (inflow - outflow) * hours / TANK_AREA))
        self.total_volume += outflow * hours
        turbidity = max(0.05, 0.35 + gauss(0, 0.03))
        spike = faults.get("Turbidity")
        if spike is not None and spike.kind == "turbidity_spike":
            decay = max(5.0, (spike.until - spike.started) / 3)
            turbidity += 8.0 * math.exp(-(time.monotonic() - spike.started) / decay)
        hour_angle = 2 * math.pi * (((moment + VIETNAM_UTC_OFFSET) % 86400) / 86400)
        ph = 7.2 + 0.12 * math.sin(hour_angle - 1.0) + gauss(0, 0.015)
        tide = math.sin(2 * math.pi * moment / TIDE_PERIOD)
        salinity = max(0.02, 0.25 + 0.35 * max(0.0, tide) ** 2 + gauss(0, 0.01))
        demand = 0.45 + 0.08 * turbidity + gauss(0, 0.01)
        chlorine = max(0.0, self.dose_setpoint - demand)
        values: dict[str, float | bool] = {
            "Flow": round(outflow, 2),
            "TotalVolume": round(self.total_volume, 3),
            "Pressure": round(pressure, 3),
            "TankLevel": round(self.level, 3),
            "LevelSetpoint": self.level_setpoint,
            "Turbidity": round(turbidity, 3),
            "pH": round(ph, 3),
            "Salinity": round(salinity, 3),
            "ResidualChlorine": round(chlorine, 3),
            "ChlorineDoseSetpoint": self.dose_setpoint,
        }
        for n in range(1, PUMPS + 1):
            values[f"Pump{n}.Running"] = n <= self._pumps
        return values


class _Users:
    """Username/password check for the simulator; anonymous when no users are configured.
    asyncua asks it on every ActivateSession, so it also counts the sessions opened."""

    def __init__(self, users: Mapping[str, str] | None) -> None:
        self._users = dict(users or {})
        self.logins = 0

    def get_user(
        self,
        iserver: Any,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        if not self._users:
            self.logins += 1
            return User(role=UserRole.User)
        expected = self._users.get(username or "")
        if expected is None or password is None:
            return None
        if not hmac.compare_digest(expected.encode(), password.encode()):
            return None
        self.logins += 1
        return User(role=UserRole.User, name=username)


class _TrustList:
    """Accept a client certificate only if it is one of the trusted ones (byte for byte),
    currently valid and issued for the ApplicationUri the client announces."""

    def __init__(self, trusted: Iterable[bytes]) -> None:
        self._trusted = set(trusted)
        self._basic = CertificateValidator(
            CertificateValidatorOptions.TIME_RANGE | CertificateValidatorOptions.URI
        )

    async def __call__(self, cert: x509.Certificate, app: ua.ApplicationDescription) -> None:
        await self._basic.validate(cert, app)
        if certificate_der(cert) not in self._trusted:
            log.warning("untrusted client certificate refused", application_uri=app.ApplicationUri)
            raise ServiceError(ua.StatusCodes.BadCertificateUntrusted)


def _deadband_exceeded(
    self: MonitoredItemService, values: MonitoredItemValues, flt: ua.DataChangeFilter
) -> bool:
    """An absolute deadband as OPC 10000-4 §7.22.2 defines it: a change of status is always
    reported, and so is a value that appears or disappears (a Bad status carries none)."""
    current, previous = values.get_current_datavalue(), values.get_old_datavalue()
    if current is None or previous is None or flt.DeadbandType != ua.DeadbandType.Absolute:
        return True
    if (current.StatusCode or ua.StatusCode()) != (previous.StatusCode or ua.StatusCode()):
        return True
    now = current.Value.Value if current.Value is not None else None
    before = previous.Value.Value if previous.Value is not None else None
    if not isinstance(now, int | float) or not isinstance(before, int | float):
        return bool(now != before)
    return abs(now - before) > flt.DeadbandValue


# asyncua 2.1.0's server compares only values under a deadband: a status change within the
# deadband is never notified, and a value turning Null (every Bad status) raises TypeError
# inside the server so that notification is lost too. A monitored item with a deadband would
# then never see the faults this simulator exists to show; this restores the standard rule
# for the servers of this process.
MonitoredItemService._is_deadband_exceeded = _deadband_exceeded  # type: ignore[method-assign]


class WaterStation:
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
        problems = []
        unknown = [mode for mode in modes if mode not in _POLICY_TYPES]
        if unknown or not modes:
            problems.append(f"modes must be some of None, Sign, SignAndEncrypt, not {modes!r}")
        secure = any(mode != "None" for mode in modes)
        if secure and certificate_dir is None:
            problems.append("secure modes need certificate_dir for the station's certificate")
        if secure and not trusted_certificates and not accept_any_certificate:
            problems.append(
                "secure modes need trusted_certificates (the agent's certificate) or "
                "accept_any_certificate=True"
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
        self._faults: dict[str, _Fault] = {}
        self._server: Server | None = None
        self._nodes: dict[str, ua.NodeId] = {}
        self._clock: asyncio.Task[None] | None = None
        self._outage: asyncio.Task[None] | None = None
        self._epoch = (time.time(), time.monotonic())
        self._values: dict[str, float | bool] = {}
        self._users = _Users(self.users)
        self._subscriptions_refused_until = 0.0

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
        if variable not in _BY_NAME and not variable.startswith("Load.Tag"):
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
        server = Server(user_manager=self._users)
        await server.init()
        subscriptions = server.iserver.subscription_service
        create_subscription = subscriptions.create_subscription

        async def refusable(*args: Any, **kwargs: Any) -> ua.CreateSubscriptionResult:
            if time.monotonic() < self._subscriptions_refused_until:
                raise ServiceError(ua.StatusCodes.BadTooManySubscriptions)
            return await create_subscription(*args, **kwargs)

        subscriptions.create_subscription = refusable  # type: ignore[method-assign]
        server.set_endpoint(self.url)
        server.set_server_name(f"smartcity water station {self.name}")
        server.product_uri = PRODUCT_URI
        if any(mode != "None" for mode in self.modes):
            cert, key = self._certificate()
            self.application_uri = application_uri_of(cert)
            await server.load_certificate(str(cert))
            await server.load_private_key(str(key))
            if not self.accept_any_certificate:
                server.set_certificate_validator(_TrustList(self._trusted()))
        await server.set_application_uri(self.application_uri)
        server.set_security_policy([_POLICY_TYPES[mode] for mode in self.modes])
        server.set_identity_tokens(
            [ua.UserNameIdentityToken] if self.users else [ua.AnonymousIdentityToken]
        )
        for node, limit in self.operation_limits.items():
            if limit is not None:
                await server.write_attribute_value(
                    ua.NodeId(node), ua.DataValue(ua.Variant(limit, ua.VariantType.UInt32))
                )
        self.namespace_index = await server.register_namespace(NAMESPACE_URI)
        await self._populate(server)
        return server

    def _certificate(self) -> tuple[Path, Path]:
        assert self.certificate_dir is not None
        folder = self.certificate_dir
        cert, key = folder / CERT_FILE, folder / KEY_FILE
        if not cert.exists() or not key.exists():
            folder.mkdir(parents=True, exist_ok=True)
            names = [self.host] if not _is_ip(self.host) else []
            generate_certificate(
                cert,
                key,
                application_uri=default_application_uri("water-station"),
                common_name=f"smartcity water station {self.name}",
                hostnames=[*names, socket.gethostname(), "localhost"],
                ip_addresses=[self.host] if _is_ip(self.host) else [],
                role="server",
                overwrite=True,
            )
        return cert, key

    def _trusted(self) -> list[bytes]:
        trusted = []
        for entry in self.trusted_certificates:
            files = (
                sorted(p for p in entry.iterdir() if p.suffix.lower() in (".der", ".pem"))
                if entry.is_dir()
                else [entry]
            )
            trusted += [certificate_der(load_certificate(path)) for path in files]
        return trusted

    async def _populate(self, server: Server) -> None:
        idx = self.namespace_index
        station = await server.nodes.objects.add_object(
            ua.NodeId(self.name, idx), ua.QualifiedName(self.name, idx)
        )
        values = self._values or self.model.step(self._simulated_now(), {})
        self._nodes = {}
        for variable in VARIABLES:
            node = await station.add_variable(
                ua.NodeId(f"{self.name}.{variable.name}", idx),
                ua.QualifiedName(variable.name, idx),
                ua.Variant(values[variable.name], variable.kind),
                varianttype=variable.kind,
            )
            if variable.unit:
                await node.write_attribute(
                    ua.AttributeIds.Description,
                    ua.DataValue(
                        ua.Variant(ua.LocalizedText(f"{variable.description} [{variable.unit}]"))
                    ),
                )
            if variable.writable:
                await node.set_writable()
            self._nodes[variable.name] = node.nodeid
        for number in range(1, self.extra_tags + 1):
            tag = f"Load.Tag{number:05d}"
            node = await station.add_variable(
                ua.NodeId(f"{self.name}.{tag}", idx),
                ua.QualifiedName(tag, idx),
                ua.Variant(number * 0.25, ua.VariantType.Double),
            )
        await station.add_method(
            ua.NodeId(f"{self.name}.InjectFault", idx),
            ua.QualifiedName("InjectFault", idx),
            self._on_inject_fault,
            [
                _argument(
                    "fault",
                    ua.VariantType.String,
                    "; ".join(f"{k}: {v}" for k, v in FAULTS.items()),
                ),
                _argument("seconds", ua.VariantType.Double, "how long the fault lasts"),
            ],
            [_argument("result", ua.VariantType.String, "what was done")],
        )

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
        for name, value in values.items():
            fault = self._faults.get(name)
            status = ua.StatusCodes.Good
            if fault is not None and fault.kind == "frozen_sensor":
                if fault.held is None:
                    fault.held = value
                value = fault.held
            elif fault is not None and fault.kind == "uncertain_sensor":
                status = ua.StatusCodes.UncertainSensorNotAccurate
            variable = _BY_NAME[name]
            if fault is not None and fault.kind == "sensor_failure":
                data = ua.DataValue(
                    ua.Variant(None, ua.VariantType.Null),
                    StatusCode=ua.StatusCode(ua.StatusCodes.BadSensorFailure),
                    SourceTimestamp=now,
                    ServerTimestamp=now,
                )
            else:
                data = ua.DataValue(
                    ua.Variant(value, variable.kind),
                    StatusCode=ua.StatusCode(status),
                    SourceTimestamp=now,
                    ServerTimestamp=now,
                )
                published[name] = value
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

    # -- faults ------------------------------------------------------------------------

    async def inject(self, fault: str, seconds: float) -> str:
        """Start ``fault`` (see :data:`FAULTS`) for ``seconds``; returns what was done.
        Raises :class:`FaultError` and changes nothing when the command is wrong."""
        kind, _, target = fault.strip().partition(":")
        if kind not in FAULTS:
            raise FaultError(f"unknown fault {kind!r}; known: {', '.join(FAULTS)}")
        if kind == "clear":
            self._faults.clear()
            self._subscriptions_refused_until = 0.0
            await self.step()
            return "all faults cleared"
        if not (
            isinstance(seconds, int | float) and math.isfinite(seconds) and 0 < seconds <= 86400
        ):
            raise FaultError(f"seconds must be more than 0 and at most 86400, not {seconds!r}")
        if kind == "offline":
            if target:
                raise FaultError("offline takes no target: the whole station stops answering")
            if self._outage is not None and not self._outage.done():
                raise FaultError("the station is already offline")
            self._outage = asyncio.create_task(self._go_offline(seconds))
            return f"offline for {seconds:g} s"
        if kind == "no_subscriptions":
            if target:
                raise FaultError("no_subscriptions takes no target: it is the whole server")
            self._subscriptions_refused_until = time.monotonic() + seconds
            return f"no_subscriptions for {seconds:g} s"
        if kind == "turbidity_spike":
            if target and target != "Turbidity":
                raise FaultError("turbidity_spike applies to Turbidity only")
            target = "Turbidity"
        target = target or "Turbidity"
        if target not in SENSORS:
            raise FaultError(f"{target!r} is not a sensor; sensors: {', '.join(SENSORS)}")
        started = time.monotonic()
        self._faults[target] = _Fault(kind, started, started + seconds)
        await self.step()
        log.info("water station fault", fault=kind, target=target, seconds=seconds)
        return f"{kind} on {target} for {seconds:g} s"

    def _expire_faults(self) -> None:
        now = time.monotonic()
        for name in [name for name, fault in self._faults.items() if fault.until <= now]:
            del self._faults[name]

    async def _go_offline(self, seconds: float) -> None:
        await asyncio.sleep(0.2)  # let the InjectFault call that asked for it be answered
        await self._stop_server()
        await asyncio.sleep(seconds)
        await self.start()

    async def _on_inject_fault(self, parent: ua.NodeId, *arguments: ua.Variant) -> Any:
        if len(arguments) < 2:
            return ua.StatusCode(ua.StatusCodes.BadArgumentsMissing)
        if len(arguments) > 2:
            return ua.StatusCode(ua.StatusCodes.BadTooManyArguments)
        fault = arguments[0].Value if isinstance(arguments[0], ua.Variant) else arguments[0]
        seconds = arguments[1].Value if isinstance(arguments[1], ua.Variant) else arguments[1]
        if (
            not isinstance(fault, str)
            or isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
        ):
            return ua.StatusCode(ua.StatusCodes.BadInvalidArgument)
        try:
            done = await self.inject(fault, float(seconds))
        except FaultError as exc:
            log.warning("water station fault refused", reason=str(exc))
            return ua.StatusCode(ua.StatusCodes.BadInvalidArgument)
        return [ua.Variant(done, ua.VariantType.String)]


def _argument(name: str, kind: ua.VariantType, description: str) -> ua.Argument:
    return ua.Argument(
        Name=name,
        DataType=ua.NodeId(kind.value),
        ValueRank=-1,
        Description=ua.LocalizedText(description),
    )


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


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
