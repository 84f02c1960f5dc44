"""The OPC-UA driver against the simulated water station, over real loopback sockets with
Basic256Sha256: values and timestamps as the server holds them, per-node status, security
and identity errors in plain words, writes, and recovery without a restart."""

from __future__ import annotations

import itertools
import math
import os
import stat
import time

import pytest
import pytest_asyncio
from asyncua import ua
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from loop_fixtures import reading, serving
from opcua_fixtures import (
    POINTS,
    USERS,
    FreezableProxy,
    Pki,
    expected,
    fast_breaker,
    make_pki,
    profile_for,
    station_for,
)
from support import Collector, running

from smartcity.agents.driver import WriteRefusedError
from smartcity.agents.opcua.certificates import (
    CertificateError,
    application_uri_of,
    generate_certificate,
    load_certificate,
)
from smartcity.agents.opcua.driver import OpcuaConnectError, OpcuaDriver
from smartcity.agents.opcua.status import quality_of, status_name
from smartcity.agents.reading import Quality
from smartcity.agents.sim.water_station import CERT_FILE, WaterStation

in_module_loop = pytest.mark.asyncio(loop_scope="module")
"""The tests share one station, and so one event loop."""

SERVER_MAX_NODES_PER_READ = 5
SERVER_MAX_ITEMS_PER_CALL = 4


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def station(pki: Pki):
    async with station_for(
        pki,
        max_nodes_per_read=SERVER_MAX_NODES_PER_READ,
        max_monitored_items_per_call=SERVER_MAX_ITEMS_PER_CALL,
    ) as running_station:
        yield running_station


@pytest_asyncio.fixture(loop_scope="module")
async def faults_cleared(station: WaterStation):
    yield
    await station.inject("clear", 1)


def assert_matches_server(station: WaterStation, readings: dict) -> None:
    for name, variable in POINTS.items():
        reading, data = readings[name], station.read(variable)
        assert reading.quality is Quality.GOOD, (name, reading.reason)
        assert reading.value == data.Value.Value, name
        assert type(reading.value) is type(data.Value.Value), name  # a bool stays a bool
        assert reading.source_time == pytest.approx(data.SourceTimestamp.timestamp(), abs=1e-3)
        assert reading.server_time == pytest.approx(data.ServerTimestamp.timestamp(), abs=1e-3)
        assert reading.read_time >= reading.server_time - 1.0


@in_module_loop
async def test_subscribe_mode_delivers_what_the_server_holds(station, pki):
    driver = OpcuaDriver(profile_for(station, pki, mode="subscribe"))
    sink = Collector()
    async with running(driver, sink):
        await sink.wait_for(lambda: sink.all_good(list(POINTS)), "a GOOD reading of every point")
        assert_matches_server(station, sink.latest())
        # monitored items were created in calls no larger than the server's limit
        assert driver.stats.requests == math.ceil(len(POINTS) / SERVER_MAX_ITEMS_PER_CALL)

        mark = time.monotonic()
        values = await station.step()
        await sink.wait_for(
            lambda: (
                sink.latest(mark).get("flow_rate") is not None
                and sink.latest(mark)["flow_rate"].value == values["Flow"]
            ),
            "the flow of the next simulation step",
        )
        assert driver.stats.connected


@in_module_loop
async def test_subscribe_deadband_is_applied_by_the_server(station, pki):
    points = [
        {"name": "flow_rate", "node": station.node_id("Flow"), "deadband": 1e6},
        {"name": "pressure", "node": station.node_id("Pressure")},
    ]
    driver = OpcuaDriver(profile_for(station, pki, points=points))
    sink = Collector()
    async with running(driver, sink):
        await sink.wait_for(lambda: sink.all_good(["flow_rate", "pressure"]), "initial values")
        held = [sink.latest()["pressure"].value]
        for _ in range(4):
            values = await station.step()
            held.append(values["Pressure"])
            await sink.wait_for(
                lambda v=values: sink.latest()["pressure"].value == v["Pressure"],
                "the new pressure",
            )
    flows = [r for r in sink.readings() if r.metric == "flow_rate"]
    pressures = [r.value for r in sink.readings() if r.metric == "pressure"]
    assert len(flows) == 1  # the initial value; each step moved it by far less than 1e6
    # no deadband: every change is reported, and only changes
    assert pressures == [v for i, v in enumerate(held) if i == 0 or v != held[i - 1]]
    assert len(pressures) >= 3


