"""Health: hospitals, health stations and the citizens' electronic health records.

Electronic health applications run at all commune and ward health stations; hospital
management and electronic examination run at all 16 district health centres and general
hospitals; citizen electronic health records cover 1,367,268 people and are synchronised
with the 16 hospitals and 56 health stations (Tuong 2021, 4.2 (7)). Smart-hospital telemetry
here covers beds, the emergency department, medical gases and the vaccine cold chain (2 to 8
degC, as the WHO requires for most vaccines).
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

FIELD_ID = "health"


@hookimpl
def field_info() -> FieldInfo:
    return FieldInfo(
        id=FIELD_ID,
        pillar=Pillar.LIVING,
        title="Health",
        description=(
            "Hospitals and health stations: beds, emergency department, medical gases, "
            "vaccine cold chain and synchronisation of electronic health records"
        ),
    )


@hookimpl
def metrics() -> list[Metric]:
    return [
        Metric(
            "beds_total",
            "{bed}",
            "Inpatient beds of the hospital",
            0,
            value_type=ValueType.INT,
        ),
        Metric(
            "beds_occupied",
            "{bed}",
            "Inpatients in beds (can exceed the beds when patients share)",
            0,
            value_type=ValueType.INT,
        ),
        Metric("bed_occupancy", "%", "Inpatients as a share of beds", 0, 300),
        Metric(
            "er_patients_waiting",
            "{patient}",
            "Patients waiting in the emergency department",
            0,
            value_type=ValueType.INT,
        ),
        Metric(
            "er_waiting_time",
            "min",
            "Time from arrival to first examination in the emergency department, per patient",
            0,
            1440,
        ),
        Metric(
            "outpatient_visits",
            "{visit}",
            "Outpatient examinations",
            0,
            kind=MetricKind.COUNTER,
            value_type=ValueType.INT,
        ),
        Metric(
            "online_bookings",
            "{booking}",
            "Examinations booked online",
            0,
            kind=MetricKind.COUNTER,
            value_type=ValueType.INT,
        ),
        Metric(
            "record_sync_attempts",
            "{record}",
            "Health-record synchronisations attempted with the city database",
            0,
            kind=MetricKind.COUNTER,
            value_type=ValueType.INT,
        ),
        Metric(
            "records_synced",
            "{record}",
            "Health-record synchronisations that succeeded",
            0,
            kind=MetricKind.COUNTER,
            value_type=ValueType.INT,
        ),
        Metric("oxygen_pipeline_pressure", "bar", "Medical oxygen pipeline pressure", 0, 20),
        Metric("vaccine_fridge_temperature", "degC", "Vaccine refrigerator temperature", -30, 40),
    ]


@hookimpl
def kpis() -> list[Kpi]:
    return [
        Kpi(
            id="bed_occupancy",
            title="Bed occupancy",
            unit="%",
            description="Inpatients as a share of beds, mean over a day",
            direction=Direction.LOWER,
            aggregation=Aggregation.RATIO,
            metric="beds_occupied",
            denominator="beds_total",
            scale=100,
        ),
        Kpi(
            id="mean_er_waiting_time",
            title="Emergency waiting time",
            unit="min",
            description="Mean time from arrival to first examination over a day",
            direction=Direction.LOWER,
            aggregation=Aggregation.MEAN,
            metric="er_waiting_time",
        ),
        Kpi(
            id="record_sync_success",
            title="Health records synchronised",
            unit="%",
            description="Successful health-record synchronisations as a share of attempts",
            direction=Direction.HIGHER,
            aggregation=Aggregation.RATIO,
            metric="records_synced",
            denominator="record_sync_attempts",
            scale=100,
            target=100,
        ),
    ]


_DATE = {"type": "string", "format": "date"}


@hookimpl
def record_types() -> list[RecordType]:
    # The summary every hospital and health station shares for a citizen: who the patient
    # is, what a doctor must know at once (blood type, allergies, chronic conditions) and
    # the vaccinations. Health data: read only with eID level 2 after a recent strong login,
    # every read audited.
    return [
        RecordType(
            name="health_record",
            title="Electronic health record",
            description="Medical record summary of one citizen, shared by hospitals and stations",
            access=RecordAccess.OWNER,
            owner_property="citizen_id",
            sensitive=True,
            indexed=("citizen_id", "facility_id"),
            schema={
                "type": "object",
                "additionalProperties": False,
                "required": ["citizen_id", "patient"],
                "properties": {
                    "citizen_id": {"type": "string", "minLength": 1, "maxLength": 64},
                    "patient": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["full_name", "birth_date"],
                        "properties": {
                            "full_name": {"type": "string", "minLength": 1, "maxLength": 200},
                            "birth_date": _DATE,
                            "sex": {"enum": ["female", "male", "other"]},
                            "insurance_number": {"type": "string", "maxLength": 32},
                        },
                    },
                    "blood_type": {"enum": ["A+", "A-", "B+", "B-", "AB+", "AB-", "O+", "O-"]},
                    "allergies": {"type": "array", "items": {"type": "string", "maxLength": 200}},
                    "chronic_conditions": {
                        "type": "array",
                        "items": {"type": "string", "maxLength": 200},
                    },
                    "vaccinations": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["vaccine", "date"],
                            "properties": {
                                "vaccine": {"type": "string", "minLength": 1},
                                "date": _DATE,
                                "dose": {"type": "integer", "minimum": 1},
                            },
                        },
                    },
                    "facility_id": {"type": "string", "maxLength": 64},
                    "last_visit": _DATE,
                },
            },
        )
    ]
