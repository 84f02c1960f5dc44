"""Write commands, first as plain checks, then end to end.

End to end everything is real: a nats-server with an AUDIT stream, the simulated water
station (asyncua, Basic256Sha256 SignAndEncrypt, user name and password), the OPC-UA driver
polling it, tokens signed with Ed25519 and verified with the issuer's public key read from a
PEM file (the set-up of an agent deployed before identity exists). The device's state is
always read back from the station itself, never from the agent.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from modbus_fixtures import (
    expected_value,
)
from nats.js import api as js_api
from opcua_fixtures import (
    FreezableProxy,
    Pki,
    expected,
    make_pki,
    profile_for,
    station_for,
)
from support import Collector, running

from smartcity.agents.commands import (
    AUDIT_STREAM,
    AUDIT_SUBJECTS,
    Approval,
    CommandService,
    Reason,
    Refusal,
    audit_subject,
    authorize_write,
    check_value,
)
from smartcity.agents.modbus.driver import ModbusDriver
from smartcity.agents.opcua.driver import OpcuaDriver
from smartcity.agents.profile import ModbusDevice, ModbusPoint, OpcuaDevice, parse_profile
from smartcity.agents.sim.substation import Substation
from smartcity.agents.sim.water_station import WaterStation
from smartcity.common.v1 import common_pb2
from smartcity.runtime.bus import Bus
from smartcity.runtime.config import NatsSettings
from smartcity.runtime.nats_server import EmbeddedNats
from smartcity.runtime.subjects import command_subject
from smartcity.runtime.tokens import (
    AuthSettings,
    Claims,
    PrincipalKind,
    RoleBinding,
    TokenVerifier,
)
from smartcity.telemetry.v1.telemetry_pb2 import WriteCommand, WriteCommandReply

in_module_loop = pytest.mark.asyncio(loop_scope="module")
"""The end-to-end tests share one NATS server, one station and one event loop."""

SITE, FIELD, DEVICE = "cau-do", "water_supply", "station-1"
ACCEPTED = WriteCommandReply.OUTCOME_ACCEPTED
REFUSED = WriteCommandReply.OUTCOME_REFUSED
FAILED = WriteCommandReply.OUTCOME_FAILED


@dataclass
class Signer:
    """Signs access tokens the way identity will (test-only: agents never sign)."""

    kid: str = "bootstrap"
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    def sign(self, roles: list[str] | None = None, **overrides: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": "smartcity-identity",
            "sub": "p-operator-7",
            "aud": ["smartcity"],
            "iat": now,
            "exp": now + 600,
            "jti": uuid.uuid4().hex,
            "kind": "staff",
            "roles": roles if roles is not None else [f"operator:{FIELD}"],
            "amr": ["pwd", "otp"],
        }
        claims.update(overrides)
        return jwt.encode(claims, self.key, algorithm="EdDSA", headers={"kid": self.kid})

    def public_pem(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def claims(*roles: str, sub: str = "p-operator-7") -> Claims:
    moment = datetime.now(UTC)
    return Claims(
        sub=sub,
        kind=PrincipalKind.STAFF,
        roles=frozenset(RoleBinding.parse(role) for role in roles),
        iss="smartcity-identity",
        aud=("smartcity",),
        iat=moment,
        exp=moment + timedelta(minutes=10),
        jti="t-1",
    )


# -- the checks without a network ------------------------------------------------------------

MODBUS = {
    "site": "hoa-khanh-110kv",
    "field": "electricity",
    "device": "bay-1",
    "protocol": "modbus",
    "endpoint": "tcp://127.0.0.1:5020",
    "points": [
        {"name": "voltage_an", "unit": "kV", "address": 0, "type": "float32"},
        {
            "name": "tap_setpoint",
            "address": 10,
            "type": "int16",
            "writable": True,
            "min": -8,
            "max": 8,
        },
        {
            "name": "cos_phi_target",
            "address": 11,
            "type": "uint16",
            "scale": 0.01,
            "writable": True,
            "min": 0.8,
            "max": 1.0,
        },
        {"name": "oil_limit", "address": 12, "type": "float32", "writable": True},
        {
            "name": "breaker_close",
            "address": 0,
            "function": "coil",
            "type": "bool",
            "writable": True,
        },
        {"name": "alarm_bit", "address": 14, "type": "bool", "bit": 3, "writable": True},
        {"name": "counter", "address": 20, "type": "uint16", "writable": True},
    ],
}


@pytest.fixture
def modbus() -> ModbusDevice:
    profile = parse_profile(MODBUS)
    assert isinstance(profile, ModbusDevice)
    return profile


def command(**fields: Any) -> WriteCommand:
    values: dict[str, Any] = {
        "command_id": "c-1",
        "site": "hoa-khanh-110kv",
        "device": "bay-1",
        "field": "electricity",
        "point": "tap_setpoint",
        "value": 3,
        "reason": "voltage regulation",
    }
    values.update(fields)
    return WriteCommand(**values)


NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def decide(profile: ModbusDevice, who: Claims | None = None, **fields: Any) -> Any:
    return authorize_write(
        who or claims("operator:electricity"),
        profile,
        command(**fields),
        site="hoa-khanh-110kv",
        now=NOW,
    )


def test_an_operator_may_write_a_writable_point(modbus):
    decision = decide(modbus)
    assert isinstance(decision, Approval)
    assert (decision.point.name, decision.value) == ("tap_setpoint", 3.0)
    assert isinstance(decide(modbus, claims("engineer:*")), Approval)


@pytest.mark.parametrize(
    ("roles", "allowed"),
    [
        (["viewer:electricity"], False),
        (["operator:water_supply"], False),
        (["records_officer:electricity", "identity_admin:*"], False),
        (["viewer:electricity", "engineer:electricity"], True),
        (["operator:*"], True),
    ],
)
def test_roles(modbus, roles, allowed):
    decision = decide(modbus, claims(*roles))
    if allowed:
        assert isinstance(decision, Approval)
    else:
        assert isinstance(decision, Refusal)
        assert decision.reason == Reason.PERMISSION_DENIED
        assert decision.description.startswith(
            "p-operator-7 lacks the operator role on field 'electricity'"
        )
        assert decision.metadata == {"required_role": "operator:electricity"}


def test_the_role_is_checked_before_anything_about_the_device_is_revealed(modbus):
    viewer = claims("viewer:electricity")
    for fields in ({"point": "no_such_point"}, {"point": "voltage_an"}, {"value": 99}):
        assert decide(modbus, viewer, **fields).reason is Reason.PERMISSION_DENIED


@pytest.mark.parametrize(
    ("fields", "reason", "path", "description"),
    [
        ({"site": "lien-chieu"}, Reason.TARGET_MISMATCH, "site", "names site 'lien-chieu'"),
        ({"device": "bay-2"}, Reason.TARGET_MISMATCH, "device", "but was sent to 'bay-1'"),
        ({"field": "lighting"}, Reason.TARGET_MISMATCH, "field", "names field 'lighting'"),
        ({"command_id": ""}, Reason.INVALID_ARGUMENT, "command_id", "command_id is required"),
        ({"reason": " "}, Reason.INVALID_ARGUMENT, "reason", "recorded in the audit log"),
        ({"point": ""}, Reason.INVALID_ARGUMENT, "point", "point is required"),
        ({"point": "tap"}, Reason.UNKNOWN_POINT, "point", "device bay-1 has no point 'tap'"),
        ({"point": "voltage_an"}, Reason.NOT_WRITABLE, "point", "not marked writable"),
        ({"point": "alarm_bit"}, Reason.NOT_WRITABLE, "point", "would overwrite the other bits"),
        ({"value": 9}, Reason.OUT_OF_RANGE, "value", "9 is outside the writable range -8..8"),
        ({"value": -8.5}, Reason.OUT_OF_RANGE, "value", "outside the writable range"),
        ({"value": 2.5}, Reason.INVALID_VALUE, "value", "int16: 2.5 cannot be written exactly"),
        ({"value": math.nan}, Reason.INVALID_VALUE, "value", "nan is not a finite number"),
        ({"bool_value": True}, Reason.INVALID_VALUE, "value", "takes a number, not true/false"),
        ({"string_value": "3"}, Reason.INVALID_VALUE, "value", "only numbers and true/false"),
        (
            {"point": "cos_phi_target", "value": 0.955},
            Reason.INVALID_VALUE,
            "value",
            "cannot be written exactly (whole raw values only in steps of 0.01)",
        ),
        (
            {"point": "oil_limit", "value": 1e39},
            Reason.INVALID_VALUE,
            "value",
            "does not fit a float32",
        ),
        (
            {"point": "counter", "value": 70000},
            Reason.INVALID_VALUE,
            "value",
            "outside uint16 (0..65535)",
        ),
        (
            {"point": "breaker_close", "value": 2},
            Reason.INVALID_VALUE,
            "value",
            "binary: it takes true or false (or 0/1), not 2",
        ),
        (
            {"expire_time": {"seconds": int(NOW.timestamp()) - 1}},
            Reason.EXPIRED,
            "expire_time",
            "the command expired at 2026-11-22T07:59:59+00:00 (1.000 s before",
        ),
        (
            {"expire_time": {"seconds": int(NOW.timestamp())}},
            Reason.EXPIRED,
            "expire_time",
            "expired at",
        ),
    ],
)
def test_refusals(modbus, fields, reason, path, description):
    decision = decide(modbus, **fields)
    assert isinstance(decision, Refusal), decision
    assert (decision.reason, decision.field_path) == (reason, path)
    assert description in decision.description


def test_range_refusal_says_the_limits(modbus):
    decision = decide(modbus, value=9)
    assert decision.metadata == {"min": "-8", "max": "8"}
    assert decision.to_proto() == common_pb2.ErrorDetail(
        reason="OUT_OF_RANGE",
        field_path="value",
        description="tap_setpoint: 9 is outside the writable range -8..8",
        metadata=dict(decision.metadata),
    )


@pytest.mark.parametrize(
    ("fields", "value"),
    [
        ({"point": "breaker_close", "bool_value": True}, True),
        ({"point": "breaker_close", "value": 0}, False),
        ({"point": "breaker_close", "int_value": 1}, True),
        ({"point": "cos_phi_target", "value": 0.95}, 0.95),
        ({"point": "counter", "int_value": 65535}, 65535),
        ({"value": -8}, -8.0),
        ({"expire_time": {"seconds": int(NOW.timestamp()) + 5}}, 3.0),
    ],
)
def test_values_that_fit(modbus, fields, value):
    decision = decide(modbus, **fields)
    assert isinstance(decision, Approval), decision
    assert decision.value == value
    assert type(decision.value) is type(value)


def test_opcua_points_leave_the_data_type_to_the_server():
    profile = OpcuaDevice.model_validate(
        {
            "site": SITE,
            "field": FIELD,
            "device": DEVICE,
            "protocol": "opcua",
            "endpoint": "opc.tcp://127.0.0.1:4840/station",
            "security": {"policy": "None", "mode": "None"},
            "points": [
                {"name": "pump", "node": "ns=2;s=P", "writable": True},
                {"name": "level", "node": "ns=2;s=L", "writable": True, "min": 0.5, "max": 5.5},
            ],
        }
    )
    pump, level = profile.points
    assert check_value(pump, True) is True
    assert check_value(pump, 7.5) == 7.5
    # A point with limits is numeric, whatever the node says.
    assert check_value(level, True).reason is Reason.INVALID_VALUE
    assert check_value(level, 6.0).reason is Reason.OUT_OF_RANGE
    assert check_value(level, math.inf).reason is Reason.INVALID_VALUE


# -- end to end ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory: pytest.TempPathFactory):
    settings = NatsSettings(data_dir=tmp_path_factory.mktemp("nats"), port=0)
    with EmbeddedNats(settings) as server:
        yield server


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer()


@pytest.fixture(scope="module")
def verifier(signer: Signer, tmp_path_factory: pytest.TempPathFactory) -> TokenVerifier:
    folder = tmp_path_factory.mktemp("keys")
    (folder / "issuer.pem").write_bytes(signer.public_pem())
    settings = AuthSettings(public_keys=[{"file": folder / "issuer.pem", "kid": signer.kid}])
    return TokenVerifier.from_settings(settings)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def station(pki: Pki):
    async with station_for(pki) as running_station:
        yield running_station


def station_points(station: WaterStation) -> list[dict[str, Any]]:
    return [
        {
            "name": "level_setpoint",
            "unit": "m",
            "node": station.node_id("LevelSetpoint"),
            "writable": True,
            "min": 0.5,
            "max": 5.5,
        },
        {
            "name": "chlorine_dose_setpoint",
            "unit": "mg/L",
            "node": station.node_id("ChlorineDoseSetpoint"),
            "writable": True,
            "min": 0.0,
            "max": 4.0,
        },
        # Writable in the profile, but the station lets nobody write it: the device refuses.
        {"name": "pump_1_running", "node": station.node_id("Pump1.Running"), "writable": True},
        {"name": "tank_level", "unit": "m", "node": station.node_id("TankLevel")},
    ]


@dataclass
class Audit:
    """Every audit record published, as the audit log's consumers see them."""

    records: list[dict[str, Any]] = field(default_factory=list)
    subjects: list[str] = field(default_factory=list)

    def of(self, audit_id: str) -> list[dict[str, Any]]:
        return [record for record in self.records if record["audit_id"] == audit_id]

    async def wait(self, audit_id: str, count: int = 1, within: float = 10.0) -> list[dict]:
        deadline = time.monotonic() + within
        while len(self.of(audit_id)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"no {count} audit record(s) for {audit_id}: {self.records}")
            await asyncio.sleep(0.01)
        return self.of(audit_id)


