"""Governance: the Intelligent Operations Center, public services and information security.

The city runs an IOC with the basic smart-city services of the Ministry of Information and
Communications' pilot guideline (feedback, public-service monitoring, traffic, security and
order, information-security and social-network monitoring) and a dozen more (Tuong 2021, 4.2
(1)). Nearly all administrative procedures are offered online and the e-government system
handles dossiers at every level (Tuong 2021, 4.2; in 2024 the city reported 95 % of public
services online and 65 % of dossiers filed online). The city also watches information
security for its agencies permanently (Tuong 2021, 4.1, tasks on mechanisms and policies
(4)).

The IOC also keeps the register of the places where the city operates equipment (``site``
records): the one list that ties a site token of the telemetry subjects to a name, the
fields it serves and a point on the map.
"""

from __future__ import annotations

from smartcity.fields import (
    GEO_POINT_SCHEMA,
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

FIELD_ID = "governance"
MONTH = 30 * 24 * 3600
SITE_KINDS = (
    "substation",
    "water_station",
    "pumping_station",
    "air_quality_station",
    "water_quality_station",
    "wastewater_station",
    "lighting_cabinet",
    "traffic_junction",
    "weather_station",
    "flood_gauge",
    "other",
)
"""What a site is; ``other`` until a kind of its own is added (a schema version)."""
TOKEN_PATTERN = "^[a-z0-9][a-z0-9_-]{0,62}$"
"""A site id as device profiles and NATS subjects spell it."""
FIELD_ID_PATTERN = "^[a-z][a-z0-9_]{0,62}$"


@hookimpl
def field_info() -> FieldInfo:
    return FieldInfo(
        id=FIELD_ID,
        pillar=Pillar.GOVERNANCE,
        title="Governance and IOC",
        description=(
            "Intelligent Operations Center, public-service monitoring, information-security "
            "monitoring and city KPIs"
        ),
    )


def _count(name: str, unit: str, description: str) -> Metric:
    return Metric(name, unit, description, 0, kind=MetricKind.COUNTER, value_type=ValueType.INT)


@hookimpl
def metrics() -> list[Metric]:
    return [
        _count("dossiers_received", "{dossier}", "Administrative dossiers received"),
        _count(
            "dossiers_received_online",
            "{dossier}",
            "Administrative dossiers filed through the online public-service portal",
        ),
        _count("dossiers_resolved", "{dossier}", "Administrative dossiers resolved"),
        _count(
            "dossiers_resolved_on_time",
            "{dossier}",
            "Administrative dossiers resolved within their legal deadline",
        ),
        Metric(
            "dossiers_overdue",
            "{dossier}",
            "Dossiers pending past their deadline",
            0,
            value_type=ValueType.INT,
        ),
        Metric(
            "online_procedure_share",
            "%",
            "Administrative procedures offered as online public services",
            0,
            100,
        ),
        _count(
            "security_incidents",
            "{incident}",
            "Information-security incidents detected in the city's agencies",
        ),
        _count("malware_detections", "{detection}", "Malicious code detected on agency hosts"),
        Metric(
            "ioc_services_total",
            "{service}",
            "Smart-city services the IOC runs",
            0,
            value_type=ValueType.INT,
        ),
        Metric(
            "ioc_services_up",
            "{service}",
            "Smart-city services of the IOC passing their health check",
            0,
            value_type=ValueType.INT,
        ),
        Metric(
            "open_datasets",
            "{dataset}",
            "Data sets published on the open data portal",
            0,
            value_type=ValueType.INT,
        ),
    ]


@hookimpl
def kpis() -> list[Kpi]:
    return [
        Kpi(
            id="online_filing_rate",
            title="Dossiers filed online",
            unit="%",
            description="Dossiers filed online as a share of all dossiers received, 30 days",
            direction=Direction.HIGHER,
            aggregation=Aggregation.RATIO,
            metric="dossiers_received_online",
            denominator="dossiers_received",
            scale=100,
            window_seconds=MONTH,
        ),
        Kpi(
            id="on_time_resolution_rate",
            title="Dossiers resolved on time",
            unit="%",
            description="Dossiers resolved within their deadline as a share of all resolved",
            direction=Direction.HIGHER,
            aggregation=Aggregation.RATIO,
            metric="dossiers_resolved_on_time",
            denominator="dossiers_resolved",
            scale=100,
            window_seconds=MONTH,
            target=100,
        ),
        Kpi(
            id="ioc_availability",
            title="IOC services up",
            unit="%",
            description="IOC services passing their health check as a share of all, daily mean",
            direction=Direction.HIGHER,
            aggregation=Aggregation.RATIO,
            metric="ioc_services_up",
            denominator="ioc_services_total",
            scale=100,
        ),
        Kpi(
            id="monthly_security_incidents",
            title="Information-security incidents",
            unit="{incident}",
            description="Information-security incidents detected over 30 days",
            direction=Direction.LOWER,
            aggregation=Aggregation.INCREASE,
            metric="security_incidents",
            window_seconds=MONTH,
        ),
    ]


@hookimpl
def record_types() -> list[RecordType]:
    # A site where the city operates equipment. Anyone authenticated reads them (the IOC
    # console shows every field's sites on one map, to the viewers of each); writing needs
    # the records_officer role on governance, as for any record type. ``site_id`` is the
    # <site> token of city.telemetry.<field>.<site>.<device>: what joins a record to its
    # telemetry.
    text = {"type": "string", "minLength": 1, "maxLength": 200}
    return [
        RecordType(
            name="site",
            title="Site",
            description="A place where the city operates equipment: a substation, a water or "
            "air-quality station, a lighting cabinet, a junction",
            access=RecordAccess.PUBLIC,
            indexed=("site_id", "kind"),
            schema={
                "type": "object",
                "additionalProperties": False,
                "required": ["site_id", "name", "name_vi", "kind", "fields", "location"],
                "properties": {
                    "site_id": {"type": "string", "pattern": TOKEN_PATTERN},
                    "name": text,
                    "name_vi": text,
                    "kind": {"enum": list(SITE_KINDS)},
                    "fields": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": 64,
                        "uniqueItems": True,
                        "items": {"type": "string", "pattern": FIELD_ID_PATTERN},
                    },
                    "location": GEO_POINT_SCHEMA,
                    "address": {"type": "string", "minLength": 1, "maxLength": 500},
                },
            },
        )
    ]
