"""The simulated water station: believable physics, its shipped profile, and faults injected
from Python or by an OPC-UA client calling InjectFault, over real loopback sockets."""

from __future__ import annotations

import asyncio
import itertools
import shutil
import time
from pathlib import Path

import pytest
import pytest_asyncio
import yaml
from asyncua import Client, ua
from asyncua.crypto import security_policies
from opcua_fixtures import (
    POINTS,
    USERS,
    Pki,
    expected,
    make_pki,
    station_for,
    trust,
)

from smartcity.agents.opcua.certificates import application_uri_of
from smartcity.agents.opcua.driver import OpcuaDriver
from smartcity.agents.profile import OpcuaDevice, load_profile
from smartcity.agents.reading import Quality
from smartcity.agents.sim.water_station import (
    VIETNAM_UTC_OFFSET,
    FaultError,
    StationModel,
    WaterStation,
)

PROFILE = Path(__file__).parents[2] / "agents" / "sim" / "profiles" / "water_station.yaml"
in_module_loop = pytest.mark.asyncio(loop_scope="module")
"""The tests share one station, and so one event loop."""

MIDNIGHT = 1_795_305_600 - VIETNAM_UTC_OFFSET  # a midnight in Da Nang, as Unix time


def at(hour: float) -> float:
    return MIDNIGHT + hour * 3600


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def station(pki: Pki):
    async with station_for(pki) as running_station:
        yield running_station


@pytest_asyncio.fixture(loop_scope="module")
async def faults_cleared(station: WaterStation):
    yield
    await station.inject("clear", 1)


def test_demand_follows_the_daily_curve():
    demand = StationModel.demand_factor
    assert demand(at(3)) < 0.6  # night
    assert demand(at(6.5)) > 1.2  # breakfast peak
    assert demand(at(18.5)) > 1.1  # dinner peak
    assert demand(at(14.5)) < demand(at(18.5))
    assert demand(at(3)) == pytest.approx(demand(at(27)))  # the same every day


def test_a_simulated_day_stays_within_realistic_ranges():
    model = StationModel(seed=3)
    day = [model.step(at(minute / 60), {}) for minute in range(0, 24 * 60, 2)]
    assert all(300 < v["Flow"] < 1700 for v in day)
    assert all(2.5 < v["Pressure"] < 4.5 for v in day)
    assert all(abs(v["TankLevel"] - 4.0) < 0.5 for v in day)  # held near its set-point
    assert all(0.1 < v["Turbidity"] < 1.0 for v in day)  # QCVN 01-1:2018: at most 2 NTU
    assert all(6.5 < v["pH"] < 8.5 for v in day)
    assert all(0.2 <= v["ResidualChlorine"] <= 1.0 for v in day)
    assert all(0.0 < v["Salinity"] < 1.0 for v in day)
    night, peak = day[3 * 30], day[int(6.5 * 30)]  # 03:00 and 06:30
    running = [sum(v[f"Pump{n}.Running"] for n in (1, 2, 3)) for v in (night, peak)]
    assert running[0] < running[1]
    assert night["Pressure"] > peak["Pressure"] - 0.6  # duty pumps keep the pressure up
    # the totaliser integrates the outflow (trapezoid over two-minute steps)
    integral = sum((a["Flow"] + b["Flow"]) / 2 * (2 / 60) for a, b in itertools.pairwise(day))
    assert day[-1]["TotalVolume"] == pytest.approx(integral, rel=0.02)


def test_the_tank_follows_its_level_setpoint_and_chlorine_its_dose():
    model = StationModel(seed=5)
    model.step(at(10), {})
    model.level_setpoint = 5.0
    model.dose_setpoint = 2.0
    values = [model.step(at(10 + minute / 60), {}) for minute in range(1, 240)]
    assert values[0]["TankLevel"] < values[60]["TankLevel"] < values[-1]["TankLevel"]
    assert values[-1]["TankLevel"] == pytest.approx(5.0, abs=0.1)
    assert 1.3 < values[-1]["ResidualChlorine"] < 1.7


def test_station_options_are_checked(tmp_path):
    with pytest.raises(ValueError, match="secure modes need certificate_dir"):
        WaterStation(accept_any_certificate=True)
    with pytest.raises(ValueError, match=r"trusted_certificates .* or accept_any_certificate"):
        WaterStation(certificate_dir=tmp_path)
    with pytest.raises(ValueError, match="modes must be some of None, Sign, SignAndEncrypt"):
        WaterStation(modes=("Encrypt",), certificate_dir=tmp_path, accept_any_certificate=True)
    with pytest.raises(ValueError, match="port 70000"):
        WaterStation(port=70000, modes=("None",))
    with pytest.raises(ValueError, match="every user needs a non-empty name and password"):
        WaterStation(modes=("None",), users={"operator": ""})
    assert list(tmp_path.iterdir()) == []  # nothing was created


