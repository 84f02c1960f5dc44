"""Electricity: the city's power supply as EVN's SCADA and remote meter reading see it.

Da Nang takes all of its electricity from the national grid. Every 110 kV, 22 kV and 0.4 kV
substation is measured remotely and every customer meter is read remotely (Tuong 2021, 4.2
(5)); the city's tasks include software to watch supply reliability and power quality.

Metric names do not carry the voltage level: a bay meter on the 110 kV side and one on the
22 kV busbar publish the same ``voltage_an`` in kV (about 63.5 kV and 12.7 kV phase to
neutral), and the site and device in the subject say where it is. Reliability follows IEEE
Std 1366 (SAIDI, SAIFI), counting sustained interruptions per customer served.

Voltage unbalance is derived from each batch (see ``derive``): the IEC 61000-4-30 measure
from the line voltages where a meter reads them, and the NEMA MG 1 deviation from the mean
for the phase-to-neutral voltages every bay meter reads; the arithmetic is in
:mod:`smartcity.plugins.voltage_unbalance`.

Default alert rules watch the grid frequency against Circular 05/2025/TT-BCT; voltage limits
depend on a measuring point's nominal voltage and come from :func:`voltage_band_rules`. Both
are in :mod:`smartcity.plugins.electricity_rules`, importable from here too.
"""

from __future__ import annotations

from collections.abc import Sequence

from smartcity.fields import (
    Aggregation,
    AlertRuleTemplate,
    DeviceProfileTemplate,
    Direction,
    FieldInfo,
    Kpi,
    Metric,
    MetricKind,
    Pillar,
    Reading,
    ValueType,
    hookimpl,
)
from smartcity.plugins import profiles
from smartcity.plugins.electricity_rules import (
    LINE_VOLTAGES,
    PHASE_VOLTAGES,
    frequency_rules,
    voltage_band_rules,
)
from smartcity.plugins.voltage_unbalance import (
    deviation_unbalance,
    negative_sequence_unbalance,
    unbalance_readings,
)

__all__ = [
    "DEVICE_PROFILES",
    "FIELD_ID",
    "LINE_VOLTAGES",
    "PHASE_VOLTAGES",
    "YEAR",
    "alert_rules",
    "derive",
    "derive_inputs",
    "device_profiles",
    "field_info",
    "kpis",
    "metrics",
    "voltage_band_rules",
]

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
        Metric(
            "voltage_unbalance",
            "%",
            "Negative- to positive-sequence voltage ratio u2 from the line voltages "
            "(IEC 61000-4-30)",
            0,
            100,
        ),
        Metric(
            "phase_voltage_unbalance",
            "%",
            "Largest deviation of a phase-to-neutral voltage from their mean, over the mean "
            "(NEMA MG 1 definition)",
            0,
            200,
        ),
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


@hookimpl
def alert_rules() -> list[AlertRuleTemplate]:
    return frequency_rules()


@hookimpl
def derive_inputs() -> tuple[str, ...]:
    return (*PHASE_VOLTAGES, *LINE_VOLTAGES)


@hookimpl
def derive(readings: Sequence[Reading]) -> list[Reading]:
    """``voltage_unbalance`` (IEC, from line voltages) and ``phase_voltage_unbalance``
    (NEMA, from phase-to-neutral voltages) at every instant of the batch that has the
    three voltages of the kind. A bad input gives nothing at that instant, an uncertain
    one an uncertain value; a de-energised bay gives nothing."""
    derived = list(
        unbalance_readings(
            "voltage_unbalance", LINE_VOLTAGES, negative_sequence_unbalance, readings
        )
    )
    derived += unbalance_readings(
        "phase_voltage_unbalance", PHASE_VOLTAGES, deviation_unbalance, readings
    )
    return derived


# -- device profiles ---------------------------------------------------------------------
# Ready profiles for the field's common equipment are YAML files in profiles/electricity/,
# read once, when this module is imported, so that the hook itself does no I/O.
DEVICE_PROFILES = profiles.load(FIELD_ID)


@hookimpl
def device_profiles() -> list[DeviceProfileTemplate]:
    return list(DEVICE_PROFILES)
