"""Environment: air quality, river and lake water quality, and wastewater discharges.

The city runs an automatic air-quality station with an AQI, a 16-indicator air monitoring
system at the administrative centre, an automatic water station on the Cau Do river,
monitoring of 5 of its 10 lakes and continuous monitoring of wastewater treatment stations
(Tuong 2021, 4.2 (9)).

Air pollutants are all in ug/m3, CO included: that is how QCVN 05:2023/BTNMT (ambient air
quality) states its limits and how Decision 1459/QD-TCMT (2019) computes VN_AQI, so no
conversion sits between a reading and the index. VN_AQI bands: 0-50 good, 51-100 moderate,
101-150 poor, 151-200 bad, 201-300 very bad, above 300 hazardous. VN_WQI follows Decision
1460/QD-TCMT (2019).

The hourly VN_AQI is derived here, once per completed hour, from the hourly history the
monitoring service hands to ``derive``; the arithmetic is in :mod:`smartcity.plugins.vn_aqi`.
"""

from __future__ import annotations

import math

from smartcity.fields import (
    Aggregation,
    AlertRuleTemplate,
    Comparison,
    ConditionKind,
    DeviceProfileTemplate,
    Direction,
    FieldInfo,
    Kpi,
    Metric,
    MetricKind,
    Pillar,
    Quality,
    Reading,
    Severity,
    ValueType,
    hookimpl,
)
from smartcity.fields.model import HourlyHistory
from smartcity.plugins import profiles, vn_aqi

FIELD_ID = "environment"
VN_AQI = "Decision 1459/QD-TCMT (VN_AQI)"
DAY = 24 * 3600
POLLUTANT_NAMES = {
    "pm2_5": "PM2.5",
    "pm10": "PM10",
    "o3": "O3 (1-hour)",
    "no2": "NO2",
    "so2": "SO2",
    "co": "CO",
}


@hookimpl
def field_info() -> FieldInfo:
    return FieldInfo(
        id=FIELD_ID,
        pillar=Pillar.ENVIRONMENT,
        title="Environment",
        description=(
            "Air quality (VN_AQI), river and lake water quality (VN_WQI) and automatic "
            "monitoring of wastewater discharges"
        ),
    )


@hookimpl
def metrics() -> list[Metric]:
    return [
        # Ambient air
        Metric(
            "pm2_5", "ug/m3", "Fine particulate matter, aerodynamic diameter <= 2.5 um", 0, 1000
        ),
        Metric("pm10", "ug/m3", "Particulate matter, aerodynamic diameter <= 10 um", 0, 2000),
        Metric("tsp", "ug/m3", "Total suspended particulates", 0, 5000),
        Metric("no2", "ug/m3", "Nitrogen dioxide", 0, 5000),
        Metric("so2", "ug/m3", "Sulphur dioxide", 0, 5000),
        Metric("co", "ug/m3", "Carbon monoxide", 0, 150000),
        Metric("o3", "ug/m3", "Ozone", 0, 2000),
        Metric("air_temperature", "degC", "Ambient air temperature", -10, 60),
        Metric("relative_humidity", "%", "Ambient relative humidity", 0, 100),
        Metric("noise_level", "dBA", "A-weighted equivalent sound level", 20, 140),
        # Air quality index, derived once an hour (see derive below)
        Metric(
            "vn_aqi", "1", "Vietnam air quality index, hourly", 0, 500, value_type=ValueType.INT
        ),
        Metric(
            "vn_aqi_category",
            "{category}",
            "Air quality band of the hourly VN_AQI (Table 1 of Decision 1459/QD-TCMT)",
            1,
            6,
            kind=MetricKind.STATE,
            value_type=ValueType.INT,
            states={category.index: category.name.lower() for category in vn_aqi.CATEGORIES},
        ),
        Metric(
            "vn_aqi_dominant",
            "{pollutant}",
            "Pollutant with the largest sub-index, the one a VN_AQI publication names",
            1,
            len(vn_aqi.POLLUTANTS),
            kind=MetricKind.STATE,
            value_type=ValueType.INT,
            states=dict(enumerate(vn_aqi.POLLUTANTS, start=1)),
        ),
        *(
            Metric(
                f"aqi_{pollutant}",
                "1",
                f"Hourly VN_AQI sub-index of {POLLUTANT_NAMES[pollutant]}",
                0,
                500,
                value_type=ValueType.INT,
            )
            for pollutant in vn_aqi.POLLUTANTS
        ),
        # A NowCast is a weighted mean of hourly means: the range of its pollutant.
        Metric("pm2_5_nowcast", "ug/m3", "NowCast of PM2.5 over the last 12 hourly means", 0, 1000),
        Metric("pm10_nowcast", "ug/m3", "NowCast of PM10 over the last 12 hourly means", 0, 2000),
        # Surface water and wastewater
        Metric("ph", "pH", "pH of river, lake or discharged water", 0, 14),
        Metric("dissolved_oxygen", "mg/L", "Dissolved oxygen", 0, 20),
        Metric("cod", "mg/L", "Chemical oxygen demand", 0, 5000),
        Metric("bod5", "mg/L", "Five-day biochemical oxygen demand", 0, 2000),
        Metric("tss", "mg/L", "Total suspended solids", 0, 5000),
        Metric("ammonium", "mg/L", "Ammonium, as N", 0, 500),
        Metric("water_temperature", "degC", "Water temperature", 0, 50),
        Metric("vn_wqi", "1", "Vietnam water quality index", 0, 100, value_type=ValueType.INT),
        Metric("wastewater_flow", "m3/h", "Discharge flow of a wastewater station", 0, 5000),
        Metric(
            "wastewater_volume",
            "m3",
            "Volume discharged by a wastewater station (totaliser)",
            0,
            kind=MetricKind.COUNTER,
        ),
    ]


