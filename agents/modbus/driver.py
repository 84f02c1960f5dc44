"""The Modbus driver: one device over TCP or RTU, polled with as few requests as possible.

Each poll cycle takes the points that are due (poll class or per-point interval), reads them
with the planner's merged requests one after the other (a Modbus device, above all on a
serial line, serves one request at a time) and decodes each answer with the planned request's
:class:`~smartcity.agents.modbus.blocks.Block`, compiled once and kept with the plan.
Requests go out through the device's :class:`~smartcity.agents.modbus.transport.Transport`,
which shares the line with the other devices on it and owns retries and reconnection.

Faults never raise out of the driver; they become readings with ``BAD`` quality and a reason:

* an exception response: ``modbus exception 2: illegal data address``. A merged read
  refused with exception 2 is bisected to find what the device refuses (one point, an
  unmapped gap, a boundary between memory banks); only that is cut out of the plan, the other
  points stay merged around it, and the cut expires so that merging is tried again later
  (:mod:`~smartcity.agents.modbus.refusals`). One wrong address costs one point and a
  request or two per cycle, not the whole device.
* no answer: ``timeout after 2.0 s``; no connection: ``cannot connect to host:port``. After
  ``retries`` further attempts the cycle gives up on the device (the remaining requests of
  the cycle are not sent) and tells the circuit breaker.
* breaker open: every due point is reported ``device unreachable, retry in 3.2 s`` once per
  cycle, without traffic. When the back-off has passed, the next cycle is the probe: it
  reconnects from scratch, and a device that answers is read normally again. Nothing needs
  restarting.

Every reading is handed over; which are worth publishing (deadband, keep-alive) the agent
decides (:mod:`~smartcity.agents.exception_report`).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterable, Sequence

import structlog
from pymodbus.exceptions import ModbusException

from smartcity.agents.driver import DeviceDriver, ReadingSink, WriteRefusedError
from smartcity.agents.modbus.blocks import Block, block_of, split_index
from smartcity.agents.modbus.codec import EncodeError, encode
from smartcity.agents.modbus.planner import ReadRequest, plan_reads
from smartcity.agents.modbus.refusals import REMERGE_AFTER, Refusals
from smartcity.agents.modbus.transport import NoAnswerError, Transport, exception_reason
from smartcity.agents.profile import Function, ModbusDevice, ModbusPoint, PointBase
from smartcity.agents.reading import Quality, Reading, Value
from smartcity.agents.resilience import Backoff, BreakerState, CircuitBreaker

log = structlog.stdlib.get_logger(__name__)


class _Schedule:
    """Points grouped by their interval; a group is due when its next tick has come."""

    def __init__(self, profile: ModbusDevice, now: float) -> None:
        by_interval: dict[float, list[ModbusPoint]] = {}
        for point in profile.points:
            by_interval.setdefault(profile.interval_of(point), []).append(point)
        self.intervals = sorted(by_interval)
        self.points = [tuple(by_interval[interval]) for interval in self.intervals]
        self.next_due = [now] * len(self.intervals)

    def due(self, now: float) -> tuple[int, ...]:
        """Indices of the groups due at ``now``; their next ticks are scheduled. A cycle that
        overran skips the ticks it missed rather than bursting to catch up."""
        due = []
        for index, interval in enumerate(self.intervals):
            if self.next_due[index] <= now:
                due.append(index)
                ticks = math.floor((now - self.next_due[index]) / interval) + 1
                self.next_due[index] += ticks * interval
        return tuple(due)

    def next_wakeup(self) -> float:
        return min(self.next_due)


class ModbusDriver(DeviceDriver):
    """Reads and writes one Modbus device described by a :class:`ModbusDevice` profile."""

    profile: ModbusDevice

    def __init__(
        self,
        profile: ModbusDevice,
        *,
        breaker: CircuitBreaker | None = None,
        clock: Callable[[], float] = time.monotonic,
        remerge_after: float = REMERGE_AFTER,
    ) -> None:
        super().__init__(profile)
        self.breaker = breaker or CircuitBreaker(
            backoff=Backoff(initial=max(0.5, profile.poll_interval), maximum=30.0)
        )
        self.clock = clock
        self.refusals = Refusals(clock=clock, remerge_after=remerge_after)
        """Where merged reads of this device must stop, learnt from its refusals."""
        self._points = {point.name: point for point in profile.points}
        self._plans: dict[tuple[int, ...], list[Block]] = {}
        self._schedule: _Schedule | None = None
        self._link = Transport(profile, self.stats)
        self.endpoint, self.where = self._link.endpoint, self._link.where

    # -- public contract -------------------------------------------------------------------

    async def run(self, sink: ReadingSink) -> None:
        schedule = self._schedule = _Schedule(self.profile, self.clock())
        try:
            while True:
                due = schedule.due(self.clock())
                if due:
                    readings = await self._cycle(due)
                    self.stats.readings += len(readings)
                    await sink(readings)
                await asyncio.sleep(max(0.0, schedule.next_wakeup() - self.clock()))
        finally:
            await self.close()

    async def read_once(self) -> list[Reading]:
        """Every point once, ignoring the schedule, the deadbands and an open breaker."""
        readings, _ = await self._read(
            self._plan(self.profile.points), attempts=1 + self.profile.retries
        )
        return readings

    async def read_points(self, names: Sequence[str]) -> list[Reading]:
        if not self.breaker.allow():
            return []
        points = [self._points[name] for name in names if name in self._points]
        readings, _ = await self._read(self._plan(points), attempts=1 + self.profile.retries)
        return readings

    async def read_raw(self) -> dict[str, list[int] | list[bool]]:
        """Each point's registers (or bit) exactly as the device sent them: what an engineer
        compares with the device's documentation when a value decodes wrong. Points the
        device refused are missing; an unreachable device raises ConnectionError."""
        raw: dict[str, list[int] | list[bool]] = {}
        for block in self._plan(self.profile.points):
            try:
                response = await self._link.request(block, 1 + self.profile.retries)
            except NoAnswerError as exc:
                raise ConnectionError(exc.reason) from None
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
        readings, _ = await self._read([Block(request)], attempts=1 + self.profile.retries)
        (reading,) = readings
        if reading.quality is not Quality.GOOD or reading.value is None:
            raise WriteRefusedError(
                f"{point.name}: written, but reading it back failed: {reading.reason}"
            )
        return reading.value

    async def close(self) -> None:
        await self._link.close()

    # -- one poll cycle --------------------------------------------------------------------

    async def _cycle(self, due: tuple[int, ...]) -> list[Reading]:
        assert self._schedule is not None
        self.stats.polls += 1
        if self.refusals.expire():
            self._plans.clear()  # a cut ran out: try the merged reads again
        blocks = self._plans.get(due)
        if blocks is None:
            points = [point for index in due for point in self._schedule.points[index]]
            blocks = self._plans[due] = self._plan(points)
        if not self.breaker.allow():
            reason = f"device unreachable, retry in {self.breaker.retry_in:.1f} s"
            return self.bad_readings((p for block in blocks for p in block.points), reason)
        probing = self.breaker.state is BreakerState.HALF_OPEN
        if probing:
            await self._link.reset()  # a fresh connection, unless others are using it
        readings, failure = await self._read(
            blocks, attempts=1 if probing else 1 + self.profile.retries
        )
        if failure is None:
            self.breaker.record_success()
            self.stats.last_success = time.time()
        else:
            self.breaker.record_failure()
            if self.breaker.state is BreakerState.OPEN:
                log.warning(
                    "modbus device unreachable",
                    device=self.profile.device,
                    reason=failure,
                    retry_in=round(self.breaker.retry_in, 1),
                )
        return readings

    def _plan(self, points: Iterable[ModbusPoint]) -> list[Block]:
        requests = plan_reads(
            points,
            max_gap=self.profile.max_gap,
            max_registers=self.profile.max_registers,
            max_bits=self.profile.max_bits,
            cuts=self.refusals.in_force,
        )
        return [Block(request) for request in requests]

    async def _read(
        self, blocks: Sequence[Block], *, attempts: int
    ) -> tuple[list[Reading], str | None]:
        """Read ``blocks`` in order; on the first unreachable failure the rest are reported
        BAD with the same reason without being sent. Returns the readings and that reason."""
        readings: list[Reading] = []
        for index, block in enumerate(blocks):
            try:
                readings += await self._read_block(block, attempts)
            except NoAnswerError as exc:
                rest = [point for later in blocks[index:] for point in later.points]
                readings += self.bad_readings(rest, exc.reason)
                return readings, exc.reason
        return readings, None

    async def _read_block(self, block: Block, attempts: int) -> list[Reading]:
        readings, _ = await self._read_part(block, attempts)
        return readings

    async def _read_part(self, block: Block, attempts: int) -> tuple[list[Reading], bool]:
        """The block's readings, and whether the device answered the read as a whole."""
        response = await self._link.request(block, attempts)
        if not response.isError():
            answer = response.bits if block.function.is_bits else response.registers
            if len(answer) < block.count:
                reason = f"short answer: {len(answer)} of {block.count} values"
                self.stats.record_error(reason)
                return self.bad_readings(block.points, reason), False
            raw = getattr(response, "raw", None)  # kept by the agent's own responses
            return block.readings(answer, time.time(), raw), True
        code = response.exception_code
        if code == 2:
            return await self._bisect(block, attempts), False
        reason = exception_reason(code)
        self.stats.record_error(reason)
        return self.bad_readings(block.points, reason), False

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
            return self.bad_readings(block.points, reason)
        left, right = points[:at], points[at:]
        left_readings, left_whole = await self._read_part(block_of(function, left), attempts)
        right_readings, right_whole = await self._read_part(block_of(function, right), attempts)
        left_end = max(p.address + p.width for p in left)
        if (left_whole and right_whole) or right[0].address > left_end:
            self._cut(function, right[0].address)
        return left_readings + right_readings

    def _cut(self, function: Function, *addresses: int) -> None:
        learnt = [address for address in addresses if self.refusals.add(function, address)]
        if learnt:
            self._plans.clear()
            log.info(
                "modbus device refused a merged read; reading around it",
                device=self.profile.device,
                function=str(function),
                cuts=learnt,
                retry_merging_in=round(self.refusals.remerge_after, 1),
            )
