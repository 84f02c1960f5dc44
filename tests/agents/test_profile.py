"""Device profiles: the documented format (docs/architecture.md, "Device profiles") loads; each
mistake is refused with file, point, reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from smartcity.agents.profile import (
    ModbusDevice,
    OpcuaDevice,
    ProfileError,
    load_profile,
    parse_duration,
    parse_modbus_endpoint,
)

DESIGN_EXAMPLE = """\
site: hoa-khanh-110kv
field: electricity
device: bay-1-meter
protocol: modbus
endpoint: tcp://10.20.0.5:502
unit_id: 1
poll_interval: 1s
points:
  - {name: voltage_an, unit: kV, address: 0, function: holding, type: float32,
     byte_order: big, word_order: little, scale: 1.0, offset: 0.0}
"""

OPCUA = """\
site: cau-do
field: water_supply
device: station-1
protocol: opcua
endpoint: opc.tcp://10.20.0.7:4840/station
mode: subscribe
security: {policy: Basic256Sha256, mode: SignAndEncrypt, cert: agent.der, key: agent.pem}
points:
  - {name: ph, unit: pH, node: "ns=2;s=Station1.pH"}
  - {name: turbidity, unit: NTU, node: "ns=2;i=1007", sampling_interval: 500ms, deadband: 0.05}
