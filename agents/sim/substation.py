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
(:meth:`Substation.inject`), through the control block every simulator shares
(:mod:`.modbus_control`), per unit id, in holding registers:

* ``200`` fault code: 0 clear all faults, 1 voltage sag (phase voltages drop to 70..80 %),
  2 frozen sensors (measurements stop changing), 3 stop answering (no response at all);
* ``201`` duration in seconds (0 means 10 s);
* ``202`` active faults, a bit mask (bit 0 sag, bit 1 frozen);
* ``203`` the simulator's kind (1, a substation), read-only.

A register can also be made unreadable (:meth:`Substation.refuse_address`): any request that
covers it is answered with exception 2, the way a device answers for an address its firmware
does not map. The simulator counts the requests it receives per unit id and the TCP
connections it accepts, so tests can see the agent's traffic from the device's side.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable
from pathlib import Path

from pymodbus.constants import ExcCodes

from smartcity.agents.modbus.codec import decode
from smartcity.agents.profile import Function, ModbusDevice, load_profile
from smartcity.agents.sim.modbus_control import (
    CONTROL_ADDRESS,
    DEFAULT_FAULT_SECONDS,
    Fault,
    SimulatorKind,
)
from smartcity.agents.sim.modbus_sim import ModbusSimulator
from smartcity.agents.sim.modbus_unit import UTC_OFFSET, SimulatedUnit, Values, local_hour
from smartcity.agents.sim.registers import RegisterTable

__all__ = [
    "CONTROL_ADDRESS",
    "DEFAULT_FAULT_SECONDS",
    "SUBSTATION_PROFILE",
    "UTC_OFFSET",
    "Bay",
    "Fault",
    "Substation",
    "load_curve",
    "load_substation_profile",
    "serve_substation",
]

SUBSTATION_PROFILE = Path(__file__).parent / "profiles" / "substation.yaml"
"""The register map, as a device profile the agent loads directly."""

FEEDERS = 12
RATING_MVA = 63.0
NOMINAL_HV_KV = 115.0
SETPOINT_LIMITS = {"voltage_setpoint": (20.0, 25.0), "oil_temperature_limit": (40.0, 120.0)}
VOLTAGE_SETPOINT_KV = 23.0
"""Where the tap changer holds the 22 kV busbar at start (line to line)."""
"""What the device itself accepts; outside it answers exception 3 (illegal data value)."""

# Hourly load of a Vietnamese distribution substation, as a fraction of the evening peak.
_LOAD_CURVE = (
    0.62, 0.58, 0.55, 0.54, 0.55, 0.60, 0.68, 0.78, 0.86, 0.91, 0.94, 0.92,
    0.80, 0.84, 0.92, 0.93, 0.90, 0.92, 0.98, 1.00, 0.97, 0.90, 0.80, 0.70,
)  # fmt: skip
_SQRT3 = math.sqrt(3.0)


def load_curve(hour: float) -> float:
    """Load at local ``hour`` (0..24) as a fraction of the evening peak, interpolated."""
    hour %= 24.0
    low = int(hour)
    fraction = hour - low
    return _LOAD_CURVE[low] * (1 - fraction) + _LOAD_CURVE[(low + 1) % 24] * fraction


class Bay(SimulatedUnit):
    """One transformer bay behind one unit id: its physical state and its register images."""

    kind = SimulatorKind.SUBSTATION

    def __init__(
        self, unit: int, profile: ModbusDevice, clock: Callable[[], float], rng: random.Random
    ) -> None:
        super().__init__(unit, profile, clock, rng)
        self.voltage_setpoint = VOLTAGE_SETPOINT_KV
        self.oil_temperature_limit = 90.0
        self.breakers = {p.name: True for p in profile.points if p.function is Function.COIL}
        self.breaker_operations = 0
        self.sag_depth = 1.0
        self.setpoints = [
            p for p in profile.points if p.function is Function.HOLDING and p.writable
        ]
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
        self.advance(self.last)

    def started(self, fault: Fault) -> None:
        if fault is Fault.VOLTAGE_SAG:
            self.sag_depth = self.rng.uniform(0.70, 0.80)

    # -- the model ---------------------------------------------------------------------------

    def measure(self, now: float, dt: float) -> Values:
        rng, gauss = self.rng, self.rng.gauss
        hour = local_hour(now)
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

        values: Values = {}
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

    def values(self) -> Values:
        values = dict(self.shown)
        values.update(self.breakers)
        values["breaker_operations"] = self.breaker_operations
        values["voltage_setpoint"] = self.voltage_setpoint
        values["oil_temperature_limit"] = self.oil_temperature_limit
        return values

    # -- writes ------------------------------------------------------------------------------

    def write(
        self, function: Function, address: int, values: list[int] | list[bool]
    ) -> ExcCodes | None:
        if function is not Function.COIL:
            return super().write(function, address, values)
        for offset, value in enumerate(values):
            for name, point in self.points.items():
                if point.function is Function.COIL and point.address == address + offset:
                    if self.breakers[name] != bool(value):
                        self.breaker_operations += 1
                    self.breakers[name] = bool(value)
        self.advance(self.clock())
        return None

    def write_holding(
        self, holding: RegisterTable, trial: list[int], written: range
    ) -> ExcCodes | None:
        accepted: dict[str, float] = {}
        for point in self.setpoints:
            if written.start < point.address + point.width and point.address < written.stop:
                at = point.address - holding.start
                value = float(decode(trial[at : at + point.width], point))
                low, high = SETPOINT_LIMITS[point.name]
                if not low <= value <= high:
                    return ExcCodes.ILLEGAL_VALUE
                accepted[point.name] = value
        for name, value in accepted.items():
            setattr(self, name, value)
        return None


class Substation(ModbusSimulator):
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
        profile = profile or load_substation_profile()
        seeds = random.Random(seed)
        bays = [
            Bay(unit, profile, clock, random.Random(seeds.getrandbits(64)))
            for unit in range(first_unit, first_unit + devices)
        ]
        super().__init__(
            bays,
            profile=profile,
            host=host,
            port=port,
            serial_port=serial_port,
            baudrate=baudrate,
            period=period,
            clock=clock,
        )
        self.bays: dict[int, Bay] = {bay.unit: bay for bay in bays}


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
