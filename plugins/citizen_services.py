"""Citizen services: the channels through which residents reach the city.

The Da Nang Feedback and Rescue Portal (about 1,000 feedbacks a month), the 1022 call centre
(about 10,000 a month), the chatbot for administrative procedures (more than 4,000
consultations a month), the Danang Smart City app and online payment of public-service fees
(Tuong 2021, 4.2; city figures for 2024). Every feedback ticket has a deadline for its
answer; answering on time is what residents judge the city by.
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
    RecordWorkflow,
    ValueType,
    hookimpl,
)

FIELD_ID = "citizen_services"
MONTH = 30 * 24 * 3600


@hookimpl
def field_info() -> FieldInfo:
    return FieldInfo(
        id=FIELD_ID,
        pillar=Pillar.CITIZEN,
        title="Citizen services",
        description=(
            "Feedback and rescue portal, 1022 call centre, chatbot, online public-service "
            "payments and digital citizen accounts"
        ),
    )


def _count(name: str, unit: str, description: str) -> Metric:
    return Metric(name, unit, description, 0, kind=MetricKind.COUNTER, value_type=ValueType.INT)


@hookimpl
def metrics() -> list[Metric]:
    return [
        _count("feedback_received", "{ticket}", "Feedback tickets received from residents"),
        _count("feedback_resolved", "{ticket}", "Feedback tickets answered and closed"),
        _count(
            "feedback_resolved_on_time",
            "{ticket}",
            "Feedback tickets closed within their deadline",
        ),
        Metric(
            "feedback_open",
            "{ticket}",
            "Feedback tickets awaiting an answer",
            0,
            value_type=ValueType.INT,
        ),
        Metric(
            "feedback_resolution_time",
            "h",
            "Time from a ticket's submission to its closure, per ticket",
            0,
            8760,
        ),
        _count("calls_1022", "{call}", "Calls to the 1022 centre"),
        _count("calls_1022_answered", "{call}", "Calls to the 1022 centre answered by an agent"),
        Metric("call_wait_time", "s", "Time a caller waited for an agent, per call", 0, 3600),
        _count("chatbot_sessions", "{session}", "Chatbot consultations"),
        _count("online_payments", "{payment}", "Public-service fees paid online"),
        Metric(
            "online_payment_amount",
            "VND",
            "Amount of public-service fees paid online",
            0,
            kind=MetricKind.COUNTER,
        ),
        Metric(
            "digital_accounts",
            "{account}",
            "Digital citizen accounts registered",
            0,
            value_type=ValueType.INT,
        ),
    ]


@hookimpl
def kpis() -> list[Kpi]:
    return [
        Kpi(
            id="feedback_on_time_rate",
            title="Feedback answered on time",
            unit="%",
            description="Tickets closed within their deadline as a share of tickets closed",
            direction=Direction.HIGHER,
            aggregation=Aggregation.RATIO,
            metric="feedback_resolved_on_time",
            denominator="feedback_resolved",
            scale=100,
            window_seconds=MONTH,
            target=100,
        ),
        Kpi(
            id="mean_resolution_time",
            title="Mean feedback resolution time",
            unit="h",
            description="Mean time from submission to closure over 30 days",
            direction=Direction.LOWER,
            aggregation=Aggregation.MEAN,
            metric="feedback_resolution_time",
            window_seconds=MONTH,
        ),
        Kpi(
            id="call_answer_rate",
            title="1022 calls answered",
            unit="%",
            description="Calls answered by an agent as a share of calls, over a day",
            direction=Direction.HIGHER,
            aggregation=Aggregation.RATIO,
            metric="calls_1022_answered",
            denominator="calls_1022",
            scale=100,
        ),
    ]


DISTRICTS = [
    "hai_chau",
    "thanh_khe",
    "son_tra",
    "ngu_hanh_son",
    "lien_chieu",
    "cam_le",
    "hoa_vang",
    "hoang_sa",
]


@hookimpl
def record_types() -> list[RecordType]:
    # A feedback ticket from the portal, 1022, the app or the chatbot. The status workflow
    # is enforced by the records service: a ticket is answered before it is closed.
    return [
        RecordType(
            name="feedback_ticket",
            title="Feedback ticket",
            description="A resident's feedback or request and how the city handled it",
            access=RecordAccess.OWNER,
            owner_property="citizen_id",
            indexed=("status", "district", "category"),
            workflow=RecordWorkflow(
                property="status",
                initial=("new",),
                transitions={
                    "new": ("assigned",),
                    "assigned": ("in_progress",),
                    "in_progress": ("resolved",),
                    "resolved": ("closed",),
                },
            ),
            schema={
                "type": "object",
                "additionalProperties": False,
                "required": ["citizen_id", "channel", "category", "title", "status"],
                "properties": {
                    "citizen_id": {"type": "string", "minLength": 1, "maxLength": 64},
                    "channel": {"enum": ["portal", "call_1022", "app", "chatbot"]},
                    "category": {
                        "enum": [
                            "environment",
                            "traffic",
                            "urban_order",
                            "public_services",
                            "rescue",
                            "other",
                        ]
                    },
                    "title": {"type": "string", "minLength": 1, "maxLength": 200},
                    "description": {"type": "string", "maxLength": 10_000},
                    "district": {"enum": DISTRICTS},
                    "location": GEO_POINT_SCHEMA,
                    "status": {"enum": ["new", "assigned", "in_progress", "resolved", "closed"]},
                    "assignee": {"type": "string", "maxLength": 200},
                    "due_time": {"type": "string", "format": "date-time"},
                    "resolution": {"type": "string", "maxLength": 10_000},
                },
            },
        )
    ]
