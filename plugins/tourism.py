"""Tourism: visitor flows, accommodation and the online accommodation registration.

The city's smart-economy tasks are a tourism monitoring system, a tourism database, the
online accommodation system through which hotels register and manage the guests staying in
Da Nang (web and mobile app), a chatbot that guides visitors, and a smart travel card (Tuong
2021, 4.1 and 4.2). A device is an accommodation establishment's system, a visitor counter
at an attraction or a beach, or the registration system itself.
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
    RecordAccess,
    RecordType,
    ValueType,
    hookimpl,
)

FIELD_ID = "tourism"
MONTH = 30 * 24 * 3600


@hookimpl
def field_info() -> FieldInfo:
    return FieldInfo(
        id=FIELD_ID,
        pillar=Pillar.ECONOMY,
        title="Tourism",
        description=(
            "Tourism monitoring, visitor flows at attractions, hotel occupancy and online "
            "accommodation registration"
        ),
    )


def _count(name: str, unit: str, description: str) -> Metric:
    return Metric(name, unit, description, 0, kind=MetricKind.COUNTER, value_type=ValueType.INT)


@hookimpl
def metrics() -> list[Metric]:
    return [
        _count("visitor_arrivals", "{visitor}", "Guests checked in at accommodation"),
        _count(
            "international_arrivals",
            "{visitor}",
            "Foreign guests checked in at accommodation",
        ),
        _count("guest_nights", "{night}", "Nights spent by guests"),
        Metric(
            "visitors_present",
            "{visitor}",
            "Visitors counted at an attraction or beach",
            0,
            value_type=ValueType.INT,
        ),
        Metric(
            "rooms_available",
            "{room}",
            "Rooms the establishment offers",
            0,
            value_type=ValueType.INT,
        ),
        Metric(
            "rooms_occupied",
            "{room}",
            "Rooms occupied tonight",
            0,
            value_type=ValueType.INT,
        ),
        Metric("hotel_occupancy", "%", "Rooms occupied as a share of rooms available", 0, 100),
        _count(
            "accommodation_registrations",
            "{registration}",
            "Guest stays registered with the authorities",
        ),
        _count(
            "accommodation_registrations_online",
            "{registration}",
            "Guest stays registered through the online accommodation system",
        ),
        _count("visitor_chatbot_sessions", "{session}", "Visitor chatbot conversations"),
    ]


@hookimpl
def kpis() -> list[Kpi]:
    return [
        Kpi(
            id="room_occupancy",
            title="Room occupancy",
            unit="%",
            description="Rooms occupied as a share of rooms available, mean over 30 days",
            direction=Direction.HIGHER,
            aggregation=Aggregation.RATIO,
            metric="rooms_occupied",
            denominator="rooms_available",
            scale=100,
            window_seconds=MONTH,
        ),
        Kpi(
            id="online_registration_rate",
            title="Stays registered online",
            unit="%",
            description="Guest stays registered online as a share of all registrations",
            direction=Direction.HIGHER,
            aggregation=Aggregation.RATIO,
            metric="accommodation_registrations_online",
            denominator="accommodation_registrations",
            scale=100,
            window_seconds=MONTH,
        ),
        Kpi(
            id="monthly_arrivals",
            title="Visitor arrivals",
            unit="{visitor}",
            description="Guests checked in at accommodation over 30 days",
            direction=Direction.HIGHER,
            aggregation=Aggregation.INCREASE,
            metric="visitor_arrivals",
            window_seconds=MONTH,
        ),
    ]


@hookimpl
def record_types() -> list[RecordType]:
    # Online accommodation registration: establishments declare their guests; the records
    # hold personal data, so only officers of the field read them.
    return [
        RecordType(
            name="accommodation_registration",
            title="Accommodation registration",
            description="A guest's stay declared by an accommodation establishment",
            access=RecordAccess.FIELD,
            indexed=("establishment_id", "check_in"),
            schema={
                "type": "object",
                "additionalProperties": False,
                "required": ["establishment_id", "guest", "check_in"],
                "properties": {
                    "establishment_id": {"type": "string", "minLength": 1, "maxLength": 64},
                    "establishment_name": {"type": "string", "maxLength": 200},
                    "guest": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": [
                            "full_name",
                            "nationality",
                            "document_type",
                            "document_number",
                        ],
                        "properties": {
                            "full_name": {"type": "string", "minLength": 1, "maxLength": 200},
                            "nationality": {"type": "string", "pattern": "^[A-Z]{2}$"},
                            "document_type": {"enum": ["passport", "citizen_id"]},
                            "document_number": {"type": "string", "minLength": 1, "maxLength": 32},
                            "birth_date": {"type": "string", "format": "date"},
                        },
                    },
                    "check_in": {"type": "string", "format": "date"},
                    "check_out": {"type": "string", "format": "date"},
                    "room": {"type": "string", "maxLength": 32},
                },
            },
        )
    ]
