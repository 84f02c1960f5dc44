"""VN_AQI, the Vietnam air quality index, as the Vietnam Environment Administration defines it.

Source: Decision 1459/QD-TCMT of 12 November 2019, "Technical guideline on calculating and
publishing the Vietnam air quality index (VN_AQI)", which replaced Decision 878/QD-TCMT
(2011). Section numbers and table numbers below are the guideline's.

Only the hourly index (AQI^h, section 2.2.1) is computed here:

1. For PM2.5 and PM10 the concentration is the NowCast of the last twelve hourly means
   (2.2.1 a); for O3 (1-hour), NO2, SO2 and CO it is the mean of the hour (2.2.1 b).
2. Each pollutant's sub-index AQI_x interpolates linearly between the breakpoints of
   Table 2 (formulas 1 and 2, identical but for the concentration they take)::

       AQI_x = (I_{i+1} - I_i) / (BP_{i+1} - BP_i) * (C_x - BP_i) + I_i

3. AQI^h is the largest sub-index (2.2.1 c), rounded to an integer, and is computed only
   when PM2.5 or PM10 takes part (2.1 b: "at least one of the two parameters PM10, PM2.5
   is required").

The module is plain arithmetic on hourly means, independent of the plugin API, so that the
monitoring API and the dashboard can use :func:`aqi_category` and the tables directly.
All concentrations are in ug/m3, CO included, as Table 2 states them.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

# -- Table 2: breakpoints BP_i (ug/m3) for the index levels I_i ------------------------------
#
#   i | I_i | O3 (1h) | O3 (8h) |       CO |    SO2 |    NO2 | PM10 | PM2.5
#   1 |   0 |       0 |       0 |        0 |      0 |      0 |    0 |     0
#   2 |  50 |     160 |     100 |   10 000 |    125 |    100 |   50 |    25
#   3 | 100 |     200 |     120 |   30 000 |    350 |    200 |  150 |    50
#   4 | 150 |     300 |     170 |   45 000 |    550 |    700 |  250 |    80
#   5 | 200 |     400 |     210 |   60 000 |    800 |  1 200 |  350 |   150
#   6 | 300 |     800 |     400 |   90 000 |  1 600 |  2 350 |  420 |   250
#   7 | 400 |   1 000 |       - |  120 000 |  2 100 |  3 100 |  500 |   350
#   8 | 500 | >=1 200 |       - |>=150 000 | >=2 630| >=3 850| >=600|  >=500
#
# Notes to Table 2: the hourly index of O3 uses the O3 (1h) column; the O3 (8h) column
# belongs to the daily index (AQI^d, section 2.2.2), which is not computed here. Row 8 reads
# "at least": a concentration at or above it has the sub-index 500.

INDEX_LEVELS: tuple[int, ...] = (0, 50, 100, 150, 200, 300, 400, 500)
"""I_i of Table 2."""

BREAKPOINTS: Mapping[str, tuple[float, ...]] = MappingProxyType(
    {
        "pm2_5": (0, 25, 50, 80, 150, 250, 350, 500),
        "pm10": (0, 50, 150, 250, 350, 420, 500, 600),
        "o3": (0, 160, 200, 300, 400, 800, 1000, 1200),  # O3 (1h)
        "no2": (0, 100, 200, 700, 1200, 2350, 3100, 3850),
        "so2": (0, 125, 350, 550, 800, 1600, 2100, 2630),
        "co": (0, 10000, 30000, 45000, 60000, 90000, 120000, 150000),
    }
)
"""BP_i of Table 2 for the hourly index, by the metric names of the environment field.
The order is the one ties between equal sub-indices are resolved in (particles first)."""

PARTICLES = ("pm2_5", "pm10")
"""Pollutants whose hourly concentration is the NowCast (2.2.1 a)."""

POLLUTANTS = tuple(BREAKPOINTS)

NOWCAST_HOURS = 12
"""The NowCast weighs the last twelve hourly means, c1 (the hour just ended) to c12."""


# -- Table 1: index ranges, air quality, colours ----------------------------------------------


@dataclass(frozen=True, slots=True)
class AqiCategory:
    """One row of Table 1: what an index value means and the colour it is shown in.

    ``name`` and ``colour`` are English renderings of the Decision's own words, which are
    kept in ``name_vi`` and ``colour_vi``; ``rgb`` is the Decision's colour code.
    """

    index: int
    """1 (good) to 6 (hazardous): the value of the ``vn_aqi_category`` metric."""
    low: int
    high: int
    name: str
    colour: str
    rgb: tuple[int, int, int]
    name_vi: str
    colour_vi: str

    @property
    def hex(self) -> str:
        """The colour as CSS writes it, e.g. ``#00E400``."""
        return "#{:02X}{:02X}{:02X}".format(*self.rgb)


CATEGORIES: tuple[AqiCategory, ...] = (
    AqiCategory(1, 0, 50, "Good", "green", (0, 228, 0), "Tốt", "Xanh"),
    AqiCategory(2, 51, 100, "Moderate", "yellow", (255, 255, 0), "Trung bình", "Vàng"),
    AqiCategory(3, 101, 150, "Poor", "orange", (255, 126, 0), "Kém", "Da cam"),
    AqiCategory(4, 151, 200, "Bad", "red", (255, 0, 0), "Xấu", "Đỏ"),
    AqiCategory(5, 201, 300, "Very bad", "purple", (143, 63, 151), "Rất xấu", "Tím"),
    AqiCategory(6, 301, 500, "Hazardous", "brown", (126, 0, 35), "Nguy hại", "Nâu"),
)
"""Table 1 of the Decision, in order of ``index``."""


def round_index(value: float) -> int:
    """An index value rounded to an integer, halves up, as the Decision rounds AQI^h
    (2.2.1 c). Python's ``round`` would round 50.5 to 50, the even neighbour."""
    return math.floor(value + 0.5)


