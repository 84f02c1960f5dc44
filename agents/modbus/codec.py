"""Registers to values and back: the one place where byte and word order are applied.

Modbus carries 16-bit registers; everything wider is a convention between the device and
whoever reads it. Two conventions are independent and both vary in the field: the order of
the two bytes inside each register (``byte_order``) and the order of the registers of a
32/64-bit value (``word_order``). ``ABCD`` is big/big, ``CDAB`` big bytes with little words
(the common "word-swapped" float), ``BADC`` little bytes with big words, ``DCBA`` both
little. Scaling is applied after decoding: ``engineering = raw * scale + offset``.
"""

from __future__ import annotations

import math
import struct

from smartcity.agents.profile import DataType, ModbusPoint

_FORMATS = {
    DataType.INT16: ">h",
    DataType.UINT16: ">H",
    DataType.INT32: ">i",
    DataType.UINT32: ">I",
    DataType.INT64: ">q",
    DataType.UINT64: ">Q",
    DataType.FLOAT32: ">f",
    DataType.FLOAT64: ">d",
}


class EncodeError(ValueError):
    """A value that cannot be written to a point (out of the type's range, not a number)."""


def _swap_bytes(word: int) -> int:
    return ((word & 0xFF) << 8) | (word >> 8)


def _to_wire_order(words: list[int], point: ModbusPoint) -> list[int]:
    """Reorder big-endian words (most significant first) into the device's order; the
    transformation is its own inverse, so it also maps device order back to big-endian."""
    if point.byte_order == "little":
        words = [_swap_bytes(word) for word in words]
    if point.word_order == "little":
        words = words[::-1]
    return words


def decode_raw(registers: list[int], point: ModbusPoint) -> int | float:
    """The unscaled number the device holds in ``registers`` (exactly ``point.width`` long)."""
    if len(registers) != point.type.registers:
        raise ValueError(
            f"{point.name}: {point.type} needs {point.type.registers} registers, "
            f"got {len(registers)}"
        )
    words = _to_wire_order(list(registers), point)
    data = b"".join(word.to_bytes(2, "big") for word in words)
    (value,) = struct.unpack(_FORMATS[point.type], data)
    return value


def scale(raw: int | float, point: ModbusPoint) -> int | float:
    """Engineering value; integers stay exact when the point is not scaled."""
    if point.scale == 1 and point.offset == 0:
        return raw
    return raw * point.scale + point.offset


def decode(registers: list[int], point: ModbusPoint) -> int | float | bool:
    """Engineering value of a register point (for bit points, the selected bit)."""
    if point.type is DataType.BOOL:
        if point.bit is None:
            raise ValueError(f"{point.name}: a bool register point needs a bit")
        return bool((registers[0] >> point.bit) & 1)
    return scale(decode_raw(registers, point), point)


def encode(value: float | int | bool, point: ModbusPoint) -> list[int]:
    """Registers to write so that the device holds ``value`` (engineering units)."""
    if point.type is DataType.BOOL:
        raise EncodeError(f"{point.name}: a bit inside a register is written as a coil or word")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise EncodeError(f"{point.name}: {value!r} is not a finite number")
    unscaled = point.scale == 1 and point.offset == 0
    raw: float | int = value if unscaled else (value - point.offset) / point.scale
    fmt = _FORMATS[point.type]
    if point.type not in (DataType.FLOAT32, DataType.FLOAT64):
        rounded = round(raw)
        bits = 8 * struct.calcsize(fmt)
        signed = fmt[1].islower()
        low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
        if not low <= rounded <= high:
            raise EncodeError(
                f"{point.name}: {value} is raw {raw:g}, outside {point.type} ({low}..{high})"
            )
        raw = rounded
    elif point.type is DataType.FLOAT32 and abs(raw) > 3.4028234663852886e38:
        raise EncodeError(f"{point.name}: {value} does not fit a float32")
    data = struct.pack(fmt, raw)
    words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    return _to_wire_order(words, point)