@dataclass
class City:
    station: WaterStation
    driver: OpcuaDriver
    service: CommandService
    client: Bus
    agent_bus: Bus
    audit: Audit
    signer: Signer
    profile: OpcuaDevice

    async def send(self, payload: bytes, device: str = DEVICE) -> WriteCommandReply:
        subject = command_subject(SITE, device)
        return WriteCommandReply.FromString(
            await request_when_served(self.client, subject, payload)
        )

    def command(self, **fields: Any) -> WriteCommand:
        values: dict[str, Any] = {
            "command_id": uuid.uuid4().hex,
            "site": SITE,
            "device": DEVICE,
            "field": FIELD,
            "point": "level_setpoint",
            "value": 4.5,
            "reason": "raise the tank ahead of the evening peak",
            "token": self.signer.sign(),
        }
        values.update(fields)
        return WriteCommand(**values)

    def held(self, point: str = "level_setpoint") -> Any:
        variable = {
            "level_setpoint": "LevelSetpoint",
            "chlorine_dose_setpoint": "ChlorineDoseSetpoint",
            "pump_1_running": "Pump1.Running",
            "tank_level": "TankLevel",
        }[point]
        return expected(self.station, variable)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def city(nats_server, station, pki, signer, verifier):
    agent_bus = await Bus.connect(nats_server.client_settings(), name="agent")
    client = await Bus.connect(nats_server.client_settings(), name="iocs-operator")
    await agent_bus.js.add_stream(
        js_api.StreamConfig(
            name=AUDIT_STREAM,
            subjects=[AUDIT_SUBJECTS],
            storage=js_api.StorageType.FILE,
            deny_delete=True,
            deny_purge=True,
        )
    )
    audit = Audit()

    async def keep(msg) -> None:
        audit.subjects.append(msg.subject)
        audit.records.append(json.loads(msg.data))

    await client.subscribe(AUDIT_SUBJECTS, keep)
    profile = profile_for(station, pki, mode="poll", points=station_points(station))
    driver = OpcuaDriver(profile)
    service = CommandService(
        agent_bus,
        site=SITE,
        agent_id="agent-cau-do",
        devices={DEVICE: (profile, driver)},
        authenticator=verifier,
    )
    await service.start()
    async with running(driver, Collector()):  # the poll loop runs while commands arrive
        yield City(station, driver, service, client, agent_bus, audit, signer, profile)
    await service.stop()
    await client.close()
    await agent_bus.close()