def shipped_profile(
    pki: Pki, folder: Path, login: dict[str, str] | None = None, **changes: object
) -> OpcuaDevice:
    """The shipped profile file, copied beside the agent's certificate as a user would."""
    (folder / "certs").mkdir(parents=True)
    shutil.copy(pki.agent_cert, folder / "certs" / "agent.der")
    shutil.copy(pki.agent_key, folder / "certs" / "agent.pem")
    data = yaml.safe_load(PROFILE.read_text(encoding="utf-8"))
    data["security"].update(login or {})
    data.update(changes)
    path = folder / "water_station.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    profile = load_profile(path)
    assert isinstance(profile, OpcuaDevice)
    return profile


@in_module_loop
async def test_the_shipped_profile_reads_every_variable_of_the_station(station, pki, tmp_path):
    as_shipped = shipped_profile(pki, tmp_path / "shipped")
    assert {point.name for point in as_shipped.points} == set(POINTS)
    assert as_shipped.security.cert == tmp_path / "shipped" / "certs" / "agent.der"
    profile = shipped_profile(pki, tmp_path / "local", USERS_LOGIN, endpoint=station.url)
    assert profile.security.trusted_servers == tmp_path / "local" / "trusted-servers"
    trust(station, tmp_path / "local" / "trusted-servers")
    readings = await OpcuaDriver(profile).read_once()
    assert len(readings) == len(POINTS)
    for reading in readings:
        assert reading.quality is Quality.GOOD, (reading.metric, reading.reason)
        assert reading.value == expected(station, POINTS[reading.metric])
    by_name = {point.name: point for point in profile.points}
    assert by_name["raw_water_salinity"].unit == "g/kg"  # per mille, as water_supply reports


USERS_LOGIN = {"username": "operator", "password": USERS["operator"]}


async def client_for(station: WaterStation, pki: Pki) -> Client:
    client = Client(station.url, timeout=3)
    client.application_uri = application_uri_of(pki.agent_cert)
    await client.set_security(
        security_policies.SecurityPolicyBasic256Sha256,
        str(pki.agent_cert),
        str(pki.agent_key),
        mode=ua.MessageSecurityMode.SignAndEncrypt,
    )
    client.set_user(USERS_LOGIN["username"])
    client.set_password(USERS_LOGIN["password"])
    await client.connect()
    return client


@in_module_loop
async def test_an_opcua_client_injects_faults_through_the_method(station, pki, faults_cleared):
    client = await client_for(station, pki)
    try:
        station_node = client.get_node(f"ns={station.namespace_index};s={station.name}")
        method = f"{station.namespace_index}:InjectFault"
        answer = await station_node.call_method(method, "turbidity_spike", 30.0)
        assert answer == "turbidity_spike on Turbidity for 30 s"
        turbidity = client.get_node(station.node_id("Turbidity"))
        assert await turbidity.read_value() > 5.0  # QCVN limit is 2 NTU

        answer = await station_node.call_method(method, "sensor_failure:pH", 30.0)
        assert answer == "sensor_failure on pH for 30 s"
        ph = await client.get_node(station.node_id("pH")).read_data_value(raise_on_bad_status=False)
        assert ph.StatusCode == ua.StatusCode(ua.StatusCodes.BadSensorFailure)
        assert ph.Value.Value is None

        for fault, seconds in (("meteor_strike", 5.0), ("frozen_sensor:Pump1.Running", 5.0)):
            with pytest.raises(ua.uaerrors.BadInvalidArgument):
                await station_node.call_method(method, fault, seconds)
        with pytest.raises(ua.uaerrors.BadInvalidArgument):
            await station_node.call_method(method, "turbidity_spike", -1.0)

        assert await station_node.call_method(method, "clear", 0.0) == "all faults cleared"
        assert await turbidity.read_value() < 1.0
        data = await client.get_node(station.node_id("pH")).read_data_value()
        assert data.StatusCode.is_good()
    finally:
        await client.disconnect()


