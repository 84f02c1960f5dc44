"""Disaster prevention and rescue: storms, floods, rescue requests and forest-fire warning.

Central Vietnam takes typhoons and floods every year; the IOC shares warnings with residents
and tourists in storms, floods and traffic jams. Stations measure rain, wind, pressure and
river and reservoir levels. River levels are compared with the official flood alarm levels
I, II and III of each hydrological station; forest-fire danger is forecast in Vietnam's five
levels, I (low) to V (extremely dangerous). Rescue requests come through the Feedback and
Rescue Portal and the 1022 centre.
"""

from __future__ import annotations

from smartcity.fields import (
    Aggregation,
    Direction,
    FieldInfo,
    Kpi,
    Metric,
    MetricKind,
    Pillar,
    ValueType,
    hookimpl,
)

FIELD_ID = "disaster"
MONTH = 30 * 24 * 3600


@hookimpl
def field_info() -> FieldInfo:
    return FieldInfo(
        id=FIELD_ID,
        pillar=Pillar.LIVING,
        title="Disaster prevention and rescue",
        description=(
            "Storm and flood monitoring, reservoir levels, forest-fire warning and rescue requests"
        ),
    )


@hookimpl
def metrics() -> list[Metric]:
    return [
        Metric("rainfall_intensity", "mm/h", "Rainfall intensity", 0, 300),
        Metric(
            "rainfall_total",
            "mm",
            "Rainfall accumulated by the gauge",
            0,
            kind=MetricKind.COUNTER,
        ),
        Metric("river_level", "m", "River water level above the national datum", -5, 25),
        Metric(
            "flood_alarm_level",
            "{state}",
            "River level against the station's official flood alarm levels",
            kind=MetricKind.STATE,
            value_type=ValueType.INT,
            states={
                0: "below alarm level I",
                1: "alarm level I",
                2: "alarm level II",
                3: "alarm level III",
                4: "above alarm level III",
            },
        ),
        Metric("reservoir_level", "m", "Upstream reservoir level above the datum", 0, 1500),
        Metric("reservoir_discharge", "m3/s", "Discharge released by an upstream dam", 0, 30000),
        Metric("wind_speed", "m/s", "10-minute mean wind speed", 0, 90),
        Metric("wind_gust", "m/s", "Maximum 3-second gust", 0, 110),
        Metric("air_pressure", "hPa", "Station air pressure (typhoon lows)", 850, 1100),
        Metric(
            "forest_fire_danger_level",
            "{state}",
            "Forest-fire danger forecast level",
            kind=MetricKind.STATE,
            value_type=ValueType.INT,
            states={
                1: "I - low",
                2: "II - medium",
                3: "III - high",
                4: "IV - dangerous",
                5: "V - extremely dangerous",
            },
        ),
        Metric(
            "station_online",
            "{state}",
            "Whether the monitoring station reports",
            kind=MetricKind.STATE,
            value_type=ValueType.BOOL,
            states={0: "offline", 1: "online"},
        ),
        Metric(
            "rescue_requests",
            "{request}",
            "Rescue requests received",
            0,
            kind=MetricKind.COUNTER,
            value_type=ValueType.INT,
        ),
        Metric(
            "rescue_requests_open",
            "{request}",
            "Rescue requests not yet answered on site",
            0,
            value_type=ValueType.INT,
        ),
        Metric(
            "rescue_response_time",
            "min",
            "Time from a rescue request to a team on site, per request",
            0,
            4320,
        ),
        Metric(
            "people_evacuated",
            "{person}",
            "People currently in evacuation shelters",
            0,
            value_type=ValueType.INT,
        ),
    ]


@hookimpl
def kpis() -> list[Kpi]:
    return [
        Kpi(
            id="station_availability",
            title="Monitoring stations reporting",
            unit="%",
            description="Share of the day the hydro-meteorological stations reported",
            direction=Direction.HIGHER,
            aggregation=Aggregation.MEAN,
            metric="station_online",
            scale=100,
        ),
        Kpi(
            id="mean_rescue_response_time",
            title="Mean rescue response time",
            unit="min",
            description="Mean time from a rescue request to a team on site, over 30 days",
            direction=Direction.LOWER,
            aggregation=Aggregation.MEAN,
            metric="rescue_response_time",
            window_seconds=MONTH,
        ),
    ]