@pytest_asyncio.fixture(loop_scope="module")
async def setpoint_restored(city: City):
    yield
    await city.driver.write(city.profile.points[0], 4.0)


def assert_record(record: dict[str, Any], **expected_fields: Any) -> None:
    for key, value in expected_fields.items():
        assert record[key] == value, (key, record)


@in_module_loop
async def test_accepted_setpoint_is_on_the_device_and_audited(city: City, setpoint_restored):
    before = city.held()
    target = 3.25 if before != 3.25 else 3.5
    expire = datetime.now(UTC) + timedelta(seconds=30)
    cmd = city.command(value=target)
    cmd.expire_time.FromDatetime(expire)
    reply = await city.send(cmd.SerializeToString())

    assert reply.outcome == ACCEPTED, reply
    assert not reply.HasField("error")
    assert reply.written_value == target
    assert city.held() == target  # what the station's server holds now
    assert abs(reply.write_time.ToDatetime(tzinfo=UTC) - datetime.now(UTC)) < timedelta(seconds=5)
    assert reply.command_id == cmd.command_id
    assert reply.principal == common_pb2.PrincipalRef(
        id="p-operator-7", kind=common_pb2.PRINCIPAL_KIND_STAFF
    )
    uuid.UUID(reply.audit_id)

    attempted, accepted = await city.audit.wait(reply.audit_id, 2)
    common = {
        "schema": "smartcity.audit.write_command.v1",
        "agent_id": "agent-cau-do",
        "site": SITE,
        "device": DEVICE,
        "field": FIELD,
        "command_id": cmd.command_id,
        "point": "level_setpoint",
        "requested_value": target,
        "command_reason": "raise the tank ahead of the evening peak",
        "principal_sub": "p-operator-7",
        "principal_kind": "staff",
        "principal_roles": ["operator:water_supply"],
        "expire_time": expire.isoformat(),
    }
    assert_record(attempted, outcome="ATTEMPTED", written_value=None, error_reason=None, **common)
    assert_record(accepted, outcome="ACCEPTED", written_value=target, error_reason=None, **common)
    assert accepted["write_time"].endswith("Z")
    assert cmd.token not in json.dumps(city.audit.records)

    # The records are kept by the AUDIT stream, not only seen in passing.
    stored = await city.client.js.get_last_msg(AUDIT_STREAM, audit_subject(SITE, DEVICE))
    assert json.loads(stored.data) == accepted


