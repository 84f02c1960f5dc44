"""The Modbus part of a device profile: register types and data tables, byte and word
order, a point's address and scaling, the endpoint (TCP or RTU) and the device's read limits.

A profile that the device cannot be read with as written is refused here: overlapping
points, a type given the wrong number of registers, a point running past address 65535, a
writable input register.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import Field, field_validator, model_validator

from smartcity.agents.profile_base import DeviceBase, PointBase, ProfileModel

MAX_READ_REGISTERS = 125
"""Modbus application protocol limit for one Read Holding/Input Registers request."""
MAX_READ_BITS = 2000
"""Modbus application protocol limit for one Read Coils/Discrete Inputs request."""


class DataType(StrEnum):
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    BOOL = "bool"

    @property
    def registers(self) -> int:
        """How many 16-bit registers one value occupies."""
        return _REGISTERS[self]


_REGISTERS = {
    DataType.INT16: 1,
    DataType.UINT16: 1,
    DataType.INT32: 2,
    DataType.UINT32: 2,
    DataType.FLOAT32: 2,
    DataType.INT64: 4,
    DataType.UINT64: 4,
    DataType.FLOAT64: 4,
    DataType.BOOL: 1,
}


class Function(StrEnum):
    """The four Modbus data tables; each is its own address space."""

    HOLDING = "holding"
    INPUT = "input"
    COIL = "coil"
    DISCRETE = "discrete"

    @property
    def is_bits(self) -> bool:
        return self in (Function.COIL, Function.DISCRETE)

    @property
    def is_writable(self) -> bool:
        return self in (Function.HOLDING, Function.COIL)


Order = Literal["big", "little"]

_NOTATION: dict[str, tuple[Order, Order]] = {
    # notation: (byte order inside a register, word order across registers)
    "ABCD": ("big", "big"),
    "CDAB": ("big", "little"),
    "BADC": ("little", "big"),
    "DCBA": ("little", "little"),
}


class ModbusPoint(PointBase):
    address: int = Field(ge=0, le=65535)
    function: Function = Function.HOLDING
    type: DataType = DataType.UINT16
    byte_order: Order = "big"
    word_order: Order = "big"
    order: str | None = Field(
        default=None, description="ABCD, CDAB, BADC or DCBA; instead of byte_order/word_order"
    )
    registers: int | None = Field(
        default=None, ge=1, description="optional; when given it must match the type's width"
    )
    bit: int | None = Field(default=None, ge=0, le=15, description="bool inside a register")
    scale: float = 1.0
    offset: float = 0.0

    @model_validator(mode="before")
    @classmethod
    def _notation(cls, data: Any) -> Any:
        if not isinstance(data, Mapping) or data.get("order") is None:
            return data
        code = str(data["order"]).upper()
        if code not in _NOTATION:
            raise ValueError(f"order {data['order']!r} is not one of ABCD, CDAB, BADC, DCBA")
        if "byte_order" in data or "word_order" in data:
            raise ValueError("give either order or byte_order/word_order, not both")
        byte_order, word_order = _NOTATION[code]
        # Kept as the two explicit keys only, so a profile written back out is unambiguous.
        return {**data, "order": None, "byte_order": byte_order, "word_order": word_order}

    @model_validator(mode="after")
    def _shape(self) -> ModbusPoint:
        if self.function.is_bits and self.type is not DataType.BOOL:
            raise ValueError(f"a {self.function} holds single bits: its type must be bool")
        if self.function.is_bits and self.bit is not None:
            raise ValueError(f"bit applies to registers, not to a {self.function}")
        if not self.function.is_bits and self.type is DataType.BOOL and self.bit is None:
            raise ValueError("a bool in a register needs bit: 0..15")
        if self.bit is not None and self.type is not DataType.BOOL:
            raise ValueError("bit is only for type bool")
        if self.registers is not None and self.registers != self.type.registers:
            raise ValueError(
                f"registers: {self.registers} does not fit {self.type}, which takes "
                f"{self.type.registers} register(s)"
            )
        if self.address + self.width - 1 > 65535:
            raise ValueError(f"{self.type} at {self.address} runs past address 65535")
        if self.scale == 0 or not math.isfinite(self.scale) or not math.isfinite(self.offset):
            raise ValueError("scale must be a non-zero finite number and offset finite")
        if self.writable and not self.function.is_writable:
            raise ValueError(f"a {self.function} register cannot be written; only holding/coil")
        if self.deadband is not None and self.type is DataType.BOOL:
            raise ValueError("deadband does not apply to a bool")
        return self

    @property
    def width(self) -> int:
        """Registers (or bits, for coils and discrete inputs) the point occupies."""
        return 1 if self.function.is_bits else self.type.registers


class ModbusEndpoint(ProfileModel):
    scheme: Literal["tcp", "rtu"]
    host: str = ""
    port: int = 502
    device: str = ""
    baudrate: int = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8


def parse_modbus_endpoint(text: str) -> ModbusEndpoint:
    """``tcp://host:port`` or ``rtu:///dev/ttyUSB0?baudrate=9600&parity=N&stopbits=1``."""
    parts = urlsplit(text)
    if parts.scheme == "tcp":
        if not parts.hostname:
            raise ValueError(f"{text!r}: a TCP endpoint needs a host (tcp://10.20.0.5:502)")
        if parts.path not in ("", "/") or parts.query:
            raise ValueError(f"{text!r}: a TCP endpoint is only tcp://host:port")
        try:
            port = parts.port or 502
        except ValueError:
            raise ValueError(f"{text!r}: the port is not a number from 1 to 65535") from None
        return ModbusEndpoint(scheme="tcp", host=parts.hostname, port=port)
    if parts.scheme == "rtu":
        if not parts.path or parts.netloc:
            raise ValueError(f"{text!r}: an RTU endpoint is rtu:///dev/ttyUSB0?baudrate=9600")
        known = {"baudrate", "parity", "stopbits", "bytesize"}
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        unknown = sorted(set(query) - known)
        if unknown:
            raise ValueError(f"{text!r}: unknown serial option(s) {', '.join(unknown)}")
        options: dict[str, Any] = {}
        for key, value in query.items():
            options[key] = value.upper() if key == "parity" else _int(text, key, value)
        return ModbusEndpoint(scheme="rtu", device=parts.path, **options)
    raise ValueError(
        f"{text!r}: a Modbus endpoint starts with tcp:// or rtu:// "
        "(tcp://10.20.0.5:502, rtu:///dev/ttyUSB0?baudrate=9600)"
    )


