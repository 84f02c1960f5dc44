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
"""

from __future__ import annotations

from smartcity.fields import (
    Aggregation,
    DeviceProfileTemplate,
    Direction,
    FieldInfo,
    Kpi,
    Metric,
    MetricKind,
    Pillar,
    ValueType,
    hookimpl,
)
from smartcity.plugins import profiles

FIELD_ID = "environment"
VN_AQI = "Decision 1459/QD-TCMT (VN_AQI)"
DAY = 24 * 3600


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
        Metric(
            "vn_aqi", "1", "Vietnam air quality index, hourly", 0, 500, value_type=ValueType.INT
        ),
        Metric("air_temperature", "degC", "Ambient air temperature", -10, 60),
        Metric("relative_humidity", "%", "Ambient relative humidity", 0, 100),
        Metric("noise_level", "dBA", "A-weighted equivalent sound level", 20, 140),
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


# -- device profiles ---------------------------------------------------------------------
# Ready profiles for the field's common equipment are YAML files in profiles/environment/,
# read once, when this module is imported, so that the hook itself does no I/O.
DEVICE_PROFILES = profiles.load(FIELD_ID)


@hookimpl
def device_profiles() -> list[DeviceProfileTemplate]:
    return list(DEVICE_PROFILES)