@in_module_loop
async def test_poll_mode_reads_in_batches_within_the_limits(station, pki):
    driver = OpcuaDriver(profile_for(station, pki, mode="poll", max_nodes_per_read=500))
    readings = await driver.read_once()
    # the server advertises MaxNodesPerRead 5, smaller than the profile's 500
    assert driver.stats.requests == math.ceil(len(POINTS) / SERVER_MAX_NODES_PER_READ)
    assert_matches_server(station, {r.metric: r for r in readings})

    smaller = OpcuaDriver(profile_for(station, pki, mode="poll", max_nodes_per_read=2))
    assert len(await smaller.read_once()) == len(POINTS)
    assert smaller.stats.requests == math.ceil(len(POINTS) / 2)
    await smaller.close()

    sink = Collector()
    async with running(driver, sink):
        mark = time.monotonic()
        values = await station.step()
        await sink.wait_for(
            lambda: (
                sink.all_good(list(POINTS), since=mark)
                and sink.latest(mark)["flow_rate"].value == values["Flow"]
            ),
            "a poll cycle after the step",
        )
        assert_matches_server(station, sink.latest(mark))


@in_module_loop
async def test_poll_mode_keeps_each_point_to_its_interval_and_deadband(station, pki):
    points = [
        {"name": "pressure", "node": station.node_id("Pressure")},
        {"name": "flow_rate", "node": station.node_id("Flow"), "deadband": 1e6},
        {"name": "total_volume", "node": station.node_id("TotalVolume"), "poll": "slow"},
    ]
    profile = profile_for(
        station, pki, mode="poll", points=points, poll_interval="100ms", slow_poll_interval="5s"
    )
    driver = OpcuaDriver(profile)
    sink = Collector()

    def count(name: str) -> int:
        return sum(1 for r in sink.readings() if r.metric == name)

    async with serving(driver, sink):
        await sink.wait_for(lambda: count("pressure") >= 4, "four fast poll cycles")
        await station.step()
        await sink.wait_for(lambda: count("pressure") >= 8, "four more fast poll cycles")
    assert count("flow_rate") == 1  # within its deadband after the first report
    assert count("total_volume") == 1  # slow class: once per 5 s


@in_module_loop
@pytest.mark.parametrize("mode", ["subscribe", "poll"])
async def test_a_flat_value_is_published_again_at_the_keepalive(station, pki, mode):
    points = [
        {"name": "flow_rate", "node": station.node_id("Flow"), "deadband": 1e6},
        {"name": "pressure", "node": station.node_id("Pressure")},
    ]
    # keep-alive: six slow intervals, 1.2 s
    profile = profile_for(
        station, pki, mode=mode, points=points, poll_interval="100ms", slow_poll_interval="200ms"
    )
    driver = OpcuaDriver(profile)
    sink = Collector()

    def arrivals(name: str) -> list[float]:
        return [at for at, batch in sink.batches for r in batch if r.metric == name]

    async with serving(driver, sink):
        await sink.wait_for(lambda: len(arrivals("flow_rate")) >= 3, "two keep-alives")
    flows = [r for r in sink.readings() if r.metric == "flow_rate"]
    assert {r.quality for r in flows} == {Quality.GOOD}
    assert len({r.value for r in flows}) == 1  # the station was not stepped: a flat value
    gaps = [b - a for a, b in itertools.pairwise(arrivals("flow_rate"))]
    assert all(1.0 < gap < 3.0 for gap in gaps), gaps
    # a point without deadband: every read in poll mode, its keep-alives in subscribe mode
    assert len(arrivals("pressure")) >= len(flows)


@in_module_loop
@pytest.mark.parametrize("mode", ["subscribe", "poll"])
async def test_a_bad_node_makes_only_that_point_bad(station, pki, faults_cleared, mode):
    points = [
        {"name": name, "node": station.node_id(node), "deadband": 0.001 if name == "ph" else None}
        for name, node in POINTS.items()
    ]
    points = [{k: v for k, v in point.items() if v is not None} for point in points]
    points.append({"name": "ghost", "node": f"ns={station.namespace_index};s=Station1.Ghost"})
    driver = OpcuaDriver(profile_for(station, pki, mode=mode, points=points))
    sink = Collector()
    async with running(driver, sink):
        await sink.wait_for(
            lambda: (
                sink.all_good(list(POINTS))
                and sink.latest().get("ghost") is not None
                and sink.latest()["ghost"].reason == "BadNodeIdUnknown"
            ),
            "every point GOOD except the node that does not exist",
        )
        assert sink.latest()["ghost"].quality is Quality.BAD
        assert sink.latest()["ghost"].value is None

        mark = time.monotonic()
        await station.inject("sensor_failure:pH", 60)
        await station.inject("uncertain_sensor:Turbidity", 60)
        await station.step()

        def faults_seen() -> bool:
            latest = sink.latest(mark)
            return (
                latest.get("ph") is not None
                and latest["ph"].reason == "BadSensorFailure"
                and latest.get("turbidity") is not None
                and latest["turbidity"].quality is Quality.UNCERTAIN
            )

        await sink.wait_for(faults_seen, "pH BAD and turbidity UNCERTAIN")
        latest = sink.latest(mark)
        assert latest["ph"].quality is Quality.BAD
        assert latest["ph"].value is None
        assert latest["ph"].source_time is not None
        assert latest["turbidity"].reason == "UncertainSensorNotAccurate"
        assert latest["turbidity"].value == expected(station, "Turbidity")
        others = [name for name in POINTS if name not in ("ph", "turbidity")]
        assert sink.all_good(others)
        assert not [r for r in sink.readings(mark) if r.metric in others and r.quality != "good"]

        mark = time.monotonic()
        await station.inject("clear", 1)
        await sink.wait_for(lambda: sink.all_good(["ph", "turbidity"], since=mark), "recovery")
        assert sink.latest(mark)["ph"].value == expected(station, "pH")


