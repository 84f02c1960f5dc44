"""Fisheries and forestry: vessel supervision at Tho Quang dock and forest monitoring.

The city tests cameras at the Tho Quang fishing dock that detect and count boats entering
and leaving, and pilots forest-fire detection and warning (Tuong 2021, 4.1 and 4.2 (3)). At
sea, fishing vessels carry vessel-monitoring (VMS) transceivers, which the Law on Fisheries
2017 requires on vessels of 15 m and longer; a vessel whose transceiver falls silent is a
safety and an illegal-fishing concern. In the forests, sensor stations and cameras watch for
fire.
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

FIELD_ID = "fisheries_forestry"
MONTH = 30 * 24 * 3600


@hookimpl
def field_info() -> FieldInfo:
    return FieldInfo(
        id=FIELD_ID,
        pillar=Pillar.LIVING,
        title="Fisheries and forestry",
        description=(
            "Vessel supervision at Tho Quang dock and at sea, and forest monitoring with "
            "fire detection"
        ),
    )


@hookimpl
def metrics() -> list[Metric]:
    return [
        Metric(
            "vessels_in_port",
            "{vessel}",
            "Vessels moored at the dock",
            0,
            value_type=ValueType.INT,
        ),
        Metric(
            "vessels_at_sea",
            "{vessel}",
            "Registered vessels that have left port and not returned",
            0,
            value_type=ValueType.INT,
        ),
        Metric(
            "vessels_at_sea_tracked",
            "{vessel}",
            "Vessels at sea whose VMS transceiver reported within its interval",
            0,
            value_type=ValueType.INT,
        ),
        Metric(
            "vessel_arrivals",
            "{vessel}",
            "Vessels detected entering the dock",
            0,
            kind=MetricKind.COUNTER,
            value_type=ValueType.INT,
        ),
        Metric(
            "vessel_departures",
            "{vessel}",
            "Vessels detected leaving the dock",
            0,
            kind=MetricKind.COUNTER,
            value_type=ValueType.INT,
        ),
        Metric(
            "forest_fire_alarms",
            "{alarm}",
            "Fire alarms raised by forest cameras and sensors",
            0,
            kind=MetricKind.COUNTER,
            value_type=ValueType.INT,
        ),
        Metric(
            "fire_hotspots",
            "{hotspot}",
            "Active fire hotspots in the city's forests",
            0,
            value_type=ValueType.INT,
        ),
        Metric("soil_moisture", "%", "Volumetric water content of the forest soil", 0, 100),
        Metric("air_temperature", "degC", "Air temperature at the forest station", -10, 60),
        Metric("relative_humidity", "%", "Relative humidity at the forest station", 0, 100),
        Metric(
            "forest_camera_online",
            "{state}",
            "Whether a forest watch camera streams",
            kind=MetricKind.STATE,
            value_type=ValueType.BOOL,
            states={0: "offline", 1: "online"},
        ),
    ]


@hookimpl
def kpis() -> list[Kpi]:
    return [
        Kpi(
            id="vms_coverage",
            title="Vessels at sea tracked",
            unit="%",
            description="Vessels at sea reporting by VMS as a share of vessels at sea",
            direction=Direction.HIGHER,
            aggregation=Aggregation.RATIO,
            metric="vessels_at_sea_tracked",
            denominator="vessels_at_sea",
            scale=100,
            target=100,
        ),
        Kpi(
            id="monthly_fire_alarms",
            title="Forest fire alarms",
            unit="{alarm}",
            description="Forest fire alarms over 30 days",
            direction=Direction.LOWER,
            aggregation=Aggregation.INCREASE,
            metric="forest_fire_alarms",
            window_seconds=MONTH,
        ),
    ]
