"""Third-party plugins installed as real distributions: accepted like ours, or refused with
a message that names the plugin, its distribution and every problem."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from smartcity.fields import (
    DeriveError,
    FieldLoadError,
    PluginError,
    Quality,
    Reading,
    load_fields,
)
from smartcity.runtime.config import PluginSettings

Install = Callable[..., str]
Source = Callable[..., str]
NOW = datetime(2026, 11, 22, 8, 30, tzinfo=UTC)


def refusal(excinfo: pytest.ExceptionInfo[FieldLoadError], plugin: str) -> PluginError:
    (error,) = [error for error in excinfo.value.errors if error.plugin == plugin]
    return error


def test_third_party_plugin_is_loaded_like_ours(install: Install, good_plugin_source: str) -> None:
    install("danang-parking", good_plugin_source, entry_point="parking_guidance", version="1.2.0")
    host = load_fields()
    assert len(host) == 17
    parking = host["parking_guidance"]
    assert str(parking.pillar) == "mobility"
    assert parking in host.by_pillar()[parking.pillar]
    assert parking.origin.distribution == "danang-parking"
    assert parking.origin.version == "1.2.0"
    assert "danang-parking 1.2.0" in parking.origin.describe()
    assert set(parking.hooks) == {
        "field_info",
        "metrics",
        "kpis",
        "alert_rules",
        "record_types",
        "device_profiles",
        "derive",
    }
    assert [rule.name for rule in parking.alert_rules] == ["car_park_full", "counter_silent"]
    assert parking.record_types[0].owner_property == "citizen_id"
    profile = parking.device_profiles[0].complete(site="han-market", endpoint="tcp://127.0.0.1:502")
    assert profile["site"] == "han-market"
    assert profile["points"][0]["name"] == "spaces_free"
    # Results of other plugins never leak into a field: ours implement no alert rules.
    assert host["traffic"].alert_rules == ()


def test_derive_runs_only_the_fields_own_plugin(install: Install, good_plugin_source: str) -> None:
    install("danang-parking", good_plugin_source, entry_point="parking_guidance")
    host = load_fields()
    readings = [
        Reading("spaces_free", 30, "{space}", NOW),
        Reading("spaces_total", 120, "{space}", NOW),
    ]
    (occupancy,) = host.derive("parking_guidance", "han-market", "entrance-1", readings)
    assert occupancy.metric == "occupancy"
    assert occupancy.value == pytest.approx(75.0)
    assert occupancy.quality is Quality.GOOD
    assert host["traffic"].derive("han-market", "entrance-1", readings) == []

    degraded = [readings[0], Reading("spaces_total", 120, "{space}", NOW, Quality.UNCERTAIN)]
    (uncertain,) = host["parking_guidance"].derive("han-market", "entrance-1", degraded)
    assert uncertain.quality is Quality.UNCERTAIN


def test_derive_returning_an_undeclared_metric_is_reported(
    install: Install, plugin_source: Source
) -> None:
    extra = """
from smartcity.fields import Reading

@hookimpl
def derive(readings):
    return [Reading("not_declared", 1.0, "m", readings[0].timestamp)]
"""
    install("bad-derive", plugin_source("bad_derive", extra=extra), entry_point="bad_derive")
    field = load_fields()["bad_derive"]
    with pytest.raises(DeriveError, match=r"field 'bad_derive'.*'not_declared'.*not in"):
        field.derive("s", "d", [Reading("level", 1.0, "m", NOW)])


def test_derive_that_raises_is_reported_with_its_field(
    install: Install, plugin_source: Source
) -> None:
    extra = """
@hookimpl
def derive(readings):
    return [readings[0].value / 0]
"""
    install("zero-derive", plugin_source("zero_derive", extra=extra), entry_point="zero_derive")
    field = load_fields()["zero_derive"]
    with pytest.raises(DeriveError, match="field 'zero_derive': derive\\(\\) raised Zero"):
        field.derive("s", "d", [Reading("level", 1.0, "m", NOW)])


def test_unknown_hook_is_refused(install: Install, plugin_source: Source) -> None:
    extra = """
@hookimpl
def metric():
    return []
"""
    install("typo-field", plugin_source("typo_field", extra=extra), entry_point="typo_field")
    with pytest.raises(FieldLoadError) as excinfo:
        load_fields()
    error = refusal(excinfo, "typo_field")
    assert "distribution typo-field 1.0.0" in str(error)
    assert any("implements metric(), which is not a field hook" in p for p in error.problems)
    assert [e.plugin for e in excinfo.value.errors] == ["typo_field"], "ours stay valid"


def test_wrong_argument_name_is_refused_by_pluggy(install: Install, plugin_source: Source) -> None:
    extra = """
@hookimpl
def derive(site, device, batch):
    return []
