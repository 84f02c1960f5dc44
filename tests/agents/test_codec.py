"""Register codec: every type in every byte/word order, against hand-computed registers; the
block decoder of the read path against the per-point reference."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from smartcity.agents.modbus.codec import BlockDecoder, EncodeError, decode, encode
from smartcity.agents.modbus.planner import plan_reads
from smartcity.agents.profile import DataType, ModbusPoint

ORDERS = ["ABCD", "CDAB", "BADC", "DCBA"]


def point(type_: str, order: str = "ABCD", **extra: object) -> ModbusPoint:
    return ModbusPoint(name="p", address=0, type=type_, order=order, **extra)


# 1.0f is 0x3F800000: the four orders put its bytes in four different places.
@pytest.mark.parametrize(
    ("order", "registers"),
    [
        ("ABCD", [0x3F80, 0x0000]),
        ("CDAB", [0x0000, 0x3F80]),
        ("BADC", [0x803F, 0x0000]),
        ("DCBA", [0x0000, 0x803F]),
    ],
)
def test_float32_known_layouts(order: str, registers: list[int]) -> None:
    assert decode(registers, point("float32", order)) == 1.0
    assert encode(1.0, point("float32", order)) == registers


@pytest.mark.parametrize(
    ("order", "registers"),
    [
        ("ABCD", [0x0102, 0x0304, 0x0506, 0x0708]),
        ("CDAB", [0x0708, 0x0506, 0x0304, 0x0102]),
        ("BADC", [0x0201, 0x0403, 0x0605, 0x0807]),
        ("DCBA", [0x0807, 0x0605, 0x0403, 0x0201]),
    ],
)
def test_uint64_known_layouts(order: str, registers: list[int]) -> None:
    assert decode(registers, point("uint64", order)) == 0x0102030405060708


def test_byte_order_alone_swaps_a_16_bit_register() -> None:
    assert decode([0x3412], point("uint16", "BADC")) == 0x1234
    assert decode([0xFFFE], point("int16")) == -2


VALUES = {
    "int16": [-32768, -1, 0, 12345, 32767],
    "uint16": [0, 1, 65535],
    "int32": [-(2**31), -7, 2**31 - 1],
    "uint32": [0, 4_000_000_000],
    "int64": [-(2**63), 2**63 - 1],
    "uint64": [0, 2**64 - 1],
    "float32": [-1.5, 0.0, 230.5, 2.0**100],  # exactly representable in 32 bits
    "float64": [-1e300, 0.1, 110.123456789],
}


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("type_", list(VALUES))
def test_round_trip_every_type_and_order(type_: str, order: str) -> None:
    p = point(type_, order)
    for value in VALUES[type_]:
        registers = encode(value, p)
        assert len(registers) == DataType(type_).registers
        assert all(0 <= word <= 0xFFFF for word in registers)
        assert decode(registers, p) == value


def test_scale_and_offset_are_applied_and_inverted() -> None:
    p = point("int16", scale=0.1, offset=-40)
    assert decode([650], p) == pytest.approx(25.0)
    assert encode(25.0, p) == [650]


def test_bits_of_a_status_word() -> None:
    status = 0b0000_0000_0001_0100
    assert decode([status], point("bool", bit=2)) is True
    assert decode([status], point("bool", bit=3)) is False


def test_nan_registers_decode_to_nan_for_the_quality_layer_to_flag() -> None:
    assert math.isnan(decode([0x7FC0, 0x0000], point("float32")))


@pytest.mark.parametrize(
    ("type_", "value", "message"),
    [
        ("uint16", 70000, "outside uint16"),
        ("int16", -40000, "outside int16"),
        ("uint32", -1, "outside uint32"),
        ("float32", float("nan"), "not a finite number"),
        ("float32", 1e39, "does not fit a float32"),
        ("int16", True, "not a finite number"),
    ],
)
def test_values_that_do_not_fit_are_refused(type_: str, value: float, message: str) -> None:
    with pytest.raises(EncodeError, match=message):
        encode(value, point(type_))


def test_wrong_register_count_is_an_error() -> None:
    with pytest.raises(ValueError, match="needs 2 registers"):
        decode([1], point("float32"))


# -- the block decoder is the reference codec, faster -------------------------------------------


NUMERIC = [t for t in DataType if t is not DataType.BOOL]


@pytest.mark.parametrize("order", ORDERS)
def test_block_decoder_equals_reference_codec(order: str) -> None:
    rng = random.Random(order)
    points, address = [], 3
    for index, (type_, scale) in enumerate(itertools.product(NUMERIC, (1.0, 0.1))):
        points.append(
            ModbusPoint(name=f"p{index}", address=address, type=type_, order=order, scale=scale)
        )
        address += type_.registers + rng.randrange(3)  # gaps between points
    points.append(ModbusPoint(name="flag", address=address, type="bool", bit=13))
    (request,) = plan_reads(points, max_gap=8, max_registers=125, max_bits=2000)
    decoder = BlockDecoder(request)
    for _ in range(200):
        registers = [rng.randrange(65536) for _ in range(request.count)]
        values = decoder.values(registers)
        for p, value in zip(request.points, values, strict=True):
            reference = decode(request.slice_for(p, registers), p)
            if isinstance(reference, float) and math.isnan(reference):
                assert isinstance(value, float), p.name
                assert math.isnan(value), p.name
            else:
                assert value == reference, p.name
                assert type(value) is type(reference), p.name


def test_block_decoder_reads_coils_as_bools() -> None:
    coils = [
        ModbusPoint(name=f"c{address}", address=address, function="coil", type="bool")
        for address in (10, 11, 14)
    ]
    (request,) = plan_reads(coils, max_gap=8, max_registers=125, max_bits=2000)
    answer = [True, False, False, False, True, False, False, False]
    assert BlockDecoder(request).values(answer) == [True, False, True]
