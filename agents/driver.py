"""The contract between the agent and a protocol driver (Modbus, OPC-UA).

A driver does the protocol's I/O; the policies belong to the agent, once for every protocol
(as in EdgeX's device SDK). Who owns what:

* a driver: one device's connection (:meth:`DeviceDriver.connect`, :meth:`~DeviceDriver.reset`,
  :meth:`~DeviceDriver.close`), reading the points it is asked for now
  (:meth:`~DeviceDriver.read`) and decoding the answers into readings, BAD with the reason for
  a point-level fault (a refused address, a sensor failure, a value that is not a number),
  writing (:meth:`~DeviceDriver.write`), and, for a source that pushes changes (an OPC-UA
  subscription), the subscription (:meth:`~DeviceDriver.subscribe`). When the device or the
  connection fails (no connection, no answer after the profile's retries, a session lost) it
  raises :class:`DeviceUnreachableError` with the reason, and the readings it got before;
* the agent's device loop (:mod:`~smartcity.agents.device_loop`): when to read what (poll
  classes and per-point intervals, :mod:`~smartcity.agents.schedule`), the circuit breaker and
  back-off that count those failures and pace the probes and reconnects
  (:mod:`~smartcity.agents.resilience`), the BAD readings of an unreachable device, the
  keep-alive reads of a source that pushes changes only, and the counters of the heartbeat;
  then report by exception (:mod:`~smartcity.agents.exception_report`), sequence numbers, the
  disk buffer and publishing, all protocol-free.

A driver hands every reading it gets to whoever asked; it does not judge whether it is worth
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


class DeviceUnreachableError(ConnectionError):
    """The device or its connection failed: no connection, no answer after the profile's
    retries, a session lost. The message is the reason (``timeout after 2.0 s``); the agent's
    circuit breaker counts it.

    ``readings`` holds what was read before the failure (a device that stopped answering
    half-way through a cycle); the points asked for and missing from it were not read.
    """

    def __init__(self, reason: str, readings: Sequence[Reading] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.readings = list(readings)

    def completed(self, points: Iterable[PointBase]) -> list[Reading]:
        """What was read before the failure, and the rest of ``points`` BAD with its reason."""
        read = {reading.metric for reading in self.readings}
        missing = [point for point in points if point.name not in read]
        return self.readings + bad_readings(missing, self.reason)


@dataclass
class DeviceStats:
    """Counters for the agent's heartbeat and metrics: requests, errors, latency and the
    connection state are the driver's; polls, readings and the last success the device
    loop's."""

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


def bad_readings(points: Iterable[PointBase], reason: str) -> list[Reading]:
    """Every point of ``points`` reported BAD with the reason, never with an old value."""
    now = time.time()
    return [Reading.bad(point.name, point.unit, reason, read_time=now) for point in points]


class DeviceDriver(abc.ABC):
    """One device, one driver instance."""

    changes_only = False
    """Whether the source pushes changes (:meth:`subscribe`) instead of being polled; it then
    never repeats a flat value unless the agent asks for it with :meth:`read`."""

    def __init__(self, profile: ModbusDevice | OpcuaDevice) -> None:
        self.profile = profile
        self.stats = DeviceStats()

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open the connection now, unless one is open; raises :class:`DeviceUnreachableError`
        (or a subclass) with the reason."""

    @abc.abstractmethod
    async def read(self, names: Sequence[str], *, probe: bool = False) -> list[Reading]:
        """Read the points named, now, connecting first if need be, and return their readings
        (point-level faults as BAD readings). ``probe``: one try per request, without the
        profile's retries (the agent probing a device it takes for down). Raises
        :class:`DeviceUnreachableError` when the device or the connection fails."""

    async def subscribe(self, sink: ReadingSink, delivered: Callable[[], None]) -> None:
        """For a source that pushes changes (:attr:`changes_only`): connect if need be,
        subscribe to every point and hand each batch the source pushes to ``sink``, calling
        ``delivered`` once the source has delivered (data or a keep-alive; a session opened
        is not enough). Returns only by raising :class:`DeviceUnreachableError`."""
        raise NotImplementedError(f"{type(self).__name__} is polled, it has no subscription")

    @abc.abstractmethod
    async def write(self, point: PointBase, value: Value) -> Value:
        """Write ``value`` (already checked against the point's writable/min/max) and
        return what the device holds afterwards. Raises :class:`WriteRefusedError`."""

    @abc.abstractmethod
    async def reset(self) -> None:
        """Forget the connection after a failure, so that the next request opens a fresh
        one (a connection other devices share stays open)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the connection; safe to call twice."""

    async def read_once(self) -> list[Reading]:
        """Every point once, now, whatever the schedule and the breaker say; an unreachable
        device's points BAD with the reason (for ``smartcity agent check`` and tests)."""
        points = self.profile.points
        try:
            return await self.read([point.name for point in points])
        except DeviceUnreachableError as failure:
            return failure.completed(points)

    async def run(self, sink: ReadingSink) -> None:
        """Read the device as the agent does (its schedule, breaker and back-off) until
        cancelled, handing every reading to ``sink``, without report by exception
        (:func:`~smartcity.agents.device_loop.read_device`)."""
        from smartcity.agents.device_loop import read_device

        await read_device(self, sink)

    def bad_readings(self, points: Iterable[PointBase], reason: str) -> list[Reading]:
        """Every point of a failed read, reported BAD with the reason, never the old value."""
        return bad_readings(points, reason)


def driver_for(profile: ModbusDevice | OpcuaDevice) -> DeviceDriver:
    """The driver that speaks the profile's protocol."""
    if isinstance(profile, ModbusDevice):
        from smartcity.agents.modbus.driver import ModbusDriver

        return ModbusDriver(profile)
    from smartcity.agents.opcua.driver import OpcuaDriver

    return OpcuaDriver(profile)
