"""Helpers for the Modbus tests: a reading collector, a running driver, a socat serial pair,
a settable clock and the expected values read from the simulator's own datastore.

Everything here is real: the simulator is a pymodbus server on a loopback port (or on one end
of a pseudo-terminal pair made by socat), and expected values come from the server's
datastore, decoded with the reference codec, never from the driver under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import shutil
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from smartcity.agents.modbus.codec import decode
from smartcity.agents.profile import ModbusDevice, ModbusPoint
from smartcity.agents.reading import Quality, Reading, Value
from smartcity.agents.resilience import Backoff, CircuitBreaker
from smartcity.agents.sim.substation import Substation


@dataclass
class SettableClock:
    """A clock the test moves by hand (for the simulator's load curve and fault timers)."""

    now: float

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def fast_breaker() -> CircuitBreaker:
    """Opens after two failed cycles and probes again within a few tenths of a second."""
    return CircuitBreaker(threshold=2, backoff=Backoff(initial=0.2, maximum=0.4))


def quick(profile: ModbusDevice, **changes: object) -> ModbusDevice:
    """A profile with test-sized intervals and timeouts (values already typed)."""
    base: dict[str, object] = {"poll_interval": 0.05, "timeout": 0.25, "retries": 0}
    base.update(changes)
    return profile.model_copy(update=base)


async def expected_value(simulator: Substation, unit: int, point: ModbusPoint) -> Value:
    """What the simulator's datastore holds for ``point``, decoded by the reference codec."""
    if point.function.is_bits:
        (bit,) = await simulator.read_bits(unit, point.function, point.address, 1)
        return bool(bit)
    registers = await simulator.read_registers(unit, point.function, point.address, point.width)
    return decode(registers, point)


def good_values(readings: Sequence[Reading]) -> dict[str, Value]:
    bad = [r for r in readings if r.quality is not Quality.GOOD]
    assert not bad, f"not GOOD: {[(r.metric, r.quality, r.reason) for r in bad]}"
    return {r.metric: r.value for r in readings if r.value is not None}


def require_serial() -> str:
    """The socat binary; skips (fails in strict CI) when socat or pyserial is missing."""
    socat = shutil.which("socat")
    if socat is None:
        pytest.skip("socat is not installed (apt-get install socat)")
    if importlib.util.find_spec("serial") is None:
        pytest.skip("pyserial is not installed (pymodbus[serial]); Modbus RTU needs it")
    return socat


@contextlib.asynccontextmanager
async def pty_pair(folder: Path) -> AsyncIterator[tuple[str, str]]:
    """Two linked pseudo-terminals, like the two ends of a null-modem serial cable."""
    socat = require_serial()
    a, b = folder / "tty-server", folder / "tty-agent"
    process = await asyncio.create_subprocess_exec(
        socat,
        "-d",
        "-d",
        f"pty,raw,echo=0,link={a}",
        f"pty,raw,echo=0,link={b}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 5
        while not (a.exists() and b.exists()):
            if process.returncode is not None or time.monotonic() > deadline:
                raise AssertionError("socat did not create the pseudo-terminal pair")
            await asyncio.sleep(0.02)
        yield str(a), str(b)
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()
