"""Food safety and hygiene: the food-facility database, inspections and traceability.

The city runs a food-safety portal and a shared database of restaurants, street eateries,
processing and production facilities that meet food-safety requirements, searchable by SMS,
Zalo and the 1022 switchboard, and pilots tracing the origin of food sold at Han market by
QR code (Tuong 2021, 4.2 (6)). Telemetry adds the cold rooms and refrigerated transport of
registered facilities.
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

FIELD_ID = "food_safety"
MONTH = 30 * 24 * 3600


@hookimpl
def field_info() -> FieldInfo:
    return FieldInfo(
        id=FIELD_ID,
        pillar=Pillar.LIVING,
        title="Food safety",
        description=(
            "Food-facility database and certificates, inspections and sample tests, QR-code "
            "traceability and cold-chain monitoring"
        ),
    )


def _count(name: str, unit: str, description: str) -> Metric:
    return Metric(name, unit, description, 0, kind=MetricKind.COUNTER, value_type=ValueType.INT)


@hookimpl
def metrics() -> list[Metric]:
    return [
        Metric(
            "facilities_registered",
            "{facility}",
            "Food facilities in the database",
            0,
            value_type=ValueType.INT,
        ),
        Metric(
            "facilities_certified",
            "{facility}",
            "Food facilities holding a valid food-safety certificate",
            0,
            value_type=ValueType.INT,
        ),
        _count("inspections", "{inspection}", "Inspections of food facilities"),
        _count(
            "inspections_with_violations",
            "{inspection}",
            "Inspections that found at least one violation",
        ),
        _count("violations", "{violation}", "Violations recorded by inspections"),
        _count("samples_tested", "{sample}", "Food samples tested"),
        _count("samples_failed", "{sample}", "Food samples that failed a test"),
        _count("trace_lookups", "{lookup}", "Origin look-ups by QR code"),
        _count("poisoning_cases", "{case}", "Reported food-poisoning cases"),
        Metric(
            "cold_chain_temperature",
            "degC",
            "Air temperature in a cold room or refrigerated vehicle",
            -40,
            40,
        ),
        Metric(
            "cold_room_door_open",
            "{state}",
            "Cold-room door switch",
            kind=MetricKind.STATE,
            value_type=ValueType.BOOL,
            states={0: "closed", 1: "open"},
        ),
    ]


@hookimpl
def kpis() -> list[Kpi]:
    return [
        Kpi(
            id="certified_share",
            title="Facilities certified",
            unit="%",
            description="Facilities with a valid food-safety certificate as a share of all",
            direction=Direction.HIGHER,
            aggregation=Aggregation.RATIO,
            metric="facilities_certified",
            denominator="facilities_registered",
            scale=100,
        ),
        Kpi(
            id="violation_rate",
            title="Inspections finding violations",
            unit="%",
            description="Inspections with at least one violation as a share of all, 30 days",
            direction=Direction.LOWER,
            aggregation=Aggregation.RATIO,
            metric="inspections_with_violations",
            denominator="inspections",
            scale=100,
            window_seconds=MONTH,
        ),
        Kpi(
            id="sample_failure_rate",
            title="Samples failing tests",
            unit="%",
            description="Food samples failing a test as a share of samples tested, 30 days",
            direction=Direction.LOWER,
            aggregation=Aggregation.RATIO,
            metric="samples_failed",
            denominator="samples_tested",
            scale=100,
            window_seconds=MONTH,
        ),
    ]


@hookimpl
def record_types() -> list[RecordType]:
    # The food facilities database: public, so that a QR code on a stall leads a customer
    # to the facility's certificate and inspections; officers of the field write it.
    return [
        RecordType(
            name="food_facility",
            title="Food facility",
            description="A food business with its food-safety certificate and inspections",
            access=RecordAccess.PUBLIC,
            indexed=("district", "certificate.status", "qr_code"),
            schema={
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "address", "kind"],
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": 200},
                    "address": {"type": "string", "minLength": 1, "maxLength": 500},
                    "district": {"type": "string", "maxLength": 64},
                    "kind": {
                        "enum": [
                            "restaurant",
                            "street_food",
                            "producer",
                            "market",
                            "school_kitchen",
                            "supermarket",
                        ]
                    },
                    "certificate": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["number", "issued", "expires", "status"],
                        "properties": {
                            "number": {"type": "string", "minLength": 1, "maxLength": 64},
                            "issued": {"type": "string", "format": "date"},
                            "expires": {"type": "string", "format": "date"},
                            "status": {"enum": ["valid", "expired", "suspended", "revoked"]},
                        },
                    },
                    "inspections": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["date", "result"],
                            "properties": {
                                "date": {"type": "string", "format": "date"},
                                "result": {"enum": ["pass", "fail"]},
                                "notes": {"type": "string", "maxLength": 2000},
                            },
                        },
                    },
                    "qr_code": {"type": "string", "maxLength": 128},
                },
            },
        )
    ]