"""
    install("argname-field", plugin_source("argname", extra=extra), entry_point="argname")
    with pytest.raises(FieldLoadError) as excinfo:
        load_fields()
    error = refusal(excinfo, "argname")
    assert "argname-field" in str(error)
    (problem,) = error.problems
    assert "derive" in problem
    assert "batch" in problem
    assert "can not be found in the hookspec" in problem


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (
            {"metrics": 'Metric("level", "m", "Water level", 5, 1)'},
            "metrics() raised ValueError: metric 'level': minimum 5 is not below maximum 1",
        ),
        (
            {
                "metrics": 'Metric("level", "m", "Level", 0, 10), '
                'Metric("level", "m", "Level again", 0, 10)'
            },
            "metric 'level' is declared more than once",
        ),
        (
            {"pillar": "smart"},
            "field_info() raised ValueError: field 'odd': pillar: 'smart' is not one of "
            "governance, citizen, mobility, living, environment, economy",
        ),
        (
            {"metrics": 'Metric("WaterLevel", "m", "Level", 0, 10)'},
            "metric name 'WaterLevel' is not snake_case",
        ),
        ({"metrics": 'Metric("level", "", "Level", 0, 10)'}, "metric 'level': unit is empty"),
        (
            {
                "kpis": 'Kpi(id="k", title="K", unit="m", description="D", direction="lower", '
                'aggregation="mean", metric="depth")'
            },
            "KPI 'k' reads metric 'depth', which is not declared",
        ),
        (
            {
                "kpis": 'Kpi(id="k", title="K", unit="", description="D", direction="lower", '
                'aggregation="mean", metric="level")'
            },
            "KPI 'k': unit is empty",
        ),
        (
            {
                "kpis": 'Kpi(id="k", title="K", unit="m", description="D", direction="lower", '
                'aggregation="increase", metric="level")'
            },
            "KPI 'k' takes the increase of 'level', which is a gauge, not a counter",
        ),
        ({"kpis": ""}, "declares no KPI"),
    ],
    ids=[
        "min-above-max",
        "duplicate-metric",
        "unknown-pillar",
        "not-snake-case",
        "missing-unit",
        "kpi-unknown-metric",
        "kpi-without-unit",
        "increase-of-gauge",
        "no-kpi",
    ],
)
def test_bad_catalogue_is_refused_naming_plugin_and_problem(
    install: Install, plugin_source: Source, parts: dict[str, str], expected: str
) -> None:
    install("odd-field", plugin_source("odd", **parts), entry_point="odd")
    with pytest.raises(FieldLoadError) as excinfo:
        load_fields()
    error = refusal(excinfo, "odd")
    assert any(expected in problem for problem in error.problems), error.problems
    message = str(excinfo.value)
    assert "field plugin 'odd' (entry point smartcity.fields:odd" in message
    assert "distribution odd-field 1.0.0" in message
    assert expected in message


def test_every_problem_of_a_plugin_is_listed_at_once(
    install: Install, plugin_source: Source
) -> None:
    source = plugin_source(
        "not_the_entry_point",
        metrics='Metric("level", "m", "Level", 0, 10), Metric("level", "m", "Again", 0, 10)',
        kpis='Kpi(id="k", title="K", unit="m", description="D", direction="lower", '
        'aggregation="mean", metric="depth")',
        extra="@hookimpl\ndef alert_rules():\n    return {}\n",
    )
    install("messy-field", source, entry_point="messy")
    with pytest.raises(FieldLoadError) as excinfo:
        load_fields()
    assert set(refusal(excinfo, "messy").problems) == {
        "metric 'level' is declared more than once",
        "KPI 'k' reads metric 'depth', which is not declared",
        "alert_rules() returned dict, not a list of AlertRuleTemplate",
        "field id 'not_the_entry_point' differs from the entry-point name 'messy'; "
        "they must be equal",
    }


def test_missing_field_info_and_import_errors_are_refused(install: Install) -> None:
    install("no-info", "from smartcity.fields import hookimpl\n", entry_point="no_info")
    install("broken-import", "import smartcity.does_not_exist\n", entry_point="broken")
    with pytest.raises(FieldLoadError) as excinfo:
        load_fields()
    assert refusal(excinfo, "no_info").problems == (
        "does not implement field_info(), which every field plugin must",
    )
    (problem,) = refusal(excinfo, "broken").problems
    assert problem.startswith("cannot be loaded: ModuleNotFoundError")
    assert "FieldLoadError" not in problem
    assert "2 field plugin(s) refused ('broken', 'no_info')" in str(excinfo.value)


def test_a_second_distribution_claiming_a_field_name_is_refused(
    install: Install, plugin_source: Source
) -> None:
    install("rogue-traffic", plugin_source("traffic"), entry_point="traffic")
    with pytest.raises(FieldLoadError) as excinfo:
        load_fields()
    (problem,) = refusal(excinfo, "traffic").problems
    assert "the name 'traffic' is registered more than once" in problem
    assert "distribution smartcity" in problem
    assert "distribution rogue-traffic 1.0.0" in problem
    assert "rogue_traffic_field" not in sys.modules, "neither claim is imported"


def test_duplicate_field_id_names_both_plugins(install: Install, plugin_source: Source) -> None:
    install("traffic-two", plugin_source("traffic"), entry_point="traffic_two")
    with pytest.raises(FieldLoadError) as excinfo:
        load_fields()
    assert (
        "field id 'traffic' is also declared by 'traffic_two'"
        in refusal(excinfo, "traffic").problems
    )
    assert (
        "field id 'traffic' is also declared by 'traffic'"
        in refusal(excinfo, "traffic_two").problems
    )


def test_record_type_names_are_unique_across_fields(
    install: Install, plugin_source: Source, good_plugin_source: str
) -> None:
    install("danang-parking", good_plugin_source, entry_point="parking_guidance")
    extra = """
