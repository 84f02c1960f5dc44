"""The Modbus simulator: one simulated device per unit id behind one Modbus TCP server (and
an RTU server on a serial port), advanced by its clock.

What it carries lives beside it: each device's faults, register images and answers in
:mod:`.modbus_unit`, the fault control block every unit serves in :mod:`.modbus_control`,
the register images behind pymodbus' datastore in :mod:`.registers`. The names a simulator
(:mod:`.substation`, :mod:`.air_quality`) is built from are importable from here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Self

from pymodbus import FramerType
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusSerialServer, ModbusTcpServer

from smartcity.agents.profile import Function, ModbusDevice
from smartcity.agents.sim.modbus_control import (
    CONTROL,
    CONTROL_ADDRESS,
    DEFAULT_FAULT_SECONDS,
    FAULT_OF_CODE,
    KIND_ADDRESS,
    Fault,
    SimulatorKind,
)
from smartcity.agents.sim.modbus_unit import UTC_OFFSET, SimulatedUnit, Values, local_hour
from smartcity.agents.sim.registers import RegisterTable

__all__ = [
    "CONTROL",
    "CONTROL_ADDRESS",
    "DEFAULT_FAULT_SECONDS",
    "FAULT_OF_CODE",
    "KIND_ADDRESS",
    "UTC_OFFSET",
    "Fault",
    "ModbusSimulator",
    "RegisterTable",
    "SimulatedUnit",
    "SimulatorKind",
    "Values",
    "local_hour",
]


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
