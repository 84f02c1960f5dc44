"""The agent's one-step decoding of register answers, over arbitrary bytes from the wire:
the registers pymodbus' own decoding gives, the bytes kept as they came, and for a frame
pymodbus refuses, a refusal of the kind its decoder turns into a dropped frame (never a
crash)."""

from __future__ import annotations

import struct

from hypothesis import example, given
from hypothesis import strategies as st
from pymodbus.exceptions import ModbusException
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersResponse,
    ReadInputRegistersResponse,
)

from smartcity.agents.modbus.responses import HoldingRegisters, InputRegisters

DROPPED = (ModbusException, ValueError, IndexError, struct.error)
"""What pymodbus' frame decoder catches and answers by dropping the frame."""


@given(st.binary(max_size=300), st.booleans())
@example(b"", True)
@example(b"\x04\x00\x01\x00\x02", True)
@example(b"\x03\x00\x01\x00", False)  # an odd byte count
@example(b"\x06\x00\x01", True)  # shorter than it says
def test_registers_as_pymodbus_decodes_them(data: bytes, holding: bool) -> None:
    ours = HoldingRegisters() if holding else InputRegisters()
    theirs = ReadHoldingRegistersResponse() if holding else ReadInputRegistersResponse()
    try:
        theirs.decode(data)
    except DROPPED:
        refused = True
    else:
        refused = False
    try:
        ours.decode(data)
    except ModbusException:
        assert refused, data
        return
    assert not refused, data
    assert ours.registers == theirs.registers
    assert ours.raw == b"".join(register.to_bytes(2, "big") for register in ours.registers)
    assert ours.function_code == theirs.function_code
    assert str(ours)  # pymodbus formats every answer it decodes
