"""What the Modbus simulators share: the fault control block, a simulated device's answers,
and the server that carries one simulated device per unit id (the register images behind
pymodbus' datastore are :mod:`.registers`).

A simulator is a :class:`ModbusSimulator` whose units are :class:`SimulatedUnit` subclasses
(a substation bay, an air-quality station's data logger). A unit brings its physics
(:meth:`SimulatedUnit.measure`); the rest is here, so that every simulator answers the same
way: only the profile's addresses and the control block exist (anything else is answered
with exception 2), values are encoded with the project's reference codec, and faults are
injected through the protocol itself.

The control block, per unit id, in holding registers:

* ``200`` fault code: 0 clears every fault, otherwise a :class:`Fault` code the simulator
  serves (any other code is refused with exception 3, illegal data value);
* ``201`` duration in seconds (0 means 10 s);
* ``202`` active faults, a bit mask: bit ``code - 1`` for each fault in force;
* ``203`` which simulator answers (:class:`SimulatorKind`), read-only, so that a tool can
  name the faults the device it talks to knows.

The fault codes are one numbering across simulators, so that a code meant for one kind of
device is refused by every other. A unit that "stops answering" raises pymodbus'
``NoSuchIdException`` in its access hook, which a server started with
``ignore_missing_devices`` answers with silence, like an RTU that lost power behind a gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable
from enum import IntEnum, StrEnum
from typing import ClassVar, Self

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import SimDevice

from smartcity.agents.profile import DataType, Function, ModbusDevice
from smartcity.agents.sim.registers import (
    FUNCTION_OF_CODE,
    RegisterTable,
    datastore_layout,
    encode_saturating,
    register_tables,
)

CONTROL_ADDRESS = 200
"""Holding register of the fault code; duration at 201, active mask at 202, kind at 203."""
CONTROL = range(CONTROL_ADDRESS, CONTROL_ADDRESS + 3)
"""The writable part of the control block."""
KIND_ADDRESS = CONTROL_ADDRESS + 3
DEFAULT_FAULT_SECONDS = 10.0
UTC_OFFSET = 7 * 3600
"""Viet Nam is UTC+7 all year (no daylight saving time)."""


class Fault(StrEnum):
    VOLTAGE_SAG = "voltage_sag"
    FROZEN = "frozen"
    NO_ANSWER = "no_answer"
    POLLUTION_EPISODE = "pollution_episode"

    @property
    def code(self) -> int:
        """The code written to holding register 200 to trigger this fault."""
        return _FAULT_CODES[self]


_FAULT_CODES = {
    Fault.VOLTAGE_SAG: 1,
    Fault.FROZEN: 2,
    Fault.NO_ANSWER: 3,
    Fault.POLLUTION_EPISODE: 4,
}
FAULT_OF_CODE = {code: fault for fault, code in _FAULT_CODES.items()}


class SimulatorKind(IntEnum):
    """Which simulator a unit is, as holding register 203 says."""

    SUBSTATION = 1
    AIR_QUALITY_STATION = 2

    @property
    def title(self) -> str:
        """What the device is, in words."""
        return _KIND_TITLES[self]

    @property
    def faults(self) -> tuple[Fault, ...]:
        """The faults this kind of device can be given, in the order help texts list them."""
        return _KIND_FAULTS[self]


_KIND_TITLES = {
    SimulatorKind.SUBSTATION: "substation",
    SimulatorKind.AIR_QUALITY_STATION: "air-quality station",
}
_KIND_FAULTS = {
    SimulatorKind.SUBSTATION: (Fault.VOLTAGE_SAG, Fault.FROZEN, Fault.NO_ANSWER),
    SimulatorKind.AIR_QUALITY_STATION: (Fault.POLLUTION_EPISODE, Fault.FROZEN, Fault.NO_ANSWER),
}

Values = dict[str, float | int | bool]


class SimulatedUnit:
    """One device behind one unit id: its faults, its register images and its answers.

    Subclasses set :attr:`kind`, compute measurements in :meth:`measure`, may add values
    to what is shown (:meth:`values`) and accept writes (:meth:`write_holding`,
    :meth:`write`), and call :meth:`advance` once their own state is set up.
    """

    kind: ClassVar[SimulatorKind]

    def __init__(
        self, unit: int, profile: ModbusDevice, clock: Callable[[], float], rng: random.Random
    ) -> None:
        self.unit = unit
        self.profile = profile
        self.clock = clock
        self.rng = rng
        self.fault_seconds = 0
        self.until: dict[Fault, float] = {}
        """When each injected fault ends, on the unit's clock."""
        self.shown: Values = {}
        """Measured values as the device presents them (held still while frozen)."""
        self.refused: set[tuple[Function, int]] = set()
        """Addresses answered with exception 2 (illegal data address) whatever the map says."""
        self.points = {point.name: point for point in profile.points}
        self.tables = register_tables(profile.points, range(CONTROL_ADDRESS, KIND_ADDRESS + 1))
        self.last = clock()
        self.device = SimDevice(
            unit,
            simdata=datastore_layout(profile.points, CONTROL, (KIND_ADDRESS,)),
            action=self._access,
        )

    # -- faults ------------------------------------------------------------------------------

    def inject(self, fault: Fault, seconds: float) -> None:
        if fault not in self.kind.faults:
            known = ", ".join(self.kind.faults)
            raise ValueError(
                f"the {self.kind.title} has no fault {fault.value!r} (its faults: {known})"
            )
        self.until[fault] = self.clock() + seconds
        self.started(fault)
        self.advance(self.clock())

    def started(self, fault: Fault) -> None:
        """Called when ``fault`` is injected (a subclass draws its depth, say)."""

    def clear(self) -> None:
        self.until.clear()
        self.advance(self.clock())

    def active(self, fault: Fault) -> bool:
        return self.clock() < self.until.get(fault, 0.0)

    # -- the model ---------------------------------------------------------------------------

    def advance(self, now: float) -> None:
        """Move the physical state to clock time ``now`` and refresh the register images."""
        dt = min(max(now - self.last, 0.0), 3600.0)
        self.last = now
        if not self.active(Fault.FROZEN):
            self.shown.update(self.measure(now, dt))
        self.render()

    def measure(self, now: float, dt: float) -> Values:
        """The measurements at clock time ``now``, ``dt`` seconds after the previous ones."""
        raise NotImplementedError

    def values(self) -> Values:
        """Everything the registers show, by point name (measurements, and in subclasses
        breaker positions, setpoints, counters)."""
        return dict(self.shown)

    def render(self) -> None:
        values = self.values()
        status: dict[int, int] = {}
        for name, point in self.points.items():
            value = values.get(name, 0)
            table = self.tables[point.function]
            if point.function.is_bits:
                table.put_bit(point.address, bool(value))
            elif point.type is DataType.BOOL:
                word = status.get(point.address, 0)
                status[point.address] = word | (bool(value) << (point.bit or 0))
            else:
                table.put_registers(point.address, encode_saturating(float(value), point))
        holding = self.tables[Function.HOLDING]
        for address, word in status.items():
            holding.put_registers(address, [word])
        mask = sum(1 << (fault.code - 1) for fault in self.kind.faults if self.active(fault))
        holding.put_registers(CONTROL_ADDRESS + 1, [self.fault_seconds, mask, int(self.kind)])

    # -- the protocol side -------------------------------------------------------------------

    async def _access(
        self,
        func_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """pymodbus calls this on every request for this unit, before it reads or writes
        ``registers`` (the unit's datastore for the table, in place)."""
        if self.active(Fault.NO_ANSWER):
            raise NoSuchIdException(f"unit {self.unit} is not answering (injected fault)")
        function = FUNCTION_OF_CODE[func_code]
        if function not in self.tables:
            return ExcCodes.ILLEGAL_ADDRESS  # a table the register map does not use
        if self.refused and any(
            (function, at) in self.refused for at in range(address, address + count)
        ):
            return ExcCodes.ILLEGAL_ADDRESS
        if set_values is not None and (refusal := self.write(function, address, set_values)):
            return refusal
        image = self.tables[function].image
        registers[: len(image)] = image
        return None

    def write(
        self, function: Function, address: int, values: list[int] | list[bool]
    ) -> ExcCodes | None:
        """A write the datastore allowed (its layout makes only writable points and the
        control block writable). Holding registers are checked as a whole first: a request
        with one refused value changes nothing."""
        if function is not Function.HOLDING:
            return ExcCodes.ILLEGAL_ADDRESS
        holding = self.tables[Function.HOLDING]
        trial = list(holding.image)
        index = address - holding.start
        trial[index : index + len(values)] = [int(value) for value in values]
        written = range(address, address + len(values))
        code = trial[CONTROL_ADDRESS - holding.start]
        if CONTROL_ADDRESS in written and code not in (0, *(f.code for f in self.kind.faults)):
            return ExcCodes.ILLEGAL_VALUE
        refusal = self.write_holding(holding, trial, written)
        if refusal is not None:
            return refusal
        if CONTROL_ADDRESS + 1 in written:
            self.fault_seconds = trial[CONTROL_ADDRESS + 1 - holding.start]
        if CONTROL_ADDRESS in written:
            if code == 0:
                self.clear()
            else:
                self.inject(FAULT_OF_CODE[code], float(self.fault_seconds or DEFAULT_FAULT_SECONDS))
        self.advance(self.clock())
        # The code reads back as written until the next write: the mask at 202 is the state.
        holding.image[CONTROL_ADDRESS - holding.start] = code if CONTROL_ADDRESS in written else 0
        return None

    def write_holding(
        self, holding: RegisterTable, trial: list[int], written: range
    ) -> ExcCodes | None:
        """Check and apply writes to the unit's own holding registers (setpoints), given the
        table as it would be after the request; a refusal changes nothing."""
        return None


class ModbusSimulator:
    """Units on their unit ids behind one Modbus TCP server and, when ``serial_port`` is
    given, an RTU server on that serial device too.

    Use as an async context manager; ``port`` is the bound TCP port (ask for port 0 to get a
    free one). ``period=None`` stops the clock-driven updates: tests call :meth:`step`.
    """

    def __init__(
        self,
        units: Iterable[SimulatedUnit],
        *,
        profile: ModbusDevice,
        host: str,
        port: int,
        serial_port: str | None = None,
        baudrate: int = 19200,
        period: float | None = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if period is not None and period <= 0:
            raise ValueError("period must be a positive number of seconds, or None")
        self.devices = {unit.unit: unit for unit in units}
        self.profile = profile
        self.host = host
        self.port = port
        self.serial_port = serial_port
        self.baudrate = baudrate
        self.period = period
        self.clock = clock
        self._servers: list[ModbusTcpServer | ModbusSerialServer] = []
        self._ticker: asyncio.Task[None] | None = None
        self.requests: Counter[int] = Counter()
        """Requests received per unit id, answered or not."""
        self.connections = 0
        """TCP connections accepted since the start."""

    @property
    def units(self) -> list[int]:
        return list(self.devices)

    async def start(self) -> None:
        devices = [unit.device for unit in self.devices.values()]
        tcp = ModbusTcpServer(
            devices,
            address=(self.host, self.port),
            ignore_missing_devices=True,
            trace_pdu=self._count_request,
            trace_connect=self._count_connection,
        )
        self._servers.append(tcp)
        await tcp.serve_forever(background=True)
        self.port = tcp.transport.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        if self.serial_port is not None:
            serial = ModbusSerialServer(
                devices,
                framer=FramerType.RTU,
                port=self.serial_port,
                baudrate=self.baudrate,
                ignore_missing_devices=True,
                trace_pdu=self._count_request,
            )
            try:
                await serial.serve_forever(background=True)
            except RuntimeError:
                await self.stop()
                raise OSError(f"cannot open serial port {self.serial_port}") from None
            self._servers.append(serial)
        if self.period is not None:
            self._ticker = asyncio.create_task(self._tick(self.period), name="simulator clock")

    def _count_request(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if not sending:
            self.requests[pdu.dev_id] += 1
        return pdu

    def _count_connection(self, connected: bool) -> None:
        if connected:
            self.connections += 1

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        for server in self._servers:
            await server.shutdown()
        self._servers.clear()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _tick(self, period: float) -> None:
        while True:
            await asyncio.sleep(period)
            self.step()

    def step(self, now: float | None = None) -> None:
        """Advance every unit to clock time ``now`` (default: the clock's now)."""
        moment = self.clock() if now is None else now
        for unit in self.devices.values():
            unit.advance(moment)

    def inject(self, fault: Fault | str, seconds: float, *, unit: int | None = None) -> None:
        """Start ``fault`` for ``seconds`` on ``unit`` (every unit when None)."""
        kind = Fault(fault)
        if not seconds > 0:
            raise ValueError("a fault lasts a positive number of seconds")
        for device in self._units(unit):
            device.inject(kind, seconds)

    def clear(self, *, unit: int | None = None) -> None:
        for device in self._units(unit):
            device.clear()

    def refuse_address(
        self, function: Function, address: int, *, unit: int | None = None, refused: bool = True
    ) -> None:
        """Answer exception 2 to every request covering register ``address`` (or stop doing
        so). Holding and input registers only: pymodbus tells the datastore hook which
        16-bit words a bit request touches, not which bits."""
        if function.is_bits:
            raise ValueError(f"only registers can be refused, not a {function}")
        for device in self._units(unit):
            if refused:
                device.refused.add((function, address))
            else:
                device.refused.discard((function, address))

    def _units(self, unit: int | None) -> list[SimulatedUnit]:
        if unit is None:
            return list(self.devices.values())
        if unit not in self.devices:
            raise KeyError(f"unit {unit} is not simulated here (units {self.units})")
        return [self.devices[unit]]

    def profile_for(self, unit: int = 1, **changes: object) -> ModbusDevice:
        """The register-map profile pointed at this simulator's TCP port and ``unit``;
        ``changes`` override profile fields with already-typed values (seconds as floats)."""
        self._units(unit)
        update: dict[str, object] = {
            "endpoint": f"tcp://{self.host}:{self.port}",
            "unit_id": unit,
            "device": f"{self.profile.device}-{unit}",
        }
        update.update(changes)
        return self.profile.model_copy(update=update)

    async def read_registers(
        self, unit: int, function: Function, address: int, count: int
    ) -> list[int]:
        """What the server's datastore holds, read through the server (not the network)."""
        return await self._datastore(unit, function, address, count)  # type: ignore[return-value]

    async def read_bits(
        self, unit: int, function: Function, address: int, count: int
    ) -> list[bool]:
        return await self._datastore(unit, function, address, count)  # type: ignore[return-value]

    async def _datastore(
        self, unit: int, function: Function, address: int, count: int
    ) -> list[int] | list[bool]:
        if not self._servers:
            raise RuntimeError("the simulator is not running")
        code = {Function.COIL: 1, Function.DISCRETE: 2, Function.HOLDING: 3, Function.INPUT: 4}[
            function
        ]
        return await self._servers[0].async_getValues(unit, code, address, count)


def local_hour(now: float) -> float:
    """The hour of day (0..24) in Da Nang at epoch seconds ``now``."""
    return ((now + UTC_OFFSET) % 86400) / 3600
