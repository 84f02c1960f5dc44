"""Public transport and parking: buses, automatic ticketing, passenger information.

Da Nang is building high-quality bus lines with automatic ticketing, fleet management,
real-time passenger information at stops, and parking monitoring (Tuong 2021, 4.1 and 4.2
(2)). A device here is a bus (its on-board unit), a ticket validator, a stop display or a
car park's counting system.
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

FIELD_ID = "transport"


@hookimpl
def field_info() -> FieldInfo:
    return FieldInfo(
        id=FIELD_ID,
        pillar=Pillar.MOBILITY,
        title="Public transport and parking",
        description=(
            "Buses, automatic ticketing, real-time passenger information and parking monitoring"
        ),
    )


@hookimpl
def metrics() -> list[Metric]:
    return [
        Metric(
            "passengers_on_board",
            "{passenger}",
            "Passengers on the bus (door counters)",
            0,
            200,
            value_type=ValueType.INT,
        ),
        Metric("bus_occupancy", "%", "Passengers on board as a share of rated capacity", 0, 150),
        Metric("bus_speed", "km/h", "Speed of the bus", 0, 120),
        Metric("headway", "min", "Time since the previous bus of the line left the stop", 0, 180),
        Metric(
            "schedule_delay",
            "min",
            "Departure delay against the timetable; negative when early",
            -60,
            180,
        ),
        Metric(
            "buses_in_service",
            "{bus}",
            "Buses of the line in service",
            0,
            value_type=ValueType.INT,
        ),
        Metric(
            "ticket_validations",
            "{validation}",
            "Cards and tickets validated",
            0,
            kind=MetricKind.COUNTER,
            value_type=ValueType.INT,
        ),
        Metric(
            "parking_spaces_occupied",
            "{space}",
            "Occupied spaces in the car park",
            0,
            value_type=ValueType.INT,
        ),
        Metric(
            "parking_spaces_total",
            "{space}",
            "Spaces in the car park",
            0,
            value_type=ValueType.INT,
        ),
        Metric(
            "display_online",
            "{state}",
            "Whether the passenger information display at the stop is working",
            kind=MetricKind.STATE,
            value_type=ValueType.BOOL,
            states={0: "offline", 1: "online"},
        ),
    ]


@hookimpl
def kpis() -> list[Kpi]:
    return [
        Kpi(
            id="punctuality",
            title="Punctual departures",
            unit="%",
            description="Share of the day's departures no more than 5 minutes late",
            direction=Direction.HIGHER,
            aggregation=Aggregation.SHARE_AT_MOST,
            metric="schedule_delay",
            threshold=5,
        ),
        Kpi(
            id="daily_ridership",
            title="Daily ridership",
            unit="{validation}",
            description="Ticket validations over a day",
            direction=Direction.HIGHER,
            aggregation=Aggregation.INCREASE,
            metric="ticket_validations",
        ),
        Kpi(
            id="display_availability",
            title="Passenger information displays working",
            unit="%",
            description="Share of the day the stop displays were online",
            direction=Direction.HIGHER,
            aggregation=Aggregation.MEAN,
            metric="display_online",
            scale=100,
        ),
    ]