@in_module_loop
async def test_policy_none_is_refused_by_a_server_that_only_offers_security(station, pki):
    profile = profile_for(station, pki, security={"policy": "None", "mode": "None"})
    driver = OpcuaDriver(profile)
    message = (
        rf"{station.url} offers no endpoint with security policy None and mode None; "
        r"it offers Basic256Sha256/Sign, Basic256Sha256/SignAndEncrypt"
    )
    with pytest.raises(OpcuaConnectError, match=message):
        await driver.connect()
    readings = await driver.read_once()
    assert {r.metric for r in readings} == set(POINTS)
    assert all(r.quality is Quality.BAD and "offers no endpoint" in r.reason for r in readings)


@in_module_loop
@pytest.mark.parametrize(
    ("identity", "message"),
    [
        (
            {"username": "operator", "password": "wrong"},
            r"the server refused the user 'operator': wrong user name or password.*"
            r"\(BadUserAccessDenied\)",
        ),
        (
            {"username": "intruder", "password": "s3cret-pass"},
            r"refused the user 'intruder'.*\(BadUserAccessDenied\)",
        ),
        ({}, r"does not accept anonymous logins; set security.username and security.password"),
    ],
)
async def test_wrong_credentials_are_a_clear_error(station, pki, identity, message):
    security = {
        "policy": "Basic256Sha256",
        "mode": "SignAndEncrypt",
        "cert": pki.agent_cert.name,
        "key": pki.agent_key.name,
        **identity,
    }
    driver = OpcuaDriver(profile_for(station, pki, security=security))
    with pytest.raises(OpcuaConnectError, match=message):
        await driver.connect()
    assert not driver.stats.connected


@in_module_loop
async def test_a_password_is_never_sent_in_clear_text(pki):
    async with WaterStation("127.0.0.1", 0, modes=("None",), users=USERS) as open_station:
        security = {"policy": "None", "mode": "None", "username": "operator", "password": "x"}
        driver = OpcuaDriver(profile_for(open_station, pki, security=security))
        with pytest.raises(OpcuaConnectError, match="would receive the password in clear text"):
            await driver.connect()


@in_module_loop
async def test_an_untrusted_agent_certificate_is_a_clear_error(station, pki):
    security = {
        "policy": "Basic256Sha256",
        "mode": "Sign",
        "cert": pki.stranger_cert.name,
        "key": pki.stranger_key.name,
        "username": "operator",
        "password": "s3cret-pass",
    }
    driver = OpcuaDriver(profile_for(station, pki, security=security))
    with pytest.raises(OpcuaConnectError, match=r"does not trust the agent certificate .*stranger"):
        await driver.connect()


@in_module_loop
async def test_an_unreadable_agent_key_is_a_clear_error(station, pki):
    (pki.folder / "broken.pem").write_text("not a key\n", encoding="utf-8")
    security = {
        "policy": "Basic256Sha256",
        "mode": "SignAndEncrypt",
        "cert": pki.agent_cert.name,
        "key": "broken.pem",
        "username": "operator",
        "password": USERS["operator"],
    }
    driver = OpcuaDriver(profile_for(station, pki, security=security))
    with pytest.raises(
        OpcuaConnectError, match=r"cannot use the agent certificate .* key .*broken"
    ):
        await driver.connect()


