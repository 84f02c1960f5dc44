"""One simulated Modbus device behind one unit id: its faults, its register images and its
answers.

A simulator's units are :class:`SimulatedUnit` subclasses (a substation bay, an air-quality
station's data logger). A unit brings its physics (:meth:`SimulatedUnit.measure`); the rest
is here, so that every simulator answers the same way: only the profile's addresses and the
control block (:mod:`.modbus_control`) exist (anything else is answered with exception 2),
values are encoded with the project's reference codec into the register images of
:mod:`.registers`, and faults are injected through the protocol itself. A unit that "stops
answering" raises pymodbus' ``NoSuchIdException`` in its access hook, which a server started
with ``ignore_missing_devices`` (:mod:`.modbus_sim`) answers with silence, like an RTU that
lost power behind a gateway.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import ClassVar

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.simulator import SimDevice

from smartcity.agents.profile import DataType, Function, ModbusDevice
from smartcity.agents.sim.modbus_control import (
    CONTROL,
    CONTROL_ADDRESS,
    DEFAULT_FAULT_SECONDS,
    FAULT_OF_CODE,
    KIND_ADDRESS,
    Fault,
    SimulatorKind,
)
from smartcity.agents.sim.registers import (
    FUNCTION_OF_CODE,
    RegisterTable,
    datastore_layout,
    encode_saturating,
    register_tables,
)

__all__ = ["UTC_OFFSET", "SimulatedUnit", "Values", "local_hour"]

UTC_OFFSET = 7 * 3600
"""Viet Nam is UTC+7 all year (no daylight saving time)."""

Values = dict[str, float | int | bool]


def local_hour(now: float) -> float:
    """The hour of day (0..24) in Da Nang at epoch seconds ``now``."""
    return ((now + UTC_OFFSET) % 86400) / 3600


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
