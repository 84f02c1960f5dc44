"""The ready device profiles of the electricity, water supply, environment and lighting fields.

Every template shipped as a YAML file under ``plugins/profiles/<field>/`` must be given by its
field's plugin, complete into a profile the agent accepts (also once written out as YAML, the
way an engineer commissions it), publish only metrics of its field in their units, and write
only what the city really operates. The two templates written for the simulators must match
the simulators' own profiles and read the running simulators, over real sockets, as they are.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from smartcity.agents.driver import driver_for
from smartcity.agents.modbus.codec import decode, encode
from smartcity.agents.profile import (
    DataType,
    ModbusDevice,
    ModbusPoint,
    OpcuaDevice,
    ProfileError,
    load_profile,
    parse_profile,
)
from smartcity.agents.reading import Quality
from smartcity.fields import (
    DeviceProfileTemplate,
    FieldHost,
    FieldLoadError,
    MetricKind,
    ValueType,
    load_fields,
)
from smartcity.plugins import profiles

FIELDS = ("electricity", "water_supply", "environment", "lighting")
SIM_PROFILES = "smartcity.agents.sim.profiles"
SITE, DEVICE = "hoa-khanh", "unit-1"
ENDPOINTS = {
    "modbus": ("tcp://127.0.0.1:502", "rtu:///dev/ttyUSB0?baudrate=9600&parity=E"),
    "opcua": ("opc.tcp://127.0.0.1:4840/station",),
}
WRITABLE = {("lighting", "lighting-cabinet-controller"): {"dimming_level", "lamp_on"}}
"""The only points any template writes: the setpoints the city operates day to day. A
measurement, a counter or a breaker marked writable by mistake would be a command channel
nobody asked for."""
CONVERSIONS = {("kWh", "MWh"): 0.001, ("kvarh", "Mvarh"): 0.001}
"""Simulator unit -> field unit: what a template's scale adds to the simulator's."""
INTEGER_TYPES = {
    DataType.INT16,
    DataType.UINT16,
    DataType.INT32,
    DataType.UINT32,
    DataType.INT64,
    DataType.UINT64,
}


def shipped() -> list[tuple[str, str]]:
    """(field, template name) of every YAML file in the package, independent of the host."""
    found = []
    for field_id in FIELDS:
        folder = resources.files(f"smartcity.plugins.profiles.{field_id}")
        found += [
            (field_id, entry.name.removesuffix(".yaml"))
            for entry in folder.iterdir()
            if entry.name.endswith(".yaml")
        ]
    return sorted(found)


SHIPPED = shipped()
IDS = [f"{field_id}/{name}" for field_id, name in SHIPPED]


@pytest.fixture(scope="module")
def host() -> FieldHost:
    return load_fields()


def template_of(host: FieldHost, field_id: str, name: str) -> DeviceProfileTemplate:
    by_name = {template.name: template for template in host[field_id].device_profiles}
    assert name in by_name, f"{field_id} does not give the shipped template {name!r}"
    return by_name[name]


def completed(
    host: FieldHost, field_id: str, name: str, endpoint: str | None = None
) -> ModbusDevice | OpcuaDevice:
    template = template_of(host, field_id, name)
    endpoint = endpoint or ENDPOINTS[template.profile["protocol"]][0]
    document = template.complete(site=SITE, device=DEVICE, endpoint=endpoint)
    return parse_profile(document, name, known_fields=[field.id for field in host])


def sim_profile(file_name: str) -> ModbusDevice | OpcuaDevice:
    """A simulator's shipped profile, loaded as the agent loads it (its certificate files
    are not shipped, so an OPC-UA one is only parsed)."""
    resource = resources.files(SIM_PROFILES).joinpath(file_name)
    data = yaml.safe_load(resource.read_text(encoding="utf-8"))
    return parse_profile(data, file_name)


# -- every template ----------------------------------------------------------------------------


@pytest.mark.parametrize("field_id", FIELDS)
def test_each_field_gives_exactly_its_shipped_templates(host: FieldHost, field_id: str) -> None:
    given = sorted(template.name for template in host[field_id].device_profiles)
    assert given == [name for owner, name in SHIPPED if owner == field_id]
    assert len(given) >= 2
    # the hook answers the same every time, and completing a template never changes it
    again = host[field_id].plugin.device_profiles()
    assert [template.name for template in again] == sorted(given)
    document = again[0].complete(site=SITE, device=DEVICE, endpoint="tcp://127.0.0.1:502")
    document["points"].clear()
    assert again[0].points


@pytest.mark.parametrize(("field_id", "name"), SHIPPED, ids=IDS)
def test_template_completes_into_a_profile_the_agent_accepts(
    host: FieldHost, field_id: str, name: str
) -> None:
    template = template_of(host, field_id, name)
    assert not {"site", "device", "endpoint"} & set(template.profile)
    for endpoint in ENDPOINTS[template.profile["protocol"]]:
        profile = completed(host, field_id, name, endpoint)
        assert (profile.site, profile.device, profile.endpoint) == (SITE, DEVICE, endpoint)
        assert profile.field == field_id
        assert profile.description == template.description
        assert [point.name for point in profile.points] == [p["name"] for p in template.points]
        if isinstance(profile, OpcuaDevice):
            # secured unless a profile says otherwise, and these do not
            assert (profile.security.policy, profile.security.mode) == (
                "Basic256Sha256",
                "SignAndEncrypt",
            )


@pytest.mark.parametrize(("field_id", "name"), SHIPPED, ids=IDS)
def test_completed_template_written_as_yaml_loads_like_a_handwritten_profile(
    host: FieldHost, field_id: str, name: str, tmp_path: Path
) -> None:
    template = template_of(host, field_id, name)
    endpoint = ENDPOINTS[template.profile["protocol"]][0]
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        yaml.safe_dump(template.complete(site=SITE, device=DEVICE, endpoint=endpoint)),
        encoding="utf-8",
    )
    known = [field.id for field in host]
    if template.profile["protocol"] == "opcua":
        # The certificate and key are the deployment's: without them the profile is refused.
        with pytest.raises(ProfileError, match=r"security\.cert: file .* does not exist"):
            load_profile(path, known_fields=known)
        for key in ("cert", "key"):
            file = tmp_path / template.profile["security"][key]
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_bytes(b"placeholder: load_profile only checks that the file exists")
    profile = load_profile(path, known_fields=known)
    assert profile == completed(host, field_id, name, endpoint).model_copy(
        update={"security": profile.security} if isinstance(profile, OpcuaDevice) else {}
    )
    if isinstance(profile, OpcuaDevice):
        assert profile.security.cert == tmp_path / template.profile["security"]["cert"]
        assert profile.security.key == tmp_path / template.profile["security"]["key"]


@pytest.mark.parametrize(("field_id", "name"), SHIPPED, ids=IDS)
def test_points_are_metrics_of_the_field_in_their_unit(
    host: FieldHost, field_id: str, name: str
) -> None:
    metrics = host[field_id].metrics
    profile = completed(host, field_id, name)
    for point in profile.points:
        assert point.name in metrics, f"{name}: {point.name} is not a metric of {field_id}"
        metric = metrics[point.name]
        assert point.unit == metric.unit, point.name
        discrete = metric.kind is MetricKind.STATE or metric.value_type is not ValueType.FLOAT
        if discrete and isinstance(point, ModbusPoint):
            assert point.type is DataType.BOOL or point.type in INTEGER_TYPES, point.name
            assert point.scale == 1, f"{point.name}: a scaled state or count is not whole"
        if point.deadband is not None and metric.maximum is not None:
            assert point.deadband < metric.maximum - (metric.minimum or 0), point.name


@pytest.mark.parametrize(("field_id", "name"), SHIPPED, ids=IDS)
def test_only_operated_setpoints_are_writable_and_within_range(
    host: FieldHost, field_id: str, name: str
) -> None:
    metrics = host[field_id].metrics
    profile = completed(host, field_id, name)
    writable = [point for point in profile.points if point.writable]
    assert {point.name for point in writable} == WRITABLE.get((field_id, name), set())
    for point in writable:
        metric = metrics[point.name]
        if isinstance(point, ModbusPoint) and point.type is not DataType.BOOL:
            assert point.min is not None, point.name
            assert point.max is not None, point.name
            assert metric.in_range(point.min), point.name
            assert metric.in_range(point.max), point.name
            # both bounds fit the register, so every allowed value can really be written
            for bound in (point.min, point.max):
                assert decode(encode(bound, point), point) == pytest.approx(bound)


# -- the simulated substation ------------------------------------------------------------------


def substation_pairs(host: FieldHost) -> list[tuple[ModbusPoint, ModbusPoint]]:
    """(template point, simulator point at the same table, address and bit)."""
    template = completed(host, "electricity", "sim-substation-bay")
    sim = sim_profile("substation.yaml")
    assert isinstance(template, ModbusDevice)
    assert isinstance(sim, ModbusDevice)
    assert (template.unit_id, template.max_gap) == (sim.unit_id, sim.max_gap)
    at = {(point.function, point.address, point.bit): point for point in sim.points}
    pairs = []
    for point in template.points:
        twin = at.get((point.function, point.address, point.bit))
        assert twin is not None, f"{point.name}: the simulator has nothing at {point.address}"
        pairs.append((point, twin))
    return pairs


def conversion(sim_point: ModbusPoint, point: ModbusPoint) -> float:
    if sim_point.unit in ("", point.unit):
        return 1.0
    assert (sim_point.unit, point.unit) in CONVERSIONS, (sim_point.name, point.name)
    return CONVERSIONS[(sim_point.unit, point.unit)]


def test_sim_substation_template_decodes_the_simulator_register_map(host: FieldHost) -> None:
    for point, twin in substation_pairs(host):
        assert point.type == twin.type, point.name
        if point.type is DataType.BOOL:
            continue
        assert point.scale == pytest.approx(twin.scale * conversion(twin, point)), point.name
        # A value the simulator encodes decodes through the template into the field's unit:
        # a wrong type, byte order or word order would turn it into noise.
        sample = 12.75 if point.type in (DataType.FLOAT32, DataType.FLOAT64) else 1234
        value = sample * twin.scale + twin.offset if twin.type in INTEGER_TYPES else sample
        got = decode(encode(value, twin), point)
        expected = value * conversion(twin, point) + point.offset
        assert got == pytest.approx(expected, rel=1e-9), point.name


def test_sim_substation_tap_positions_are_numbered_from_one(host: FieldHost) -> None:
    (point, twin), *_ = [pair for pair in substation_pairs(host) if "tap" in pair[0].name]
    metric = host["electricity"].metrics[point.name]
    decoded = [decode(encode(step, twin), point) for step in (-8, 0, 8)]
    assert decoded == [1, 9, 17]
    assert all(metric.in_range(value) for value in decoded)


async def test_sim_substation_template_reads_the_running_simulator(host: FieldHost) -> None:
    from smartcity.agents.sim.substation import Substation

    pairs = {point.name: twin for point, twin in substation_pairs(host)}
    metrics = host["electricity"].metrics
    async with Substation(port=0, period=None, seed=11) as sim:
        profile = completed(
            host, "electricity", "sim-substation-bay", f"tcp://127.0.0.1:{sim.port}"
        )
        assert isinstance(profile, ModbusDevice)
        driver = driver_for(profile)
        try:
            readings = {reading.metric: reading for reading in await driver.read_once()}
        finally:
            await driver.close()
        assert set(readings) == {point.name for point in profile.points}
        for point in profile.points:
            reading, twin = readings[point.name], pairs[point.name]
            assert reading.quality is Quality.GOOD, (point.name, reading.reason)
            assert reading.unit == metrics[point.name].unit
            assert metrics[point.name].in_range(float(reading.value)), (point.name, reading.value)
            if twin.function.is_bits:
                (held,) = await sim.read_bits(1, twin.function, twin.address, 1)
                assert reading.value is held, point.name
                continue
            registers = await sim.read_registers(1, twin.function, twin.address, twin.width)
            expected = decode(registers, twin) * conversion(twin, point) + point.offset
            assert reading.value == pytest.approx(expected, rel=1e-9), point.name
    # the 22 kV side: phase voltages near 22 kV / sqrt(3), not the 110 kV side's
    assert readings["voltage_an"].value == pytest.approx(22 / math.sqrt(3), rel=0.1)


# -- the simulated water station ---------------------------------------------------------------


def test_sim_water_station_template_matches_the_simulator_profile(host: FieldHost) -> None:
    template = completed(host, "water_supply", "sim-water-station")
    sim = sim_profile("water_station.yaml")
    assert isinstance(template, OpcuaDevice)
    assert isinstance(sim, OpcuaDevice)
    assert (template.mode, template.security) == (sim.mode, sim.security)
    assert (template.poll_interval, template.slow_interval) == (
        sim.poll_interval,
        sim.slow_interval,
    )
    metrics = host["water_supply"].metrics
    # every point of the simulator that is a metric of the field, exactly as the simulator
    # profile reads it (the pumps and setpoints have no metric of their own)
    expected = [point for point in sim.points if point.name in metrics]
    assert [point.model_dump() for point in template.points] == [
        point.model_dump() for point in expected
    ]


async def test_sim_water_station_template_reads_the_running_station(
    host: FieldHost, tmp_path: Path
) -> None:
    from smartcity.agents.opcua.certificates import default_application_uri, generate_certificate
    from smartcity.agents.sim.water_station import CERT_FILE, WaterStation

    template = template_of(host, "water_supply", "sim-water-station")
    security: dict[str, Any] = dict(template.profile["security"])
    (tmp_path / security["cert"]).parent.mkdir(parents=True, exist_ok=True)
    agent = generate_certificate(
        tmp_path / security["cert"],
        tmp_path / security["key"],
        application_uri=default_application_uri("agent"),
        role="client",
    )
    metrics = host["water_supply"].metrics
    async with WaterStation(
        "127.0.0.1",
        0,
        modes=("SignAndEncrypt",),
        certificate_dir=tmp_path / "station",
        trusted_certificates=[agent.cert],
        update_interval=None,
        seed=5,
    ) as station:
        trusted = tmp_path / "trusted-servers"  # the agent trusts the station's certificate
        trusted.mkdir()
        (trusted / CERT_FILE).write_bytes((tmp_path / "station" / CERT_FILE).read_bytes())
        path = tmp_path / "station-1.yaml"
        document = template.complete(site="cau-do", device="station-1", endpoint=station.url)
        path.write_text(yaml.safe_dump(document), encoding="utf-8")
        profile = load_profile(path, known_fields=[field.id for field in host])
        driver = driver_for(profile)
        try:
            readings = {reading.metric: reading for reading in await driver.read_once()}
        finally:
            await driver.close()
        assert set(readings) == {point.name for point in profile.points}
        for point in profile.points:
            reading = readings[point.name]
            assert reading.quality is Quality.GOOD, (point.name, reading.reason)
            variable = point.node.split(".", 1)[1]
            assert station.node_id(variable) == point.node
            assert reading.value == station.read(variable).Value.Value, point.name
            assert metrics[point.name].in_range(float(reading.value)), (point.name, reading.value)


# -- loading template files --------------------------------------------------------------------

GOOD_TEMPLATE = """
field: water_supply
description: Level gauge
protocol: modbus
points:
  - {name: tank_level, unit: m, address: 0, type: int16, scale: 0.01}
