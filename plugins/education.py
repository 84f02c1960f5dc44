"""Education: the schools' IoT network and electronic school records.

The city pilots IoT devices that monitor schools, a sound system that informs classrooms,
and central management and monitoring of the lighting of 26 classrooms (Tuong 2021, 4.2
(4)); it also builds educational databases and electronic school records (Tuong 2021, 4.1).
A device is a classroom sensor node, a lighting controller or a school's attendance system.

Classroom lighting is judged against ISO 8995-1:2002 (CIE S 008), which asks for 300 lx
maintained illuminance on the desks of primary and secondary classrooms. Indoor CO2 is
judged against the widely used 1,000 ppm ventilation guideline.
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

FIELD_ID = "education"


@hookimpl
def field_info() -> FieldInfo:
    return FieldInfo(
        id=FIELD_ID,
        pillar=Pillar.LIVING,
        title="Education",
        description=(
            "School IoT network (classroom sound, light and air), classroom lighting "
            "control, attendance and electronic school records"
        ),
    )


@hookimpl
def metrics() -> list[Metric]:
    return [
        Metric("classroom_noise", "dBA", "A-weighted equivalent sound level in the room", 20, 130),
        Metric("illuminance", "lx", "Illuminance on the desks", 0, 100000),
        Metric("co2", "ppm", "Carbon dioxide concentration in the room", 300, 10000),
        Metric("air_temperature", "degC", "Air temperature in the room", -10, 60),
        Metric("relative_humidity", "%", "Relative humidity in the room", 0, 100),
        Metric(
            "lighting_on",
            "{state}",
            "Whether the classroom lighting is switched on",
            kind=MetricKind.STATE,
            value_type=ValueType.BOOL,
            states={0: "off", 1: "on"},
        ),
        Metric("lighting_power", "W", "Power drawn by the classroom lighting", 0, 5000),
        Metric(
            "announcement_active",
            "{state}",
            "Whether the classroom speaker is playing an announcement",
            kind=MetricKind.STATE,
            value_type=ValueType.BOOL,
            states={0: "idle", 1: "playing"},
        ),
        Metric(
            "students_present",
            "{student}",
            "Students checked in at the school today",
            0,
            value_type=ValueType.INT,
        ),
        Metric(
            "students_enrolled",
            "{student}",
            "Students enrolled at the school",
            0,
            value_type=ValueType.INT,
        ),
        Metric(
            "school_records_synced",
            "{record}",
            "Electronic school records synchronised to the city database",
            0,
            kind=MetricKind.COUNTER,
            value_type=ValueType.INT,
        ),
    ]


@hookimpl
def kpis() -> list[Kpi]:
    return [
        Kpi(
            id="lighting_compliance",
            title="Classrooms lit to standard",
            unit="%",
            description=(
                "Share of lesson time with at least 300 lx on the desks (sensor nodes "
                "report during scheduled lessons)"
            ),
            direction=Direction.HIGHER,
            aggregation=Aggregation.SHARE_AT_LEAST,
            metric="illuminance",
            threshold=300,
            target=100,
            standard="ISO 8995-1:2002",
        ),
        Kpi(
            id="air_quality_compliance",
            title="Classrooms well ventilated",
            unit="%",
            description="Share of lesson time with CO2 at most 1,000 ppm",
            direction=Direction.HIGHER,
            aggregation=Aggregation.SHARE_AT_MOST,
            metric="co2",
            threshold=1000,
        ),
        Kpi(
            id="attendance_rate",
            title="Attendance",
            unit="%",
            description="Students present as a share of students enrolled, mean over a day",
            direction=Direction.HIGHER,
            aggregation=Aggregation.RATIO,
            metric="students_present",
            denominator="students_enrolled",
            scale=100,
        ),
    ]


@hookimpl
def record_types() -> list[RecordType]:
    # The e-school record: one per student and school year, read by the student (or the
    # guardian's account that owns it) and by the education department's officers.
    return [
        RecordType(
            name="school_record",
            title="School record",
            description="A student's results and conduct for one school year",
            access=RecordAccess.OWNER,
            owner_property="student_id",
            indexed=("student_id", "school_id", "school_year"),
            schema={
                "type": "object",
                "additionalProperties": False,
                "required": ["student_id", "student", "school_id", "school_year", "grade"],
                "properties": {
                    "student_id": {"type": "string", "minLength": 1, "maxLength": 64},
                    "student": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["full_name", "birth_date"],
                        "properties": {
                            "full_name": {"type": "string", "minLength": 1, "maxLength": 200},
                            "birth_date": {"type": "string", "format": "date"},
                        },
                    },
                    "school_id": {"type": "string", "minLength": 1, "maxLength": 64},
                    "school_year": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{4}$"},
                    "grade": {"type": "integer", "minimum": 1, "maximum": 12},
                    "subjects": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["subject", "score"],
                            "properties": {
                                "subject": {"type": "string", "minLength": 1},
                                "score": {"type": "number", "minimum": 0, "maximum": 10},
                            },
                        },
                    },
                    "conduct": {"enum": ["excellent", "good", "fair", "weak"]},
                },
            },
        )
    ]
