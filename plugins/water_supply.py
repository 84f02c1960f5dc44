"""Water supply: the SCADA of the city's water stations, from river intake to the network.

The water company watches flow, pressure, level and water quality continuously, online, for
raw surface water at the intakes, treated water at the plants and water in the supply
network (Tuong 2021, 4.2 (8)). Raw-water quality is kept apart from treated-water quality by
name: at the intakes on the Cau Do river the concerns are turbidity after floods and salt
intrusion in the dry season, while treated water is held to QCVN 01-1:2018/BYT, the national
technical regulation on domestic water quality (turbidity at most 2 NTU, pH 6.0 to 8.5, free
residual chlorine 0.2 to 1.0 mg/L in piped water).
"""

from __future__ import annotations

from smartcity.fields import (
    Aggregation,
    AlertRuleTemplate,
    Comparison,
    ConditionKind,
    Derivation,
    DeviceProfileTemplate,
    Direction,
    FieldInfo,
    Kpi,
    Metric,
    MetricKind,
    Pillar,
    Severity,
    ValueType,
    hookimpl,
)
from smartcity.plugins import profiles

FIELD_ID = "water_supply"
DRINKING_WATER = "QCVN 01-1:2018/BYT"
CHLORINE_MIN = 0.2
CHLORINE_MAX = 1.0
"""Free residual chlorine in piped water, mg/L, both limits inclusive (QCVN 01-1:2018/BYT):
below, water reaching the tap is no longer protected; above, customers taste it."""
TURBIDITY_MAX = 2.0
"""NTU, inclusive (QCVN 01-1:2018/BYT)."""
PH_MIN = 6.0
PH_MAX = 8.5
"""Both inclusive (QCVN 01-1:2018/BYT)."""
LIMIT_TABLE = (
    f"{DRINKING_WATER} (issued with Circular 41/2018/TT-BYT), Article 4, table of limits, group A"
)


@hookimpl
def field_info() -> FieldInfo:
    return FieldInfo(
        id=FIELD_ID,
        pillar=Pillar.ENVIRONMENT,
        title="Water supply",
        description=(
            "SCADA of intakes, treatment plants, tanks and the supply network: flow, "
            "pressure, level and online water quality"
        ),
    )


@hookimpl
def metrics() -> list[Metric]:
    return [
        Metric("flow_rate", "m3/h", "Volumetric flow through the metering point", 0, 20000),
        Metric(
            "total_volume",
            "m3",
            "Volume through the metering point (totaliser)",
            0,
            kind=MetricKind.COUNTER,
        ),
        Metric("pressure", "bar", "Gauge pressure in the main or at the pump discharge", 0, 16),
        Metric("tank_level", "m", "Water level in a clear-water tank or reservoir", 0, 20),
        Metric("turbidity", "NTU", "Turbidity of treated or network water", 0, 100),
        Metric("ph", "pH", "pH of treated or network water", 0, 14),
        Metric(
            "residual_chlorine",
            "mg/L",
            "Free residual chlorine of treated or network water",
            0,
            10,
        ),
        Metric(
            "chlorine_compliant",
            "1",
            "Whether free residual chlorine lies within 0.2 to 1.0 mg/L (QCVN 01-1:2018/BYT), "
            "derived from each residual_chlorine reading",
            0,
            1,
            value_type=ValueType.BOOL,
        ),
        Metric("conductivity", "uS/cm", "Electrical conductivity of treated water", 0, 5000),
        Metric("water_temperature", "degC", "Temperature of the water", 0, 50),
        Metric(
            "raw_water_turbidity",
            "NTU",
            "Turbidity of raw surface water at the intake (high after floods)",
            0,
            4000,
        ),
        Metric("raw_water_ph", "pH", "pH of raw surface water at the intake", 0, 14),
        Metric(
            "raw_water_salinity",
            "g/kg",
            "Salinity of raw water at the intake, in per mille (salt intrusion)",
            0,
            40,
        ),
        Metric(
            "pump_state",
            "{state}",
            "Operating state of a pump",
            kind=MetricKind.STATE,
            value_type=ValueType.INT,
            states={0: "stopped", 1: "running", 2: "tripped"},
        ),
        Metric("pump_speed", "%", "Pump speed set by its variable-frequency drive", 0, 100),
        Metric("pump_power", "kW", "Electrical power drawn by a pump", 0, 2000),
    ]


