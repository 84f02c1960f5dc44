"""The city's sixteen fields, loaded through the installed entry points like any plugin."""

from __future__ import annotations

import math

import pytest

from smartcity.fields import (
    Aggregation,
    FieldHost,
    MetricKind,
    Pillar,
    load_fields,
)

# The six pillars and their fields (docs/architecture.md, "The parts").
DESIGN_FIELDS = {
    "governance": "governance",
    "citizen_services": "citizen",
    "traffic": "mobility",
    "transport": "mobility",
    "security": "living",
    "disaster": "living",
    "education": "living",
    "health": "living",
    "food_safety": "living",
    "fisheries_forestry": "living",
    "electricity": "environment",
    "lighting": "environment",
    "water_supply": "environment",
    "environment": "environment",
    "energy": "environment",
    "tourism": "economy",
}


@pytest.fixture(scope="module")
def host() -> FieldHost:
    return load_fields()


def test_sixteen_fields_in_six_pillars_as_designed(host: FieldHost) -> None:
    assert {item.id: str(item.pillar) for item in host} == DESIGN_FIELDS
    assert set(host.by_pillar()) == set(Pillar)
    assert len(host) == 16


def test_fields_are_ordered_by_pillar_then_id(host: FieldHost) -> None:
    order = list(Pillar)
    keys = [(order.index(item.pillar), item.id) for item in host]
    assert keys == sorted(keys)
    assert list(host.by_pillar()) == [p for p in Pillar if p in host.by_pillar()]


@pytest.mark.parametrize("field_id", sorted(DESIGN_FIELDS))
def test_each_field_comes_from_its_entry_point(host: FieldHost, field_id: str) -> None:
    item = host[field_id]
    assert item.origin.name == field_id
    assert item.origin.target == f"smartcity.plugins.{field_id}"
    assert item.origin.distribution == "smartcity"
    assert item.origin.version
    assert item.plugin.__name__ == f"smartcity.plugins.{field_id}"
    assert {"field_info", "metrics", "kpis"} <= set(item.hooks)


@pytest.mark.parametrize("field_id", sorted(DESIGN_FIELDS))
def test_each_field_has_a_real_catalogue_and_kpis(host: FieldHost, field_id: str) -> None:
    item = host[field_id]
    assert len(item.metrics) >= 5, "a field measures more than a handful of things"
    assert item.kpis, "every field declares at least one KPI"
    assert item.info.title
    assert item.info.description
    for metric in item.metrics.values():
        assert metric.unit
        assert metric.description
        if metric.kind is MetricKind.STATE:
            assert metric.states
    for kpi in item.kpis:
        for name in kpi.metrics:
            assert name in item.metrics, f"{field_id}: KPI {kpi.id} reads unknown {name}"
        if kpi.aggregation is Aggregation.INCREASE:
            assert item.metrics[kpi.metric].kind is MetricKind.COUNTER


def test_electricity_speaks_scada(host: FieldHost) -> None:
    electricity = host["electricity"]
    for phase in "abc":
        voltage = electricity.metrics[f"voltage_{phase}n"]
        assert voltage.unit == "kV"
        # 110 kV and 22 kV phase-to-neutral voltages (63.5 kV, 12.7 kV) are both plausible.
        assert voltage.in_range(110 / math.sqrt(3))
        assert voltage.in_range(22 / math.sqrt(3))
    frequency = electricity.metrics["frequency"]
    assert (frequency.unit, frequency.minimum, frequency.maximum) == ("Hz", 45, 55)
    breaker = electricity.metrics["breaker_state"]
    assert breaker.kind is MetricKind.STATE
    assert dict(breaker.states) == {0: "open", 1: "closed"}
    assert {kpi.id for kpi in electricity.kpis} >= {"saidi", "saifi"}


def test_environment_uses_the_units_of_vn_aqi(host: FieldHost) -> None:
    environment = host["environment"]
    for pollutant in ("pm2_5", "pm10", "no2", "so2", "co", "o3"):
        assert environment.metrics[pollutant].unit == "ug/m3", pollutant
    (good_air,) = [kpi for kpi in environment.kpis if kpi.id == "good_air_share"]
    assert good_air.aggregation is Aggregation.SHARE_AT_MOST
    assert (good_air.metric, good_air.threshold) == ("vn_aqi", 100)


def test_water_supply_kpis_follow_the_drinking_water_regulation(host: FieldHost) -> None:
    water = host["water_supply"]
    assert water.metrics["turbidity"].unit == "NTU"
    assert water.metrics["residual_chlorine"].unit == "mg/L"
    turbidity = next(kpi for kpi in water.kpis if kpi.metric == "turbidity")
    assert turbidity.threshold == 2
    assert "QCVN 01-1:2018/BYT" in turbidity.standard


def test_metric_ranges_mark_implausible_values(host: FieldHost) -> None:
    ph = host["water_supply"].metrics["ph"]
    assert ph.in_range(7.2)
    assert not ph.in_range(15)
    assert not ph.in_range(float("nan"))
    counter = host["electricity"].metrics["active_energy_import"]
    assert counter.in_range(1e9)
    assert not counter.in_range(-1)


def test_a_field_serialises_to_plain_json_data(host: FieldHost) -> None:
    import json

    data = json.loads(json.dumps(host["electricity"].as_dict()))
    assert data["id"] == "electricity"
    assert data["pillar"] == "environment"
    assert data["plugin"]["distribution"] == "smartcity"
    breaker = next(metric for metric in data["metrics"] if metric["name"] == "breaker_state")
    assert breaker["states"] == {"0": "open", "1": "closed"}
    assert breaker["kind"] == "state"


def test_a_field_without_derive_derives_nothing(host: FieldHost) -> None:
    assert "derive" not in host["traffic"].hooks
    assert host["traffic"].derive("site", "device", []) == []


def test_unknown_field_lookup_names_the_loaded_ones(host: FieldHost) -> None:
    with pytest.raises(KeyError, match=r"no field 'parking' is loaded.*traffic"):
        host["parking"]
    assert "parking" not in host
    assert "traffic" in host
