"""A Modbus device that refuses part of a merged read, and devices behind one TCP gateway:
what the simulated substation sees of the agent's traffic, counted on the server side."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from modbus_fixtures import SettableClock, expected_value, good_values, quick
from pyModbusTCP.server import DataBank, ModbusServer
from support import Collector, eventually, running

from smartcity.agents.modbus.driver import ModbusDriver
from smartcity.agents.modbus.planner import plan_reads
from smartcity.agents.modbus.refusals import Refusals
from smartcity.agents.profile import Function, ModbusDevice, ModbusPoint
from smartcity.agents.reading import Quality
from smartcity.agents.sim.substation import Substation


def merged_count(profile: ModbusDevice) -> int:
    return len(
        plan_reads(
            profile.points,
            max_gap=profile.max_gap,
            max_registers=profile.max_registers,
            max_bits=profile.max_bits,
        )
    )


@dataclass
class ServerCount:
    """Requests the simulator received for one unit between two batches of the driver."""

    sim: Substation
    unit: int
    seen: int = 0

    def __post_init__(self) -> None:
        self.per_cycle: list[int] = []

    def __call__(self, _batch: object) -> None:
        now = self.sim.requests[self.unit]
        self.per_cycle.append(now - self.seen)
        self.seen = now


# -- one wrong address ---------------------------------------------------------------------------


async def test_one_refused_address_isolates_one_point_and_merging_returns_later() -> None:
    async with Substation(port=0, period=None) as sim:
        # every point due every cycle, so that each cycle is the whole plan
        profile = quick(sim.profile_for(1), poll_interval=0.05, slow_poll_interval=0.05)
        merged = merged_count(profile)
        assert merged == 6
        wrong = next(p for p in profile.points if p.name == "current_mv_b")  # input 16 of 0..27
        sim.refuse_address(Function.INPUT, wrong.address, unit=1)

        counter = ServerCount(sim, 1)
        sink = Collector(on_batch=counter)
        driver = ModbusDriver(profile, remerge_after=3.0)
        async with running(driver, sink):
            await sink.wait_for(lambda: len(counter.per_cycle) >= 12, "twelve poll cycles")
            # the first cycle pays for the bisection, once
            assert counter.per_cycle[0] <= merged + 2 * 5
            # then the refused point is read on its own, and its block in two around it
            assert counter.per_cycle[1:12] == [merged + 2] * 11
            latest = sink.latest()
            assert latest[wrong.name].quality is Quality.BAD
            assert latest[wrong.name].reason == "modbus exception 2: illegal data address"
            others = [p.name for p in profile.points if p.name != wrong.name]
            assert sink.all_good(others)
            assert driver.refusals.in_force == {Function.INPUT: {16, 17}}

            # the device is fixed: once the cut has expired the merged reads come back
            sim.refuse_address(Function.INPUT, wrong.address, unit=1, refused=False)
            await sink.wait_for(
                lambda: counter.per_cycle[-3:] == [merged] * 3 and not driver.refusals.in_force,
                "merged reads again",
                within=15,
            )
            await sink.wait_for(lambda: sink.all_good([p.name for p in profile.points]), "all good")


async def test_a_device_that_keeps_refusing_is_bisected_again_less_and_less_often() -> None:
    async with Substation(port=0, period=None) as sim:
        base = sim.profile_for(1)
        points = [p for p in base.points if p.function is Function.INPUT and p.address < 28]
        profile = quick(base, points=points)
        wrong = next(p for p in points if p.name == "active_power")  # 18..19
        sim.refuse_address(Function.INPUT, 19, unit=1)
        clock = SettableClock(1000.0)
        driver = ModbusDriver(profile, clock=clock, remerge_after=60.0)
        try:
            for round_, lifetime in enumerate([60.0, 120.0, 240.0]):
                before = sim.requests[1]
                readings = {r.metric: r for r in await driver.read_once()}
                learnt = sim.requests[1] - before
                assert learnt > 3, round_  # a bisection took place
                assert readings[wrong.name].quality is Quality.BAD
                assert all(
                    r.quality is Quality.GOOD for n, r in readings.items() if n != wrong.name
                )
                before = sim.requests[1]
                await driver.read_once()
                assert sim.requests[1] - before == 3, round_  # 0..17, 18..19, 20..27
                clock.advance(lifetime - 1)
                assert not driver.refusals.expire()
                clock.advance(1)
                assert driver.refusals.expire()
                assert not driver.refusals.in_force
        finally:
            await driver.close()


def test_cuts_keep_the_rest_merged() -> None:
    points = [
        ModbusPoint(name=f"p{address}", address=address, type="uint16")
        for address in (0, 1, 2, 3, 4, 10)
    ]

    def plan(cuts: dict) -> list[tuple[int, int]]:
        requests = plan_reads(points, max_gap=16, max_registers=125, max_bits=2000, cuts=cuts)
        return [(r.address, r.count) for r in requests]

    assert plan({}) == [(0, 11)]
    assert plan({Function.HOLDING: {2, 3}}) == [(0, 2), (2, 1), (3, 8)]
    assert plan({Function.HOLDING: {10}}) == [(0, 5), (10, 1)]
    assert plan({Function.INPUT: {2}}) == [(0, 11)]  # another table's cut


def test_refusals_expire_and_come_back_longer() -> None:
    clock = SettableClock(0.0)
    refusals = Refusals(clock=clock, remerge_after=10.0, maximum=25.0)
    assert refusals.add(Function.HOLDING, 5)
    assert not refusals.add(Function.HOLDING, 5)  # still in force: not renewed
    assert refusals.in_force == {Function.HOLDING: {5}}
    lifetimes = []
    for _ in range(3):
        started = clock.now
        while not refusals.expire():
            clock.advance(1.0)
        lifetimes.append(clock.now - started)
        assert len(refusals) == 0
        assert refusals.add(Function.HOLDING, 5)
    assert lifetimes == [10.0, 20.0, 25.0]


# -- a TCP gateway -------------------------------------------------------------------------------


async def test_devices_behind_one_tcp_endpoint_share_one_connection() -> None:
    async with Substation(port=0, devices=3, period=None, seed=5) as sim:
        drivers = [ModbusDriver(quick(sim.profile_for(unit))) for unit in sim.units]
        sinks = [Collector() for _ in drivers]
        async with contextlib.AsyncExitStack() as stack:
            for driver, sink in zip(drivers, sinks, strict=True):
                await stack.enter_async_context(running(driver, sink))
            await eventually(
                lambda: all(len(sink.batches) >= 5 for sink in sinks), what="five cycles each"
            )
            for unit, driver in zip(sim.units, drivers, strict=True):
                values = good_values(await driver.read_once())
                for p in sim.profile.points:
                    if p.poll == "slow":  # these do not move between two reads
                        assert values[p.name] == await expected_value(sim, unit, p), p.name
        assert sim.connections == 1
        assert all(sim.requests[unit] >= 5 for unit in sim.units)
        for sink in sinks:
            assert all(r.quality is Quality.GOOD for r in sink.readings())


async def test_a_silent_unit_behind_a_gateway_does_not_cost_the_others_the_connection() -> None:
    async with Substation(port=0, devices=2, period=None) as sim:
        silent, talking = (ModbusDriver(quick(sim.profile_for(unit))) for unit in sim.units)
        sim.inject("no_answer", 60, unit=1)
        try:
            for _ in range(3):
                assert good_values(await talking.read_once())
                assert {r.quality for r in await silent.read_once()} == {Quality.BAD}
        finally:
            await silent.close()
            await talking.close()
        assert sim.connections == 1


@pytest.mark.parametrize("first", [0, 1])
async def test_the_last_device_to_leave_closes_the_shared_connection(first: int) -> None:
    async with Substation(port=0, devices=2, period=None) as sim:
        drivers = [ModbusDriver(quick(sim.profile_for(unit))) for unit in sim.units]
        for driver in drivers:
            assert good_values(await driver.read_once())
        client = drivers[0]._link.require_client()
        assert drivers[1]._link.require_client() is client
        await drivers[first].close()
        assert client.connected
        assert good_values(await drivers[1 - first].read_once())
        await drivers[1 - first].close()
        assert not client.connected
        assert sim.connections == 1


# -- properties ----------------------------------------------------------------------------------


@st.composite
def registers_and_cuts(draw: st.DrawFn) -> tuple[list[ModbusPoint], set[int]]:
    """Non-overlapping register points anywhere in the first 400 addresses, and cuts."""
    widths = {"uint16": 1, "float32": 2, "uint64": 4}
    points, address = [], draw(st.integers(0, 20))
    for index in range(draw(st.integers(1, 40))):
        type_ = draw(st.sampled_from(sorted(widths)))
        points.append(ModbusPoint(name=f"p{index}", address=address, type=type_))
        address += widths[type_] + draw(st.integers(0, 20))
    cuts = draw(st.sets(st.integers(0, address + 5), max_size=12))
    return points, cuts


@given(registers_and_cuts(), st.integers(0, 30), st.integers(4, 125))
@settings(max_examples=300, deadline=None)
def test_a_plan_never_crosses_a_cut_and_reads_every_point_once(
    drawn: tuple[list[ModbusPoint], set[int]], max_gap: int, max_registers: int
) -> None:
    points, cuts = drawn
    requests = plan_reads(
        points,
        max_gap=max_gap,
        max_registers=max_registers,
        max_bits=2000,
        cuts={Function.HOLDING: cuts},
    )
    assert sorted(p.name for r in requests for p in r.points) == sorted(p.name for p in points)
    for request in requests:
        assert request.count <= max_registers
        crossed = [c for c in cuts if request.address < c < request.address + request.count]
        # only a point that itself spans a cut may hold both sides of it
        assert all(
            any(p.address < c < p.address + p.width for p in request.points) for c in crossed
        )
        for p in request.points:
            assert request.address <= p.address
            assert p.address + p.width <= request.address + request.count
    uncut = plan_reads(points, max_gap=max_gap, max_registers=max_registers, max_bits=2000)
    assert len(uncut) <= len(requests)  # cuts only ever split


@given(st.data())
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_whatever_the_device_refuses_only_those_points_are_bad(data: st.DataObject) -> None:
    """A real simulator refusing an arbitrary few addresses: the points on them are BAD with
    exception 2, every other point is read GOOD, a learnt plan costs at most a few requests
    per refused address, and with the refusals gone and the cuts expired the merged plan
    is back."""

    async def scenario() -> None:
        async with Substation(port=0, period=None, seed=11) as sim:
            profile = quick(sim.profile_for(1))
            candidates = sorted(
                {
                    (p.function, a)
                    for p in profile.points
                    if not p.function.is_bits  # the simulator refuses registers only
                    for a in range(*_span(p))
                }
            )
            refused = data.draw(st.sets(st.sampled_from(candidates), min_size=1, max_size=3))
            for function, address in refused:
                sim.refuse_address(function, address, unit=1)
            clock = SettableClock(0.0)
            driver = ModbusDriver(profile, clock=clock, remerge_after=60.0)
            try:
                first = {r.metric: r for r in await driver.read_once()}
                before = sim.requests[1]
                second = {r.metric: r for r in await driver.read_once()}
                learnt_cost = sim.requests[1] - before
                for p in profile.points:
                    hit = any((p.function, a) in refused for a in range(*_span(p)))
                    for readings in (first, second):
                        if hit:
                            assert readings[p.name].quality is Quality.BAD, p.name
                            assert readings[p.name].reason.startswith("modbus exception 2")
                        else:
                            assert readings[p.name].quality is Quality.GOOD, p.name
                assert learnt_cost <= merged_count(profile) + 3 * len(refused)

                for function, address in refused:
                    sim.refuse_address(function, address, unit=1, refused=False)
                clock.advance(60.0)
                assert driver.refusals.expire()
                before = sim.requests[1]
                assert good_values(await driver.read_once())
                assert sim.requests[1] - before == merged_count(profile)
            finally:
                await driver.close()

    asyncio.run(scenario())


def _span(point: ModbusPoint) -> tuple[int, int]:
    return point.address, point.address + point.width


def test_an_independent_server_refusing_past_its_map_costs_only_those_points() -> None:
    """pyModbusTCP with 20 holding registers and 10 coils: points past the end are refused
    with exception 2 by a server that is neither pymodbus nor the project's simulator."""
    bank = DataBank(coils_size=10, h_regs_size=20)
    bank.set_holding_registers(10, [0x1234, 0x0002, 0xABCD])
    bank.set_coils(4, [True, False, True])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ModbusServer(host="127.0.0.1", port=port, no_block=True, data_bank=bank)
    server.start()
    points = [
        {"name": "a", "address": 10},
        {"name": "b", "address": 11},
        {"name": "c", "address": 12},
        {"name": "past_end", "address": 21},
        {"name": "coil_4", "address": 4, "function": "coil", "type": "bool"},
        {"name": "coil_6", "address": 6, "function": "coil", "type": "bool"},
        {"name": "coil_past_end", "address": 12, "function": "coil", "type": "bool"},
    ]
    profile = ModbusDevice(
        site="lab",
        field="electricity",
        device="independent",
        protocol="modbus",
        endpoint=f"tcp://127.0.0.1:{port}",
        timeout=2.0,
        retries=0,
        points=points,
    )

    async def read() -> tuple[dict, dict, int]:
        driver = ModbusDriver(profile)
        try:
            first = {r.metric: r for r in await driver.read_once()}
            before = driver.stats.requests
            second = {r.metric: r for r in await driver.read_once()}
            return first, second, driver.stats.requests - before
        finally:
            await driver.close()

    try:
        first, second, requests = asyncio.run(read())
    finally:
        server.stop()
    expected = {"a": 0x1234, "b": 2, "c": 0xABCD, "coil_4": True, "coil_6": True}
    for readings in (first, second):
        assert {name: readings[name].value for name in expected} == expected
        for name in ("past_end", "coil_past_end"):
            assert readings[name].quality is Quality.BAD
            assert readings[name].reason == "modbus exception 2: illegal data address"
    assert requests == 4  # 10..12 and 21; coils 4..6 and 12