@hookimpl
def kpis() -> list[Kpi]:
    return [
        Kpi(
            id="turbidity_compliance",
            title="Treated water within the turbidity limit",
            unit="%",
            description=(
                "Share of the day during which treated and network water stayed at or below 2 NTU"
            ),
            direction=Direction.HIGHER,
            aggregation=Aggregation.SHARE_AT_MOST,
            metric="turbidity",
            threshold=2,
            target=100,
            standard=DRINKING_WATER,
        ),
        Kpi(
            id="chlorine_compliance",
            title="Network water disinfected",
            unit="%",
            description=(
                "Share of the day during which free residual chlorine stayed at or above "
                "0.2 mg/L, so that water reaching customers is still protected"
            ),
            direction=Direction.HIGHER,
            aggregation=Aggregation.SHARE_AT_LEAST,
            metric="residual_chlorine",
            threshold=0.2,
            target=100,
            standard=DRINKING_WATER,
        ),
        Kpi(
            id="volume_supplied",
            title="Water supplied",
            unit="m3",
            description="Volume through the metering points over a day",
            direction=Direction.HIGHER,
            aggregation=Aggregation.INCREASE,
            metric="total_volume",
        ),
    ]


# -- default alert rules -----------------------------------------------------------------
# The limits are the regulation's (QCVN 01-1:2018/BYT, group A parameters 2, 3 and 6 of the
# table of limits in Article 4). How long a breach must last and how far back a value must
# come before the alert clears are operating choices, not the regulation's: an online
# analyser is noisy, and a minute filters a single spike without hiding a real breach.
HOLD_SECONDS = 60.0


@hookimpl
def alert_rules() -> list[AlertRuleTemplate]:
    threshold, critical, warning = ConditionKind.THRESHOLD, Severity.CRITICAL, Severity.WARNING
    return [
        AlertRuleTemplate(
            name="turbidity_high",
            metric="turbidity",
            condition=threshold,
            severity=critical,
            summary="Turbidity of treated water above 2 NTU",
            comparison=Comparison.GT,
            threshold=TURBIDITY_MAX,
            hysteresis=0.2,
            for_seconds=HOLD_SECONDS,
            standard=f"{LIMIT_TABLE}, no. 3: turbidity at most 2 NTU",
        ),
        AlertRuleTemplate(
            name="ph_low",
            metric="ph",
            condition=threshold,
            severity=warning,
            summary="pH of treated water below 6.0",
            comparison=Comparison.LT,
            threshold=PH_MIN,
            hysteresis=0.1,
            for_seconds=HOLD_SECONDS,
            standard=f"{LIMIT_TABLE}, no. 6: pH within 6.0 to 8.5",
        ),
        AlertRuleTemplate(
            name="ph_high",
            metric="ph",
            condition=threshold,
            severity=warning,
            summary="pH of treated water above 8.5",
            comparison=Comparison.GT,
            threshold=PH_MAX,
            hysteresis=0.1,
            for_seconds=HOLD_SECONDS,
            standard=f"{LIMIT_TABLE}, no. 6: pH within 6.0 to 8.5",
        ),
        AlertRuleTemplate(
            # Too little chlorine leaves water unprotected on its way to the tap: critical.
            name="chlorine_low",
            metric="residual_chlorine",
            condition=threshold,
            severity=critical,
            summary="Free residual chlorine below 0.2 mg/L",
            comparison=Comparison.LT,
            threshold=CHLORINE_MIN,
            hysteresis=0.02,
            for_seconds=HOLD_SECONDS,
            standard=f"{LIMIT_TABLE}, no. 2: free residual chlorine within 0.2 to 1.0 mg/L",
        ),
        AlertRuleTemplate(
            name="chlorine_high",
            metric="residual_chlorine",
            condition=threshold,
            severity=warning,
            summary="Free residual chlorine above 1.0 mg/L",
            comparison=Comparison.GT,
            threshold=CHLORINE_MAX,
            hysteresis=0.05,
            for_seconds=HOLD_SECONDS,
            standard=f"{LIMIT_TABLE}, no. 2: free residual chlorine within 0.2 to 1.0 mg/L",
        ),
    ]


# -- derived values ----------------------------------------------------------------------


def chlorine_within_limits(residual: float) -> bool:
    """Whether free residual chlorine lies within 0.2 to 1.0 mg/L, limits included."""
    return CHLORINE_MIN <= residual <= CHLORINE_MAX


@hookimpl
def derivations() -> list[Derivation]:
    """``chlorine_compliant`` for every residual-chlorine reading.

    The ``chlorine_compliance`` KPI looks at the lower limit only; the flag carries both,
    so that a share of compliant time and an alert on over-chlorination can be had from
    one series. As every derivation, it has its source reading's timestamp and quality (an
    uncertain reading gives an uncertain flag, with the same reason), and a bad reading
    gives no flag, since it has no value to judge and is itself stored with its reason.
    """
    return [
        Derivation(
            "chlorine_compliant",
            "residual_chlorine",
            chlorine_within_limits,
            f"{LIMIT_TABLE}, no. 2: free residual chlorine within 0.2 to 1.0 mg/L",
        )
    ]


# -- device profiles ---------------------------------------------------------------------
# Ready profiles for the field's common equipment are YAML files in profiles/water_supply/,
# read once, when this module is imported, so that the hook itself does no I/O.
DEVICE_PROFILES = profiles.load(FIELD_ID)


@hookimpl
def device_profiles() -> list[DeviceProfileTemplate]:
    return list(DEVICE_PROFILES)
