"""A simulated 110/22 kV substation served by a real pymodbus server (TCP, optionally RTU).

Each Modbus unit id is one transformer bay (63 MVA, 110/22 kV, twelve 22 kV feeders) with its
own state; its physics and the writes it takes are in :mod:`.substation_bay`. The register map
is not written here: it is the device profile ``profiles/substation.yaml``, the same file an
agent loads to read the simulator, so the simulator and the agent cannot disagree about an
address, a type or a byte order. Values are encoded with the project's reference codec
(:mod:`smartcity.agents.modbus.codec`).

Faults are injected on command, through the protocol itself or from Python
(:meth:`Substation.inject`), through the control block every simulator shares
(:mod:`.modbus_control`), per unit id, in holding registers:

* ``200`` fault code: 0 clear all faults, 1 voltage sag (phase voltages drop to 70..80 %),
  2 frozen sensors (measurements stop changing), 3 stop answering (no response at all);
* ``201`` duration in seconds (0 means 10 s);
* ``202`` active faults, a bit mask (bit 0 sag, bit 1 frozen);
* ``203`` the simulator's kind (1, a substation), read-only.

A register can also be made unreadable (:meth:`Substation.refuse_address`): any request that
covers it is answered with exception 2, the way a device answers for an address its firmware
does not map. The simulator counts the requests it receives per unit id and the TCP
connections it accepts, so tests can see the agent's traffic from the device's side.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from pathlib import Path

from smartcity.agents.profile import ModbusDevice, load_profile
from smartcity.agents.sim.modbus_control import CONTROL_ADDRESS, DEFAULT_FAULT_SECONDS, Fault
from smartcity.agents.sim.modbus_sim import ModbusSimulator
from smartcity.agents.sim.modbus_unit import UTC_OFFSET
from smartcity.agents.sim.substation_bay import VOLTAGE_SETPOINT_KV, Bay, load_curve

__all__ = [
    "CONTROL_ADDRESS",
    "DEFAULT_FAULT_SECONDS",
    "SUBSTATION_PROFILE",
    "UTC_OFFSET",
    "VOLTAGE_SETPOINT_KV",
    "Bay",
    "Fault",
    "Substation",
    "load_curve",
    "load_substation_profile",
    "serve_substation",
]

SUBSTATION_PROFILE = Path(__file__).parent / "profiles" / "substation.yaml"
"""The register map, as a device profile the agent loads directly."""


class Substation(ModbusSimulator):
    """The simulator: bays on unit ids ``first_unit..first_unit+devices-1``, one TCP server
    and, when ``serial_port`` is given, an RTU server on that serial device too.

    Use as an async context manager; ``port`` is the bound TCP port (ask for port 0 to get a
    free one). ``period=None`` stops the clock-driven updates: tests call :meth:`step`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 5020,
        *,
        devices: int = 1,
        first_unit: int = 1,
        serial_port: str | None = None,
        baudrate: int = 19200,
        period: float | None = 1.0,
        clock: Callable[[], float] = time.time,
        seed: int | None = None,
        profile: ModbusDevice | None = None,
    ) -> None:
        if devices < 1 or first_unit < 1 or first_unit + devices - 1 > 247:
            raise ValueError("unit ids must lie in 1..247 (devices >= 1, first_unit >= 1)")
        if period is not None and period <= 0:
            raise ValueError("period must be a positive number of seconds, or None")
        profile = profile or load_substation_profile()
        seeds = random.Random(seed)
        bays = [
            Bay(unit, profile, clock, random.Random(seeds.getrandbits(64)))
            for unit in range(first_unit, first_unit + devices)
        ]
        super().__init__(
            bays,
            profile=profile,
            host=host,
            port=port,
            serial_port=serial_port,
            baudrate=baudrate,
            period=period,
            clock=clock,
        )
        self.bays: dict[int, Bay] = {bay.unit: bay for bay in bays}


def load_substation_profile() -> ModbusDevice:
    profile = load_profile(SUBSTATION_PROFILE)
    assert isinstance(profile, ModbusDevice)
    return profile


async def serve_substation(
    host: str = "127.0.0.1",
    port: int = 5020,
    *,
    devices: int = 1,
    first_unit: int = 1,
    serial_port: str | None = None,
    baudrate: int = 19200,
    period: float = 1.0,
    seed: int | None = None,
    stop_event: asyncio.Event | None = None,
    on_ready: Callable[[Substation], None] | None = None,
) -> None:
    """Serve the substation until ``stop_event`` is set (or the task is cancelled).

    ``on_ready`` is called once the servers listen, with the simulator (its ``port`` is the
    bound one when ``port`` was 0).
    """
    async with Substation(
        host,
        port,
        devices=devices,
        first_unit=first_unit,
        serial_port=serial_port,
        baudrate=baudrate,
        period=period,
        seed=seed,
    ) as simulator:
        if on_ready is not None:
            on_ready(simulator)
        await (stop_event or asyncio.Event()).wait()
