"""A simulated 110/22 kV substation served by a real pymodbus server (TCP, optionally RTU).

Each Modbus unit id is one transformer bay (63 MVA, 110/22 kV, twelve 22 kV feeders) with its
own state. The register map is not written here: it is the device profile
``profiles/substation.yaml``, the same file an agent loads to read the simulator, so the
simulator and the agent cannot disagree about an address, a type or a byte order. Values are
encoded with the project's reference codec (:mod:`smartcity.agents.modbus.codec`).

Physics, kept simple but recognisable to a grid operator: load follows a Vietnamese daily
curve (night trough around 03:00, a morning peak around 10:00, a lunch dip, an afternoon
plateau and the evening peak at 19:00, local time UTC+7) with a slow random walk; power
factor drops a little under load; the on-load tap changer holds the 22 kV busbar at the
voltage setpoint; frequency wanders around 50 Hz; top-oil temperature follows the load with
a two-hour time constant; energy counters integrate power. Opening the 110 kV breaker or the
22 kV incomer de-energises the busbar; opening a feeder breaker removes its share of load.

Faults are injected on command, through the protocol itself or from Python
(:meth:`Substation.inject`). The control block, per unit id, in holding registers:

* ``200`` fault code: 0 clear all faults, 1 voltage sag (phase voltages drop to 70..80 %),
  2 frozen sensors (measurements stop changing), 3 stop answering (no response at all);
* ``201`` duration in seconds (0 means 10 s);
* ``202`` active faults, a bit mask (bit 0 sag, bit 1 frozen).

A register can also be made unreadable (:meth:`Substation.refuse_address`): any request that
covers it is answered with exception 2, the way a device answers for an address its firmware
does not map. The simulator counts the requests it receives per unit id and the TCP
connections it accepts, so tests can see the agent's traffic from the device's side.

A unit that "stops answering" is silent, like an RTU that lost power behind a gateway: the
server is started with ``ignore_missing_devices`` and the unit's access hook raises
pymodbus' ``NoSuchIdException``, which the server answers with silence.

The server uses pymodbus' ``SimDevice``/``SimData`` datastore (its non-deprecated API in
3.16). The datastore is refreshed from the model by the device's ``action`` hook on every
access, the way that API intends registers to be updated; the model advances on a clock
(injectable, for tests) every ``period`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import struct
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType as SimType
from pymodbus.simulator import SimData, SimDevice

from smartcity.agents.modbus.codec import EncodeError, decode, encode
from smartcity.agents.profile import DataType, Function, ModbusDevice, ModbusPoint, load_profile

SUBSTATION_PROFILE = Path(__file__).parent / "profiles" / "substation.yaml"
"""The register map, as a device profile the agent loads directly."""

UTC_OFFSET = 7 * 3600
"""Viet Nam is UTC+7 all year (no daylight saving time)."""

FEEDERS = 12
RATING_MVA = 63.0
NOMINAL_HV_KV = 115.0
CONTROL_ADDRESS = 200
"""Holding register of the fault code; the duration follows at 201, the active mask at 202."""
DEFAULT_FAULT_SECONDS = 10.0
SETPOINT_LIMITS = {"voltage_setpoint": (20.0, 25.0), "oil_temperature_limit": (40.0, 120.0)}
"""What the device itself accepts; outside it answers exception 3 (illegal data value)."""

# Hourly load of a Vietnamese distribution substation, as a fraction of the evening peak.
_LOAD_CURVE = (
    0.62, 0.58, 0.55, 0.54, 0.55, 0.60, 0.68, 0.78, 0.86, 0.91, 0.94, 0.92,
    0.80, 0.84, 0.92, 0.93, 0.90, 0.92, 0.98, 1.00, 0.97, 0.90, 0.80, 0.70,
)  # fmt: skip

_FUNCTION_OF_CODE = {
    1: Function.COIL,
    5: Function.COIL,
    15: Function.COIL,
    2: Function.DISCRETE,
    3: Function.HOLDING,
    6: Function.HOLDING,
    16: Function.HOLDING,
    22: Function.HOLDING,
    23: Function.HOLDING,
    4: Function.INPUT,
}
_SQRT3 = math.sqrt(3.0)


class Fault(StrEnum):
    VOLTAGE_SAG = "voltage_sag"
    FROZEN = "frozen"
    NO_ANSWER = "no_answer"

    @property
    def code(self) -> int:
        """The code written to holding register 200 to trigger this fault."""
        return _FAULT_CODES[self]


_FAULT_CODES = {Fault.VOLTAGE_SAG: 1, Fault.FROZEN: 2, Fault.NO_ANSWER: 3}
_FAULT_OF_CODE = {code: fault for fault, code in _FAULT_CODES.items()}


def load_curve(hour: float) -> float:
    """Load at local ``hour`` (0..24) as a fraction of the evening peak, interpolated."""
    hour %= 24.0
    low = int(hour)
    fraction = hour - low
    return _LOAD_CURVE[low] * (1 - fraction) + _LOAD_CURVE[(low + 1) % 24] * fraction


def _raw_bounds(point: ModbusPoint) -> tuple[float, float]:
    """Smallest and largest engineering value an integer point can carry."""
    fmt = {"int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "int64": "q", "uint64": "Q"}
    char = fmt[point.type.value]
    bits = 8 * struct.calcsize(char)
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if char.islower() else (0, 2**bits - 1)
    ends = (low * point.scale + point.offset, high * point.scale + point.offset)
    return min(ends), max(ends)


def _encode(value: float, point: ModbusPoint) -> list[int]:
    """Encode, saturating at the type's range the way a real transducer output does."""
    try:
        return encode(value, point)
    except EncodeError:
        if point.type in (DataType.FLOAT32, DataType.FLOAT64) or not math.isfinite(value):
            return encode(0.0, point)
        low, high = _raw_bounds(point)
        return encode(min(max(value, low), high), point)