@in_module_loop
async def test_a_coil_like_boolean_goes_to_the_server_and_the_server_may_refuse(city: City):
    before = city.held("pump_1_running")
    reply = await city.send(
        city.command(point="pump_1_running", bool_value=not before).SerializeToString()
    )
    assert reply.outcome == FAILED
    assert reply.error.reason == "DEVICE_ERROR"
    assert "BadUserAccessDenied" in reply.error.description
    assert city.held("pump_1_running") == before
    attempted, failed = await city.audit.wait(reply.audit_id, 2)
    assert (attempted["outcome"], failed["outcome"]) == ("ATTEMPTED", "FAILED")
    assert failed["error_reason"] == "DEVICE_ERROR"
    assert failed["requested_value"] is (not before)


def _refusal_cases() -> list[tuple[str, Callable[[City], bytes], str, str]]:
    def build(**fields: Any) -> Callable[[City], bytes]:
        return lambda city: city.command(**fields).SerializeToString()

    def token(**claims: Any) -> Callable[[City], bytes]:
        return lambda city: city.command(token=city.signer.sign(**claims)).SerializeToString()

    def forged(city: City) -> bytes:
        impostor = Signer(kid=city.signer.kid)  # right key id, wrong private key
        return city.command(token=impostor.sign(roles=["engineer:*"])).SerializeToString()

    def late(city: City) -> bytes:
        cmd = city.command()
        cmd.expire_time.FromDatetime(datetime.now(UTC) - timedelta(seconds=1))
        return cmd.SerializeToString()

    now = int(time.time())
    return [
        ("no token", build(token=""), "UNAUTHENTICATED", "no token"),
        (
            "expired token",
            token(iat=now - 7200, exp=now - 3600),
            "UNAUTHENTICATED",
            "token expired",
        ),
        ("forged token", forged, "UNAUTHENTICATED", "signature invalid"),
        (
            "viewer",
            token(roles=[f"viewer:{FIELD}"]),
            "PERMISSION_DENIED",
            "lacks the operator role on field 'water_supply'",
        ),
        (
            "operator of another field",
            token(roles=["operator:electricity"]),
            "PERMISSION_DENIED",
            "lacks the operator role on field 'water_supply'",
        ),
        ("unknown point", build(point="tank_valve"), "UNKNOWN_POINT", "has no point 'tank_valve'"),
        (
            "not writable",
            build(point="tank_level", value=3.0),
            "NOT_WRITABLE",
            "not marked writable",
        ),
        ("out of range", build(value=9.0), "OUT_OF_RANGE", "outside the writable range 0.5..5.5"),
        ("wrong type", build(bool_value=True), "INVALID_VALUE", "takes a number, not true/false"),
        ("text", build(string_value="high"), "INVALID_VALUE", "only numbers and true/false"),
        ("not finite", build(value=math.inf), "INVALID_VALUE", "inf is not a finite number"),
        ("expired command", late, "EXPIRED", "the command expired at"),
        ("other site", build(site="lien-chieu"), "TARGET_MISMATCH", "names site 'lien-chieu'"),
        ("no reason", build(reason=""), "INVALID_ARGUMENT", "reason is required"),
        (
            "malformed payload",
            lambda city: b"\x0a\xff\xff\xff\xff",
            "INVALID_ARGUMENT",
            "is not a WriteCommand protobuf",
        ),
        (
            "oversize payload",
            lambda city: city.command(reason="x" * 70_000).SerializeToString(),
            "INVALID_ARGUMENT",
            "larger than 65536 bytes",
        ),
    ]