@in_module_loop
async def test_a_pinned_server_certificate_is_checked(station, pki):
    base = {
        "policy": "Basic256Sha256",
        "mode": "Sign",
        "cert": pki.agent_cert.name,
        "key": pki.agent_key.name,
        "username": "operator",
        "password": "s3cret-pass",
    }
    wrong = OpcuaDriver(
        profile_for(station, pki, security={**base, "server_cert": pki.stranger_cert.name})
    )
    with pytest.raises(OpcuaConnectError, match="other than the pinned server_cert"):
        await wrong.connect()

    pinned = str(pki.station_dir / CERT_FILE)
    right = OpcuaDriver(profile_for(station, pki, security={**base, "server_cert": pinned}))
    readings = await right.read_once()
    await right.close()
    assert all(r.quality is Quality.GOOD for r in readings)


def writable_points(station: WaterStation) -> list[dict]:
    return [
        {
            "name": "level_setpoint",
            "unit": "m",
            "node": station.node_id("LevelSetpoint"),
            "writable": True,
            "min": 0.5,
            "max": 5.5,
        },
        {"name": "pump_1_running", "node": station.node_id("Pump1.Running"), "writable": True},
        {"name": "pressure", "node": station.node_id("Pressure")},
    ]


@in_module_loop
async def test_write_a_setpoint_and_read_it_back(station, pki):
    profile = profile_for(station, pki, mode="poll", points=writable_points(station))
    driver = OpcuaDriver(profile)
    setpoint = profile.points[0]
    try:
        written = await driver.write(setpoint, 3)  # an int, sent as the node's Double
        assert written == 3.0
        assert isinstance(written, float)
        data = station.read("LevelSetpoint")
        assert data.Value.VariantType is ua.VariantType.Double
        assert data.Value.Value == 3.0
        await station.step()
        assert station.model.level_setpoint == 3.0  # the process follows the set-point
        assert await driver.write(setpoint, 4.25) == 4.25
    finally:
        await driver.write(setpoint, 4.0)
        await driver.close()


@in_module_loop
async def test_refused_writes_raise_and_change_nothing(station, pki):
    profile = profile_for(station, pki, mode="poll", points=writable_points(station))
    setpoint, pump, pressure = profile.points
    driver = OpcuaDriver(profile)
    before = (expected(station, "LevelSetpoint"), expected(station, "Pump1.Running"))
    try:
        # the node is read-only on the server
        with pytest.raises(
            WriteRefusedError, match=r"server refused to write .*BadUserAccessDenied"
        ):
            await driver.write(pump, not before[1])
        # values that do not fit the node's data type never leave the agent
        with pytest.raises(WriteRefusedError, match="the node is Boolean; 2 is not true/false"):
            await driver.write(pump, 2)
        with pytest.raises(WriteRefusedError, match="the node is Double; a bool does not fit"):
            await driver.write(setpoint, True)
        with pytest.raises(WriteRefusedError, match="not marked writable"):
            await driver.write(pressure, 1.0)
    finally:
        await driver.close()
    assert (expected(station, "LevelSetpoint"), expected(station, "Pump1.Running")) == before


@pytest.mark.parametrize("mode", ["subscribe", "poll"])
@in_module_loop
async def test_recovers_after_a_server_restart_and_reports_bad_meanwhile(pki, mode):
    async with station_for(pki, update_interval=0.2) as station:
        driver = OpcuaDriver(profile_for(station, pki, mode=mode))
        sink = Collector()
        async with reading(driver, sink, breaker=fast_breaker()):
            await sink.wait_for(lambda: sink.all_good(list(POINTS)), "GOOD readings")
            stopped = time.monotonic()
            await station.stop()

            def outage_batches() -> list[list]:
                return [
                    batch
                    for at, batch in sink.batches
                    if at >= stopped and all(r.quality is Quality.BAD for r in batch)
                ]

            await sink.wait_for(lambda: len(outage_batches()) >= 3, "BAD readings while down")
            for batch in outage_batches():
                assert {r.metric for r in batch} == set(POINTS)
                assert all(r.value is None for r in batch)
                assert all(
                    r.reason.startswith(
                        ("connection lost:", "not connected:", "device unreachable, retry in")
                    )
                    for r in batch
                )
            assert outage_batches()[0][0].reason.startswith("connection lost:")
            down = time.monotonic()
            await station.start()
            restarted = time.monotonic()
            assert not [r for r in sink.readings(since=down) if r.quality is Quality.GOOD], (
                "a GOOD reading while the server was down"
            )
            await sink.wait_for(
                lambda: sink.all_good(list(POINTS), since=restarted), "GOOD readings again"
            )
            mark = time.monotonic()
            await sink.wait_for(
                lambda: any(r.metric == "flow_rate" for r in sink.readings(since=mark)),
                "live values after the restart",
            )
        assert driver.stats.errors >= 1