@dataclass
class _Table:
    """One Modbus data table of one unit: the register image the datastore is refreshed from.

    Register tables hold one int per register; bit tables hold 16 bits per int, bit 0 of
    the first word being the first coil, the layout pymodbus' SimDevice uses.
    """

    function: Function
    start: int
    image: list[int]

    def put_registers(self, address: int, registers: list[int]) -> None:
        index = address - self.start
        self.image[index : index + len(registers)] = registers

    def put_bit(self, address: int, value: bool) -> None:
        """A coil or discrete input (bit tables) by its bit address."""
        word, bit = divmod(address, 16)
        index = word - self.start
        if value:
            self.image[index] |= 1 << bit
        else:
            self.image[index] &= ~(1 << bit)


def _tables(points: Iterable[ModbusPoint], control: range) -> dict[Function, _Table]:
    used: dict[Function, list[int]] = {function: [] for function in Function}
    for point in points:
        used[point.function].extend(range(point.address, point.address + point.width))
    used[Function.HOLDING].extend(control)
    tables = {}
    for function, addresses in used.items():
        if not addresses:
            continue
        if function.is_bits:
            start, end = min(addresses) // 16, max(addresses) // 16 + 1
        else:
            start, end = min(addresses), max(addresses) + 1
        tables[function] = _Table(function, start, [0] * (end - start))
    return tables


def _runs(addresses: Iterable[int]) -> list[range]:
    """Contiguous runs of the given addresses."""
    runs: list[range] = []
    for address in sorted(set(addresses)):
        if runs and runs[-1].stop == address:
            runs[-1] = range(runs[-1].start, address + 1)
        else:
            runs.append(range(address, address + 1))
    return runs


def _simdata(points: list[ModbusPoint], control: range) -> tuple[list[SimData], ...]:
    """The datastore layout: only the profile's addresses (and the control block) exist, so
    the server answers exception 2 for anything else, and only setpoints, breakers and the
    control block accept writes."""
    writable: set[int] = set(control)
    readonly: set[int] = set()
    bits: dict[Function, set[int]] = {Function.COIL: set(), Function.DISCRETE: set()}
    for point in points:
        span = range(point.address, point.address + point.width)
        if point.function.is_bits:
            bits[point.function].update(span)
        elif point.function is Function.HOLDING and point.writable:
            writable.update(span)
        elif point.function is Function.HOLDING:
            readonly.update(span)
    inputs = {
        a
        for p in points
        if p.function is Function.INPUT
        for a in range(p.address, p.address + p.width)
    }

    def registers(addresses: set[int], *, read_only: bool) -> list[SimData]:
        return [
            SimData(
                run.start, values=[0] * len(run), datatype=SimType.REGISTERS, readonly=read_only
            )
            for run in _runs(addresses)
        ]

    def bit_block(addresses: set[int]) -> list[SimData]:
        return [
            SimData(run.start, values=[False] * len(run), datatype=SimType.BITS)
            for run in _runs(addresses)
        ]

    holding = registers(readonly, read_only=True) + registers(writable, read_only=False)
    return (
        bit_block(bits[Function.COIL]),
        bit_block(bits[Function.DISCRETE]),
        sorted(holding, key=lambda entry: entry.address),
        registers(inputs, read_only=True),
    )