"""

BROKEN_TEMPLATES = [
    ("points: [unclosed", "invalid YAML"),
    ("- a list", "a device profile template is one mapping"),
    (GOOD_TEMPLATE + "site: cau-do\nendpoint: tcp://10.0.0.1:502\n", "leaves site, endpoint to"),
    (GOOD_TEMPLATE.replace("description: Level gauge", "description: ' '"), "description is"),
    (GOOD_TEMPLATE.replace("protocol: modbus", "protocol: bacnet"), "protocol must be"),
]


def test_template_files_load_by_name_and_other_files_are_ignored(tmp_path: Path) -> None:
    (tmp_path / "level-gauge.yaml").write_text(GOOD_TEMPLATE, encoding="utf-8")
    (tmp_path / "b-gauge.yaml").write_text(GOOD_TEMPLATE, encoding="utf-8")
    (tmp_path / "README.md").write_text("not a template", encoding="utf-8")
    first, second = profiles.templates_in(tmp_path)
    assert (first.name, second.name) == ("b-gauge", "level-gauge")
    assert second.description == "Level gauge"
    assert second.profile["description"] == "Level gauge"
    assert second.points == [
        {"name": "tank_level", "unit": "m", "address": 0, "type": "int16", "scale": 0.01}
    ]


@pytest.mark.parametrize(("text", "problem"), BROKEN_TEMPLATES)
def test_a_broken_template_file_is_refused_with_its_path(
    tmp_path: Path, text: str, problem: str
) -> None:
    (tmp_path / "good.yaml").write_text(GOOD_TEMPLATE, encoding="utf-8")
    bad = tmp_path / "gauge.yaml"
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=problem) as excinfo:
        profiles.templates_in(tmp_path)
    assert str(excinfo.value).startswith(f"{bad}: ")


def test_a_plugin_with_a_broken_template_file_is_refused_naming_the_file(
    install: Callable[..., str], plugin_source: Callable[..., str], tmp_path: Path
) -> None:
    extra = """
from pathlib import Path

from smartcity.plugins import profiles

DEVICE_PROFILES = profiles.templates_in(Path(__file__).parent / "gauge_profiles")


@hookimpl
def device_profiles():
    return list(DEVICE_PROFILES)
"""
    folder = tmp_path / "site" / "gauge_profiles"
    folder.mkdir(parents=True)
    (folder / "gauge.yaml").write_text(GOOD_TEMPLATE + "device: gauge-1\n", encoding="utf-8")
    install("gauges", plugin_source("gauges", extra=extra), entry_point="gauges")
    with pytest.raises(FieldLoadError) as excinfo:
        load_fields()
    message = str(excinfo.value)
    assert "1 field plugin(s) refused ('gauges')" in message
    assert f"{folder / 'gauge.yaml'}: a template leaves device to the deployment" in message
