"""The contract between the agent and a protocol driver (Modbus, OPC-UA).

A driver owns one device: its connection, its schedule (poll classes, per-point intervals or
a subscription), its retries and its circuit breaker. It hands readings to a sink and never
raises for a device fault: a fault becomes BAD readings with the reason and a counted error,
and the driver keeps trying until it is cancelled. Everything above the driver (sequence
numbers, the disk buffer, publishing) is protocol-free.
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