def _int(text: str, key: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{text!r}: {key}={value!r} is not a whole number") from None


class ModbusDevice(DeviceBase):
    protocol: Literal["modbus"]
    unit_id: int = Field(default=1, ge=0, le=255)
    retries: int = Field(default=2, ge=0, le=10)
    max_gap: int = Field(
        default=16, ge=0, le=MAX_READ_REGISTERS, description="unused registers a read may span"
    )
    max_registers: int = Field(default=MAX_READ_REGISTERS, ge=1, le=MAX_READ_REGISTERS)
    max_bits: int = Field(default=MAX_READ_BITS, ge=1, le=MAX_READ_BITS)
    points: list[ModbusPoint] = Field(min_length=1)

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        parse_modbus_endpoint(value)
        return value

    @property
    def connection(self) -> ModbusEndpoint:
        return parse_modbus_endpoint(self.endpoint)

    @model_validator(mode="after")
    def _no_overlap(self) -> ModbusDevice:
        # Each table is its own address space. Bools addressing single bits of one register
        # may share it; anything else that shares a register would decode the same bytes
        # twice under two names, which is always a wiring mistake.
        owners: dict[tuple[Function, int], list[ModbusPoint]] = defaultdict(list)
        for point in self.points:
            for address in range(point.address, point.address + point.width):
                for other in owners[(point.function, address)]:
                    if point.bit is None or other.bit is None or point.bit == other.bit:
                        raise ValueError(
                            f"points {other.name!r} and {point.name!r} overlap at "
                            f"{point.function} address {address}"
                        )
                owners[(point.function, address)].append(point)
        for point in self.points:
            if point.width > self.max_registers and not point.function.is_bits:
                raise ValueError(
                    f"point {point.name!r} needs {point.width} registers but max_registers "
                    f"is {self.max_registers}"
                )
        return self