@in_module_loop
async def test_a_frozen_sensor_keeps_its_value_while_the_process_moves(station, faults_cleared):
    assert await station.inject("frozen_sensor:Pressure", 60) == (
        "frozen_sensor on Pressure for 60 s"
    )
    frozen = station.read("Pressure")
    flows, pressures, stamps = set(), set(), []
    for _ in range(5):
        await station.step()
        data = station.read("Pressure")
        flows.add(expected(station, "Flow"))
        pressures.add(data.Value.Value)
        stamps.append(data.SourceTimestamp)
        assert data.StatusCode.is_good()  # a frozen sensor does not know it is frozen
    assert pressures == {frozen.Value.Value}
    assert len(flows) > 1
    assert stamps == sorted(stamps)
    assert stamps[-1] > frozen.SourceTimestamp

    await station.inject("clear", 1)
    moving = {(await station.step())["Pressure"] for _ in range(5)}
    assert len(moving) > 1


@in_module_loop
async def test_a_sensor_fault_touches_only_its_node(station, faults_cleared):
    await station.inject("sensor_failure:ResidualChlorine", 60)
    await station.inject("uncertain_sensor:Salinity", 60)
    chlorine, salinity = station.read("ResidualChlorine"), station.read("Salinity")
    assert chlorine.StatusCode == ua.StatusCode(ua.StatusCodes.BadSensorFailure)
    assert chlorine.Value.Value is None
    assert salinity.StatusCode == ua.StatusCode(ua.StatusCodes.UncertainSensorNotAccurate)
    assert isinstance(salinity.Value.Value, float)
    for variable in POINTS.values():
        if variable not in ("ResidualChlorine", "Salinity"):
            assert station.read(variable).StatusCode.is_good(), variable


@in_module_loop
async def test_wrong_fault_commands_are_refused_and_change_nothing(station):
    before = {variable: station.read(variable).StatusCode for variable in POINTS.values()}
    refusals = [
        ("meteor_strike", 5, "unknown fault 'meteor_strike'; known: turbidity_spike"),
        ("frozen_sensor:Pump1.Running", 5, "'Pump1.Running' is not a sensor"),
        ("sensor_failure:Depth", 5, "'Depth' is not a sensor"),
        ("turbidity_spike:pH", 5, "turbidity_spike applies to Turbidity only"),
        ("offline:pH", 5, "offline takes no target"),
        ("turbidity_spike", 0, "seconds must be more than 0"),
        ("turbidity_spike", float("nan"), "seconds must be more than 0"),
        ("turbidity_spike", 10**6, "at most 86400"),
    ]
    for fault, seconds, message in refusals:
        with pytest.raises(FaultError, match=message):
            await station.inject(fault, seconds)
    await station.step()
    assert {v: station.read(v).StatusCode for v in POINTS.values()} == before
    assert expected(station, "Turbidity") < 1.0


@in_module_loop
async def test_an_unsecured_station_goes_offline_and_comes_back(tmp_path):
    """NoSecurity is served only when asked for, and read only by a profile that says so."""
    station = WaterStation("127.0.0.1", 0, modes=("None",), update_interval=0.1, seed=11)
    async with station:
        assert station.port != 0
        assert station.url == f"opc.tcp://127.0.0.1:{station.port}/station"
        profile_file = tmp_path / "open.yaml"
        profile_file.write_text(
            yaml.safe_dump(
                {
                    "site": "cau-do",
                    "field": "water_supply",
                    "device": "station-2",
                    "protocol": "opcua",
                    "endpoint": station.url,
                    "mode": "poll",
                    "timeout": "1s",
                    "security": {"policy": "None", "mode": "None"},
                    "points": [
                        {"name": name, "node": station.node_id(node)}
                        for name, node in POINTS.items()
                    ],
                }
            ),
            encoding="utf-8",
        )
        driver = OpcuaDriver(load_profile(profile_file))
        first = {r.metric: r for r in await driver.read_once()}
        assert all(r.quality is Quality.GOOD for r in first.values())

        deadline = time.monotonic() + 10
        while (await driver.read_once())[0].value == first["flow_rate"].value:
            assert time.monotonic() < deadline, "the clock never moved the flow"
            await asyncio.sleep(0.05)

        assert await station.inject("offline", 1.0) == "offline for 1 s"
        deadline = time.monotonic() + 10
        while (reading := (await driver.read_once())[0]).quality is Quality.GOOD:
            assert time.monotonic() < deadline, "the station never went offline"
            await asyncio.sleep(0.05)
        assert reading.reason.startswith(("connection lost:", "not connected:"))
        assert not station.running

        deadline = time.monotonic() + 15
        while (reading := (await driver.read_once())[0]).quality is not Quality.GOOD:
            assert time.monotonic() < deadline, f"the station never came back: {reading.reason}"
            await asyncio.sleep(0.1)
        assert station.running
        await driver.close()