@in_module_loop
async def test_a_silent_half_open_link_is_detected_and_recovered(station, pki):
    proxy = FreezableProxy("127.0.0.1", station.port)
    await proxy.start()
    try:
        endpoint = f"opc.tcp://127.0.0.1:{proxy.port}{station.path}"
        profile = profile_for(station, pki, mode="subscribe", endpoint=endpoint)
        driver = OpcuaDriver(profile)
        sink = Collector()
        async with reading(driver, sink, breaker=fast_breaker()):
            await sink.wait_for(lambda: sink.all_good(list(POINTS)), "GOOD readings")
            proxy.freeze()
            frozen = time.monotonic()
            await sink.wait_for(
                lambda: any(
                    r.quality is Quality.BAD and r.reason.startswith("connection lost")
                    for r in sink.readings(since=frozen)
                ),
                "the loss of a link that stays open but carries nothing",
            )
            detected = time.monotonic() - frozen
            # keep-alive period 1 s x 1.5 + 2 s request timeout, plus scheduling slack
            assert detected < 6.0
            proxy.thaw()
            thawed = time.monotonic()
            await sink.wait_for(lambda: sink.all_good(list(POINTS), since=thawed), "recovery")
    finally:
        await proxy.stop()


def test_status_codes_map_to_quality_with_their_names():
    assert quality_of(None) == (Quality.GOOD, "")
    assert quality_of(ua.StatusCode(ua.StatusCodes.Good)) == (Quality.GOOD, "")
    assert quality_of(ua.StatusCodes.GoodLocalOverride) == (Quality.GOOD, "GoodLocalOverride")
    assert quality_of(ua.StatusCodes.UncertainLastUsableValue) == (
        Quality.UNCERTAIN,
        "UncertainLastUsableValue",
    )
    assert quality_of(ua.StatusCodes.BadCommunicationError) == (
        Quality.BAD,
        "BadCommunicationError",
    )
    assert quality_of(ua.StatusCodes.BadNodeIdUnknown | 0x0400) == (
        Quality.BAD,
        "BadNodeIdUnknown",
    )  # info bits do not hide the name
    assert quality_of(0xC0000000) == (Quality.BAD, "Bad (0xC0000000)")  # reserved severity
    assert status_name(0x81230000) == "Bad (0x81230000)"


def test_certificate_carries_the_application_uri(tmp_path):
    pair = generate_certificate(
        tmp_path / "agent.der",
        tmp_path / "agent.pem",
        application_uri="urn:rtu-7:smartcity:agent",
        hostnames=["rtu-7"],
        ip_addresses=["127.0.0.1"],
        role="client",
    )
    cert = load_certificate(pair.cert)
    assert application_uri_of(pair.cert) == "urn:rtu-7:smartcity:agent"
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["rtu-7"]
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    key_usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert key_usage.digital_signature
    assert key_usage.key_encipherment
    assert key_usage.data_encipherment
    assert key_usage.content_commitment
    assert stat.S_IMODE(os.stat(pair.key).st_mode) == 0o600
    assert pair.key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert pair.cert.read_bytes()[0] == 0x30  # DER

    pem = generate_certificate(
        tmp_path / "b.pem", tmp_path / "b-key.pem", application_uri="urn:b:smartcity:agent"
    )
    assert pem.cert.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    assert application_uri_of(pem.cert) == "urn:b:smartcity:agent"


def test_certificate_generation_refuses_bad_input_and_changes_nothing(tmp_path):
    first = generate_certificate(
        tmp_path / "a.der", tmp_path / "a.pem", application_uri="urn:a:smartcity:agent"
    )
    before = first.cert.read_bytes(), first.key.read_bytes()
    with pytest.raises(CertificateError, match="already exist"):
        generate_certificate(first.cert, first.key, application_uri="urn:a:smartcity:agent")
    assert (first.cert.read_bytes(), first.key.read_bytes()) == before
    with pytest.raises(CertificateError, match="is not a URI"):
        generate_certificate(tmp_path / "c.der", tmp_path / "c.pem", application_uri="agent one")
    with pytest.raises(CertificateError, match="not an IP address"):
        generate_certificate(
            tmp_path / "c.der",
            tmp_path / "c.pem",
            application_uri="urn:c:smartcity:agent",
            ip_addresses=["10.0.0.300"],
        )
    with pytest.raises(CertificateError, match="does not exist"):
        generate_certificate(
            tmp_path / "nowhere" / "c.der", tmp_path / "c.pem", application_uri="urn:c:x"
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.der", "a.pem"]
