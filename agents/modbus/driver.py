"""The Modbus driver: one device over TCP or RTU, read with as few requests as possible.

A read of the points asked for (the agent's device loop asks for those that are due) goes
out in the planner's merged requests, one after the other (a Modbus device, above all on a
serial line, serves one request at a time); each answer is decoded with the planned
request's :class:`~smartcity.agents.modbus.blocks.Block`, compiled once and kept with the
plan. Requests go out through the device's
:class:`~smartcity.agents.modbus.transport.Transport`, which shares the line with the other
devices on it and owns retries and reconnection.

Point-level faults become readings with ``BAD`` quality and a reason:

* an exception response: ``modbus exception 2: illegal data address``. A merged read
  refused with exception 2 is bisected to find what the device refuses (one point, an
  unmapped gap, a boundary between memory banks); only that is cut out of the plan, the other
  points stay merged around it, and the cut expires so that merging is tried again later
  (:mod:`~smartcity.agents.modbus.refusals`). One wrong address costs one point and a
  request or two per cycle, not the whole device.
* a short answer: ``short answer: 3 of 4 values``.

No answer (``timeout after 2.0 s``) or no connection (``cannot connect to host:port``) after
``retries`` further attempts is the device failing: the rest of the read is not sent, and
:class:`~smartcity.agents.driver.DeviceUnreachableError` is raised with the reason and the
readings got before, for the agent's breaker to count
(:mod:`~smartcity.agents.device_loop`).

Every reading is handed over; which are worth publishing (deadband, keep-alive) the agent
decides (:mod:`~smartcity.agents.exception_report`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

import structlog
from pymodbus.exceptions import ModbusException

from smartcity.agents.driver import (
    DeviceDriver,
    DeviceUnreachableError,
    WriteRefusedError,
    bad_readings,
)
from smartcity.agents.modbus.blocks import Block, block_of, split_index
from smartcity.agents.modbus.codec import EncodeError, encode
from smartcity.agents.modbus.planner import ReadRequest, plan_reads
from smartcity.agents.modbus.refusals import REMERGE_AFTER, Refusals
from smartcity.agents.modbus.transport import NoAnswerError, Transport, exception_reason
from smartcity.agents.profile import Function, ModbusDevice, ModbusPoint, PointBase
from smartcity.agents.reading import Quality, Reading, Value

log = structlog.stdlib.get_logger(__name__)

_PLANS_KEPT = 64
"""Sets of points whose plans are kept (the agent reads a few: one per combination of due
poll classes)."""


class ModbusDriver(DeviceDriver):
    """Reads and writes one Modbus device described by a :class:`ModbusDevice` profile."""

    profile: ModbusDevice

    def __init__(
        self,
        profile: ModbusDevice,
        *,
        clock: Callable[[], float] = time.monotonic,
        remerge_after: float = REMERGE_AFTER,
    ) -> None:
        super().__init__(profile)
        self.clock = clock
        self.refusals = Refusals(clock=clock, remerge_after=remerge_after)
        """Where merged reads of this device must stop, learnt from its refusals."""
        self._points = {point.name: point for point in profile.points}
        self._plans: dict[tuple[str, ...], list[Block]] = {}
        """The blocks of each set of points read, planned with the cuts in force then."""
        self._planned_with = self.refusals.in_force
        self._link = Transport(profile, self.stats)
        self.endpoint, self.where = self._link.endpoint, self._link.where

    # -- public contract -------------------------------------------------------------------

    async def connect(self) -> None:
        try:
            await self._link.open()
        except NoAnswerError as exc:
            raise DeviceUnreachableError(exc.reason) from None

    async def read(self, names: Sequence[str], *, probe: bool = False) -> list[Reading]:
        self.refusals.expire()
        if self.refusals.in_force is not self._planned_with:
            # a cut was learnt or ran out: plan again (merged reads across an expired cut)
            self._plans.clear()
            self._planned_with = self.refusals.in_force
        key = tuple(names)
        blocks = self._plans.get(key)
        if blocks is None:
            if len(self._plans) >= _PLANS_KEPT:
                self._plans.clear()
            points = [self._points[name] for name in key if name in self._points]
            blocks = self._plans[key] = self._plan(points)
        return await self._read(blocks, attempts=1 if probe else 1 + self.profile.retries)

    async def read_raw(self) -> dict[str, list[int] | list[bool]]:
        """Each point's registers (or bit) exactly as the device sent them: what an engineer
        compares with the device's documentation when a value decodes wrong. Points the
        device refused are missing; an unreachable device raises
        :class:`DeviceUnreachableError`."""
        raw: dict[str, list[int] | list[bool]] = {}
        for block in self._plan(self.profile.points):
            try:
                response = await self._link.request(block, 1 + self.profile.retries)
            except NoAnswerError as exc:
                raise DeviceUnreachableError(exc.reason) from None
            if response.isError():
                continue
            answer = list(response.bits if block.function.is_bits else response.registers)
            for point in block.points:
                raw[point.name] = block.request.slice_for(point, answer)
        return raw

    async def write(self, point: PointBase, value: Value) -> Value:
        target = self._points.get(point.name)
        if not isinstance(point, ModbusPoint) or target != point:
            raise WriteRefusedError(
                f"{point.name!r} is not a point of device {self.profile.device}"
            )
        if not point.function.is_writable:
            raise WriteRefusedError(f"{point.name}: a {point.function} cannot be written")
        registers: list[int] = []
        if point.function is Function.COIL:
            if not isinstance(value, bool | int) or value not in (0, 1):
                raise WriteRefusedError(f"{point.name}: a coil takes true or false, not {value!r}")
        else:
            try:
                registers = encode(value, point)
            except EncodeError as exc:
                raise WriteRefusedError(str(exc)) from None
        try:
            response = await self._link.write(point, value, registers)
        except NoAnswerError as exc:
            raise WriteRefusedError(f"{point.name}: {exc.reason}") from None
        except ModbusException as exc:
            reason = self._link.explain(exc)
            await self._link.reset()
            raise WriteRefusedError(
                f"{point.name}: {reason}; the write may or may not have taken effect"
            ) from None
        if response.isError():
            reason = exception_reason(response.exception_code)
            raise WriteRefusedError(f"{point.name}: device refused the write: {reason}")
        log.info("modbus write", device=self.profile.device, point=point.name, value=value)
        request = ReadRequest(point.function, point.address, point.width, (point,))
        try:
            (reading,) = await self._read([Block(request)], attempts=1 + self.profile.retries)
        except DeviceUnreachableError as exc:
            (reading,) = bad_readings([point], exc.reason)
        if reading.quality is not Quality.GOOD or reading.value is None:
            raise WriteRefusedError(
                f"{point.name}: written, but reading it back failed: {reading.reason}"
            )
        return reading.value

    async def reset(self) -> None:
        await self._link.reset()

    async def close(self) -> None:
        await self._link.close()

    # -- reading ---------------------------------------------------------------------------

    def _plan(self, points: Iterable[ModbusPoint]) -> list[Block]:
        requests = plan_reads(
            points,
            max_gap=self.profile.max_gap,
            max_registers=self.profile.max_registers,
            max_bits=self.profile.max_bits,
            cuts=self.refusals.in_force,
        )
        return [Block(request) for request in requests]

    async def _read(self, blocks: Sequence[Block], *, attempts: int) -> list[Reading]:
        """Read ``blocks`` in order. On the first unreachable failure the rest are not sent:
        :class:`DeviceUnreachableError` with the reason and the readings got so far."""
        readings: list[Reading] = []
        for block in blocks:
            try:
                part, _ = await self._read_part(block, attempts)
            except NoAnswerError as exc:
                raise DeviceUnreachableError(exc.reason, readings) from None
            readings += part
        return readings

    async def _read_part(self, block: Block, attempts: int) -> tuple[list[Reading], bool]:
        """The block's readings, and whether the device answered the read as a whole."""
        response = await self._link.request(block, attempts)
        if not response.isError():
            answer = response.bits if block.function.is_bits else response.registers
            if len(answer) < block.count:
                reason = f"short answer: {len(answer)} of {block.count} values"
                self.stats.record_error(reason)
                return bad_readings(block.points, reason), False
            raw = getattr(response, "raw", None)  # kept by the agent's own responses
            return block.readings(answer, time.time(), raw), True
        code = response.exception_code
        if code == 2:
            return await self._bisect(block, attempts), False
        reason = exception_reason(code)
        self.stats.record_error(reason)
        return bad_readings(block.points, reason), False

    async def _bisect(self, block: Block, attempts: int) -> list[Reading]:
        """Exception 2: find what in the block the device refuses, and cut only that out.

        The block is split at its widest unmapped gap (the usual suspect), or in the middle,
        and each half is read (and split again if refused). A single refused point gets a
        cut on both sides. Between two halves a cut is made when each half alone was
        answered (the boundary itself is refused) or when they are apart (an unmapped gap
        in a refused read). Every other point stays merged.
        """
        function = block.function
        points = sorted(block.points, key=lambda p: p.address)
        at = split_index(points)
        if at is None:  # one point, or bits of one status register
            self._cut(function, block.address, block.address + block.count)
            reason = exception_reason(2)
            self.stats.record_error(reason)
            return bad_readings(block.points, reason)
        left, right = points[:at], points[at:]
        left_readings, left_whole = await self._read_part(block_of(function, left), attempts)
        right_readings, right_whole = await self._read_part(block_of(function, right), attempts)
        left_end = max(p.address + p.width for p in left)
        if (left_whole and right_whole) or right[0].address > left_end:
            self._cut(function, right[0].address)
        return left_readings + right_readings

    def _cut(self, function: Function, *addresses: int) -> None:
        learnt = [address for address in addresses if self.refusals.add(function, address)]
        if learnt:  # the cuts in force changed: the next read plans again
            log.info(
                "modbus device refused a merged read; reading around it",
                device=self.profile.device,
                function=str(function),
                cuts=learnt,
                retry_merging_in=round(self.refusals.remerge_after, 1),
            )
