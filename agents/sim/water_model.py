"""The simulated water station's process: its physics, independent of OPC-UA.

The station pumps treated water from a clear-water tank into the city network. Its physics
are simple but coupled the way an operator expects them to be:

- the network draws water along a daily demand curve (low at night, peaks at breakfast and
  dinner time, Vietnam time) with slow random variation; that draw is the station's outflow;
- duty pumps start and stop with the demand, and the discharge pressure sags as the flow
  per running pump rises;
- the tank level integrates inflow minus outflow; the inflow from the treatment plant
  follows a proportional controller toward the level set-point (writable);
- turbidity, pH and residual chlorine wander around treated-water values (QCVN 01-1:2018/BYT
  ranges); residual chlorine follows the dose set-point (writable) minus a chlorine demand
  that grows with turbidity;
- raw-water salinity at the intake, in per mille (g/kg) as the ``water_supply`` field
  reports it, rises and falls with the semi-diurnal tide of the Han river mouth.

A turbidity spike (:mod:`.water_faults`) is the one fault the process itself feels; the
others change what the sensors report, not the water.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from smartcity.agents.sim.water_faults import ActiveFault

__all__ = [
    "DESIGN_FLOW",
    "LEVEL_GAIN",
    "MAX_INFLOW",
    "PUMPS",
    "PUMP_CAPACITY",
    "TANK_AREA",
    "TANK_HEIGHT",
    "TIDE_PERIOD",
    "VIETNAM_UTC_OFFSET",
    "StationModel",
]

VIETNAM_UTC_OFFSET = 7 * 3600
TIDE_PERIOD = 12.42 * 3600  # principal lunar semi-diurnal tide, seconds
DESIGN_FLOW = 1000.0  # m3/h drawn at a demand factor of 1
PUMP_CAPACITY = 500.0  # m3/h per duty pump at its best efficiency point
PUMPS = 3
TANK_AREA = 600.0  # m2
TANK_HEIGHT = 6.0  # m
LEVEL_GAIN = 400.0  # m3/h of extra inflow per metre below the set-point
MAX_INFLOW = 1800.0  # m3/h the treatment plant can deliver


@dataclass
class StationModel:
    """The station's state and physics, independent of OPC-UA (deterministic for a seed)."""

    seed: int | None = None
    level: float = 4.0
    level_setpoint: float = 4.0
    dose_setpoint: float = 1.0
    total_volume: float = 0.0
    _rng: random.Random = field(init=False, repr=False)
    _demand_noise: float = field(default=0.0, init=False, repr=False)
    _last: float | None = field(default=None, init=False, repr=False)
    _pumps: int = field(default=2, init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    @staticmethod
    def demand_factor(moment: float) -> float:
        """Network demand relative to the design flow at Unix time ``moment``."""
        hour = ((moment + VIETNAM_UTC_OFFSET) % 86400) / 3600

        def bump(centre: float, width: float) -> float:
            distance = min(abs(hour - centre), 24 - abs(hour - centre))
            return math.exp(-0.5 * (distance / width) ** 2)

        return 0.5 + 0.8 * bump(6.5, 1.4) + 0.4 * bump(11.5, 1.6) + 0.7 * bump(18.5, 1.7)

    def step(self, moment: float, faults: Mapping[str, ActiveFault]) -> dict[str, float | bool]:
        """Advance to ``moment`` (Unix seconds of simulated time) and return every value."""
        hours = 0.0 if self._last is None else max(0.0, moment - self._last) / 3600
        self._last = moment
        gauss = self._rng.gauss
        self._demand_noise = 0.95 * self._demand_noise + gauss(0, 0.01)
        outflow = max(0.0, DESIGN_FLOW * self.demand_factor(moment) * (1 + self._demand_noise))
        # duty pumps with hysteresis, so they do not chatter around a threshold
        wanted = min(PUMPS, max(1, math.ceil(outflow / (0.9 * PUMP_CAPACITY))))
        if wanted > self._pumps or outflow < (self._pumps - 1) * 0.8 * PUMP_CAPACITY:
            self._pumps = wanted
        per_pump = outflow / (self._pumps * PUMP_CAPACITY)
        pressure = 4.3 - 1.4 * per_pump**2 + gauss(0, 0.02)
        inflow = min(
            MAX_INFLOW, max(0.0, outflow + LEVEL_GAIN * (self.level_setpoint - self.level))
        )
        self.level = min(TANK_HEIGHT, max(0.0, self.level + (inflow - outflow) * hours / TANK_AREA))
        self.total_volume += outflow * hours
        turbidity = max(0.05, 0.35 + gauss(0, 0.03))
        spike = faults.get("Turbidity")
        if spike is not None and spike.kind == "turbidity_spike":
            decay = max(5.0, (spike.until - spike.started) / 3)
            turbidity += 8.0 * math.exp(-(time.monotonic() - spike.started) / decay)
        hour_angle = 2 * math.pi * (((moment + VIETNAM_UTC_OFFSET) % 86400) / 86400)
        ph = 7.2 + 0.12 * math.sin(hour_angle - 1.0) + gauss(0, 0.015)
        tide = math.sin(2 * math.pi * moment / TIDE_PERIOD)
        salinity = max(0.02, 0.25 + 0.35 * max(0.0, tide) ** 2 + gauss(0, 0.01))
        demand = 0.45 + 0.08 * turbidity + gauss(0, 0.01)
        chlorine = max(0.0, self.dose_setpoint - demand)
        values: dict[str, float | bool] = {
            "Flow": round(outflow, 2),
            "TotalVolume": round(self.total_volume, 3),
            "Pressure": round(pressure, 3),
            "TankLevel": round(self.level, 3),
            "LevelSetpoint": self.level_setpoint,
            "Turbidity": round(turbidity, 3),
            "pH": round(ph, 3),
            "Salinity": round(salinity, 3),
            "ResidualChlorine": round(chlorine, 3),
            "ChlorineDoseSetpoint": self.dose_setpoint,
        }
        for n in range(1, PUMPS + 1):
            values[f"Pump{n}.Running"] = n <= self._pumps
        return values
