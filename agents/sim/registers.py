"""Register images of a simulated Modbus device, laid out from its device profile.

The profile is the register map: the simulator and the agent load the same file, so they
cannot disagree about an address, a type or a byte order. Values are encoded with the
project's reference codec (:mod:`smartcity.agents.modbus.codec`). The datastore is pymodbus'
``SimDevice``/``SimData`` (its non-deprecated API in 3.16), refreshed from these images by
the device's ``action`` hook on every access, the way that API intends registers to be
updated.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from pymodbus.simulator import DataType as SimType
from pymodbus.simulator import SimData

from smartcity.agents.modbus.codec import EncodeError, encode
from smartcity.agents.profile import DataType, Function, ModbusPoint

__all__ = [
    "FUNCTION_OF_CODE",
    "RegisterTable",
    "datastore_layout",
    "encode_saturating",
    "register_tables",
]

FUNCTION_OF_CODE = {
    1: Function.COIL,
    5: Function.COIL,
    15: Function.COIL,
    2: Function.DISCRETE,
    3: Function.HOLDING,
    6: Function.HOLDING,
    16: Function.HOLDING,
    22: Function.HOLDING,
    23: Function.HOLDING,
    4: Function.INPUT,
}
"""The data table each Modbus function code reads or writes."""


def _raw_bounds(point: ModbusPoint) -> tuple[float, float]:
    """Smallest and largest engineering value an integer point can carry."""
    fmt = {"int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "int64": "q", "uint64": "Q"}
    char = fmt[point.type.value]
    bits = 8 * struct.calcsize(char)
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if char.islower() else (0, 2**bits - 1)
    ends = (low * point.scale + point.offset, high * point.scale + point.offset)
    return min(ends), max(ends)


def encode_saturating(value: float, point: ModbusPoint) -> list[int]:
    """Encode, saturating at the type's range the way a real transducer output does."""
    try:
        return encode(value, point)
    except EncodeError:
        if point.type in (DataType.FLOAT32, DataType.FLOAT64) or not math.isfinite(value):
            return encode(0.0, point)
        low, high = _raw_bounds(point)
        return encode(min(max(value, low), high), point)


@dataclass
class RegisterTable:
    """One Modbus data table of one unit: the register image the datastore is refreshed from.

    Register tables hold one int per register; bit tables hold 16 bits per int, bit 0 of
    the first word being the first coil, the layout pymodbus' SimDevice uses.
    """

    function: Function
    start: int
    image: list[int]

    def put_registers(self, address: int, registers: list[int]) -> None:
        index = address - self.start
        self.image[index : index + len(registers)] = registers

    def put_bit(self, address: int, value: bool) -> None:
        """A coil or discrete input (bit tables) by its bit address."""
        word, bit = divmod(address, 16)
        index = word - self.start
        if value:
            self.image[index] |= 1 << bit
        else:
            self.image[index] &= ~(1 << bit)


def register_tables(
    points: Iterable[ModbusPoint], control: Iterable[int]
) -> dict[Function, RegisterTable]:
    """Empty images covering the points of each table, plus the ``control`` holding
    registers."""
    used: dict[Function, list[int]] = {function: [] for function in Function}
    for point in points:
        used[point.function].extend(range(point.address, point.address + point.width))
    used[Function.HOLDING].extend(control)
    tables = {}
    for function, addresses in used.items():
        if not addresses:
            continue
        if function.is_bits:
            start, end = min(addresses) // 16, max(addresses) // 16 + 1
        else:
            start, end = min(addresses), max(addresses) + 1
        tables[function] = RegisterTable(function, start, [0] * (end - start))
    return tables


def _runs(addresses: Iterable[int]) -> list[range]:
    """Contiguous runs of the given addresses."""
    runs: list[range] = []
    for address in sorted(set(addresses)):
        if runs and runs[-1].stop == address:
            runs[-1] = range(runs[-1].start, address + 1)
        else:
            runs.append(range(address, address + 1))
    return runs


def datastore_layout(
    points: list[ModbusPoint], control: Iterable[int], status: Iterable[int] = ()
) -> tuple[list[SimData], ...]:
    """The datastore layout: only the profile's addresses and the control block exist, so
    the server answers exception 2 for anything else, and only writable points and the
    ``control`` registers accept writes (``status`` registers are read-only)."""
    writable: set[int] = set(control)
    readonly: set[int] = set(status)
    bits: dict[Function, set[int]] = {Function.COIL: set(), Function.DISCRETE: set()}
    for point in points:
        span = range(point.address, point.address + point.width)
        if point.function.is_bits:
            bits[point.function].update(span)
        elif point.function is Function.HOLDING and point.writable:
            writable.update(span)
        elif point.function is Function.HOLDING:
            readonly.update(span)
    inputs = {
        a
        for p in points
        if p.function is Function.INPUT
        for a in range(p.address, p.address + p.width)
    }

    def registers(addresses: set[int], *, read_only: bool) -> list[SimData]:
        return [
            SimData(
                run.start, values=[0] * len(run), datatype=SimType.REGISTERS, readonly=read_only
            )
            for run in _runs(addresses)
        ]

    def bit_block(addresses: set[int]) -> list[SimData]:
        return [
            SimData(run.start, values=[False] * len(run), datatype=SimType.BITS)
            for run in _runs(addresses)
        ]

    holding = registers(readonly, read_only=True) + registers(writable, read_only=False)
    layout = (
        bit_block(bits[Function.COIL]),
        bit_block(bits[Function.DISCRETE]),
        sorted(holding, key=lambda entry: entry.address),
        registers(inputs, read_only=True),
    )
    # SimDevice wants every table to hold something; a table the map does not use gets one
    # placeholder, which the device's access hook never lets a request reach.
    for index, table in enumerate(layout):
        if not table:
            bits_table = index < 2
            table.append(
                SimData(
                    0,
                    values=[False] if bits_table else [0],
                    datatype=SimType.BITS if bits_table else SimType.REGISTERS,
                    readonly=True,
                )
            )
    return layout
