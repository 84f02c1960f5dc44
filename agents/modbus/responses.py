"""Register read answers, decoded in one step.

pymodbus decodes a read-registers answer one register at a time (a ``struct`` call per
register) and formats every answer into a debug string whether or not anything logs it.
At 1,600 answers of 120 registers a second that is a tenth of the agent's core. The
classes here replace pymodbus' responses to functions 3 and 4 on the agent's own clients
(:meth:`~pymodbus.client.ModbusBaseClient.register`): the same ``registers``, unpacked with
one call, and the answer's bytes kept as they came, which the block decoder unpacks
directly (:class:`~smartcity.agents.modbus.codec.BlockDecoder`).
"""

from __future__ import annotations

import struct

from pymodbus.exceptions import ModbusIOException
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersResponse,
    ReadInputRegistersResponse,
)


class _Registers:
    """Decoding shared by both answers; a mixin ahead of the pymodbus response class."""

    function_code: int
    registers: list[int]
    raw: bytes
    """The register bytes of the answer, big-endian words as on the wire."""

    def decode(self, data: bytes) -> None:
        size = data[0] if data else 0
        if not data or size >= len(data):
            raise ModbusIOException(
                f"byte_count {size} > length of packet {len(data)}",
                function_code=self.function_code,
            )
        self.raw = data[1 : 1 + size - size % 2]  # an odd last byte is no register
        self.registers = list(struct.unpack(f">{size // 2}H", self.raw))

    def __str__(self) -> str:
        return f"{type(self).__name__}(registers={len(self.registers)})"


class HoldingRegisters(_Registers, ReadHoldingRegistersResponse):
    """The answer to "read holding registers" (function 3)."""


class InputRegisters(_Registers, ReadInputRegistersResponse):
    """The answer to "read input registers" (function 4)."""


RESPONSES = (HoldingRegisters, InputRegisters)
