"""Decoding against an independent Modbus server (pyModbusTCP, neither pymodbus nor the
project's simulator), with registers written as literal hex computed by hand.

The expected registers follow the documented convention: ``byte_order`` is the order of the
two bytes inside each register, ``word_order`` the order of the registers of a wider value
(little reverses them all, so a 64-bit CDAB value has its four registers in reverse). Nothing
here encodes with the project's codec: the server holds the literal words, and the values
the driver reads must be the literal numbers.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest
from pyModbusTCP.server import DataBank, ModbusServer

from smartcity.agents.modbus.codec import decode
from smartcity.agents.modbus.driver import ModbusDriver
from smartcity.agents.profile import ModbusDevice, ModbusPoint
from smartcity.agents.reading import Quality

# (type, value, {order: registers}); float values are exactly representable in their width.
CASES: list[tuple[str, int | float, dict[str, list[int]]]] = [
    (
        "int16",
        -12345,  # 0xCFC7
        {"ABCD": [0xCFC7], "CDAB": [0xCFC7], "BADC": [0xC7CF], "DCBA": [0xC7CF]},
    ),
    (
        "uint16",
        0xABCD,
        {"ABCD": [0xABCD], "CDAB": [0xABCD], "BADC": [0xCDAB], "DCBA": [0xCDAB]},
    ),
    (
        "int32",
        -123456789,  # 0xF8A432EB
        {
            "ABCD": [0xF8A4, 0x32EB],
            "CDAB": [0x32EB, 0xF8A4],
            "BADC": [0xA4F8, 0xEB32],
            "DCBA": [0xEB32, 0xA4F8],
        },
    ),
    (
        "uint32",
        3_000_000_000,  # 0xB2D05E00
        {
            "ABCD": [0xB2D0, 0x5E00],
            "CDAB": [0x5E00, 0xB2D0],
            "BADC": [0xD0B2, 0x005E],
            "DCBA": [0x005E, 0xD0B2],
        },
    ),
    (
        "float32",
        -1234.5625,  # sign 1, exponent 137, mantissa 0x1A5200: 0xC49A5200
        {
            "ABCD": [0xC49A, 0x5200],
            "CDAB": [0x5200, 0xC49A],
            "BADC": [0x9AC4, 0x0052],
            "DCBA": [0x0052, 0x9AC4],
        },
    ),
    (
        "int64",
        -1234567890123456789,  # 0xEEDDEF0B82167EEB
        {
            "ABCD": [0xEEDD, 0xEF0B, 0x8216, 0x7EEB],
            "CDAB": [0x7EEB, 0x8216, 0xEF0B, 0xEEDD],
            "BADC": [0xDDEE, 0x0BEF, 0x1682, 0xEB7E],
            "DCBA": [0xEB7E, 0x1682, 0x0BEF, 0xDDEE],
        },
    ),
    (
        "uint64",
        0xFEDCBA9876543210,
        {
            "ABCD": [0xFEDC, 0xBA98, 0x7654, 0x3210],
            "CDAB": [0x3210, 0x7654, 0xBA98, 0xFEDC],
            "BADC": [0xDCFE, 0x98BA, 0x5476, 0x1032],
            "DCBA": [0x1032, 0x5476, 0x98BA, 0xDCFE],
        },
    ),
    (
        "float64",
        -9876.54321,  # 0xC0C34A4587E7C06E
        {
            "ABCD": [0xC0C3, 0x4A45, 0x87E7, 0xC06E],
            "CDAB": [0xC06E, 0x87E7, 0x4A45, 0xC0C3],
            "BADC": [0xC3C0, 0x454A, 0xE787, 0x6EC0],
            "DCBA": [0x6EC0, 0xE787, 0x454A, 0xC3C0],
        },
    ),
]
ORDERS = ("ABCD", "CDAB", "BADC", "DCBA")

STATUS_WORD = 0b1000_0000_0010_0001
"""Bits 0, 5 and 15 set: a status register read as bools."""
COILS = [True, False, True, True, False]
DISCRETE = [False, True, True, False, True]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def server() -> Iterator[tuple[ModbusServer, list[dict]]]:
    """A pyModbusTCP server holding every case twice: in holding registers (with a one
    register gap after each value, so merged reads cross unused words) and in input
    registers, back to back."""
    bank = DataBank()
    points: list[dict] = []
    holding, inputs = 10, 300
    for type_, value, layouts in CASES:
        for order in ORDERS:
            words = layouts[order]
            name = f"{type_}_{order.lower()}"
            bank.set_holding_registers(holding, words)
            bank.set_input_registers(inputs, words)
            common = {"type": type_, "order": order, "expected": value}
            points.append({"name": f"h_{name}", "address": holding, **common})
            points.append({"name": f"i_{name}", "address": inputs, "function": "input", **common})
            holding += len(words) + 1
            inputs += len(words)
    bank.set_holding_registers(1000, [STATUS_WORD])
    for bit in range(16):
        points.append(
            {
                "name": f"status_bit_{bit}",
                "address": 1000,
                "type": "bool",
                "bit": bit,
                "expected": bool(STATUS_WORD >> bit & 1),
            }
        )
    bank.set_coils(40, COILS)
    bank.set_discrete_inputs(70, DISCRETE)
    for offset, state in enumerate(COILS):
        points.append(
            {"name": f"coil_{offset}", "address": 40 + offset, "function": "coil", "type": "bool"}
            | {"expected": state}
        )
    for offset, state in enumerate(DISCRETE):
        points.append(
            {
                "name": f"discrete_{offset}",
                "address": 70 + offset,
                "function": "discrete",
                "type": "bool",
                "expected": state,
            }
        )
    modbus = ModbusServer(host="127.0.0.1", port=_free_port(), no_block=True, data_bank=bank)
    modbus.start()
    try:
        yield modbus, points
    finally:
        modbus.stop()


def _profile(modbus: ModbusServer, points: list[dict], max_gap: int) -> ModbusDevice:
    return ModbusDevice(
        site="lab",
        field="electricity",
        device="independent",
        protocol="modbus",
        endpoint=f"tcp://127.0.0.1:{modbus.port}",
        timeout=2.0,
        retries=0,
        max_gap=max_gap,
        points=[{k: v for k, v in p.items() if k != "expected"} for p in points],
    )


def test_the_cases_cover_every_type_and_order() -> None:
    numeric = {type_ for type_, _, _ in CASES}
    assert numeric == {"int16", "uint16", "int32", "uint32", "int64", "uint64"} | {
        "float32",
        "float64",
    }
    assert all(set(layouts) == set(ORDERS) for _, _, layouts in CASES)


@pytest.mark.parametrize("max_gap", [16, 0], ids=["merged", "gap-free"])
def test_driver_reads_the_literal_values(server, max_gap: int) -> None:
    modbus, points = server
    profile = _profile(modbus, points, max_gap)
    expected = {p["name"]: p["expected"] for p in points}

    async def read() -> tuple[dict, dict, int]:
        driver = ModbusDriver(profile)
        try:
            readings = await driver.read_once()
            requests = driver.stats.requests
            raw = await driver.read_raw()
        finally:
            await driver.close()
        return {r.metric: r for r in readings}, raw, requests

    readings, raw, requests = asyncio.run(read())
    assert len(readings) == len(points)
    for name, value in expected.items():
        reading = readings[name]
        assert reading.quality is Quality.GOOD, (name, reading.reason)
        assert reading.value == value, name
        assert type(reading.value) is type(value), name  # an int64 stays an int, a bit a bool
    # the one-point reference decoder agrees on the registers the server sent
    by_name = {p.name: p for p in profile.points}
    for name, words in raw.items():
        point: ModbusPoint = by_name[name]
        if not point.function.is_bits:
            assert decode(list(words), point) == expected[name], name
    if max_gap:
        # holding values, input values, the status word, coils, discrete inputs
        assert requests == 5


def test_raw_registers_are_the_literal_words(server) -> None:
    modbus, points = server
    profile = _profile(modbus, points, max_gap=16)
    layouts = {f"{t}_{o.lower()}": words for t, _, by in CASES for o, words in by.items()}

    async def raw() -> dict:
        driver = ModbusDriver(profile)
        try:
            return await driver.read_raw()
        finally:
            await driver.close()

    found = asyncio.run(raw())
    for name, words in layouts.items():
        assert found[f"h_{name}"] == words, name
        assert found[f"i_{name}"] == words, name
    assert found["status_bit_0"] == [STATUS_WORD]
    assert found["coil_2"] == [True]
