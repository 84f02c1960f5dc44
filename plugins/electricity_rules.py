"""The electricity field's alert rules: the limits the grid is held to, and where they come from.

Grid frequency has one limit for every meter, a default rule of the field
(:func:`frequency_rules`); voltage limits depend on a measuring point's nominal voltage, so a
deployment instantiates :func:`voltage_band_rules` for each point it knows. The voltages
those rules watch are the phase-to-neutral and line voltages every bay meter reads, which are
also what the field derives its unbalance from (:mod:`smartcity.plugins.voltage_unbalance`).
"""

from __future__ import annotations

import math

from smartcity.fields import AlertRuleTemplate, Comparison, ConditionKind, Severity

PHASE_VOLTAGES = ("voltage_an", "voltage_bn", "voltage_cn")
LINE_VOLTAGES = ("voltage_ab", "voltage_bc", "voltage_ca")

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


def frequency_rules() -> list[AlertRuleTemplate]:
    """Grid frequency outside 50 Hz +-0.2 Hz, held for 10 s: the field's default rules."""
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