"""


def write(tmp_path: Path, text: str, name: str = "device.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def refused(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    message = str(info.value)
    assert message.startswith(f"{path}: invalid device profile")
    return message


def modbus_with(points: str, extra: str = "") -> str:
    head = DESIGN_EXAMPLE.split("points:")[0]
    return head + extra + "points:\n" + points


def test_design_example_loads(tmp_path: Path) -> None:
    profile = load_profile(write(tmp_path, DESIGN_EXAMPLE))
    assert isinstance(profile, ModbusDevice)
    (point,) = profile.points
    assert (point.byte_order, point.word_order) == ("big", "little")
    assert profile.poll_interval == 1.0
    assert profile.connection.host == "10.20.0.5"
    assert profile.connection.port == 502


@pytest.mark.parametrize(
    ("written", "seconds"),
    [("1s", 1.0), ("250ms", 0.25), ("2m", 120.0), ("2min", 120.0), ("1m30s", 90.0), ("5", 5.0)],
)
def test_durations_as_engineers_write_them(tmp_path: Path, written: str, seconds: float) -> None:
    text = DESIGN_EXAMPLE.replace("poll_interval: 1s", f"poll_interval: {written}")
    assert load_profile(write(tmp_path, text)).poll_interval == seconds
    assert parse_duration(written) == seconds


def test_a_duration_that_is_not_positive_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'0s' is not a positive duration"):
        parse_duration("0s")
    with pytest.raises(ValueError, match="'soon' is not a duration"):
        parse_duration("soon")


def test_opcua_profile_resolves_certificates_next_to_it(tmp_path: Path) -> None:
    (tmp_path / "agent.der").write_bytes(b"cert")
    (tmp_path / "agent.pem").write_bytes(b"key")
    profile = load_profile(write(tmp_path, OPCUA))
    assert isinstance(profile, OpcuaDevice)
    assert profile.security.cert == tmp_path / "agent.der"
    assert profile.points[1].sampling_interval == 0.5


def test_missing_certificate_is_refused(tmp_path: Path) -> None:
    message = refused(tmp_path, OPCUA)
    assert "security.cert" in message
    assert "does not exist" in message


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ("ABCD", ("big", "big")),
        ("cdab", ("big", "little")),
        ("BADC", ("little", "big")),
        ("DCBA", ("little", "little")),
    ],
)
def test_order_notation(tmp_path: Path, order: str, expected: tuple[str, str]) -> None:
    text = modbus_with(f"  - {{name: v, address: 0, type: float32, order: {order}}}\n")
    (point,) = load_profile(write(tmp_path, text)).points
    assert (point.byte_order, point.word_order) == expected


@pytest.mark.parametrize(
    ("points", "reason"),
    [
        (
            "  - {name: a, address: 0, type: float32}\n  - {name: b, address: 1, type: uint16}\n",
            "points 'a' and 'b' overlap at holding address 1",
        ),
        ("  - {name: a, address: 0, type: int8}\n", "point 'a' (points[0]): type: Input should be"),
        (
            "  - {name: a, address: 0, type: float32, registers: 1}\n",
            "registers: 1 does not fit float32, which takes 2 register(s)",
        ),
        (
            "  - {name: a, address: 0, type: uint32, registers: 3}\n",
            "registers: 3 does not fit uint32",
        ),
        (
            "  - {name: a, address: 0, wrod_order: big}\n",
            "point 'a' (points[0]): wrod_order: unknown",
        ),
        ("  - {name: a, address: 0, function: input, writable: true}\n", "cannot be written"),
        ("  - {name: a, address: 0, writable: true, min: 5, max: 1}\n", "min (5.0) is greater"),
        ("  - {name: a, address: 0, min: 1}\n", "set writable: true"),
        ("  - {name: a, address: 0, type: float32, order: ACBD}\n", "not one of ABCD"),
        (
            "  - {name: a, address: 0, type: float32, order: CDAB, word_order: big}\n",
            "either order or byte_order/word_order",
        ),
        ("  - {name: a, address: 0, function: coil, type: uint16}\n", "type must be bool"),
        ("  - {name: a, address: 0, type: bool}\n", "needs bit: 0..15"),
        ("  - {name: a, address: 65535, type: float32}\n", "runs past address 65535"),
        ("  - {name: a, address: 0, scale: 0}\n", "scale must be a non-zero"),
        ("  - {name: a, address: 0}\n  - {name: a, address: 1}\n", "'a' is used twice"),
        ("  - {name: Voltage A, address: 0}\n", "is not a point name"),
        ("  - {name: a, address: 0, interval: soon}\n", "is not a duration"),
    ],
)
def test_bad_modbus_points_are_refused(tmp_path: Path, points: str, reason: str) -> None:
    assert reason in refused(tmp_path, modbus_with(points))


def test_bits_of_one_register_do_not_overlap_but_the_same_bit_does(tmp_path: Path) -> None:
    ok = (
        "  - {name: a, address: 4, type: bool, bit: 0}\n"
        "  - {name: b, address: 4, type: bool, bit: 1}\n"
    )
    assert len(load_profile(write(tmp_path, modbus_with(ok))).points) == 2
    bad = ok.replace("bit: 1", "bit: 0")
    assert "overlap at holding address 4" in refused(tmp_path, modbus_with(bad))


def test_tables_are_separate_address_spaces(tmp_path: Path) -> None:
    points = "  - {name: a, address: 0}\n  - {name: b, address: 0, function: input}\n"
    assert len(load_profile(write(tmp_path, modbus_with(points))).points) == 2


@pytest.mark.parametrize(
    ("replace", "by", "reason"),
    [
        ("protocol: modbus", "protocol: bacnet", "protocol must be modbus or opcua"),
        ("protocol: modbus\n", "", "protocol is missing"),
        ("tcp://10.20.0.5:502", "http://10.20.0.5", "starts with tcp:// or rtu://"),
        ("tcp://10.20.0.5:502", "tcp://10.20.0.5:99999", "port is not a number"),
        ("site: hoa-khanh-110kv", "site: hoa.khanh", "NATS subject token"),
        ("poll_interval: 1s", "poll_interval: 0s", "poll_interval: Input should be greater than 0"),
        ("unit_id: 1", "unit_id: 300", "unit_id"),
    ],
)
def test_bad_device_keys_are_refused(tmp_path: Path, replace: str, by: str, reason: str) -> None:
    assert reason in refused(tmp_path, DESIGN_EXAMPLE.replace(replace, by))


@pytest.mark.parametrize(
    ("replace", "by", "reason"),
    [
        ('node: "ns=2;s=Station1.pH"', 'node: "Station1.pH"', "is not a node id"),
        ('node: "ns=2;s=Station1.pH"', 'node: "ns=x;i=5"', "is not a node id"),
        ('node: "ns=2;i=1007"', 'node: "ns=2;i=abc"', "not a valid node id"),
        (
            "security: {policy: Basic256Sha256, mode: SignAndEncrypt, cert: agent.der, "
            "key: agent.pem}\n",
            "",
            "security: Field required",
        ),
        ("mode: SignAndEncrypt, cert", "mode: None, cert", "needs mode Sign or SignAndEncrypt"),
        (", cert: agent.der, key: agent.pem", "", "needs the agent's cert and key"),
        ("opc.tcp://10.20.0.7:4840/station", "tcp://10.20.0.7:4840", "opc.tcp://host:port/path"),
        ("mode: subscribe", "mode: push", "mode: Input should be 'subscribe' or 'poll'"),
    ],
)
def test_bad_opcua_profiles_are_refused(tmp_path: Path, replace: str, by: str, reason: str):
    (tmp_path / "agent.der").write_bytes(b"cert")
    (tmp_path / "agent.pem").write_bytes(b"key")
    text = OPCUA.replace(replace, by)
    assert text != OPCUA
    assert reason in refused(tmp_path, text)


def test_policy_none_only_when_written(tmp_path: Path) -> None:
    text = OPCUA.replace(
        "{policy: Basic256Sha256, mode: SignAndEncrypt, cert: agent.der, key: agent.pem}",
        "{policy: None, mode: None}",
    )
    profile = load_profile(write(tmp_path, text))
    assert isinstance(profile, OpcuaDevice)
    assert profile.security.policy == "None"


def test_unknown_field_when_the_installed_fields_are_known(tmp_path: Path) -> None:
    path = write(tmp_path, DESIGN_EXAMPLE)
    with pytest.raises(ProfileError, match="'electricity' is not an installed field"):
        load_profile(path, known_fields=["water_supply"])
    assert load_profile(path, known_fields=["electricity"]).field == "electricity"


def test_every_mistake_is_listed_at_once(tmp_path: Path) -> None:
    text = modbus_with(
        "  - {name: a, address: 0, type: int8}\n  - {name: b, address: 2, typo: 1}\n"
    )
    message = refused(tmp_path, text)
    assert "point 'a' (points[0])" in message
    assert "point 'b' (points[1]): typo: unknown key" in message


def test_unreadable_yaml(tmp_path: Path) -> None:
    assert "invalid YAML" in refused(tmp_path, "site: [x\n")
    assert "one mapping" in refused(tmp_path, "- a\n- b\n")


def test_rtu_endpoint_options() -> None:
    endpoint = parse_modbus_endpoint("rtu:///dev/ttyUSB0?baudrate=19200&parity=e&stopbits=2")
    assert (endpoint.device, endpoint.baudrate, endpoint.parity, endpoint.stopbits) == (
        "/dev/ttyUSB0",
        19200,
        "E",
        2,
    )
    with pytest.raises(ValueError, match="unknown serial option"):
        parse_modbus_endpoint("rtu:///dev/ttyUSB0?speed=9600")
