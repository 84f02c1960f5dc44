"""The control block every Modbus simulator serves, and the fault numbering behind it.

Per unit id, in holding registers:

* ``200`` fault code: 0 clears every fault, otherwise a :class:`Fault` code the simulator
  serves (any other code is refused with exception 3, illegal data value);
* ``201`` duration in seconds (0 means 10 s);
* ``202`` active faults, a bit mask: bit ``code - 1`` for each fault in force;
* ``203`` which simulator answers (:class:`SimulatorKind`), read-only, so that a tool can
  name the faults the device it talks to knows.

The fault codes are one numbering across simulators, so that a code meant for one kind of
device is refused by every other. A unit serves the block (:mod:`.modbus_unit`);
``smartcity sim fault`` writes it (:mod:`.faults`) without loading a simulator.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum

__all__ = [
    "CONTROL",
    "CONTROL_ADDRESS",
    "DEFAULT_FAULT_SECONDS",
    "FAULT_OF_CODE",
    "KIND_ADDRESS",
    "Fault",
    "SimulatorKind",
]

CONTROL_ADDRESS = 200
"""Holding register of the fault code; duration at 201, active mask at 202, kind at 203."""
CONTROL = range(CONTROL_ADDRESS, CONTROL_ADDRESS + 3)
"""The writable part of the control block."""
KIND_ADDRESS = CONTROL_ADDRESS + 3
DEFAULT_FAULT_SECONDS = 10.0


class Fault(StrEnum):
    VOLTAGE_SAG = "voltage_sag"
    FROZEN = "frozen"
    NO_ANSWER = "no_answer"
    POLLUTION_EPISODE = "pollution_episode"

    @property
    def code(self) -> int:
        """The code written to holding register 200 to trigger this fault."""
        return _FAULT_CODES[self]


_FAULT_CODES = {
    Fault.VOLTAGE_SAG: 1,
    Fault.FROZEN: 2,
    Fault.NO_ANSWER: 3,
    Fault.POLLUTION_EPISODE: 4,
}
FAULT_OF_CODE = {code: fault for fault, code in _FAULT_CODES.items()}


class SimulatorKind(IntEnum):
    """Which simulator a unit is, as holding register 203 says."""

    SUBSTATION = 1
    AIR_QUALITY_STATION = 2

    @property
    def title(self) -> str:
        """What the device is, in words."""
        return _KIND_TITLES[self]

    @property
    def faults(self) -> tuple[Fault, ...]:
        """The faults this kind of device can be given, in the order help texts list them."""
        return _KIND_FAULTS[self]


_KIND_TITLES = {
    SimulatorKind.SUBSTATION: "substation",
    SimulatorKind.AIR_QUALITY_STATION: "air-quality station",
}
_KIND_FAULTS = {
    SimulatorKind.SUBSTATION: (Fault.VOLTAGE_SAG, Fault.FROZEN, Fault.NO_ANSWER),
    SimulatorKind.AIR_QUALITY_STATION: (Fault.POLLUTION_EPISODE, Fault.FROZEN, Fault.NO_ANSWER),
}
