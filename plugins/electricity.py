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
for the phase-to-neutral voltages every bay meter reads.

Default alert rules watch the grid frequency against Circular 05/2025/TT-BCT; voltage limits
depend on a measuring point's nominal voltage and come from :func:`voltage_band_rules`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime

from smartcity.fields import (
    Aggregation,
    AlertRuleTemplate,
    Comparison,
    ConditionKind,
    DeviceProfileTemplate,
    Direction,
    FieldInfo,
    Kpi,
    Metric,
    MetricKind,
    Pillar,
    Quality,
    Reading,
    Severity,
    ValueType,
    hookimpl,
)
from smartcity.plugins import profiles

FIELD_ID = "electricity"
YEAR = 365 * 24 * 3600
PHASE_VOLTAGES = ("voltage_an", "voltage_bn", "voltage_cn")
LINE_VOLTAGES = ("voltage_ab", "voltage_bc", "voltage_ca")
DEAD_BUS_KV = 0.05
"""Below this average voltage (50 V, a fifth of the lowest phase voltage the city
distributes, 230 V) a bay is de-energised and has no unbalance to speak of."""


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


# -- default alert rules -----------------------------------------------------------------
# Frequency is one value for the whole national grid, so its limits hold for every meter:
# 50 Hz, +-0.2 Hz in normal operation (Circular 05/2025/TT-BCT, Article 4(1), as the
# replaced Circular 39/2015/TT-BCT, Article 4, had it). The hold time and hysteresis are
# operating choices: a governor swing of a few seconds is not an event for the IOC.
#
# Voltage limits are a share of the nominal voltage of the measuring point (110, 22 or
# 0.4 kV), which a reading does not carry; so they are no default rule. A deployment that
# knows a point's nominal voltage instantiates voltage_band_rules() for it.
FREQUENCY_LOW = 49.8
FREQUENCY_HIGH = 50.2
FREQUENCY_STANDARD = (
    "Circular 05/2025/TT-BCT, Article 4(1): nominal frequency 50 Hz, within +-0.2 Hz in normal "
    "operation"
)
VOLTAGE_TOLERANCE_PERCENT = 5.0
VOLTAGE_STANDARD = (
    "+-5 % of the nominal voltage at a customer's connection point in normal operation: "
    "Circular 39/2015/TT-BCT, Article 5(2)(a); the article of Circular 05/2025/TT-BCT that "
    "replaced it is not verified against the text (citation open). Held for more than 1 "
    "minute, the definition of a voltage deviation in Circular 05/2025/TT-BCT, Article 3(10)"
)
VOLTAGE_HOLD_SECONDS = 60.0


@hookimpl
def alert_rules() -> list[AlertRuleTemplate]:
    return [
        AlertRuleTemplate(
            name="frequency_low",
            metric="frequency",
            condition=ConditionKind.THRESHOLD,
            severity=Severity.WARNING,
            summary="Grid frequency below 49.8 Hz",
            comparison=Comparison.LT,
            threshold=FREQUENCY_LOW,
            hysteresis=0.05,
            for_seconds=10.0,
            standard=FREQUENCY_STANDARD,
        ),
        AlertRuleTemplate(
            name="frequency_high",
            metric="frequency",
            condition=ConditionKind.THRESHOLD,
            severity=Severity.WARNING,
            summary="Grid frequency above 50.2 Hz",
            comparison=Comparison.GT,
            threshold=FREQUENCY_HIGH,
            hysteresis=0.05,
            for_seconds=10.0,
            standard=FREQUENCY_STANDARD,
        ),
    ]


def voltage_band_rules(
    nominal_kv: float, tolerance_percent: float = VOLTAGE_TOLERANCE_PERCENT
) -> list[AlertRuleTemplate]:
    """Rules keeping every phase and line voltage of a measuring point within
    ``tolerance_percent`` of its nominal voltage ``nominal_kv`` (line to line, as voltage
    levels are named: 22 for a 22 kV busbar); the phase-to-neutral limits are the line
    ones over sqrt(3). A band other than the cited +-5 % says so in its citation."""
    if not math.isfinite(nominal_kv) or nominal_kv <= 0:
        raise ValueError(f"nominal voltage must be a positive number of kV, not {nominal_kv!r}")
    if not math.isfinite(tolerance_percent) or not 0 < tolerance_percent < 100:
        raise ValueError(f"tolerance must be between 0 and 100 %, not {tolerance_percent!r}")
    standard = VOLTAGE_STANDARD
    if tolerance_percent != VOLTAGE_TOLERANCE_PERCENT:
        standard = f"a configured band of +-{tolerance_percent:g} %, not a cited limit (cited: "
        standard += f"{VOLTAGE_STANDARD})"
    share = tolerance_percent / 100
    rules = []
    for metrics, nominal in (
        (PHASE_VOLTAGES, nominal_kv / math.sqrt(3)),
        (LINE_VOLTAGES, nominal_kv),
    ):
        for metric in metrics:
            for side, comparison, limit in (
                ("low", Comparison.LT, nominal * (1 - share)),
                ("high", Comparison.GT, nominal * (1 + share)),
            ):
                rules.append(
                    AlertRuleTemplate(
                        name=f"{metric}_{side}",
                        metric=metric,
                        condition=ConditionKind.THRESHOLD,
                        severity=Severity.WARNING,
                        summary=f"{metric} {side}: beyond {tolerance_percent:g} % of the "
                        f"nominal {nominal:.4g} kV",
                        comparison=comparison,
                        threshold=limit,
                        # Back half a per cent of nominal inside the band before clearing.
                        hysteresis=nominal * 0.005,
                        for_seconds=VOLTAGE_HOLD_SECONDS,
                        standard=standard,
                    )
                )
    return rules


