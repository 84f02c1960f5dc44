"""Registers to values and back: the one place where byte and word order are applied.

Modbus carries 16-bit registers; everything wider is a convention between the device and
whoever reads it. Two conventions are independent and both vary in the field: the order of
the two bytes inside each register (``byte_order``) and the order of the registers of a
32/64-bit value (``word_order``). ``ABCD`` is big/big, ``CDAB`` big bytes with little words
(the common "word-swapped" float), ``BADC`` little bytes with big words, ``DCBA`` both
little. Scaling is applied after decoding: ``engineering = raw * scale + offset``.

Registers arrive big-endian per register, so a value's big-endian bytes ``ABCD`` are on the
wire in one of those four arrangements. Swapping the two bytes of every register (undoing
``byte_order: little``) and reversing the registers (undoing ``word_order: little``) restore
``ABCD``: :func:`_to_wire_order` does exactly that, one point at a time. Both steps together
reverse every byte, which is what reading little-endian does, so whole buffers need no
reordering per point (:func:`_layout`): a value whose byte and word orders differ is read from
the registers with their bytes swapped, and it is read little-endian when its word order is
little (a one-register value: when its byte order is).

The module has two decoders, and the tests hold them to the same result for every type and
order:

* :func:`decode` (with :func:`decode_raw` and :func:`scale`) is the reference: one point at a
  time, its registers put back into big-endian order and unpacked. Commissioning
  (``smartcity agent check``), the simulator and the tests use it; :func:`encode` is its
  inverse, for writes.
* :class:`BlockDecoder` is the fast path the Modbus driver reads with: compiled once per
  planned read, it packs the answer's registers to bytes once and unpacks all values sharing
  a layout with one precompiled :class:`struct.Struct`, instead of slicing and re-joining
  registers point by point.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from smartcity.agents.modbus.planner import ReadRequest
from smartcity.agents.profile import DataType, ModbusPoint
from smartcity.agents.reading import Value

_STRUCT_CHARS = {
    DataType.INT16: "h",
    DataType.UINT16: "H",
    DataType.INT32: "i",
    DataType.UINT32: "I",
    DataType.INT64: "q",
    DataType.UINT64: "Q",
    DataType.FLOAT32: "f",
    DataType.FLOAT64: "d",
}
_FORMATS = {data_type: f">{char}" for data_type, char in _STRUCT_CHARS.items()}


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


def _layout(point: ModbusPoint) -> tuple[bool, str]:
    """How :class:`BlockDecoder` reads ``point``: from byte-swapped registers or not, and
    with which ``struct`` endianness; the same rule as :func:`_to_wire_order`."""
    little_bytes = point.byte_order == "little"
    little_words = point.word_order == "little"
    if point.width == 1:
        return False, "<" if little_bytes else ">"
    return little_bytes != little_words, "<" if little_words else ">"


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


# -- the fast path: one planned read at a time -------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Group:
    """Points of one request that one precompiled struct unpacks from one byte buffer."""

    unpack: Callable[[bytes], tuple[int | float, ...]]
    swapped: bool
    positions: tuple[int, ...]


def _compile(swapped: bool, endian: str, fields: list[tuple[int, str, int]]) -> _Group:
    """One struct for ``fields`` (byte offset, struct character, position), skipping the
    bytes between them."""
    fields.sort()
    parts, cursor = [endian], 0
    for byte_offset, char, _ in fields:
        if byte_offset > cursor:
            parts.append(f"{byte_offset - cursor}x")
        parts.append(char)
        cursor = byte_offset + struct.calcsize(f"{endian}{char}")
    return _Group(
        unpack=struct.Struct("".join(parts)).unpack_from,
        swapped=swapped,
        positions=tuple(position for _, _, position in fields),
    )


class BlockDecoder:
    """The engineering values of a planned read's points, from the read's answer.

    Built once per :class:`~smartcity.agents.modbus.planner.ReadRequest` and reused every
    cycle. The answer's registers are packed to bytes once as received and, only if some
    point needs it, once with every register's bytes swapped; the points are grouped by
    layout (:func:`_layout`) and each group is unpacked by one precompiled struct. Bits of a
    register (``bit``), coils and discrete inputs become bools; scaling follows the
    unpacking. The values equal :func:`decode` of each point's registers, types included;
    a float that is not finite is returned as it is, for the caller to judge.
    """

    def __init__(self, request: ReadRequest) -> None:
        self.function = request.function
        self._size = len(request.points)
        self._bit_offsets = tuple(point.address - request.address for point in request.points)
        if self.function.is_bits:
            return
        self._big = struct.Struct(f">{request.count}H").pack
        self._little = struct.Struct(f"<{request.count}H").pack
        self._register_bits: list[tuple[int, int, int]] = []
        self._scaled: list[tuple[int, float, float]] = []
        layouts: dict[tuple[bool, str], list[tuple[int, str, int]]] = {}
        for position, point in enumerate(request.points):
            offset = point.address - request.address
            if point.type is DataType.BOOL:
                self._register_bits.append((position, offset, point.bit or 0))
                continue
            if point.scale != 1 or point.offset != 0:
                self._scaled.append((position, point.scale, point.offset))
            layouts.setdefault(_layout(point), []).append(
                (offset * 2, _STRUCT_CHARS[point.type], position)
            )
        self._groups = tuple(
            _compile(swapped, endian, fields) for (swapped, endian), fields in layouts.items()
        )
        self._needs_swapped = any(group.swapped for group in self._groups)
        self._bytes = 2 * request.count
        # The usual block (every point of one layout, unscaled, in address order) is one
        # struct call and nothing else.
        (only,) = self._groups if len(self._groups) == 1 else (None,)
        self._direct = (
            only
            if only is not None
            and only.positions == tuple(range(self._size))
            and not self._register_bits
            and not self._scaled
            else None
        )

    def values(
        self, answer: Sequence[int] | Sequence[bool], raw: bytes | None = None
    ) -> list[Value]:
        """Engineering values of the request's points, in ``request.points`` order.
        ``raw``: the answer's register bytes as they came (big-endian words), if known."""
        if self.function.is_bits:
            bits = answer
            return [bool(bits[offset]) for offset in self._bit_offsets]
        registers = answer
        if raw is None or len(raw) != self._bytes:
            raw = self._big(*registers)
        direct = self._direct
        if direct is not None:
            return list(direct.unpack(self._little(*registers) if direct.swapped else raw))
        out: list[Value] = [0] * self._size
        swapped = self._little(*registers) if self._needs_swapped else raw
        for group in self._groups:
            for position, value in zip(
                group.positions, group.unpack(swapped if group.swapped else raw), strict=True
            ):
                out[position] = value
        for position, offset, bit in self._register_bits:
            out[position] = bool((registers[offset] >> bit) & 1)
        for position, scale, offset in self._scaled:
            out[position] = out[position] * scale + offset
        return out