@in_module_loop
@pytest.mark.parametrize(
    ("case", "payload", "reason", "description"),
    _refusal_cases(),
    ids=[case[0] for case in _refusal_cases()],
)
async def test_refused_commands_change_nothing_and_are_audited(
    city: City, case, payload, reason, description
):
    before = city.held()
    assert before != 4.5, "the value the commands ask for must differ from the current one"
    data = payload(city)
    reply = await city.send(data)

    assert reply.outcome == REFUSED, reply
    assert reply.error.reason == reason
    assert description in reply.error.description
    assert city.held() == before

    (record,) = await city.audit.wait(reply.audit_id)
    assert_record(
        record,
        outcome="REFUSED",
        error_reason=reason,
        error_description=reply.error.description,
        written_value=None,
        site=SITE,
        device=DEVICE,
        field=FIELD,
    )
    if reason == "UNAUTHENTICATED":
        assert not reply.HasField("principal")
        assert record["principal_sub"] is None
    elif reason != "INVALID_ARGUMENT" or case == "no reason":
        assert reply.principal.id == "p-operator-7"
        assert record["principal_sub"] == "p-operator-7"
    assert len(city.audit.of(reply.audit_id)) == 1, "a refused command has no ATTEMPTED record"


@in_module_loop
async def test_a_repeated_command_id_returns_the_first_outcome_without_writing_again(
    city: City, setpoint_restored
):
    cmd = city.command(value=2.5)
    first = await city.send(cmd.SerializeToString())
    assert first.outcome == ACCEPTED
    assert city.held() == 2.5
    # Someone changes the set-point by other means; the repeat must not undo that.
    await city.driver.write(city.profile.points[0], 3.75)

    repeat = city.command(command_id=cmd.command_id, value=2.5)  # new token, same request
    second = await city.send(repeat.SerializeToString())
    assert second == first
    assert city.held() == 3.75
    records = await city.audit.wait(first.audit_id, 2)
    assert [record["outcome"] for record in records] == ["ATTEMPTED", "ACCEPTED"]
    replays = [r for r in city.audit.records if r["repeat_of"] == first.audit_id]
    assert len(replays) == 1
    assert replays[0]["outcome"] == "ACCEPTED"

    reused = await city.send(city.command(command_id=cmd.command_id, value=1.5).SerializeToString())
    assert reused.outcome == REFUSED
    assert reused.error.reason == "COMMAND_ID_REUSED"
    assert city.held() == 3.75


