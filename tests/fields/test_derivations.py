"""Derivations: a metric computed from one reading of another, declared by a plugin and
applied by the host (``Derivation.apply`` is the rule; the catalogue checks are the
loader's)."""

from __future__ import annotations

import math
import types
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smartcity.fields import Derivation, FieldLoadError, Quality, Reading, load_fields
from smartcity.runtime.config import PluginSettings

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def double(value: float) -> float:
    return 2 * value


def test_a_derivation_carries_its_sources_quality_and_reason() -> None:
    derivation = Derivation("doubled", "level", double)
    assert derivation.apply(1.5, Quality.GOOD, "") == (3.0, Quality.GOOD, "")
    assert derivation.apply(1.5, Quality.UNCERTAIN, "calibration due") == (
        3.0,
        Quality.UNCERTAIN,
        "calibration due",
    )


def test_a_bad_reading_or_one_without_a_value_gives_nothing() -> None:
    derivation = Derivation("doubled", "level", double)
    assert derivation.apply(1.5, Quality.BAD, "sensor fault") is None
    assert derivation.apply(None, Quality.GOOD, "") is None


@pytest.mark.parametrize(
    ("compute", "reason"),
    [
        (lambda value: 1 / 0, "doubled = f(level) raised ZeroDivisionError"),
        (lambda value: "high", "doubled = f(level) gave a str, not a number"),
        (lambda value: None, "doubled = f(level) gave a NoneType, not a number"),
        (lambda value: 10**400, "doubled = f(level) gave an integer beyond 1e308"),
    ],
)
def test_a_failing_computation_is_a_bad_reading_with_the_reason(compute, reason) -> None:
    derivation = Derivation("doubled", "level", compute)
    assert derivation.apply(1.0, Quality.GOOD, "") == (None, Quality.BAD, reason)


@given(
    value=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
    quality=st.sampled_from(list(Quality)),
    result=st.one_of(
        st.floats(allow_nan=True), st.integers(), st.booleans(), st.text(max_size=3), st.none()
    ),
)
def test_any_reading_and_any_result_get_a_verdict(value, quality, result) -> None:
    """Whatever the source reading and whatever ``compute`` returns, ``apply`` answers
    without raising, and a value it passes on is a number that fits a double."""
    applied = Derivation("derived", "source", lambda _: result).apply(value, quality, "why")
    if value is None or quality is Quality.BAD:
        assert applied is None
        return
    assert applied is not None
    derived, verdict, reason = applied
    if derived is None:
        assert verdict is Quality.BAD
        assert reason
    else:
        assert (derived, verdict, reason) == (result, quality, "why")
        float(derived)  # fits a double: never raises OverflowError


def test_a_derivation_is_checked_when_declared() -> None:
    with pytest.raises(ValueError, match="derives a metric from itself"):
        Derivation("level", "level", double)
    with pytest.raises(TypeError, match="compute must be callable, not float"):
        Derivation("doubled", "level", 2.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="derivation metric"):
        Derivation("Doubled", "level", double)


PLUGIN = """
from smartcity.fields import (
    Aggregation, Derivation, Direction, FieldInfo, Kpi, Metric, Pillar, hookimpl,
)

@hookimpl
def field_info():
    return FieldInfo("tanks", Pillar.ENVIRONMENT, "Tanks", "Storage tanks")

@hookimpl
def metrics():
    return [
        Metric("level", "m", "Water level", 0, 10),
        Metric("fill", "%", "Level as a share of the tank's height", 0, 100),
        Metric("overflowing", "1", "Level above the weir", 0, 1),
        Metric("level_over_quay", "m", "Level relative to the quay", -20, 20),
    ]

@hookimpl
def kpis():
    return [
        Kpi("mean_level", "Mean level", "m", "Mean water level", Direction.HIGHER,
            Aggregation.MEAN, "level")
    ]

"""

LISTED = """
@hookimpl
def derivations():
    return DERIVATIONS
"""


def plugin(derivations: list[Derivation], source: str = LISTED) -> types.ModuleType:
    module = types.ModuleType("tanks_field")
    exec(PLUGIN + source, module.__dict__)
    module.DERIVATIONS = derivations  # type: ignore[attr-defined]
    return module


def load(derivations: list[Derivation], source: str = LISTED):
    return load_fields(
        PluginSettings(enabled=["tanks"]), extra_plugins=[("tanks", plugin(derivations, source))]
    )


def test_the_guides_derivation_example_works_as_written() -> None:
    import re
    from pathlib import Path

    import smartcity.fields

    guide = Path(smartcity.fields.__file__).with_name("README.md").read_text(encoding="utf-8")
    (example,) = [
        block
        for block in re.findall(r"^```python\n(.*?)^```", guide, re.M | re.S)
        if "def derivations" in block
    ]
    host = load([], example)
    (derived,) = host.derive("tanks", "han-river", "gauge-1", [Reading("level", 3.0, "m", T0)])
    assert (derived.metric, derived.unit) == ("level_over_quay", "m")
    assert derived.value == pytest.approx(0.9)


def test_every_problem_of_a_plugins_derivations_is_listed_at_once() -> None:
    with pytest.raises(FieldLoadError) as excinfo:
        load(
            [
                Derivation("fill", "depth", double),
                Derivation("fill", "level", double),
                Derivation("level_squared", "level", double),
                Derivation("overflowing", "fill", double),
            ]
        )
    (error,) = excinfo.value.errors
    assert list(error.problems) == [
        "derived metric 'fill' is declared more than once",
        "derivation 'fill': source 'depth' is not a metric of the field",
        "derivation 'level_squared': metric 'level_squared' is not a metric of the field",
        "derivation 'overflowing': source 'fill' is itself derived",
    ]


def test_the_host_applies_a_plugins_derivations_and_judges_their_values() -> None:
    host = load(
        [
            Derivation("fill", "level", lambda level: level / 4.0 * 100),
            Derivation("overflowing", "level", lambda level: level > 3.9),
        ]
    )
    readings = [
        Reading("level", 2.0, "m", T0),
        Reading("level", 5.0, "m", T0, Quality.UNCERTAIN, "gauge drifting"),
        Reading("level", math.nan, "m", T0, Quality.BAD, "no signal"),
    ]
    derived = host.derive("tanks", "site", "tank-1", readings)
    assert [(r.metric, r.value, r.unit, r.quality, r.reason) for r in derived] == [
        ("fill", 50.0, "%", Quality.GOOD, ""),
        ("overflowing", False, "1", Quality.GOOD, ""),
        ("fill", 125.0, "%", Quality.UNCERTAIN, "gauge drifting"),
        ("overflowing", True, "1", Quality.UNCERTAIN, "gauge drifting"),
    ]
    assert host["tanks"].as_dict()["derivations"] == [
        {"metric": "fill", "source": "level", "description": ""},
        {"metric": "overflowing", "source": "level", "description": ""},
    ]
