"""The agent's device loop around a driver that does protocol I/O only: the schedule decides
what is read when, the breaker counts the driver's failures and paces the probes, and an
unreachable device's points are reported BAD, the same for a polled and a subscribed source.

The driver here is a stand-in that answers or fails on command; the loop against real Modbus
and OPC-UA servers is tested with the drivers (test_modbus_driver, test_opcua_driver)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from typing import Any

from loop_fixtures import reading, serving
from support import Collector, eventually

from smartcity.agents.driver import (
    DeviceDriver,
    DeviceUnreachableError,
    ReadingSink,
    WriteRefusedError,
)
from smartcity.agents.profile import ModbusDevice, PointBase, parse_profile
from smartcity.agents.reading import Quality, Reading, Value
from smartcity.agents.resilience import Backoff, BreakerState, CircuitBreaker
from smartcity.agents.schedule import Schedule


class Ceiling(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return b


def device(poll: str = "50ms", slow: str = "200ms", **extra: Any) -> ModbusDevice:
    profile = parse_profile(
        {
            "site": "cau-do",
            "field": "water_supply",
            "device": "station-1",
            "protocol": "modbus",
            "endpoint": "tcp://127.0.0.1:502",
            "poll_interval": poll,
            "slow_poll_interval": slow,
            "points": [
                {"name": "ph", "address": 0},
                {"name": "flow", "address": 1},
                {"name": "total", "address": 2, "poll": "slow"},
            ],
            **extra,
        }
    )
    assert isinstance(profile, ModbusDevice)
    return profile


def breaker(delay: float) -> CircuitBreaker:
    """Opens after two failures; the probe exactly ``delay`` seconds later."""
    return CircuitBreaker(threshold=2, backoff=Backoff(initial=delay, maximum=delay, rng=Ceiling()))


class StandIn(DeviceDriver):
    """Answers every read with 1.0 per point, or fails while ``down``."""

    def __init__(self, profile: ModbusDevice, *, changes_only: bool = False) -> None:
        super().__init__(profile)
        self.changes_only = changes_only
        self.down = False
        self.partial: list[str] = []
        """Points read before a failure, handed back with it."""
        self.reads: list[tuple[tuple[str, ...], bool]] = []
        self.resets = 0
        self.subscriptions = 0
        self.lost = asyncio.Event()

    async def connect(self) -> None:
        if self.down:
            raise DeviceUnreachableError("cannot connect")

    async def read(self, names: Sequence[str], *, probe: bool = False) -> list[Reading]:
        self.reads.append((tuple(names), probe))
        if self.down:
            got = [Reading.good(name, 1.0, "") for name in names if name in self.partial]
            raise DeviceUnreachableError("timeout after 0.1 s", got)
        return [Reading.good(name, 1.0, "") for name in names]

    async def subscribe(self, sink: ReadingSink, delivered: Callable[[], None]) -> None:
        self.subscriptions += 1
        if self.down:
            raise DeviceUnreachableError("not connected: connection refused")
        await sink([Reading.bad("total", "", "BadNodeIdUnknown")])  # an item refused
        delivered()
        await sink([Reading.good(name, 1.0, "") for name in ("ph", "flow")])
        await self.lost.wait()
        self.lost.clear()
        raise DeviceUnreachableError("connection lost: transport closed")

    async def write(self, point: PointBase, value: Value) -> Value:
        raise WriteRefusedError("read only")

    async def reset(self) -> None:
        self.resets += 1

    async def close(self) -> None:
        pass


def reasons(sink: Collector, since: float = 0.0) -> set[str]:
    return {r.reason for r in sink.readings(since) if r.quality is Quality.BAD}


# -- the schedule --------------------------------------------------------------------------------


def test_each_poll_class_is_due_at_its_ticks_and_missed_ticks_are_skipped() -> None:
    schedule = Schedule(device(poll="1s", slow="4s"), now=100.0)
    assert schedule.intervals == [1.0, 4.0]
    first = schedule.due(100.0)
    assert first == (0, 1)
    assert schedule.points_of(first)[0] == ("ph", "flow", "total")
    assert schedule.points_of(first) is schedule.points_of((0, 1))  # made once
    assert schedule.due(100.5) == ()
    assert schedule.next_wakeup() == 101.0
    assert schedule.points_of(schedule.due(101.0))[0] == ("ph", "flow")
    # a cycle that overran by 2.5 s: one read now, not three to catch up
    assert schedule.due(103.5) == (0,)
    assert schedule.next_due == [104.0, 104.0]
    assert schedule.due(104.0) == (0, 1)


# -- a polled device -----------------------------------------------------------------------------


async def test_failures_open_the_breaker_then_no_traffic_until_the_probe() -> None:
    driver = StandIn(device())
    guard = breaker(0.5)
    sink = Collector()
    async with reading(driver, sink, breaker=guard):
        await sink.wait_for(lambda: driver.stats.polls >= 3, "three cycles")
        assert driver.stats.last_success is not None
        driver.down = True
        await eventually(lambda: guard.state is BreakerState.OPEN, what="the breaker to open")
        sent = len(driver.reads)
        await sink.wait_for(
            lambda: any(r.startswith("device unreachable, retry in") for r in reasons(sink)),
            "the unreachable readings",
        )
        assert len(driver.reads) == sent  # nothing sent while open
        assert "timeout after 0.1 s" in reasons(sink)  # each failure said why
        await eventually(lambda: len(driver.reads) > sent, what="the probe")
        assert driver.reads[sent][1] is True  # one try, no retries
        assert driver.resets == 1  # over a fresh connection
        assert guard.state is BreakerState.OPEN  # the device still fails: open again
        driver.down = False
        back = asyncio.get_running_loop().time()
        await eventually(lambda: guard.state is BreakerState.CLOSED, within=5, what="recovery")
        assert asyncio.get_running_loop().time() - back < 1.5
        mark = len(sink.batches)
        await sink.wait_for(lambda: len(sink.batches) > mark + 2, "reading again")
    latest = sink.batches[-1][1]
    assert {r.quality for r in latest} == {Quality.GOOD}
    assert driver.stats.readings == sum(len(batch) for _, batch in sink.batches)


async def test_what_was_read_before_a_failure_is_kept_and_the_rest_is_bad() -> None:
    driver = StandIn(device())
    driver.down = True
    driver.partial = ["ph"]
    sink = Collector()
    async with reading(driver, sink, breaker=breaker(10.0)):
        await sink.wait_for(lambda: len(sink.batches) >= 1, "the first cycle")
    first = {r.metric: r for r in sink.batches[0][1]}
    assert first["ph"].quality is Quality.GOOD
    assert {first[name].reason for name in ("flow", "total")} == {"timeout after 0.1 s"}
    assert driver.stats.last_success is None


async def test_only_the_due_points_are_read() -> None:
    driver = StandIn(device(poll="50ms", slow="10s"))
    sink = Collector()
    async with reading(driver, sink):
        await sink.wait_for(lambda: len(driver.reads) >= 4, "four cycles")
    names = [names for names, _ in driver.reads[:4]]
    assert names == [("ph", "flow", "total")] + [("ph", "flow")] * 3


# -- a source that pushes changes ----------------------------------------------------------------


async def test_a_subscription_is_rebuilt_at_the_pace_of_the_breaker() -> None:
    driver = StandIn(device(poll="50ms"), changes_only=True)
    guard = breaker(0.3)
    sink = Collector()
    async with reading(driver, sink, breaker=guard):
        await sink.wait_for(lambda: sink.all_good(["ph", "flow"]), "the first publish")
        assert driver.stats.polls == 1  # the refused items are not a delivery
        assert driver.stats.readings == 3
        driver.down = True
        driver.lost.set()
        await eventually(lambda: guard.state is BreakerState.OPEN, what="the breaker to open")
        opened, tries = asyncio.get_running_loop().time(), driver.subscriptions
        await sink.wait_for(
            lambda: any(r.startswith("device unreachable") for r in reasons(sink)),
            "the unreachable readings",
        )
        # Three probes; had they come once per 50 ms poll interval instead of once per
        # 0.3 s back-off, they would come too soon for the bound below.
        await eventually(lambda: driver.subscriptions - tries >= 3, what="three probes")
        elapsed = asyncio.get_running_loop().time() - opened
        assert driver.subscriptions - tries <= elapsed / 0.3 + 1
        assert {"connection lost: transport closed", "not connected: connection refused"} <= (
            reasons(sink)
        )
        outage = [batch for _, batch in sink.batches if batch[0].quality is Quality.BAD]
        assert all({r.metric for r in batch} == {"ph", "flow", "total"} for batch in outage[1:])
        driver.down = False
        await eventually(lambda: guard.state is BreakerState.CLOSED, what="recovery")
        assert guard.backoff.attempt == 0


async def test_a_flat_subscribed_value_is_read_at_its_keepalive_only_while_delivering() -> None:
    driver = StandIn(device(poll="50ms"), changes_only=True)
    sink = Collector()
    async with serving(driver, sink, keepalive=0.3, breaker=breaker(0.2)):
        await sink.wait_for(lambda: len(driver.reads) >= 2, "two keep-alive reads")
        assert all(not probe for _, probe in driver.reads)
        assert {name for names, _ in driver.reads for name in names} <= {"ph", "flow", "total"}
        driver.down = True
        driver.lost.set()
        await eventually(lambda: driver.subscriptions >= 2, what="a failed rebuild")
        quiet, rebuilds = len(driver.reads), driver.subscriptions
        # Three more failed rebuilds at the 0.2 s back-off span two 0.3 s keep-alives: no
        # keep-alive read goes to a device that is down.
        await eventually(lambda: driver.subscriptions >= rebuilds + 3, what="three rebuilds")
        assert len(driver.reads) == quiet
