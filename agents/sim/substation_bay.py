"""One transformer bay of the simulated 110/22 kV substation: its physics and its writes.

A bay is a 63 MVA, 110/22 kV transformer with twelve 22 kV feeders, behind one Modbus unit
id of the :class:`~.substation.Substation`. Its physics, kept simple but recognisable to a
grid operator: load follows a Vietnamese daily curve (night trough around 03:00, a morning
peak around 10:00, a lunch dip, an afternoon plateau and the evening peak at 19:00, local
time UTC+7) with a slow random walk; power factor drops a little under load; the on-load tap
changer holds the 22 kV busbar at the voltage setpoint; frequency wanders around 50 Hz;
top-oil temperature follows the load with a two-hour time constant; energy counters
integrate power. Opening the 110 kV breaker or the 22 kV incomer de-energises the busbar;
opening a feeder breaker removes its share of load.

Writes are checked as the device would: a breaker coil opens or closes and counts an
operation, a setpoint outside :data:`SETPOINT_LIMITS` is refused with exception 3.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from pymodbus.constants import ExcCodes

from smartcity.agents.modbus.codec import decode
from smartcity.agents.profile import Function, ModbusDevice
from smartcity.agents.sim.modbus_control import Fault, SimulatorKind
from smartcity.agents.sim.modbus_unit import SimulatedUnit, Values, local_hour
from smartcity.agents.sim.registers import RegisterTable

__all__ = [
    "FEEDERS",
    "NOMINAL_HV_KV",
    "RATING_MVA",
    "SETPOINT_LIMITS",
    "VOLTAGE_SETPOINT_KV",
    "Bay",
    "load_curve",
]

FEEDERS = 12
RATING_MVA = 63.0
NOMINAL_HV_KV = 115.0
SETPOINT_LIMITS = {"voltage_setpoint": (20.0, 25.0), "oil_temperature_limit": (40.0, 120.0)}
"""What the device itself accepts; outside it answers exception 3 (illegal data value)."""
VOLTAGE_SETPOINT_KV = 23.0
"""Where the tap changer holds the 22 kV busbar at start (line to line)."""

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