from smartcity.fields import RecordType

@hookimpl
def record_types():
    schema = {"type": "object", "properties": {"plate": {"type": "string"}}}
    return [RecordType(name="parking_permit", title="Permit", schema=schema)]
"""
    install("permits", plugin_source("permits", extra=extra), entry_point="permits")
    with pytest.raises(FieldLoadError) as excinfo:
        load_fields()
    assert (
        "record type 'parking_permit' is also declared by 'parking_guidance'"
        in refusal(excinfo, "permits").problems
    )


def test_rules_and_profiles_must_match_the_catalogue(
    install: Install, plugin_source: Source
) -> None:
    extra = """
from smartcity.fields import AlertRuleTemplate, DeviceProfileTemplate

@hookimpl
def alert_rules():
    return [
        AlertRuleTemplate(name="high", metric="level", condition="threshold", severity="warning",
                          summary="High", comparison="gt", threshold=50),
        AlertRuleTemplate(name="silent", metric="depth", condition="no_data", severity="info",
                          summary="Silent", for_seconds=60),
    ]

@hookimpl
def device_profiles():
    points = [{"name": "level", "unit": "cm"}, {"name": "flow", "unit": "m3/h"}]
    return [DeviceProfileTemplate(name="gauge", description="Gauge",
                                  profile={"field": "other", "protocol": "opcua",
                                           "points": points})]
"""
    install("tied", plugin_source("tied", extra=extra), entry_point="tied")
    with pytest.raises(FieldLoadError) as excinfo:
        load_fields()
    assert set(refusal(excinfo, "tied").problems) == {
        "alert rule 'high': threshold 50 lies outside the range of 'level' [0, 10] m",
        "alert rule 'silent' watches metric 'depth', which is not declared",
        "device profile 'gauge' is for field 'other', not 'tied'",
        "device profile 'gauge': point 'level' is in 'cm', the metric in 'm'",
        "device profile 'gauge': point 'flow' is not a metric of the field",
    }


def test_non_strict_load_keeps_the_valid_fields_and_logs_the_refused(
    install: Install, plugin_source: Source, caplog: pytest.LogCaptureFixture
) -> None:
    install("odd-field", plugin_source("odd", pillar="smart"), entry_point="odd")
    with caplog.at_level(logging.ERROR, logger="smartcity.fields"):
        host = load_fields(strict=False)
    assert len(host) == 16
    assert "odd" not in host
    assert [error.plugin for error in host.refused] == ["odd"]
    assert not host.plugin_manager.has_plugin("odd")
    assert any("field plugin 'odd'" in record.getMessage() for record in caplog.records)


def test_directly_registered_plugins_are_checked_too(plugin_source: Source) -> None:
    import types

    module = types.ModuleType("embedded_field")
    exec(plugin_source("embedded", metrics='Metric("level", "m", "L", 3, 3)'), module.__dict__)
    with pytest.raises(FieldLoadError) as excinfo:
        load_fields(extra_plugins=[("embedded", module)])
    error = refusal(excinfo, "embedded")
    assert error.origin == "'embedded' (registered directly, embedded_field)"
    assert "metric 'level': minimum 3 is not below maximum 3" in error.problems[0]

    good = types.ModuleType("embedded_good")
    exec(plugin_source("embedded"), good.__dict__)
    host = load_fields(
        PluginSettings(enabled=["embedded", "water_supply"]), extra_plugins=[("embedded", good)]
    )
    assert [item.id for item in host] == ["embedded", "water_supply"]
    assert host["embedded"].origin.distribution is None


def test_the_guides_example_plugin_is_accepted(install: Install) -> None:
    import re
    from pathlib import Path

    import smartcity.fields

    guide = Path(smartcity.fields.__file__).with_name("README.md").read_text(encoding="utf-8")
    example = re.search(r"```python\n(# danang_parking/field\.py.*?)```", guide, re.S)
    assert example is not None
    install("danang-parking", example.group(1), entry_point="parking_guidance")
    field = load_fields()["parking_guidance"]
    assert field.origin.distribution == "danang-parking"
    assert list(field.metrics) == ["spaces_free", "occupancy"]
