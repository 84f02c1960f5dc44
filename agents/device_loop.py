"""The agent's loop for one device: when to read what, what to do while the device fails, and
which readings are worth publishing; written once, the same for every protocol and mode.

A driver does the protocol's I/O (:mod:`~smartcity.agents.driver`). This loop

* reads a polled device (Modbus, OPC-UA ``mode: poll``) cycle by cycle: each cycle asks the
  driver for the points that are due (poll classes, per-point intervals:
  :mod:`~smartcity.agents.schedule`);
* lets a source that pushes changes (an OPC-UA subscription) hand over what it pushes, and
  reads, at their keep-alive, the points that have been quiet that long (such a source never
  repeats a flat value by itself);
* counts the device's failures (a driver raises
  :class:`~smartcity.agents.driver.DeviceUnreachableError`) in its circuit breaker
  (:mod:`~smartcity.agents.resilience`): after ``threshold`` failures in a row the device is
  only probed once per back-off delay (jittered, exponential), with no traffic meanwhile, and
  every due point is reported ``device unreachable, retry in 3.2 s`` (a subscribed device:
  once per poll interval), so that the operations centre sees a device that is down rather
  than a silence it could mistake for "no change". The probe is a fresh connection and one
  try without retries; a device that answers is read normally again, and nothing needs
  restarting. Only delivery closes the breaker (a read answered, a publish received, never a
  session merely opened), so a server that accepts sessions and refuses subscriptions gets
  them at the back-off's pace;
* keeps the heartbeat's polls, readings and last success;
* hands the readings to the agent's sink, reported by exception
  (:mod:`~smartcity.agents.exception_report`) when run by :func:`serve_device`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence

import structlog

from smartcity.agents.driver import (
    DeviceDriver,
    DeviceUnreachableError,
    ReadingSink,
    bad_readings,
)
from smartcity.agents.exception_report import KEEPALIVE_SLOW_INTERVALS, ExceptionReport
from smartcity.agents.profile import DeviceBase, PointBase
from smartcity.agents.reading import Reading
from smartcity.agents.resilience import Backoff, BreakerState, CircuitBreaker
from smartcity.agents.schedule import Schedule

log = structlog.stdlib.get_logger(__name__)

BACKOFF_MAXIMUM = 30.0
"""The longest an unreachable device waits for its next probe (seconds)."""


def device_breaker(profile: DeviceBase) -> CircuitBreaker:
    """A device's breaker: the first probe about a poll interval after it opens (half a
    second at least), then ever further apart, up to :data:`BACKOFF_MAXIMUM`."""
    return CircuitBreaker(
        backoff=Backoff(initial=max(0.5, profile.poll_interval), maximum=BACKOFF_MAXIMUM)
    )


def by_exception(report: ExceptionReport, sink: ReadingSink) -> ReadingSink:
    """``sink``, handed only the readings ``report`` keeps."""

    async def filtered(readings: Sequence[Reading]) -> None:
        kept = report.keep(readings)
        if kept:
            await sink(kept)

    return filtered


async def serve_device(
    driver: DeviceDriver,
    sink: ReadingSink,
    *,
    report: ExceptionReport | None = None,
    breaker: CircuitBreaker | None = None,
) -> None:
    """Run ``driver`` until cancelled, its readings reported by exception to ``sink``."""
    if report is None:
        report = ExceptionReport(driver.profile, every_point=driver.changes_only)
    await DeviceLoop(driver, by_exception(report, sink), breaker=breaker, report=report).run()


async def read_device(
    driver: DeviceDriver, sink: ReadingSink, *, breaker: CircuitBreaker | None = None
) -> None:
    """Run ``driver`` until cancelled, every reading to ``sink``: no report by exception, and
    so no keep-alive reads either."""
    await DeviceLoop(driver, sink, breaker=breaker).run()


class DeviceLoop:
    """One device's schedule, breaker and outage reports, around its driver."""

    def __init__(
        self,
        driver: DeviceDriver,
        sink: ReadingSink,
        *,
        breaker: CircuitBreaker | None = None,
        report: ExceptionReport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.driver = driver
        self.profile = driver.profile
        self.stats = driver.stats
        self.sink = sink
        self.breaker = breaker or device_breaker(driver.profile)
        self.report = report
        """Whose overdue points a source that pushes changes is asked for (None: never)."""
        self.clock = clock
        self._live = False
        """A subscription is delivering."""
        self._last_bad: float | None = None
        """When a subscribed device's points were last reported BAD for an outage."""

    async def run(self) -> None:
        """Until cancelled; the driver's connection is closed at the end."""
        try:
            if self.driver.changes_only:
                await self._subscribe()
            else:
                await self._poll()
        finally:
            await self.driver.close()

    async def _hand_over(self, readings: Sequence[Reading]) -> None:
        self.stats.readings += len(readings)
        await self.sink(readings)

    # -- the breaker -----------------------------------------------------------------------

    def _delivered(self) -> None:
        """The device answered a read or pushed a publish: only this closes the breaker."""
        if self.breaker.state is not BreakerState.CLOSED:
            log.info("device reachable again", device=self.profile.device)
        self.breaker.record_success()
        self.stats.last_success = time.time()
        self._last_bad = None

    def _failed(self, reason: str) -> None:
        self.breaker.record_failure()
        if self.breaker.state is BreakerState.OPEN:
            log.warning(
                "device unreachable",
                device=self.profile.device,
                protocol=self.profile.protocol,
                reason=reason,
                retry_in=round(self.breaker.retry_in, 1),
            )
        else:
            log.warning(
                "device failed",
                device=self.profile.device,
                protocol=self.profile.protocol,
                reason=reason,
                failures=self.breaker.failures,
            )

    def _unreachable(self) -> str:
        return f"device unreachable, retry in {self.breaker.retry_in:.1f} s"

    # -- a polled device -------------------------------------------------------------------

    async def _poll(self) -> None:
        schedule = Schedule(self.profile, self.clock())
        while True:
            due = schedule.due(self.clock())
            if due:
                names, points = schedule.points_of(due)
                await self._hand_over(await self._cycle(names, points))
            await asyncio.sleep(max(0.0, schedule.next_wakeup() - self.clock()))

    async def _cycle(self, names: Sequence[str], points: Sequence[PointBase]) -> list[Reading]:
        """The readings of one cycle: read, or BAD without traffic while the breaker is open."""
        self.stats.polls += 1
        breaker = self.breaker
        if not breaker.allow():
            return bad_readings(points, self._unreachable())
        probing = breaker.state is BreakerState.HALF_OPEN
        if probing:
            await self.driver.reset()  # a fresh connection, unless others are using it
        try:
            readings = await self.driver.read(names, probe=probing)
        except DeviceUnreachableError as failure:
            self._failed(failure.reason)
            return failure.completed(points)
        self._delivered()
        return readings

    # -- a source that pushes changes ------------------------------------------------------

    async def _subscribe(self) -> None:
        keepalives = None
        if self.report is not None:
            keepalives = asyncio.create_task(self._keep_alive(self.report))
        try:
            while True:
                await self._subscription()
        finally:
            if keepalives is not None:
                keepalives.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await keepalives

    async def _subscription(self) -> None:
        """One subscription, from connecting to its failure, then the pause before the next
        (a wait for the probe while the breaker is open)."""
        breaker = self.breaker
        if not breaker.allow():
            await self._pause(breaker.retry_in, self._unreachable())
            return
        if breaker.state is BreakerState.HALF_OPEN:
            await self.driver.reset()
        try:
            await self.driver.subscribe(self._pushed, self._subscription_delivered)
        except DeviceUnreachableError as failure:
            self._live = False
            self._failed(failure.reason)
            self._last_bad = self.clock()
            await self._hand_over(failure.completed(self.profile.points))
            reason = failure.reason
        else:  # a driver's subscription ends only by failing
            self._live = False
            reason = "subscription ended"
        open_ = breaker.state is BreakerState.OPEN
        await self._pause(breaker.retry_in if open_ else self.profile.poll_interval, reason)

    def _subscription_delivered(self) -> None:
        self._live = True
        self._delivered()

    async def _pushed(self, readings: Sequence[Reading]) -> None:
        if self._live:  # not the items the server refused while subscribing
            self.stats.polls += 1
            self.stats.last_success = time.time()
        await self._hand_over(readings)

    async def _pause(self, delay: float, reason: str) -> None:
        """Wait ``delay`` seconds, every point reported BAD once per poll interval meanwhile:
        with ``reason``, or as unreachable while the breaker is open."""
        interval = self.profile.poll_interval
        deadline = self.clock() + delay
        while (remaining := deadline - self.clock()) > 0:
            await asyncio.sleep(min(remaining, interval))
            now = self.clock()
            if self._last_bad is not None and now - self._last_bad < interval:
                continue  # each failure is reported as it happens, with its reason
            self._last_bad = now
            if self.breaker.state is BreakerState.OPEN:
                reason = self._unreachable()
            await self._hand_over(bad_readings(self.profile.points, reason))

    async def _keep_alive(self, report: ExceptionReport) -> None:
        """Read the points whose keep-alive has come, checked every sixth of the keep-alive
        (a slow interval by default), so a keep-alive is at most that late."""
        step = report.keepalive / KEEPALIVE_SLOW_INTERVALS
        while True:
            await asyncio.sleep(step)
            if not self._live:
                continue  # the outage is reported, and every point is read again after it
            overdue = report.overdue(time.time())
            if not overdue:
                continue
            try:
                readings = await self.driver.read(overdue)
            except DeviceUnreachableError:
                continue  # the subscription notices the loss and reports it
            await self._hand_over(readings)
