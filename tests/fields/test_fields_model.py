"""Each data type refuses a bad value when it is built, naming what is wrong."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from smartcity.fields import (
    AlertRuleTemplate,
    DeviceProfileTemplate,
    FieldInfo,
    Kpi,
    Metric,
    MetricKind,
    Pillar,
    Quality,
    Reading,
    RecordAccess,
    RecordType,
)
from smartcity.fields.model import to_jsonable

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
SCHEMA = {
    "type": "object",
    "properties": {"citizen_id": {"type": "string"}, "note": {"type": "string"}},
    "required": ["citizen_id"],
}


def metric(**overrides: Any) -> Metric:
    return Metric(**{"name": "flow_rate", "unit": "m3/h", "description": "Flow", **overrides})


def kpi(**overrides: Any) -> Kpi:
    base = {
        "id": "k",
        "title": "K",
        "unit": "%",
        "description": "D",
        "direction": "higher",
        "aggregation": "mean",
        "metric": "flow_rate",
    }
    return Kpi(**{**base, **overrides})


def rule(**overrides: Any) -> AlertRuleTemplate:
    base = {
        "name": "high_flow",
        "metric": "flow_rate",
        "condition": "threshold",
        "severity": "warning",
        "summary": "High flow",
        "comparison": "gt",
        "threshold": 100,
    }
    return AlertRuleTemplate(**{**base, **overrides})


def record(**overrides: Any) -> RecordType:
    return RecordType(**{"name": "ticket", "title": "Ticket", "schema": SCHEMA, **overrides})


def profile(**overrides: Any) -> DeviceProfileTemplate:
    base = {"protocol": "modbus", "points": [{"name": "flow_rate", "unit": "m3/h"}]}
    return DeviceProfileTemplate(name="meter", description="Meter", profile={**base, **overrides})


Build = Callable[..., object]

REFUSED: list[tuple[Build, dict[str, Any], type[Exception], str]] = [
    (metric, {"minimum": 10, "maximum": 1}, ValueError, "minimum 10 is not below maximum 1"),
    (metric, {"minimum": 1, "maximum": 1}, ValueError, "minimum 1 is not below maximum 1"),
    (metric, {"maximum": math.inf}, ValueError, "maximum must be finite"),
    (metric, {"minimum": "0"}, TypeError, "minimum must be a number"),
    (metric, {"name": "flow-rate"}, ValueError, "'flow-rate' is not snake_case"),
    (metric, {"name": "flow__rate"}, ValueError, "not snake_case"),
    (metric, {"name": "a" * 64}, ValueError, "not snake_case"),
    (metric, {"unit": "  "}, ValueError, "metric 'flow_rate': unit is empty"),
    (metric, {"kind": "histogram"}, ValueError, "kind: 'histogram' is not one of gauge"),
    (metric, {"kind": "counter", "minimum": -1}, ValueError, "negative minimum"),
    (metric, {"kind": "state", "value_type": "int"}, ValueError, "names its states"),
    (metric, {"kind": "state", "states": {0: "off"}}, ValueError, "int or bool values"),
    (metric, {"states": {0: "off"}}, ValueError, "only a state metric has states"),
    (
        metric,
        {"kind": "state", "value_type": "int", "states": {0: "off", 5: "x"}, "maximum": 3},
        ValueError,
        "state 5 lies outside",
    ),
    (metric, {"value_type": "bool", "maximum": 2}, ValueError, "bool metric's range is 0..1"),
    (kpi, {"aggregation": "ratio"}, TypeError, "denominator must be a str"),
    (kpi, {"aggregation": "share_at_most"}, TypeError, "threshold must be a number"),
    (kpi, {"threshold": 5}, ValueError, "threshold applies only to share_at_most"),
    (kpi, {"denominator": "x"}, ValueError, "denominator applies only to ratio"),
    (kpi, {"window_seconds": 0}, ValueError, "window_seconds must be positive"),
    (kpi, {"window_seconds": 1.5}, TypeError, "window_seconds must be an int"),
    (kpi, {"direction": "up"}, ValueError, "direction: 'up' is not one of higher, lower"),
    (kpi, {"scale": 0}, ValueError, "scale cannot be 0"),
    (kpi, {"id": ""}, ValueError, "KPI id '' is not snake_case"),
    (rule, {"comparison": None}, ValueError, "needs a comparison and a threshold"),
    (rule, {"condition": "no_data"}, ValueError, "no_data rule has no comparison or threshold"),
    (
        rule,
        {"condition": "no_data", "comparison": None, "threshold": None},
        ValueError,
        "no_data rule needs for_seconds > 0",
    ),
    (rule, {"hysteresis": -1}, ValueError, "hysteresis cannot be negative"),
    (rule, {"comparison": "eq", "hysteresis": 1}, ValueError, "hysteresis applies only"),
    (rule, {"condition": "rate", "hysteresis": 1}, ValueError, "hysteresis applies only"),
    (rule, {"severity": "page"}, ValueError, "severity: 'page' is not one of info"),
    (rule, {"summary": ""}, ValueError, "summary is empty"),
    (record, {"schema": {"type": "array"}}, ValueError, "must describe an object"),
    (record, {"schema": {"type": "object"}}, ValueError, "must declare its properties"),
    (
        record,
        {"schema": {**SCHEMA, "required": ["plate"]}},
        ValueError,
        "required list names undeclared properties",
    ),
    (record, {"access": "owner"}, ValueError, "access 'owner' needs owner_property"),
    (
        record,
        {"access": "owner", "owner_property": "note"},
        ValueError,
        "owner_property 'note' must be a required schema property",
    ),
    (record, {"owner_property": "citizen_id"}, ValueError, "applies only to access 'owner'"),
    (profile, {"protocol": "bacnet"}, ValueError, "protocol must be 'modbus' or 'opcua'"),
    (profile, {"points": []}, ValueError, "points must be a non-empty list"),
    (profile, {"points": [{"name": "flow_rate"}]}, ValueError, "point 0 needs a name and a unit"),
]


@pytest.mark.parametrize(
    ("build", "overrides", "error", "message"),
    REFUSED,
    ids=[f"{build.__name__}-{message[:30]}" for build, _, _, message in REFUSED],
)
def test_bad_values_are_refused(
    build: Build, overrides: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        build(**overrides)


def test_field_info_coerces_and_checks_the_pillar() -> None:
    info = FieldInfo(id="x", pillar="living", title=" X ", description="D")
    assert info.pillar is Pillar.LIVING
    assert info.title == "X"
    with pytest.raises(ValueError, match="field 'x': pillar: 'smart' is not one of"):
        FieldInfo(id="x", pillar="smart", title="X", description="D")  # type: ignore[arg-type]


def test_valid_values_are_normalised_and_immutable() -> None:
    breaker = metric(kind="state", value_type="int", states={1: "closed", 0: "open"})
    assert breaker.kind is MetricKind.STATE
    assert list(breaker.states.items()) == [(0, "open"), (1, "closed")]
    with pytest.raises(TypeError):
        breaker.states[2] = "tripped"  # type: ignore[index]
    with pytest.raises(AttributeError):
        breaker.unit = "A"  # type: ignore[misc]
    assert hash(breaker) == hash(metric(kind="state", value_type="int", states={0: "x"}))

    source = {"protocol": "opcua", "points": [{"name": "ph", "unit": "pH", "node": "ns=2;s=pH"}]}
    template = DeviceProfileTemplate(name="analyser", description="pH", profile=source)
    source["points"][0]["unit"] = "changed"
    assert template.points[0]["unit"] == "pH", "the template keeps its own copy"
    completed = template.complete(site="cau-do", device="ph-1")
    completed["points"][0]["name"] = "changed"
    assert template.points[0]["name"] == "ph"

    owner = record(access=RecordAccess.OWNER, owner_property="citizen_id")
    assert to_jsonable(owner)["schema"]["required"] == ["citizen_id"]


def test_readings_keep_bad_values_only_with_bad_quality() -> None:
    kept = Reading("ph", math.nan, "pH", NOW, Quality.BAD, reason="sensor open circuit")
    assert kept.quality is Quality.BAD
    with pytest.raises(ValueError, match="only valid with bad quality"):
        Reading("ph", math.nan, "pH", NOW)
    with pytest.raises(ValueError, match="timezone-aware"):
        Reading("ph", 7.0, "pH", datetime(2026, 11, 22, 9, 0))
    with pytest.raises(TypeError, match="must be a number or bool"):
        Reading("ph", "7", "pH", NOW)  # type: ignore[arg-type]
    assert to_jsonable(kept)["timestamp"] == "2026-11-22T09:00:00+00:00"
