"""A simulated automatic air-quality monitoring station in Da Nang, served over Modbus TCP.

The register map is the environment field's shipped template ``air-quality-station`` (the
data logger of a station: PM2.5, PM10, NO2, SO2, CO and O3 in ug/m3, air temperature and
relative humidity, float32 ABCD input registers from 0), the same file an agent is given, so
the simulator and the agent cannot disagree about an address or a word order.

The values follow the day of a roadside urban station by the sea, local time UTC+7:

* air temperature around the month's mean (about 22 degC in January, 29 degC in June and
  July), coolest before dawn and warmest in the early afternoon, about 6.5 degC apart;
  relative humidity moves the other way, from the low 90s at dawn to the 60s after noon;
* primary pollutants (PM2.5, PM10, NO2, CO, a little SO2 from traffic and the port) follow
  traffic, with peaks at 07:00-08:00 and 17:00-19:00, concentrated at night under a low
  mixing layer and diluted in the afternoon; particles are higher in the dry months
  (December to April, PM2.5 around 25 ug/m3) than in the wet season (around 15 ug/m3);
* ozone is photochemical: near 20 ug/m3 at night, 90-100 ug/m3 in the early afternoon;
* every value carries a little noise and the pollutants a slow shared random walk (the
  weather), all from one seedable generator.

Faults through the shared control block (:mod:`.modbus_control`), holding registers 200..203:
``pollution_episode`` (code 4: PM2.5 jumps to about 280..340 ug/m3 and PM10 to about 1.5
times that, smoke from open burning; an hour of it drives the hourly VN_AQI into "very bad" or
"hazardous", past every default alert rule of the environment field), ``frozen`` (2, the
logger repeats its last values) and ``no_answer`` (3, silence), cleared with code 0.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from smartcity.agents.profile import ModbusDevice, parse_profile
from smartcity.agents.sim.modbus_control import Fault, SimulatorKind
from smartcity.agents.sim.modbus_sim import ModbusSimulator
from smartcity.agents.sim.modbus_unit import UTC_OFFSET, SimulatedUnit, Values, local_hour

__all__ = [
    "DEFAULT_DEVICE",
    "DEFAULT_SITE",
    "TEMPLATE",
    "AirQualityStation",
    "StationLogger",
    "serve_air_quality",
    "station_document",
]

TEMPLATE = "air-quality-station"
"""The environment field's device profile template this station serves."""
FIELD = "environment"
DEFAULT_SITE = "son-tra-air"
DEFAULT_DEVICE = "air-quality-station"
DEFAULT_POLL = "5s"
"""An analyser averages over a minute, but a demo wants to see values move."""

# Monthly means of a coastal station in Da Nang, January first: air temperature (degC),
# relative humidity (%) and PM2.5 at a roadside urban station (ug/m3).
_MONTH_TEMPERATURE = (21.8, 22.8, 24.6, 26.8, 28.6, 29.4, 29.4, 29.1, 27.6, 26.0, 24.4, 22.4)
_MONTH_HUMIDITY = (85, 85, 84, 81, 76, 73, 72, 74, 81, 85, 86, 86)
_MONTH_PM25 = (27, 26, 25, 22, 17, 15, 15, 16, 16, 19, 23, 26)

# Hour by hour, local time: the day's temperature shape (-1 at dawn, +1 after noon) and road
# traffic relative to the day's mean.
_TEMPERATURE_SHAPE = (
    -0.55, -0.65, -0.75, -0.85, -0.95, -1.00, -0.90, -0.60, -0.20, 0.20, 0.50, 0.75,
    0.90, 0.98, 1.00, 0.95, 0.80, 0.60, 0.35, 0.15, -0.05, -0.20, -0.35, -0.45,
)  # fmt: skip
_TRAFFIC = (
    0.50, 0.39, 0.33, 0.33, 0.44, 0.78, 1.22, 1.61, 1.50, 1.17, 1.06, 1.06,
    1.00, 1.00, 1.06, 1.17, 1.44, 1.67, 1.61, 1.33, 1.06, 0.89, 0.72, 0.61,
)  # fmt: skip
_TEMPERATURE_HALF_RANGE = 3.3
_HUMIDITY_PER_DEGREE = 3.6
EPISODE_PM25 = (280.0, 340.0)
"""PM2.5 during a pollution episode, ug/m3 (VN_AQI sub-index 330..390, hazardous)."""


def hourly(table: tuple[float, ...], hour: float) -> float:
    """``table`` (one value per local hour) at ``hour``, interpolated, continuous at
    midnight."""
    hour %= 24.0
    low = int(hour)
    fraction = hour - low
    return table[low] * (1 - fraction) + table[(low + 1) % 24] * fraction


def _month(now: float) -> int:
    """The month (0..11) in Da Nang at epoch seconds ``now``."""
    return datetime.fromtimestamp(now + UTC_OFFSET, UTC).month - 1


