"""Public lighting: the centralised control of street-lighting cabinets and LED streets.

The city has a centralised monitoring centre for public-lighting electricity, is piloting
smart distribution cabinets in Hai Chau district and has replaced the lamps of 19 streets
with LEDs (Tuong 2021, 4.2 (5)). A cabinet feeds a few hundred lamps from the 0.4 kV network
through a contactor; the controller reports the supply, the switching state, the dimming
level it commands and the lamps that report a failure.
"""

from __future__ import annotations

from smartcity.fields import (
    Aggregation,
    DeviceProfileTemplate,
    Direction,
    FieldInfo,
    Kpi,
    Metric,
    MetricKind,
    Pillar,
    ValueType,
    hookimpl,
)
from smartcity.plugins import profiles

FIELD_ID = "lighting"


@hookimpl
def field_info() -> FieldInfo:
    return FieldInfo(
        id=FIELD_ID,
        pillar=Pillar.ENVIRONMENT,
        title="Public lighting",
        description=(
            "Lighting cabinets, LED streets and centralised switching and dimming of "
            "public lighting"
        ),
    )


@hookimpl
def metrics() -> list[Metric]:
    return [
        *(
            Metric(f"voltage_{phase}n", "V", f"Cabinet phase {phase.upper()} voltage", 0, 300)
            for phase in "abc"
        ),
        *(
            Metric(f"current_{phase}", "A", f"Cabinet phase {phase.upper()} current", 0, 400)
            for phase in "abc"
        ),
        Metric("active_power", "kW", "Cabinet three-phase active power", 0, 200),
        Metric("power_factor", "1", "Cabinet power factor", -1, 1),
        Metric(
            "active_energy",
            "kWh",
            "Energy drawn by the cabinet (meter register)",
            0,
            kind=MetricKind.COUNTER,
        ),
        Metric(
            "lamp_on",
            "{state}",
            "Whether the circuit's lamps are switched on",
            kind=MetricKind.STATE,
            value_type=ValueType.BOOL,
            states={0: "off", 1: "on"},
        ),
        Metric("dimming_level", "%", "Light output commanded to the LED drivers", 0, 100),
        Metric("illuminance", "lx", "Ambient illuminance at the cabinet's light sensor", 0, 200000),
        Metric(
            "lamps_total",
            "{lamp}",
            "Lamps fed by the cabinet",
            0,
            value_type=ValueType.INT,
        ),
        Metric(
            "lamps_working",
            "{lamp}",
            "Lamps that report no failure",
            0,
            value_type=ValueType.INT,
        ),
        Metric(
            "cabinet_door_open",
            "{state}",
            "Cabinet door switch",
            kind=MetricKind.STATE,
            value_type=ValueType.BOOL,
            states={0: "closed", 1: "open"},
        ),
    ]


@hookimpl
def kpis() -> list[Kpi]:
    return [
        Kpi(
            id="lamp_availability",
            title="Working lamps",
            unit="%",
            description="Lamps reporting no failure as a share of all lamps, over a day",
            direction=Direction.HIGHER,
            aggregation=Aggregation.RATIO,
            metric="lamps_working",
            denominator="lamps_total",
            scale=100,
        ),
        Kpi(
            id="daily_energy",
            title="Lighting energy per day",
            unit="kWh",
            description="Energy drawn by the lighting cabinets over a day",
            direction=Direction.LOWER,
            aggregation=Aggregation.INCREASE,
            metric="active_energy",
        ),
    ]


# -- device profiles ---------------------------------------------------------------------
# Ready profiles for the field's common equipment are YAML files in profiles/lighting/,
# read once, when this module is imported, so that the hook itself does no I/O.
DEVICE_PROFILES = profiles.load(FIELD_ID)


@hookimpl
def device_profiles() -> list[DeviceProfileTemplate]:
    return list(DEVICE_PROFILES)
