"""The contract between the agent and a protocol driver (Modbus, OPC-UA).

Drivers are meant to do the protocol's I/O only; the policies belong to the agent, once for
every protocol. Who owns what today:

* the agent: report by exception (deadband, keep-alive, quality change) between every driver
  and the publisher, and the keep-alive reads of a driver that hands over changes only
  (:mod:`~smartcity.agents.device_loop`, :mod:`~smartcity.agents.exception_report`); then
  sequence numbers, the disk buffer and publishing, all protocol-free;
* a driver: one device's connection and requests, the decoding of its answers into readings
  (BAD with the reason for a fault: a driver never raises for a device fault and keeps trying
  until it is cancelled), and, until they move to the agent's device loop, its schedule
  (poll classes, per-point intervals), its circuit breaker and back-off (shared code:
  :mod:`~smartcity.agents.resilience`) and the BAD readings of an unreachable device.

A driver hands every reading it gets to its sink; it does not judge whether it is worth
publishing.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

from smartcity.agents.profile import ModbusDevice, OpcuaDevice, PointBase
from smartcity.agents.reading import Reading, Value

ReadingSink = Callable[[Sequence[Reading]], Awaitable[None]]


class WriteRefusedError(Exception):
    """The device (or the protocol) refused a write; the message says why."""


@dataclass
class DeviceStats:
    """Counters for the agent's heartbeat and metrics."""

    polls: int = 0
    requests: int = 0
    errors: int = 0
    readings: int = 0
    last_latency_ms: float | None = None
    last_error: str = ""
    last_success: float | None = None
    connected: bool = False
    latencies_ms: list[float] = field(default_factory=list, repr=False)

    def record_latency(self, milliseconds: float) -> None:
        self.last_latency_ms = milliseconds
        self.latencies_ms.append(milliseconds)
        if len(self.latencies_ms) > 1024:  # a window for percentiles, bounded in memory
            del self.latencies_ms[:512]

    def record_error(self, reason: str) -> None:
        self.errors += 1
        self.last_error = reason


class DeviceDriver(abc.ABC):
    """One device, one driver instance."""

    changes_only = False
    """Whether :meth:`run` hands over changes only (server-side sampling), so that a flat
    value is never repeated unless the agent asks for it with :meth:`read_points`."""

    def __init__(self, profile: ModbusDevice | OpcuaDevice) -> None:
        self.profile = profile
        self.stats = DeviceStats()

    @abc.abstractmethod
    async def run(self, sink: ReadingSink) -> None:
        """Read the device until cancelled, handing every batch of readings to ``sink``."""

    @abc.abstractmethod
    async def read_once(self) -> list[Reading]:
        """Connect if needed, read every point once and return the readings (for
        ``smartcity agent check`` and tests)."""

    @abc.abstractmethod
    async def read_points(self, names: Sequence[str]) -> list[Reading]:
        """Read the points named once, now, over the connection in use; nothing when there
        is none (the outage is reported by :meth:`run`)."""

    @abc.abstractmethod
    async def write(self, point: PointBase, value: Value) -> Value:
        """Write ``value`` (already checked against the point's writable/min/max) and
        return what the device holds afterwards. Raises :class:`WriteRefusedError`."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the connection; safe to call twice."""

    def bad_readings(self, points: Iterable[PointBase], reason: str) -> list[Reading]:
        """Every point of a failed read, reported BAD with the reason, never the old value."""
        now = time.time()
        return [Reading.bad(point.name, point.unit, reason, read_time=now) for point in points]


def driver_for(profile: ModbusDevice | OpcuaDevice) -> DeviceDriver:
    """The driver that speaks the profile's protocol."""
    if isinstance(profile, ModbusDevice):
        from smartcity.agents.modbus.driver import ModbusDriver

        return ModbusDriver(profile)
    from smartcity.agents.opcua.driver import OpcuaDriver

    return OpcuaDriver(profile)