@dataclass
class Bay:
    """One transformer bay behind one unit id: its physical state and its register images."""

    unit: int
    profile: ModbusDevice
    clock: Callable[[], float]
    rng: random.Random
    voltage_setpoint: float = 23.0
    oil_temperature_limit: float = 90.0
    breakers: dict[str, bool] = field(default_factory=dict)
    breaker_operations: int = 0
    fault_seconds: int = 0
    sag_until: float = 0.0
    sag_depth: float = 1.0
    frozen_until: float = 0.0
    silent_until: float = 0.0
    shown: dict[str, float | int | bool] = field(default_factory=dict)
    """Measured values as the device presents them (held still while frozen)."""
    refused: set[tuple[Function, int]] = field(default_factory=set)
    """Addresses answered with exception 2 (illegal data address) whatever the map says."""

    def __post_init__(self) -> None:
        control = range(CONTROL_ADDRESS, CONTROL_ADDRESS + 3)
        self.tables = _tables(self.profile.points, control)
        self.points = {point.name: point for point in self.profile.points}
        self.setpoints = [
            p for p in self.profile.points if p.function is Function.HOLDING and p.writable
        ]
        for point in self.profile.points:
            if point.function is Function.COIL:
                self.breakers[point.name] = True
        rng = self.rng
        self.feeder_weights = [rng.uniform(0.5, 1.5) for _ in range(FEEDERS)]
        self.imbalance = [1 + rng.gauss(0, 0.004) for _ in range(3)]
        self.load_share = rng.uniform(0.62, 0.78)
        self.walk = 0.0
        self.frequency = 50.0 + rng.gauss(0, 0.01)
        self.energy_import = rng.uniform(1e8, 4e8)
        self.energy_export = rng.uniform(1e5, 2e6)
        self.reactive_energy = rng.uniform(2e7, 9e7)
        self.demand_kw = 0.0
        self.demand_kvar = 0.0
        self.oil: float | None = None
        self.last = self.clock()
        self.device = SimDevice(
            self.unit, simdata=_simdata(self.profile.points, control), action=self._access
        )
        self.advance(self.last)

    # -- faults ------------------------------------------------------------------------------

    def inject(self, fault: Fault, seconds: float) -> None:
        until = self.clock() + seconds
        if fault is Fault.VOLTAGE_SAG:
            self.sag_until, self.sag_depth = until, self.rng.uniform(0.70, 0.80)
        elif fault is Fault.FROZEN:
            self.frozen_until = until
        else:
            self.silent_until = until
        self.advance(self.clock())

    def clear(self) -> None:
        self.sag_until = self.frozen_until = self.silent_until = 0.0
        self.advance(self.clock())

    def active(self, fault: Fault) -> bool:
        until = {
            Fault.VOLTAGE_SAG: self.sag_until,
            Fault.FROZEN: self.frozen_until,
            Fault.NO_ANSWER: self.silent_until,
        }[fault]
        return self.clock() < until

    # -- the model ---------------------------------------------------------------------------

    def advance(self, now: float) -> None:
        """Move the physical state to clock time ``now`` and refresh the register images."""
        dt = min(max(now - self.last, 0.0), 3600.0)
        self.last = now
        if not self.active(Fault.FROZEN):
            self.shown.update(self._measure(now, dt))
        self._render()

    def _measure(self, now: float, dt: float) -> dict[str, float | int | bool]:
        rng, gauss = self.rng, self.rng.gauss
        hour = ((now + UTC_OFFSET) % 86400) / 3600
        self.walk = 0.97 * self.walk + gauss(0, 0.004)
        level = load_curve(hour) * self.load_share * (1 + self.walk)
        feeders = [
            self.breakers.get(f"feeder_{n:02d}_breaker_closed", True) for n in range(1, FEEDERS + 1)
        ]
        total_weight = sum(self.feeder_weights)
        closed_weight = sum(
            w for w, closed in zip(self.feeder_weights, feeders, strict=True) if closed
        )
        transformer = self.breakers.get("breaker_hv_closed", True)
        busbar = transformer and self.breakers.get("breaker_mv_closed", True)
        sag = self.sag_depth if self.active(Fault.VOLTAGE_SAG) else 1.0

        s = RATING_MVA * level * closed_weight / total_weight if busbar else 0.0
        pf = min(max(0.955 - 0.05 * level + gauss(0, 0.003), 0.80), 0.995)
        p, q = s * pf, s * math.sqrt(1 - pf * pf)
        hv = (NOMINAL_HV_KV - 2.5 * level + gauss(0, 0.15)) * sag
        mv = (
            (self.voltage_setpoint * (1 - 0.008 * level) + gauss(0, 0.02)) * sag
            if transformer
            else 0.0
        )
        if not busbar:
            mv = 0.0
        ratio = (hv / sag) / self.voltage_setpoint / (NOMINAL_HV_KV / 23.0)
        tap = max(-8, min(8, round((ratio - 1) / 0.0125)))

        self.frequency = 50.0 + 0.95 * (self.frequency - 50.0) + gauss(0, 0.006)
        self.frequency = min(max(self.frequency, 49.8), 50.2)
        ambient = 29.0 + 4.0 * math.sin(2 * math.pi * (hour - 9) / 24)
        target = ambient + 5.0 + 50.0 * (s / RATING_MVA) ** 2
        if self.oil is None:
            self.oil = target
        self.oil += (target - self.oil) * (1 - math.exp(-dt / 7200.0))
        hours = dt / 3600
        self.energy_import += p * 1000 * hours
        self.reactive_energy += q * 1000 * hours
        blend = 1 - math.exp(-dt / 900.0) if self.demand_kw else 1.0
        self.demand_kw += (p * 1000 - self.demand_kw) * blend
        self.demand_kvar += (q * 1000 - self.demand_kvar) * blend

        values: dict[str, float | int | bool] = {}
        for phase, factor in zip("abc", self.imbalance, strict=True):
            values[f"voltage_hv_{phase}n"] = hv / _SQRT3 * factor * (1 + gauss(0, 0.0005))
            values[f"voltage_mv_{phase}n"] = mv / _SQRT3 * factor * (1 + gauss(0, 0.0005))
            load = (2 - factor) * (1 + gauss(0, 0.002))
            values[f"current_hv_{phase}"] = s * 1000 / (_SQRT3 * hv) * load if hv else 0.0
            values[f"current_mv_{phase}"] = s * 1000 / (_SQRT3 * mv) * load if mv else 0.0
        values.update(
            active_power=p,
            reactive_power=q,
            power_factor=pf if s else 0.0,
            oil_temperature=self.oil,
            frequency=self.frequency,
            energy_import=self.energy_import,
            energy_export=self.energy_export,
            reactive_energy=self.reactive_energy,
            active_power_demand=self.demand_kw,
            reactive_power_demand=self.demand_kvar,
            energy_net=self.energy_import - self.energy_export,
            frequency_deviation=(self.frequency - 50.0) * 1000,
            transformer_energized=transformer,
            voltage_sag=sag < 1.0,
            oil_temperature_alarm=self.oil > self.oil_temperature_limit,
            remote_control=True,
            tap_position=tap,
            protection_trip=False,
            buchholz_alarm=False,
            door_open=rng.random() < 0.001,
            dc_supply_ok=True,
        )
        for n, (weight, closed) in enumerate(zip(self.feeder_weights, feeders, strict=True), 1):
            share = weight / closed_weight if closed and s else 0.0
            fp, fq = p * share * (1 + gauss(0, 0.01)), q * share * (1 + gauss(0, 0.01))
            apparent = math.hypot(fp, fq)
            values[f"feeder_{n:02d}_current"] = apparent * 1000 / (_SQRT3 * mv) if mv else 0.0
            values[f"feeder_{n:02d}_active_power"] = fp
            values[f"feeder_{n:02d}_reactive_power"] = fq
            values[f"feeder_{n:02d}_power_factor"] = fp / apparent if apparent else 0.0
        return values

    def _render(self) -> None:
        values = dict(self.shown)
        values.update(self.breakers)
        values["breaker_operations"] = self.breaker_operations
        values["voltage_setpoint"] = self.voltage_setpoint
        values["oil_temperature_limit"] = self.oil_temperature_limit
        status: dict[int, int] = {}
        for name, point in self.points.items():
            value = values.get(name, 0)
            table = self.tables[point.function]
            if point.function.is_bits:
                table.put_bit(point.address, bool(value))
            elif point.type is DataType.BOOL:
                status[point.address] = status.get(point.address, 0) | (
                    bool(value) << (point.bit or 0)
                )
            else:
                table.put_registers(point.address, _encode(float(value), point))
        holding = self.tables[Function.HOLDING]
        for address, word in status.items():
            holding.put_registers(address, [word])
        mask = int(self.active(Fault.VOLTAGE_SAG)) | int(self.active(Fault.FROZEN)) << 1
        holding.put_registers(CONTROL_ADDRESS + 1, [self.fault_seconds, mask])

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
        function = _FUNCTION_OF_CODE[func_code]
        if self.refused and any(
            (function, at) in self.refused for at in range(address, address + count)
        ):
            return ExcCodes.ILLEGAL_ADDRESS
        if set_values is not None and (refusal := self._write(function, address, set_values)):
            return refusal
        image = self.tables[function].image
        registers[: len(image)] = image
        return None

    def _write(
        self, function: Function, address: int, values: list[int] | list[bool]
    ) -> ExcCodes | None:
        if function is Function.COIL:
            for offset, value in enumerate(values):
                for name, point in self.points.items():
                    if point.function is Function.COIL and point.address == address + offset:
                        if self.breakers[name] != bool(value):
                            self.breaker_operations += 1
                        self.breakers[name] = bool(value)
            self.advance(self.clock())
            return None
        holding = self.tables[Function.HOLDING]
        trial = list(holding.image)
        index = address - holding.start
        trial[index : index + len(values)] = [int(value) for value in values]
        written = range(address, address + len(values))
        accepted: dict[str, float] = {}
        for point in self.setpoints:
            if written.start < point.address + point.width and point.address < written.stop:
                at = point.address - holding.start
                value = float(decode(trial[at : at + point.width], point))
                low, high = SETPOINT_LIMITS[point.name]
                if not low <= value <= high:
                    return ExcCodes.ILLEGAL_VALUE
                accepted[point.name] = value
        seconds = trial[CONTROL_ADDRESS + 1 - holding.start]
        fault_code = trial[CONTROL_ADDRESS - holding.start]
        if CONTROL_ADDRESS in written and fault_code not in (0, *_FAULT_OF_CODE):
            return ExcCodes.ILLEGAL_VALUE
        for name, value in accepted.items():
            setattr(self, name, value)
        if CONTROL_ADDRESS + 1 in written:
            self.fault_seconds = seconds
        if CONTROL_ADDRESS in written:
            if fault_code == 0:
                self.clear()
            else:
                duration = float(self.fault_seconds or DEFAULT_FAULT_SECONDS)
                self.inject(_FAULT_OF_CODE[fault_code], duration)
        self.advance(self.clock())
        holding.image[CONTROL_ADDRESS - holding.start] = (
            fault_code if CONTROL_ADDRESS in written else 0
        )
        return None


