"""Electricity: the city's power supply as EVN's SCADA and remote meter reading see it.

Da Nang takes all of its electricity from the national grid. Every 110 kV, 22 kV and 0.4 kV
substation is measured remotely and every customer meter is read remotely (Tuong 2021, 4.2
(5)); the city's tasks include software to watch supply reliability and power quality.

Metric names do not carry the voltage level: a bay meter on the 110 kV side and one on the
22 kV busbar publish the same ``voltage_an`` in kV (about 63.5 kV and 12.7 kV phase to
neutral), and the site and device in the subject say where it is. Reliability follows IEEE
Std 1366 (SAIDI, SAIFI), counting sustained interruptions per customer served.
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

FIELD_ID = "electricity"
YEAR = 365 * 24 * 3600


@hookimpl
def field_info() -> FieldInfo:
    return FieldInfo(
        id=FIELD_ID,
        pillar=Pillar.ENVIRONMENT,
        title="Electricity supply",
        description=(
            "SCADA of the 110/22/0.4 kV substations, remote meter reading, supply "
            "reliability and power quality"
        ),
    )


@hookimpl
def metrics() -> list[Metric]:
    phase_voltages = [
        Metric(
            f"voltage_{phase}n",
            "kV",
            f"Phase {phase.upper()} to neutral voltage at the measuring point",
            0,
            80,
        )
        for phase in "abc"
    ]
    line_voltages = [
        Metric(f"voltage_{pair}", "kV", f"Line voltage {pair.upper()}", 0, 140)
        for pair in ("ab", "bc", "ca")
    ]
    currents = [
        Metric(f"current_{phase}", "A", f"Phase {phase.upper()} current", 0, 10000)
        for phase in "abc"
    ]
    return [
        *phase_voltages,
        *line_voltages,
        *currents,
        Metric(
            "active_power", "MW", "Three-phase active power; negative when exporting", -300, 300
        ),
        Metric("reactive_power", "Mvar", "Three-phase reactive power", -300, 300),
        Metric("apparent_power", "MVA", "Three-phase apparent power", 0, 300),
        Metric("power_factor", "1", "Total power factor (signed by the meter)", -1, 1),
        Metric("frequency", "Hz", "System frequency (nominal 50 Hz)", 45, 55),
        Metric("voltage_thd", "%", "Total harmonic distortion of the phase voltages", 0, 100),
        Metric(
            "transformer_oil_temperature", "degC", "Power transformer top-oil temperature", -20, 150
        ),
        Metric(
            "transformer_winding_temperature",
            "degC",
            "Power transformer hot-spot winding temperature",
            -20,
            200,
        ),
        Metric(
            "transformer_tap_position",
            "{tap}",
            "On-load tap changer position",
            1,
            33,
            value_type=ValueType.INT,
        ),
        Metric(
            "breaker_state",
            "{state}",
            "Circuit breaker position",
            kind=MetricKind.STATE,
            value_type=ValueType.INT,
            states={0: "open", 1: "closed"},
        ),
        Metric(
            "active_energy_import",
            "MWh",
            "Active energy delivered to the load side (meter register)",
            0,
            kind=MetricKind.COUNTER,
        ),
        Metric(
            "active_energy_export",
            "MWh",
            "Active energy delivered back to the grid (meter register)",
            0,
            kind=MetricKind.COUNTER,
        ),
        Metric(
            "reactive_energy_import",
            "Mvarh",
            "Reactive energy delivered to the load side (meter register)",
            0,
            kind=MetricKind.COUNTER,
        ),
        Metric(
            "customers_served",
            "{customer}",
            "Customers supplied by the feeder or area",
            0,
            value_type=ValueType.INT,
        ),
        Metric(
            "customer_interruptions",
            "{customer}",
            "Customers affected by sustained interruptions (longer than 5 minutes), cumulative",
            0,
            kind=MetricKind.COUNTER,
            value_type=ValueType.INT,
        ),
        Metric(
            "customer_minutes_interrupted",
            "{customer}.min",
            "Sum over sustained interruptions of customers affected times duration, cumulative",
            0,
            kind=MetricKind.COUNTER,
        ),
        Metric(
            "meter_reads_expected",
            "{read}",
            "Remote meter readings scheduled, cumulative",
            0,
            kind=MetricKind.COUNTER,
            value_type=ValueType.INT,
        ),
        Metric(
            "meter_reads_ok",
            "{read}",
            "Remote meter readings collected on schedule, cumulative",
            0,
            kind=MetricKind.COUNTER,
            value_type=ValueType.INT,
        ),
    ]


@hookimpl
def kpis() -> list[Kpi]:
    return [
        Kpi(
            id="saidi",
            title="SAIDI",
            unit="min",
            description=(
                "System average interruption duration: customer-minutes of sustained "
                "interruption per customer served, over the last year"
            ),
            direction=Direction.LOWER,
            aggregation=Aggregation.RATIO,
            metric="customer_minutes_interrupted",
            denominator="customers_served",
            window_seconds=YEAR,
            standard="IEEE Std 1366",
        ),
        Kpi(
            id="saifi",
            title="SAIFI",
            unit="{interruption}",
            description=(
                "System average interruption frequency: customer interruptions per customer "
                "served, over the last year"
            ),
            direction=Direction.LOWER,
            aggregation=Aggregation.RATIO,
            metric="customer_interruptions",
            denominator="customers_served",
            window_seconds=YEAR,
            standard="IEEE Std 1366",
        ),
        Kpi(
            id="remote_read_rate",
            title="Remote meter reading success",
            unit="%",
            description="Share of scheduled remote meter readings collected, over a day",
            direction=Direction.HIGHER,
            aggregation=Aggregation.RATIO,
            metric="meter_reads_ok",
            denominator="meter_reads_expected",
            scale=100,
        ),
    ]


# -- device profiles ---------------------------------------------------------------------
# Ready profiles for the field's common equipment are YAML files in profiles/electricity/,
# read once, when this module is imported, so that the hook itself does no I/O.
DEVICE_PROFILES = profiles.load(FIELD_ID)


@hookimpl
def device_profiles() -> list[DeviceProfileTemplate]:
    return list(DEVICE_PROFILES)