@in_module_loop
async def test_writes_to_one_device_happen_one_at_a_time(city: City, setpoint_restored):
    values = [1.0, 1.5, 2.0, 2.5, 3.0]
    replies = await asyncio.gather(
        *(
            city.service.handle(DEVICE, city.command(value=value).SerializeToString())
            for value in values
        )
    )
    assert [reply.outcome for reply in replies] == [ACCEPTED] * len(values)
    ids = {reply.audit_id for reply in replies}
    for audit_id in ids:
        await city.audit.wait(audit_id, 2)
    sequence = [r for r in city.audit.records if r["audit_id"] in ids]
    # ATTEMPTED of one command, then its outcome, then the next: never two writes at once.
    for attempt, outcome in zip(sequence[::2], sequence[1::2], strict=True):
        assert attempt["outcome"] == "ATTEMPTED"
        assert outcome["outcome"] == "ACCEPTED"
        assert attempt["audit_id"] == outcome["audit_id"]
    last = sequence[-1]["requested_value"]
    assert city.held() == last


@in_module_loop
async def test_no_write_without_an_audit_record(city: City):
    """Fail closed: a service whose audit stream does not take the record writes nothing."""
    before = city.held()
    blind = CommandService(
        city.agent_bus,
        site=SITE,
        agent_id="agent-cau-do",
        devices={DEVICE: (city.profile, city.driver)},
        authenticator=city.service._authenticator,
        audit_stream="NO_SUCH_STREAM",
        audit_timeout=0.5,
    )
    reply = await blind.handle(DEVICE, city.command(value=1.25).SerializeToString())
    assert reply.outcome == REFUSED
    assert reply.error.reason == "AUDIT_UNAVAILABLE"
    assert city.held() == before