# -- derived values ----------------------------------------------------------------------


def negative_sequence_unbalance(u_ab: float, u_bc: float, u_ca: float) -> float | None:
    """u2 in %, the negative-sequence over the positive-sequence voltage, from the three
    line-voltage magnitudes alone (IEC 61000-4-30, supply voltage unbalance)::

        beta = (U_ab^4 + U_bc^4 + U_ca^4) / (U_ab^2 + U_bc^2 + U_ca^2)^2
        u2   = sqrt((1 - sqrt(3 - 6 beta)) / (1 + sqrt(3 - 6 beta))) * 100 %

    Line voltages carry no zero-sequence component, which is why their magnitudes are
    enough. ``None`` when the magnitudes cannot be those of three phasors that sum to zero
    (one longer than the other two together): a measurement fault, not an unbalance. The
    standard takes fundamental components; meters report true RMS, which differs by the
    harmonic content (a fraction of a per cent at usual THD).
    """
    squares = u_ab * u_ab + u_bc * u_bc + u_ca * u_ca
    beta = (u_ab**4 + u_bc**4 + u_ca**4) / (squares * squares)
    radicand = 3 - 6 * beta
    if radicand < -1e-9:
        return None
    root = math.sqrt(max(radicand, 0.0))
    return 100 * math.sqrt((1 - root) / (1 + root))


def deviation_unbalance(v_a: float, v_b: float, v_c: float) -> float | None:
    """The largest deviation from the mean over the mean, in %: NEMA MG 1's percent
    unbalance (14.36), which NEMA states for line voltages and which applied to phase
    voltages is the "phase voltage unbalance rate". Phase magnitudes hold no angles, so
    the IEC measure cannot be had from them; this one can, and flags a lost phase as
    plainly (100 % with one phase at zero). Always a value; the signature matches
    :func:`negative_sequence_unbalance`."""
    mean = (v_a + v_b + v_c) / 3
    return 100 * max(abs(v_a - mean), abs(v_b - mean), abs(v_c - mean)) / mean


def _aligned(
    readings: Sequence[Reading], names: tuple[str, str, str]
) -> Iterator[tuple[datetime, tuple[Reading, Reading, Reading]]]:
    """Each instant of the batch at which one of ``names`` was read, with the latest
    reading of every one of them at that instant: sample and hold within the batch, since
    a meter reporting by exception leaves out a phase that has not moved. Instants before
    all three have been seen in the batch are skipped."""
    first, second, third = names
    held: dict[str, Reading] = {}
    instant: datetime | None = None
    for reading in readings:
        if reading.metric not in names:
            continue
        if instant is not None and reading.timestamp != instant and len(held) == 3:
            yield instant, (held[first], held[second], held[third])
        held[reading.metric] = reading
        instant = reading.timestamp
    if instant is not None and len(held) == 3:
        yield instant, (held[first], held[second], held[third])


def _unbalance(
    metric: str,
    names: tuple[str, str, str],
    formula: Callable[[float, float, float], float | None],
    readings: Sequence[Reading],
) -> Iterator[Reading]:
    bad, good = Quality.BAD, Quality.GOOD
    for instant, inputs in _aligned(readings, names):
        a, b, c = inputs
        if a.quality is bad or b.quality is bad or c.quality is bad:
            continue  # no value to compute with; the bad input is stored with its reason
        v_1, v_2, v_3 = float(a.value), float(b.value), float(c.value)
        if v_1 + v_2 + v_3 < 3 * DEAD_BUS_KV:
            continue
        value = formula(v_1, v_2, v_3)
        if value is None:
            yield Reading(
                metric,
                math.nan,
                "%",
                instant,
                Quality.BAD,
                f"{', '.join(names)} of {v_1:g}, {v_2:g}, {v_3:g} kV cannot be the magnitudes "
                "of a three-phase system (one exceeds the sum of the others)",
            )
        elif a.quality is good and b.quality is good and c.quality is good:
            yield Reading(metric, value, "%", instant)
        else:
            reason = "; ".join(
                f"{reading.metric} uncertain" + (f": {reading.reason}" if reading.reason else "")
                for reading in inputs
                if reading.quality is not good
            )
            yield Reading(metric, value, "%", instant, Quality.UNCERTAIN, reason)


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
        _unbalance("voltage_unbalance", LINE_VOLTAGES, negative_sequence_unbalance, readings)
    )
    derived += _unbalance("phase_voltage_unbalance", PHASE_VOLTAGES, deviation_unbalance, readings)
    return derived


# -- device profiles ---------------------------------------------------------------------
# Ready profiles for the field's common equipment are YAML files in profiles/electricity/,
# read once, when this module is imported, so that the hook itself does no I/O.
DEVICE_PROFILES = profiles.load(FIELD_ID)


@hookimpl
def device_profiles() -> list[DeviceProfileTemplate]:
    return list(DEVICE_PROFILES)
