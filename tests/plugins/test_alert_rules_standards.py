"""Default alert rules from Vietnamese standards: each loads through the plugin host, watches
a metric of its own field, cites its source, and has the cited number as its threshold."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smartcity.fields import AlertRuleTemplate, Comparison, FieldHost, Quality, load_fields
from smartcity.plugins import vn_aqi, water_supply
from smartcity.plugins.electricity import voltage_band_rules

COMPARE: dict[Comparison, Callable[[float, float], bool]] = {
    Comparison.GT: operator.gt,
    Comparison.GE: operator.ge,
    Comparison.LT: operator.lt,
    Comparison.LE: operator.le,
}

# name: (metric, comparison, threshold, severity), written out from the documents.
EXPECTED = {
    "water_supply": {
        # QCVN 01-1:2018/BYT: turbidity <= 2 NTU, pH 6.0-8.5, free chlorine 0.2-1.0 mg/L
        "turbidity_high": ("turbidity", "gt", 2.0, "critical"),
        "ph_low": ("ph", "lt", 6.0, "warning"),
        "ph_high": ("ph", "gt", 8.5, "warning"),
        "chlorine_low": ("residual_chlorine", "lt", 0.2, "critical"),
        "chlorine_high": ("residual_chlorine", "gt", 1.0, "warning"),
    },
    "environment": {
        # Decision 1459/QD-TCMT, Table 1: 101-150 poor, 151-200 bad, 201-300 very bad,
        # 301-500 hazardous
        "air_quality_poor": ("vn_aqi", "ge", 101.0, "warning"),
        "air_quality_bad": ("vn_aqi", "ge", 151.0, "warning"),
        "air_quality_very_bad": ("vn_aqi", "ge", 201.0, "critical"),
        "air_quality_hazardous": ("vn_aqi", "ge", 301.0, "critical"),
    },
    "electricity": {
        # Circular 05/2025/TT-BCT, Article 4(1): 50 Hz +- 0.2 Hz
        "frequency_low": ("frequency", "lt", 49.8, "warning"),
        "frequency_high": ("frequency", "gt", 50.2, "warning"),
    },
}
CITED = {
    "water_supply": ("QCVN 01-1:2018/BYT", "Article 4"),
    "environment": ("Decision 1459/QD-TCMT", "Table 1"),
    "electricity": ("Circular 05/2025/TT-BCT", "Article 4(1)"),
}


@pytest.fixture(scope="module")
def host() -> FieldHost:
    return load_fields()


def _shape(rule: AlertRuleTemplate) -> tuple[str, str, float | None, str]:
    return (rule.metric, str(rule.comparison), rule.threshold, str(rule.severity))


def test_every_field_loads_with_its_rules(host: FieldHost) -> None:
    assert host.refused == ()
    assert {item.id for item in host if item.alert_rules} == set(EXPECTED)


@pytest.mark.parametrize("field_id", sorted(EXPECTED))
def test_rules_are_the_cited_numbers(host: FieldHost, field_id: str) -> None:
    rules = host[field_id].alert_rules
    assert {rule.name: _shape(rule) for rule in rules} == EXPECTED[field_id]


@pytest.mark.parametrize("field_id", sorted(EXPECTED))
def test_rules_watch_their_own_metrics_and_cite_their_source(
    host: FieldHost, field_id: str
) -> None:
    item = host[field_id]
    for rule in item.alert_rules:
        metric = item.metrics[rule.metric]
        assert metric.minimum is not None
        assert metric.maximum is not None
        assert metric.minimum <= rule.threshold <= metric.maximum
        assert rule.standard
        for words in CITED[field_id]:
            assert words in rule.standard, (rule.name, words)
        assert "not verified" not in rule.standard


def test_the_chlorine_rules_and_the_derived_flag_agree() -> None:
    rules = [rule for rule in water_supply.alert_rules() if rule.metric == "residual_chlorine"]

    [derivation] = water_supply.derivations()
    assert (derivation.metric, derivation.source) == ("chlorine_compliant", "residual_chlorine")

    @given(st.floats(0, 10, allow_nan=False))
    def check(value: float) -> None:
        applied = derivation.apply(value, Quality.GOOD, "")
        assert applied is not None
        flag, _, _ = applied
        fires = any(COMPARE[rule.comparison](value, rule.threshold) for rule in rules)
        assert fires is not bool(flag)

    check()


@given(st.integers(0, 500))
def test_air_quality_rules_fire_from_poor_by_category(index: int) -> None:
    from smartcity.plugins import environment

    fired = {
        rule.name
        for rule in environment.alert_rules()
        if COMPARE[rule.comparison](index, rule.threshold)
    }
    category = vn_aqi.aqi_category(index)
    expected = {
        f"air_quality_{row.name.lower().replace(' ', '_')}"
        for row in vn_aqi.CATEGORIES
        if 3 <= row.index <= category.index
    }
    assert fired == expected


def test_voltage_band_for_a_22_kv_busbar(host: FieldHost) -> None:
    rules = {rule.name: rule for rule in voltage_band_rules(22)}
    assert sorted(rules) == sorted(
        f"voltage_{pair}_{side}"
        for pair in ("an", "bn", "cn", "ab", "bc", "ca")
        for side in ("low", "high")
    )
    assert rules["voltage_ab_low"].threshold == pytest.approx(20.9)
    assert rules["voltage_ab_high"].threshold == pytest.approx(23.1)
    assert rules["voltage_an_low"].threshold == pytest.approx(0.95 * 22 / math.sqrt(3))
    assert rules["voltage_cn_high"].threshold == pytest.approx(1.05 * 22 / math.sqrt(3))
    assert {str(rule.comparison) for rule in rules.values()} == {"lt", "gt"}
    assert {rule.for_seconds for rule in rules.values()} == {60.0}
    standard = rules["voltage_ab_low"].standard
    assert "Circular 39/2015/TT-BCT, Article 5(2)(a)" in standard
    assert "not verified against the text (citation open)" in standard


@pytest.mark.parametrize("nominal_kv", [110, 35, 22, 0.4])
def test_voltage_bands_fit_the_catalogue(host: FieldHost, nominal_kv: float) -> None:
    metrics = host["electricity"].metrics
    for rule in voltage_band_rules(nominal_kv):
        metric = metrics[rule.metric]
        assert metric.minimum is not None
        assert metric.maximum is not None
        assert metric.minimum <= rule.threshold <= metric.maximum


def test_a_configured_voltage_band_says_it_is_not_cited() -> None:
    [rule, *_] = voltage_band_rules(0.4, 10)
    assert rule.threshold == pytest.approx(0.9 * 0.4 / math.sqrt(3))
    assert rule.standard.startswith("a configured band of +-10 %, not a cited limit")


@pytest.mark.parametrize(
    ("nominal_kv", "tolerance"), [(0, 5), (-22, 5), (math.nan, 5), (22, 0), (22, 100)]
)
def test_a_meaningless_voltage_band_is_refused(nominal_kv: float, tolerance: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        voltage_band_rules(nominal_kv, tolerance)