@hookimpl
def kpis() -> list[Kpi]:
    return [
        Kpi(
            id="good_air_share",
            title="Hours with good or moderate air",
            unit="%",
            description="Share of the last 30 days with VN_AQI at most 100 (good or moderate)",
            direction=Direction.HIGHER,
            aggregation=Aggregation.SHARE_AT_MOST,
            metric="vn_aqi",
            threshold=100,
            window_seconds=30 * DAY,
            standard=VN_AQI,
        ),
        Kpi(
            id="annual_mean_aqi",
            title="Annual mean VN_AQI",
            unit="1",
            description="Mean hourly VN_AQI over the last year",
            direction=Direction.LOWER,
            aggregation=Aggregation.MEAN,
            metric="vn_aqi",
            window_seconds=365 * DAY,
            standard=VN_AQI,
        ),
        Kpi(
            id="mean_wqi",
            title="Mean VN_WQI of rivers and lakes",
            unit="1",
            description="Mean water quality index of the monitored rivers and lakes over 30 days",
            direction=Direction.HIGHER,
            aggregation=Aggregation.MEAN,
            metric="vn_wqi",
            window_seconds=30 * DAY,
            standard="Decision 1460/QD-TCMT (VN_WQI)",
        ),
    ]


# -- default alert rules -----------------------------------------------------------------
# One rule per band of Table 1 of Decision 1459/QD-TCMT from "poor" up, on the hourly
# VN_AQI derived above, each firing from the lowest index of its band: at 350 the poor, bad
# and very bad rules fire too, as Prometheus' tiered rules do, and an operator silences or
# inhibits the lower ones. The index changes once an hour, so neither a hold time nor a
# hysteresis is needed to keep it from flapping.
AIR_QUALITY_SEVERITY = {
    "Poor": Severity.WARNING,
    "Bad": Severity.WARNING,
    "Very bad": Severity.CRITICAL,
    "Hazardous": Severity.CRITICAL,
}
AQI_TABLE = "Decision 1459/QD-TCMT (VN_AQI guideline), section 1.4, Table 1"


@hookimpl
def alert_rules() -> list[AlertRuleTemplate]:
    return [
        AlertRuleTemplate(
            name=f"air_quality_{category.name.lower().replace(' ', '_')}",
            metric="vn_aqi",
            condition=ConditionKind.THRESHOLD,
            severity=AIR_QUALITY_SEVERITY[category.name],
            summary=f"Air quality {category.name.lower()} ({category.name_vi}): hourly VN_AQI "
            f"{category.low} or more",
            comparison=Comparison.GE,
            threshold=category.low,
            standard=f"{AQI_TABLE}: VN_AQI {category.low}-{category.high} is "
            f"{category.name.lower()} ({category.name_vi}, {category.colour_vi})",
        )
        for category in vn_aqi.CATEGORIES
        if category.name in AIR_QUALITY_SEVERITY
    ]


# -- derived values ----------------------------------------------------------------------


@hookimpl
def derive(hourly: HourlyHistory | None) -> list[Reading]:
    """The hourly VN_AQI of an air-quality station, at the end of each hour.

    Batches themselves carry nothing to derive: the index is defined on hourly means, so
    it is computed only when ``hourly`` comes, and only for a device that measures at
    least one of the six pollutants (a river or wastewater station has no air index).

    What comes out, all timestamped at ``hourly.hour_end``:

    - ``aqi_<pollutant>`` for every pollutant with enough data, and ``pm2_5_nowcast`` /
      ``pm10_nowcast``, GOOD;
    - ``vn_aqi``, ``vn_aqi_category`` and ``vn_aqi_dominant``, GOOD, when PM2.5 or PM10
      has a NowCast;
    - otherwise ``vn_aqi`` alone, BAD, without a value and with the reason: an air station
      whose index cannot be computed shows that gap for the hour, rather than leaving the
      previous hour's index standing as its latest value.

    The hourly means are of GOOD readings only (the contract of :class:`HourlyHistory`), so
    a bad reading never reaches the index.
    """
    if hourly is None or not any(pollutant in hourly.means for pollutant in vn_aqi.POLLUTANTS):
        return []
    when = hourly.hour_end
    result = vn_aqi.hourly_aqi(
        {
            pollutant: hourly.recent(pollutant, vn_aqi.NOWCAST_HOURS)
            for pollutant in vn_aqi.POLLUTANTS
        }
    )
    derived = [
        Reading(f"aqi_{pollutant}", vn_aqi.round_index(value), "1", when)
        for pollutant, value in result.sub_indices.items()
    ]
    derived += [
        Reading(f"{particle}_nowcast", result.concentrations[particle], "ug/m3", when)
        for particle in vn_aqi.PARTICLES
        if particle in result.concentrations
    ]
    if result.value is None or result.dominant is None:
        derived.append(
            Reading(
                "vn_aqi", math.nan, "1", when, Quality.BAD, f"no hourly VN_AQI: {result.missing}"
            )
        )
        return derived
    category = vn_aqi.aqi_category(result.value)
    dominant = vn_aqi.POLLUTANTS.index(result.dominant) + 1
    derived += [
        Reading("vn_aqi", result.value, "1", when),
        Reading("vn_aqi_category", category.index, "{category}", when),
        Reading("vn_aqi_dominant", dominant, "{pollutant}", when),
    ]
    return derived


# -- device profiles ---------------------------------------------------------------------
# Ready profiles for the field's common equipment are YAML files in profiles/environment/,
# read once, when this module is imported, so that the hook itself does no I/O.
DEVICE_PROFILES = profiles.load(FIELD_ID)


@hookimpl
def device_profiles() -> list[DeviceProfileTemplate]:
    return list(DEVICE_PROFILES)