class Substation:
    """The simulator: bays on unit ids ``first_unit..first_unit+devices-1``, one TCP server
    and, when ``serial_port`` is given, an RTU server on that serial device too.

    Use as an async context manager; ``port`` is the bound TCP port (ask for port 0 to get a
    free one). ``period=None`` stops the clock-driven updates: tests call :meth:`step`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 5020,
        *,
        devices: int = 1,
        first_unit: int = 1,
        serial_port: str | None = None,
        baudrate: int = 19200,
        period: float | None = 1.0,
        clock: Callable[[], float] = time.time,
        seed: int | None = None,
        profile: ModbusDevice | None = None,
    ) -> None:
        if devices < 1 or first_unit < 1 or first_unit + devices - 1 > 247:
            raise ValueError("unit ids must lie in 1..247 (devices >= 1, first_unit >= 1)")
        if period is not None and period <= 0:
            raise ValueError("period must be a positive number of seconds, or None")
        self.host = host
        self.port = port
        self.serial_port = serial_port
        self.baudrate = baudrate
        self.period = period
        self.clock = clock
        self.profile = profile or load_substation_profile()
        seeds = random.Random(seed)
        self.bays = {
            unit: Bay(unit, self.profile, clock, random.Random(seeds.getrandbits(64)))
            for unit in range(first_unit, first_unit + devices)
        }
        self._servers: list[ModbusTcpServer | ModbusSerialServer] = []
        self._ticker: asyncio.Task[None] | None = None
        self.requests: Counter[int] = Counter()
        """Requests received per unit id, answered or not."""
        self.connections = 0
        """TCP connections accepted since the start."""

    @property
    def units(self) -> list[int]:
        return list(self.bays)

    async def start(self) -> None:
        devices = [bay.device for bay in self.bays.values()]
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
            self._ticker = asyncio.create_task(self._tick(self.period), name="substation clock")

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

    async def __aenter__(self) -> Substation:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _tick(self, period: float) -> None:
        while True:
            await asyncio.sleep(period)
            self.step()

    def step(self, now: float | None = None) -> None:
        """Advance every bay to clock time ``now`` (default: the clock's now)."""
        moment = self.clock() if now is None else now
        for bay in self.bays.values():
            bay.advance(moment)

    def inject(self, fault: Fault | str, seconds: float, *, unit: int | None = None) -> None:
        """Start ``fault`` for ``seconds`` on ``unit`` (every unit when None)."""
        kind = Fault(fault)
        if not seconds > 0:
            raise ValueError("a fault lasts a positive number of seconds")
        for bay in self._bays(unit):
            bay.inject(kind, seconds)

    def clear(self, *, unit: int | None = None) -> None:
        for bay in self._bays(unit):
            bay.clear()

    def refuse_address(
        self, function: Function, address: int, *, unit: int | None = None, refused: bool = True
    ) -> None:
        """Answer exception 2 to every request covering register ``address`` (or stop doing
        so). Holding and input registers only: pymodbus tells the datastore hook which
        16-bit words a bit request touches, not which bits."""
        if function.is_bits:
            raise ValueError(f"only registers can be refused, not a {function}")
        for bay in self._bays(unit):
            if refused:
                bay.refused.add((function, address))
            else:
                bay.refused.discard((function, address))

    def _bays(self, unit: int | None) -> list[Bay]:
        if unit is None:
            return list(self.bays.values())
        if unit not in self.bays:
            raise KeyError(f"unit {unit} is not simulated here (units {self.units})")
        return [self.bays[unit]]

    def profile_for(self, unit: int = 1, **changes: object) -> ModbusDevice:
        """The register-map profile pointed at this simulator's TCP port and ``unit``;
        ``changes`` override profile fields with already-typed values (seconds as floats)."""
        self._bays(unit)
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


def load_substation_profile() -> ModbusDevice:
    profile = load_profile(SUBSTATION_PROFILE)
    assert isinstance(profile, ModbusDevice)
    return profile


async def serve_substation(
    host: str = "127.0.0.1",
    port: int = 5020,
    *,
    devices: int = 1,
    first_unit: int = 1,
    serial_port: str | None = None,
    baudrate: int = 19200,
    period: float = 1.0,
    seed: int | None = None,
    stop_event: asyncio.Event | None = None,
    on_ready: Callable[[Substation], None] | None = None,
) -> None:
    """Serve the substation until ``stop_event`` is set (or the task is cancelled).

    ``on_ready`` is called once the servers listen, with the simulator (its ``port`` is the
    bound one when ``port`` was 0).
    """
    async with Substation(
        host,
        port,
        devices=devices,
        first_unit=first_unit,
        serial_port=serial_port,
        baudrate=baudrate,
        period=period,
        seed=seed,
    ) as simulator:
        if on_ready is not None:
            on_ready(simulator)
        await (stop_event or asyncio.Event()).wait()