@in_module_loop
async def test_replicas_of_an_agent_execute_each_command_once(city: City, setpoint_restored):
    replica = CommandService(
        city.agent_bus,
        site=SITE,
        agent_id="agent-cau-do",
        devices={DEVICE: (city.profile, city.driver)},
        authenticator=city.service._authenticator,
    )
    await replica.start()
    try:
        commands = [city.command(value=value) for value in (1.0, 1.25, 1.5, 1.75, 2.0, 2.25)]
        replies = [await city.send(cmd.SerializeToString()) for cmd in commands]
    finally:
        await replica.stop()
    assert [reply.outcome for reply in replies] == [ACCEPTED] * len(commands)
    for reply in replies:
        await city.audit.wait(reply.audit_id, 2)
    attempted = [
        r["command_id"]
        for r in city.audit.records
        if r["outcome"] == "ATTEMPTED" and r["command_id"] in {c.command_id for c in commands}
    ]
    assert sorted(attempted) == sorted(c.command_id for c in commands)
    assert city.held() == 2.25


@in_module_loop
async def test_audit_subjects(city: City):
    assert audit_subject(SITE, DEVICE) == "city.audit.commands.cau-do.station-1"
    reply = await city.send(city.command(token="").SerializeToString())
    await city.audit.wait(reply.audit_id)
    for subject, record in zip(city.audit.subjects, city.audit.records, strict=True):
        assert subject == f"city.audit.commands.{record['site']}.{record['device']}"
    with pytest.raises(ValueError, match="cannot be a NATS subject token"):
        audit_subject("cau.do", DEVICE)


def test_service_refuses_a_device_of_another_site(modbus):
    with pytest.raises(ValueError, match="its profile is hoa-khanh-110kv/bay-1, not cau-do/bay-1"):
        CommandService(
            None,  # type: ignore[arg-type]  (never reached)
            site=SITE,
            agent_id="a",
            devices={"bay-1": (modbus, None)},  # type: ignore[dict-item]
            authenticator=None,  # type: ignore[arg-type]
        )


@in_module_loop
async def test_a_device_that_hangs_delays_no_other_device(city: City, pki, setpoint_restored):
    """Station 2 is reached through a relay that stops relaying: its write hangs until the
    service's write timeout, and station 1 is written meanwhile."""
    proxy = FreezableProxy(city.station.host, city.station.port)
    await proxy.start()
    hung_profile = profile_for(
        city.station,
        pki,
        mode="poll",
        points=station_points(city.station),
        device="station-2",
        endpoint=f"opc.tcp://127.0.0.1:{proxy.port}/station",
    )
    hung_driver = OpcuaDriver(hung_profile)
    service = CommandService(
        city.agent_bus,
        site=SITE,
        agent_id="agent-cau-do",
        devices={DEVICE: (city.profile, city.driver), "station-2": (hung_profile, hung_driver)},
        authenticator=city.service._authenticator,
        write_timeout=1.0,
    )
    proxy.freeze()
    try:
        started = time.monotonic()
        hung = asyncio.create_task(
            service.handle("station-2", city.command(device="station-2").SerializeToString())
        )
        healthy = await service.handle(DEVICE, city.command(value=1.75).SerializeToString())
        healthy_took = time.monotonic() - started
        assert healthy.outcome == ACCEPTED
        assert city.held() == 1.75
        assert not hung.done()
        assert healthy_took < 1.0

        late = await hung
        assert late.outcome == FAILED
        assert late.error.reason == "DEVICE_ERROR"
        assert "no answer from the device within 1 s" in late.error.description
    finally:
        proxy.thaw()
        await hung_driver.close()
        await proxy.stop()


# -- end to end with a Modbus substation: coils and scaled registers -------------------------


async def request_when_served(client: Bus, subject: str, payload: bytes) -> bytes:
    """The reply to a command, asked once: the service's subscription is known to the server
    by the time ``start`` returns, so "no responders" is a failure, never retried."""
    msg = await client.request(subject, payload, timeout=15)
    return msg.data


@dataclass
class Substation1:
    sim: Substation
    profile: ModbusDevice
    service: CommandService
    client: Bus
    audit: Audit
    signer: Signer

    @property
    def device(self) -> str:
        return self.profile.device

    def point(self, name: str) -> ModbusPoint:
        return next(p for p in self.profile.points if p.name == name)

    async def held(self, name: str) -> Any:
        return await expected_value(self.sim, 1, self.point(name))

    async def send(self, **fields: Any) -> WriteCommandReply:
        values: dict[str, Any] = {
            "command_id": uuid.uuid4().hex,
            "site": self.profile.site,
            "device": self.device,
            "field": "electricity",
            "reason": "switching order 2026-114",
            "token": self.signer.sign(roles=["operator:electricity"]),
        }
        values.update(fields)
        subject = command_subject(self.profile.site, self.device)
        return WriteCommandReply.FromString(
            await request_when_served(
                self.client, subject, WriteCommand(**values).SerializeToString()
            )
        )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def substation(city: City, verifier: TokenVerifier, signer: Signer):
    async with Substation(port=0, period=None, seed=3) as sim:
        base = sim.profile_for(1, timeout=1.0, retries=0)
        # The device's own range for the voltage set-point (20..25 kV) is narrower than this
        # profile claims, so that the device itself refuses a value the agent lets through.
        points = [
            p.model_copy(update={"max": 30.0}) if p.name == "voltage_setpoint" else p
            for p in base.points
        ]
        profile = base.model_copy(update={"points": points})
        driver = ModbusDriver(profile)
        service = CommandService(
            city.agent_bus,
            site=profile.site,
            agent_id="agent-lien-chieu",
            devices={profile.device: (profile, driver)},
            authenticator=verifier,
        )
        await service.start()
        try:
            yield Substation1(sim, profile, service, city.client, city.audit, signer)
        finally:
            await service.stop()
            await driver.close()


