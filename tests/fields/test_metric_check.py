"""``Metric.check``: the one verdict on a reading against its metric, by hand-worked cases and
against an oracle written out independently, over arbitrary values, units and qualities."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smartcity.fields import Metric, MetricKind, Quality, ValueType, Verdict

PH = Metric("ph", "pH", "Acidity", 0, 14)
LEVEL = Metric("tank_level", "m", "Water level", None, 12.5)
PUMPS = Metric("pumps_running", "{pump}", "Pumps running", 0, 8, value_type=ValueType.INT)
BREAKER = Metric(
    "breaker_state",
    "1",
    "Breaker position",
    0,
    2,
    kind=MetricKind.STATE,
    value_type=ValueType.INT,
    states={0: "open", 2: "closed"},
)


@pytest.mark.parametrize(
    ("metric", "value", "unit", "quality", "expected"),
    [
        (PH, 7.2, "pH", Quality.GOOD, None),
        (PH, 0.0, "pH", Quality.GOOD, None),
        (PH, 14.0, "pH", Quality.GOOD, None),
        (PH, 15.0, "pH", Quality.GOOD, Verdict(Quality.BAD, "out of range: 15 > 14")),
        (PH, -0.5, "pH", Quality.GOOD, Verdict(Quality.BAD, "out of range: -0.5 < 0")),
        (
            PH,
            7.0,
            "mg/L",
            Quality.GOOD,
            Verdict(Quality.BAD, "unit 'mg/L' is not the metric's 'pH'"),
        ),
        (PH, None, "pH", Quality.GOOD, Verdict(Quality.BAD, "marked good but carries no value")),
        (PH, math.nan, "pH", Quality.GOOD, Verdict(Quality.BAD, "not a finite value (nan)")),
        (PH, math.inf, "pH", Quality.UNCERTAIN, Verdict(Quality.BAD, "not a finite value (inf)")),
        # The device's own doubt stands, range or not.
        (PH, 15.0, "pH", Quality.UNCERTAIN, None),
        (PH, None, "pH", Quality.BAD, None),
        (PH, 3.0, "NTU", Quality.BAD, Verdict(Quality.BAD, "unit 'NTU' is not the metric's 'pH'")),
        (LEVEL, -1e9, "m", Quality.GOOD, None),
        (LEVEL, 12.6, "m", Quality.GOOD, Verdict(Quality.BAD, "out of range: 12.6 > 12.5")),
        (PUMPS, 3.0, "{pump}", Quality.GOOD, None),
        (
            PUMPS,
            2.5,
            "{pump}",
            Quality.GOOD,
            Verdict(Quality.BAD, "2.5 is not a whole number (int)"),
        ),
        (BREAKER, 2.0, "1", Quality.GOOD, None),
        (
            BREAKER,
            1.0,
            "1",
            Quality.GOOD,
            Verdict(Quality.BAD, "state 1 is not one of 0 (open), 2 (closed)"),
        ),
    ],
)
def test_verdicts_worked_by_hand(
    metric: Metric, value: float | None, unit: str, quality: Quality, expected: Verdict | None
) -> None:
    assert metric.check(value, unit, quality) == expected


def oracle(metric: Metric, value: float | None, unit: str, quality: Quality) -> Quality | None:
    """The rules of Metric.check written out from its documentation, independently."""
    if unit != metric.unit:
        return Quality.BAD
    if value is not None and (math.isnan(value) or math.isinf(value)) and quality != Quality.BAD:
        return Quality.BAD
    if quality != Quality.GOOD:
        return None
    if value is None:
        return Quality.BAD
    low = metric.minimum if metric.minimum is not None else -math.inf
    high = metric.maximum if metric.maximum is not None else math.inf
    if not low <= value <= high:
        return Quality.BAD
    if metric.value_type != ValueType.FLOAT and math.floor(value) != value:
        return Quality.BAD
    if metric.states and int(value) not in metric.states:
        return Quality.BAD
    return None


@given(
    metric=st.sampled_from([PH, LEVEL, PUMPS, BREAKER]),
    value=st.none() | st.floats(allow_nan=True, allow_infinity=True),
    unit=st.sampled_from(["pH", "m", "{pump}", "1", "", "mg/L"]) | st.text(max_size=8),
    quality=st.sampled_from(list(Quality)),
)
def test_every_reading_gets_the_verdict_the_rules_give(
    metric: Metric, value: float | None, unit: str, quality: Quality
) -> None:
    verdict = metric.check(value, unit, quality)
    expected = oracle(metric, value, unit, quality)
    assert (verdict.quality if verdict else None) == expected
    if verdict is not None:
        assert verdict.reason, "a verdict always says why"
    if value is not None:
        assert metric.in_range(value) == (oracle(metric, value, metric.unit, Quality.GOOD) is None)
