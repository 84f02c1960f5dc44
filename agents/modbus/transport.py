"""One Modbus device's requests over its line: the line it shares with the devices behind the
same endpoint (:mod:`~smartcity.agents.modbus.lines`), the connection opened when a request
needs it, each read sent with its retries (``busy`` answers are retried like a timeout), a
write sent once, and a failure put in an engineer's words (``timeout after 2.0 s``,
``modbus exception 2: illegal data address``).

pymodbus' own retry and reconnect loops are switched off (``retries=0``,
``reconnect_delay=0``): the profile's ``retries`` are sent here, and the pacing of a device
that stays silent (circuit breaker, back-off) is the agent's device loop's. After a failed
request on a TCP connection that no other device uses, the connection is opened afresh on the
next request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable

from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU

from smartcity.agents.driver import DeviceStats
from smartcity.agents.modbus.blocks import Block
from smartcity.agents.modbus.lines import Client, Line, LineConflictError, attach, detach
from smartcity.agents.profile import Function, ModbusDevice, ModbusPoint
from smartcity.agents.reading import Value

# pymodbus logs every timeout at ERROR with a dump of recent frames; the agent already turns
# each failure into BAD readings with the reason and logs state changes once, so the
# library's own messages are kept for real failures of the library.
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}
BUSY = (5, 6)
"""Exception codes that mean "ask again later": retried like a timeout."""


def honour_cancellation() -> None:
    """Raise if this task was cancelled while a pymodbus call was completing.

    pymodbus waits for answers with :func:`asyncio.wait_for`, which on Python 3.11 returns
    the result instead of raising when the cancellation arrives in the same loop iteration as
    the answer. At thousands of requests per second that is most cancellations, and a driver
    that cannot be stopped hangs the agent's shutdown. The task still counts the request
    (:meth:`asyncio.Task.cancelling`), so it is honoured here, after every pymodbus await.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def exception_reason(code: int) -> str:
    return f"modbus exception {code}: {EXCEPTION_NAMES.get(code, 'unknown exception code')}"


class NoAnswerError(Exception):
    """The device could not be reached: no connection or no answer (after retries)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Transport:
    """The requests of one device, described by its profile, counted in its ``stats``."""

    def __init__(self, profile: ModbusDevice, stats: DeviceStats) -> None:
        self.profile = profile
        self.stats = stats
        self.endpoint = profile.connection
        self._line: Line | None = None
        if self.endpoint.scheme == "tcp":
            self.where = f"{self.endpoint.host}:{self.endpoint.port}"
        else:
            self.where = self.endpoint.device

    async def request(self, block: Block, attempts: int) -> ModbusPDU:
        """The device's answer to ``block``'s read (an exception response included), in up to
        ``attempts`` tries; :class:`NoAnswerError` with the last reason if there was none."""
        reason = ""
        for attempt in range(attempts):
            try:
                async with self._guard():
                    await self._connect()
                    started = time.perf_counter()
                    self.stats.requests += 1
                    response = await self._send(block)
                    honour_cancellation()
                    self.stats.record_latency((time.perf_counter() - started) * 1000)
            except NoAnswerError as exc:
                reason = exc.reason
            except ModbusException as exc:
                reason = self.explain(exc)
                await self.reset()
            else:
                if not (
                    response.isError()
                    and response.exception_code in BUSY
                    and attempt + 1 < attempts
                ):
                    return response
                reason = exception_reason(response.exception_code)
            self.stats.record_error(reason)
        raise NoAnswerError(reason)

    async def open(self) -> None:
        """Connect now, unless the line is connected; :class:`NoAnswerError` if it cannot."""
        async with self._guard():
            await self._connect()

    def _send(self, block: Block) -> Awaitable[ModbusPDU]:
        client = self.require_client()
        unit = self.profile.unit_id
        function = block.function
        if function is Function.HOLDING:
            return client.read_holding_registers(block.address, count=block.count, device_id=unit)
        if function is Function.INPUT:
            return client.read_input_registers(block.address, count=block.count, device_id=unit)
        if function is Function.COIL:
            return client.read_coils(block.address, count=block.count, device_id=unit)
        return client.read_discrete_inputs(block.address, count=block.count, device_id=unit)

    async def write(self, point: ModbusPoint, value: Value, registers: list[int]) -> ModbusPDU:
        """One write request, never retried: a write whose answer was lost may have taken
        effect. ``registers`` is the encoded value of a register point."""
        async with self._guard():
            await self._connect()
            client = self.require_client()
            unit = self.profile.unit_id
            if point.function is Function.COIL:
                response = await client.write_coil(point.address, bool(value), device_id=unit)
            elif len(registers) == 1:
                response = await client.write_register(point.address, registers[0], device_id=unit)
            else:
                response = await client.write_registers(point.address, registers, device_id=unit)
            honour_cancellation()
            self.stats.requests += 1
        return response

    async def close(self) -> None:
        line, self._line = self._line, None
        self.stats.connected = False
        if line is not None:
            detach(line, self)

    async def reset(self) -> None:
        """After a failed request: a TCP connection of this device alone is opened afresh
        on the next request. A shared one stays (pymodbus drops a late answer by its
        transaction id), and so does a serial port (there is nothing to reopen)."""
        if self.endpoint.scheme == "tcp" and not (self._line is not None and self._line.shared):
            await self.close()

    def _guard(self) -> asyncio.Lock:
        """The lock a request holds: its line's, shared with the other devices on it."""
        if self._line is None:
            try:
                self._line = attach(
                    self.endpoint,
                    self,
                    timeout=self.profile.timeout,
                    name=f"{self.profile.site}/{self.profile.device}",
                )
            except LineConflictError as exc:
                raise NoAnswerError(str(exc)) from None
        return self._line.lock

    async def _connect(self) -> None:
        client = self.require_client()
        if client.connected:
            return
        started = time.monotonic()
        connected = await client.connect()
        honour_cancellation()
        if connected:
            self.stats.connected = True
            return
        await self.close()
        if self.endpoint.scheme == "rtu":
            raise NoAnswerError(f"cannot open serial port {self.where}")
        if time.monotonic() - started >= self.profile.timeout * 0.9:
            raise NoAnswerError(
                f"cannot connect to {self.where}: no answer within {self.profile.timeout} s"
            )
        raise NoAnswerError(f"cannot connect to {self.where}: connection refused or unreachable")

    def require_client(self) -> Client:
        """The client of the device's line, which the first request attaches to."""
        if self._line is None:
            raise NoAnswerError(f"not connected to {self.where}")
        return self._line.client

    def explain(self, exc: ModbusException) -> str:
        if isinstance(exc, ModbusIOException) and "No response" in str(exc):
            return f"timeout after {self.profile.timeout} s"
        if isinstance(exc, ConnectionException):
            return f"connection to {self.where} lost"
        return f"bad answer: {exc}"
