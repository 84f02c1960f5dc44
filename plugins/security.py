"""Security and order: the city's surveillance camera network and its monitoring centre.

The city has invested in about 1,800 specialised security cameras and connects about 25,000
more owned by residents and businesses (Tuong 2021, 4.2 (3)); a centre watches them and
detects incidents. A device here is a camera, a recording server or a video-analytics node;
the network-wide counts come from the video management system.
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

FIELD_ID = "security"
MONTH = 30 * 24 * 3600


@hookimpl
def field_info() -> FieldInfo:
    return FieldInfo(
        id=FIELD_ID,
        pillar=Pillar.LIVING,
        title="Security and order",
        description=(
            "Security and order camera network (city-owned and connected community "
            "cameras), video analytics and incident response"
        ),
    )


@hookimpl
def metrics() -> list[Metric]:
    return [
        Metric(
            "cameras_total",
            "{camera}",
            "City-owned security cameras registered in the video management system",
            0,
            value_type=ValueType.INT,
        ),
        Metric(
            "cameras_online",
            "{camera}",
            "City-owned security cameras currently streaming",
            0,
            value_type=ValueType.INT,
        ),
        Metric(
            "connected_cameras_online",
            "{camera}",
            "Connected cameras of residents and businesses currently streaming",
            0,
            value_type=ValueType.INT,
        ),
        Metric(
            "camera_online",
            "{state}",
            "Whether one camera streams to the centre",
            kind=MetricKind.STATE,
            value_type=ValueType.BOOL,
            states={0: "offline", 1: "online"},
        ),
        Metric("stream_bitrate", "Mbit/s", "Bit rate of a camera's main stream", 0, 100),
        Metric("storage_used", "%", "Used share of a recording server's storage", 0, 100),
        Metric(
            "incidents_detected",
            "{incident}",
            "Incidents raised by video analytics (crowding, fights, intrusion)",
            0,
            kind=MetricKind.COUNTER,
            value_type=ValueType.INT,
        ),
        Metric(
            "incidents_reported",
            "{incident}",
            "Incidents reported to the centre by people or patrols",
            0,
            kind=MetricKind.COUNTER,
            value_type=ValueType.INT,
        ),
        Metric(
            "incident_response_time",
            "min",
            "Time from an incident's report to a patrol on site, per incident",
            0,
            1440,
        ),
    ]


@hookimpl
def kpis() -> list[Kpi]:
    return [
        Kpi(
            id="camera_availability",
            title="City cameras online",
            unit="%",
            description="City-owned cameras streaming as a share of all, mean over a day",
            direction=Direction.HIGHER,
            aggregation=Aggregation.RATIO,
            metric="cameras_online",
            denominator="cameras_total",
            scale=100,
        ),
        Kpi(
            id="mean_response_time",
            title="Mean incident response time",
            unit="min",
            description="Mean time from report to a patrol on site over 30 days",
            direction=Direction.LOWER,
            aggregation=Aggregation.MEAN,
            metric="incident_response_time",
            window_seconds=MONTH,
        ),
    ]
