"""Traffic: the traffic monitoring and signal control centre.

Da Nang runs a centre for traffic monitoring and signal control, nearly 200 smart
surveillance cameras with number-plate recognition and violation detection, and pilots
cameras that measure traffic and retime signals in real time (Tuong 2021, 4.2 (2)). A device
here is a detection zone (a camera or loop on one approach), a signal controller or a
camera.
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

FIELD_ID = "traffic"


@hookimpl
def field_info() -> FieldInfo:
    return FieldInfo(
        id=FIELD_ID,
        pillar=Pillar.MOBILITY,
        title="Traffic",
        description=(
            "Traffic counts, speeds and queues, signal control, violation detection and "
            "traffic cameras"
        ),
    )


@hookimpl
def metrics() -> list[Metric]:
    return [
        Metric(
            "vehicle_count",
            "{vehicle}",
            "Vehicles that crossed the detection zone",
            0,
            kind=MetricKind.COUNTER,
            value_type=ValueType.INT,
        ),
        Metric(
            "motorbike_count",
            "{vehicle}",
            "Motorbikes that crossed the detection zone (most of the city's traffic)",
            0,
            kind=MetricKind.COUNTER,
            value_type=ValueType.INT,
        ),
        Metric("traffic_flow", "{vehicle}/h", "Flow on the approach, as an hourly rate", 0, 20000),
        Metric("occupancy", "%", "Share of time the detection zone is occupied", 0, 100),
        Metric("average_speed", "km/h", "Mean speed of vehicles in the detection zone", 0, 150),
        Metric("queue_length", "m", "Length of the queue behind the stop line", 0, 2000),
        Metric(
            "signal_state",
            "{state}",
            "Aspect shown by a signal group",
            kind=MetricKind.STATE,
            value_type=ValueType.INT,
            states={0: "dark", 1: "red", 2: "amber", 3: "green", 4: "flashing amber"},
        ),
        Metric("cycle_time", "s", "Current cycle length of the signal plan", 0, 300),
        Metric(
            "controller_online",
            "{state}",
            "Whether the signal controller answers the centre",
            kind=MetricKind.STATE,
            value_type=ValueType.BOOL,
            states={0: "offline", 1: "online"},
        ),
        Metric(
            "camera_online",
            "{state}",
            "Whether the traffic camera streams to the centre",
            kind=MetricKind.STATE,
            value_type=ValueType.BOOL,
            states={0: "offline", 1: "online"},
        ),
        Metric(
            "violations_detected",
            "{violation}",
            "Violations detected by cameras (red light, wrong lane, speeding)",
            0,
            kind=MetricKind.COUNTER,
            value_type=ValueType.INT,
        ),
    ]


@hookimpl
def kpis() -> list[Kpi]:
    return [
        Kpi(
            id="mean_speed",
            title="Mean network speed",
            unit="km/h",
            description="Mean speed over all detection zones over a day",
            direction=Direction.HIGHER,
            aggregation=Aggregation.MEAN,
            metric="average_speed",
        ),
        Kpi(
            id="signal_availability",
            title="Signal controllers online",
            unit="%",
            description="Share of the day the signal controllers answered the centre",
            direction=Direction.HIGHER,
            aggregation=Aggregation.MEAN,
            metric="controller_online",
            scale=100,
        ),
        Kpi(
            id="daily_violations",
            title="Violations detected",
            unit="{violation}",
            description="Violations detected by cameras over a day",
            direction=Direction.LOWER,
            aggregation=Aggregation.INCREASE,
            metric="violations_detected",
        ),
    ]
