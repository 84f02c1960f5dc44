"""Faults of the simulated water station, injected on command.

From Python (:meth:`FaultInjection.inject`) or by any OPC-UA client through the
``InjectFault(fault, seconds)`` method on the station object, so that an agent, the alert
rules and the IOC dashboard can be tried against the failures they exist for: a turbidity
spike, a frozen sensor, a failed sensor (Bad status on its node only), an inaccurate sensor
(Uncertain status), a station that stops answering and one that refuses subscriptions.

A turbidity spike changes the water itself (:mod:`.water_model`); a sensor fault changes only
what that sensor's node shows (:func:`faulted`); the last two change the server.
"""

from __future__ import annotations

import abc
import asyncio
import math
import time
from dataclasses import dataclass
from typing import Any

import structlog
from asyncua import Server, ua
from asyncua.common.node import Node
from asyncua.common.utils import ServiceError

__all__ = ["FAULTS", "SENSORS", "ActiveFault", "FaultError", "FaultInjection", "faulted"]

log = structlog.get_logger(__name__)

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

SENSORS = ("Flow", "Pressure", "TankLevel", "Turbidity", "pH", "Salinity", "ResidualChlorine")
"""Variables that come from a measuring instrument and so can freeze or fail."""


class FaultError(ValueError):
    """A fault command that cannot be carried out; nothing was changed."""


@dataclass
class ActiveFault:
    """A fault in force on one sensor, until ``until`` (``time.monotonic()`` seconds)."""

    kind: str
    started: float
    until: float
    held: float | bool | None = None
    """The value a frozen sensor keeps showing."""


def faulted(fault: ActiveFault | None, value: float | bool) -> tuple[float | bool | None, int]:
    """The value (``None``: no value at all) and status code a sensor's node shows while
    ``fault`` is in force on it."""
    if fault is None:
        return value, ua.StatusCodes.Good
    if fault.kind == "frozen_sensor":
        if fault.held is None:
            fault.held = value
        return fault.held, ua.StatusCodes.Good
    if fault.kind == "uncertain_sensor":
        return value, ua.StatusCodes.UncertainSensorNotAccurate
    if fault.kind == "sensor_failure":
        return None, ua.StatusCodes.BadSensorFailure
    return value, ua.StatusCodes.Good


class FaultInjection(abc.ABC):
    """The faults in force on a station and the commands that start and end them; the
    station (:class:`~.water_station.WaterStation`) publishes its values and runs its
    server."""

    def __init__(self) -> None:
        self._faults: dict[str, ActiveFault] = {}
        self._outage: asyncio.Task[None] | None = None
        self._subscriptions_refused_until = 0.0

    @abc.abstractmethod
    async def step(self) -> dict[str, float | bool]:
        """Publish the values as they are now, faults included."""

    @abc.abstractmethod
    async def start(self) -> None:
        """Serve again after :meth:`_stop_server`."""

    @abc.abstractmethod
    async def _stop_server(self) -> None:
        """Stop answering, keeping the simulated state."""

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
        self._faults[target] = ActiveFault(kind, started, started + seconds)
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

    def _refuse_subscriptions_on_demand(self, server: Server) -> None:
        """Make ``server`` refuse every CreateSubscription while no_subscriptions is in force."""
        subscriptions = server.iserver.subscription_service
        create_subscription = subscriptions.create_subscription

        async def refusable(*args: Any, **kwargs: Any) -> ua.CreateSubscriptionResult:
            if time.monotonic() < self._subscriptions_refused_until:
                raise ServiceError(ua.StatusCodes.BadTooManySubscriptions)
            return await create_subscription(*args, **kwargs)

        subscriptions.create_subscription = refusable  # type: ignore[method-assign]

    async def _add_fault_method(self, station: Node, name: str, idx: int) -> None:
        """The ``InjectFault(fault, seconds)`` method on the station object ``name``."""
        await station.add_method(
            ua.NodeId(f"{name}.InjectFault", idx),
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