@in_module_loop
async def test_a_breaker_opens_and_closes_by_command(substation: Substation1):
    assert await substation.held("feeder_03_breaker_closed") is True
    opened = await substation.send(point="feeder_03_breaker_closed", bool_value=False)
    assert opened.outcome == ACCEPTED, opened
    assert opened.written_value == 0.0
    assert await substation.held("feeder_03_breaker_closed") is False
    assert substation.sim.bays[1].breakers["feeder_03_breaker_closed"] is False
    _attempted, accepted = await substation.audit.wait(opened.audit_id, 2)
    assert accepted["requested_value"] is False
    assert accepted["written_value"] is False
    assert accepted["site"] == "lien-chieu-110kv"

    closed = await substation.send(point="feeder_03_breaker_closed", value=1)
    assert closed.outcome == ACCEPTED
    assert await substation.held("feeder_03_breaker_closed") is True


@in_module_loop
async def test_scaled_and_word_swapped_setpoints(substation: Substation1):
    reply = await substation.send(point="voltage_setpoint", value=22.75)  # float32 CDAB
    assert (reply.outcome, reply.written_value) == (ACCEPTED, 22.75)
    assert await substation.held("voltage_setpoint") == 22.75
    reply = await substation.send(point="oil_temperature_limit", value=87.5)  # int16 x 0.1
    assert reply.outcome == ACCEPTED
    assert reply.written_value == pytest.approx(87.5)
    assert await substation.held("oil_temperature_limit") == pytest.approx(87.5)


@in_module_loop
@pytest.mark.parametrize(
    ("fields", "outcome", "reason", "description"),
    [
        (
            {"point": "feeder_01_breaker_closed", "value": 2},
            REFUSED,
            "INVALID_VALUE",
            "binary: it takes true or false (or 0/1), not 2",
        ),
        (
            {"point": "oil_temperature_limit", "value": 87.55},
            REFUSED,
            "INVALID_VALUE",
            "cannot be written exactly (whole raw values only in steps of 0.1)",
        ),
        (
            {"point": "oil_temperature_limit", "value": 150},
            REFUSED,
            "OUT_OF_RANGE",
            "outside the writable range 60..105",
        ),
        ({"point": "frequency", "value": 50}, REFUSED, "NOT_WRITABLE", "not marked writable"),
        (
            {"point": "breaker_hv_closed", "bool_value": False, "token": None},
            REFUSED,
            "PERMISSION_DENIED",
            "lacks the operator role on field 'electricity'",
        ),
        (
            {"point": "voltage_setpoint", "value": 27.0},
            FAILED,
            "DEVICE_ERROR",
            "modbus exception 3: illegal data value",
        ),
    ],
    ids=["coil-2", "resolution", "range", "read-only", "viewer", "device-refuses"],
)
async def test_modbus_refusals_change_nothing(substation, fields, outcome, reason, description):
    if fields.get("token", "") is None:
        fields = {**fields, "token": substation.signer.sign(roles=["viewer:electricity"])}
    names = ("feeder_01_breaker_closed", "breaker_hv_closed", "oil_temperature_limit")
    names += ("voltage_setpoint",)
    before = {name: await substation.held(name) for name in names}

    reply = await substation.send(**fields)
    assert reply.outcome == outcome, reply
    assert reply.error.reason == reason
    assert description in reply.error.description
    assert {name: await substation.held(name) for name in names} == before
    records = await substation.audit.wait(reply.audit_id, 2 if outcome == FAILED else 1)
    assert records[-1]["outcome"] == ("FAILED" if outcome == FAILED else "REFUSED")
    assert records[-1]["error_reason"] == reason