def aqi_category(value: float) -> AqiCategory:
    """The Table 1 row of an index value. The value is rounded first (the ranges are of
    integers: 50.4 is good, 50.5 moderate); values above 500 are hazardous."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"an AQI value is a finite number, not {value!r}")
    if value < 0:
        raise ValueError(f"an AQI value cannot be negative ({value!r})")
    rounded = round_index(value)
    for category in CATEGORIES:
        if rounded <= category.high:
            return category
    return CATEGORIES[-1]


# -- sections 2.2.1 a and b: NowCast and sub-indices ------------------------------------------


def sub_index(pollutant: str, concentration: float) -> float:
    """AQI_x of ``pollutant`` at ``concentration`` (ug/m3), unrounded: formula 1 (or 2,
    with a NowCast) between the Table 2 breakpoints around it; 500 from row 8 up."""
    try:
        breakpoints = BREAKPOINTS[pollutant]
    except KeyError:
        raise ValueError(
            f"{pollutant!r} has no VN_AQI breakpoints (those that do: {', '.join(POLLUTANTS)})"
        ) from None
    if not math.isfinite(concentration) or concentration < 0:
        raise ValueError(f"{pollutant}: {concentration!r} ug/m3 is not a concentration")
    if concentration >= breakpoints[-1]:
        return float(INDEX_LEVELS[-1])
    i = bisect_right(breakpoints, concentration) - 1  # BP_i <= C < BP_{i+1}
    bp_low, bp_high = breakpoints[i], breakpoints[i + 1]
    i_low, i_high = INDEX_LEVELS[i], INDEX_LEVELS[i + 1]
    return (i_high - i_low) / (bp_high - bp_low) * (concentration - bp_low) + i_low


def nowcast(hourly_means: Sequence[float | None]) -> float | None:
    """The NowCast of the twelve hourly means c1..c12, **newest first** (c1 is the hour
    just ended), ``None`` standing for an hour without data (2.2.1 a).

    The weight factor is w* = Cmin/Cmax over the twelve, raised to 1/2 when it is below.
    The result is ``None`` ("no data") unless at least two of c1, c2, c3 are present; a
    missing c_i gets the weight w^(i-1) = 0, as the Decision prescribes.

    The Decision writes the case w = 1/2 as sum((1/2)^i * c_i), without dividing by the
    sum of the weights; that is the same weighted mean, times (1 - 2^-12) when all twelve
    hours are present (a 0.024 % difference, invisible in the rounded index), but it
    would halve the NowCast whenever c1 is missing. The weighted mean is used in both cases,
    so that the missing-hour rule means what it says.
    """
    if len(hourly_means) != NOWCAST_HOURS:
        raise ValueError(f"the NowCast takes {NOWCAST_HOURS} hourly means, not {len(hourly_means)}")
    if sum(value is not None for value in hourly_means[:3]) < 2:
        return None
    present = [value for value in hourly_means if value is not None]
    for value in present:
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{value!r} ug/m3 is not an hourly mean concentration")
    c_max = max(present)
    if c_max == 0:
        return 0.0
    w = max(min(present) / c_max, 0.5)
    weighted = total = 0.0
    weight = 1.0  # w^(i-1) for i = 1
    for value in hourly_means:
        if value is not None:
            weighted += weight * value
            total += weight
        weight *= w
    return weighted / total


# -- section 2.2.1 c: the hourly index -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HourlyAqi:
    """AQI^h of one station for one hour, with what went into it."""

    concentrations: Mapping[str, float]
    """The concentration each sub-index was computed from: the NowCast for particles, the
    hourly mean otherwise."""
    sub_indices: Mapping[str, float]
    """AQI_x of every pollutant with enough data, unrounded."""
    value: int | None
    """AQI^h, rounded; ``None`` when neither PM2.5 nor PM10 has a NowCast."""
    dominant: str | None
    """The pollutant with the largest sub-index (the one the Decision's Table 3 asks a
    publication to name); ties go to the earlier of :data:`POLLUTANTS`."""
    missing: str = ""
    """Why ``value`` is ``None``."""

    @property
    def category(self) -> AqiCategory | None:
        return None if self.value is None else aqi_category(self.value)


def hourly_aqi(recent: Mapping[str, Sequence[float | None]]) -> HourlyAqi:
    """AQI^h from each pollutant's recent hourly means, **newest first** (c1, the hour just
    ended, at index 0; ``None`` for an hour without data). Particles need
    :data:`NOWCAST_HOURS` means; the gases use only c1. Pollutants absent from ``recent``
    or without data take no part.
    """
    concentrations: dict[str, float] = {}
    for pollutant in POLLUTANTS:
        means = recent.get(pollutant)
        if not means:
            continue
        # Formula 2 takes the NowCast for particles, formula 1 the hour's mean for gases.
        concentration = nowcast(means) if pollutant in PARTICLES else means[0]
        if concentration is not None:
            concentrations[pollutant] = concentration
    sub_indices = {
        pollutant: sub_index(pollutant, concentration)
        for pollutant, concentration in concentrations.items()
    }
    if not any(particle in sub_indices for particle in PARTICLES):
        return HourlyAqi(
            MappingProxyType(concentrations),
            MappingProxyType(sub_indices),
            None,
            None,
            "VN_AQI needs a NowCast of PM2.5 or PM10, which needs hourly means for at least "
            "2 of the last 3 hours",
        )
    dominant = max(sub_indices, key=sub_indices.__getitem__)  # first of equal maxima
    return HourlyAqi(
        MappingProxyType(concentrations),
        MappingProxyType(sub_indices),
        round_index(sub_indices[dominant]),
        dominant,
    )