class StationLogger(SimulatedUnit):
    """The station's data logger behind one unit id: the air it measures."""

    kind = SimulatorKind.AIR_QUALITY_STATION

    def __init__(
        self, unit: int, profile: ModbusDevice, clock: Callable[[], float], rng: random.Random
    ) -> None:
        super().__init__(unit, profile, clock, rng)
        self.weather = 0.0
        """Slow random walk shared by the pollutants (wind, rain, the mixing layer)."""
        self.warmth = 0.0
        self.episode_pm25 = EPISODE_PM25[0]
        self.advance(self.last)

    def started(self, fault: Fault) -> None:
        if fault is Fault.POLLUTION_EPISODE:
            self.episode_pm25 = self.rng.uniform(*EPISODE_PM25)

    def measure(self, now: float, dt: float) -> Values:
        gauss = self.rng.gauss
        hour, month = local_hour(now), _month(now)
        self.weather = 0.97 * self.weather + gauss(0, 0.02)
        self.warmth = 0.95 * self.warmth + gauss(0, 0.05)
        traffic = hourly(_TRAFFIC, hour)
        # Night: a shallow mixing layer keeps what is emitted near the ground (highest about
        # 03:00); afternoon: deep mixing dilutes it (lowest about 15:00).
        stagnation = 1 + 0.3 * math.cos(2 * math.pi * (hour - 3) / 24)
        primary = traffic * stagnation * math.exp(self.weather)

        def noisy(value: float, spread: float = 0.04) -> float:
            return max(value * (1 + gauss(0, spread)), 0.0)

        temperature = (
            _MONTH_TEMPERATURE[month]
            + _TEMPERATURE_HALF_RANGE * hourly(_TEMPERATURE_SHAPE, hour)
            + self.warmth
            + gauss(0, 0.1)
        )
        humidity = (
            _MONTH_HUMIDITY[month]
            - _HUMIDITY_PER_DEGREE * (temperature - _MONTH_TEMPERATURE[month])
            + gauss(0, 0.5)
        )
        pm25 = noisy(_MONTH_PM25[month] * (0.4 + 0.6 * primary))
        pm10 = noisy(1.5 * pm25 + 9.0 * traffic)
        if self.active(Fault.POLLUTION_EPISODE):
            pm25 = noisy(self.episode_pm25, 0.03)
            pm10 = noisy(1.5 * pm25 + 20.0, 0.03)
        no2 = noisy(10.0 + 26.0 * primary)
        sunlight = max(math.sin(math.pi * (hour - 7) / 13), 0.0) if 7 < hour < 20 else 0.0
        # NO2 above its background takes ozone with it (titration by fresh NO).
        o3 = noisy(max(22.0 + 80.0 * sunlight**1.5 - 0.25 * (no2 - 10.0), 2.0))
        return {
            "pm2_5": pm25,
            "pm10": pm10,
            "no2": no2,
            "so2": noisy(5.0 + 3.0 * traffic, 0.08),
            "co": noisy(350.0 + 650.0 * primary),
            "o3": o3,
            "air_temperature": temperature,
            "relative_humidity": min(max(humidity, 35.0), 100.0),
        }


class AirQualityStation(ModbusSimulator):
    """The simulator: one station's data logger on the template's unit id, on one Modbus TCP
    server. Use as an async context manager; ``port`` 0 picks a free port, ``period=None``
    stops the clock-driven updates (tests call :meth:`step`)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 5021,
        *,
        period: float | None = 1.0,
        clock: Callable[[], float] = time.time,
        seed: int | None = None,
        site: str = DEFAULT_SITE,
        device: str = DEFAULT_DEVICE,
    ) -> None:
        document = station_document(site=site, device=device, endpoint=f"tcp://{host}:{port}")
        profile = parse_profile(document, f"template {TEMPLATE}")
        assert isinstance(profile, ModbusDevice)
        logger = StationLogger(profile.unit_id, profile, clock, random.Random(seed))
        super().__init__(
            [logger], profile=profile, host=host, port=port, period=period, clock=clock
        )
        self.logger = logger

    def profile_for(self, unit: int | None = None, **changes: object) -> ModbusDevice:
        """The station's profile pointed at the bound port; ``changes`` override fields."""
        update: dict[str, object] = {"endpoint": f"tcp://{self.host}:{self.port}"}
        update.update(changes)
        return self.profile.model_copy(update=update)

    def document(self, poll_interval: str = DEFAULT_POLL) -> dict[str, Any]:
        """The station's profile as a YAML document, pointed at the bound port."""
        return station_document(
            site=self.profile.site,
            device=self.profile.device,
            endpoint=f"tcp://{self.host}:{self.port}",
            poll_interval=poll_interval,
        )


def station_document(
    *, site: str, device: str, endpoint: str, poll_interval: str = DEFAULT_POLL
) -> dict[str, Any]:
    """The environment field's ``air-quality-station`` template completed for one station,
    polled every ``poll_interval``, checked as the agent checks a profile (a wrong site or
    device raises :class:`~smartcity.agents.profile.ProfileError`)."""
    from smartcity.plugins import profiles

    (template,) = [t for t in profiles.load(FIELD) if t.name == TEMPLATE]
    document: dict[str, Any] = {
        "site": site,
        "field": FIELD,
        "device": device,
        "endpoint": endpoint,
    }
    document.update(template.complete(**document))
    document["poll_interval"] = poll_interval
    parse_profile(document, f"template {TEMPLATE}")
    return document


async def serve_air_quality(
    host: str = "127.0.0.1",
    port: int = 5021,
    *,
    period: float = 1.0,
    seed: int | None = None,
    site: str = DEFAULT_SITE,
    stop_event: asyncio.Event | None = None,
    on_ready: Callable[[AirQualityStation], None] | None = None,
) -> None:
    """Serve the station until ``stop_event`` is set (or the task is cancelled);
    ``on_ready`` gets the running simulator (its ``port`` is the bound one)."""
    async with AirQualityStation(host, port, period=period, seed=seed, site=site) as station:
        if on_ready is not None:
            on_ready(station)
        await (stop_event or asyncio.Event()).wait()
