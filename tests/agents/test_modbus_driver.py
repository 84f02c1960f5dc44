"""Modbus driver against the simulated substation over real sockets (TCP on 127.0.0.1, RTU
through a socat pseudo-terminal pair): decoding, planning, refused gaps, outages, writes."""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import struct
import time

import pytest
from loop_fixtures import reading, serving
from modbus_fixtures import (
    expected_value,
    fast_breaker,
    good_values,
    pty_pair,
    quick,
)
from support import Collector, running

from smartcity.agents.driver import WriteRefusedError, driver_for
from smartcity.agents.modbus.blocks import Block
from smartcity.agents.modbus.driver import ModbusDriver
from smartcity.agents.modbus.planner import ReadRequest, plan_reads
from smartcity.agents.profile import Function, ModbusDevice, ModbusPoint
from smartcity.agents.reading import Quality
from smartcity.agents.resilience import Backoff, CircuitBreaker
from smartcity.agents.sim.substation import Fault, Substation


class Ceiling(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return b


def plan_of(profile: ModbusDevice, points: list[ModbusPoint] | None = None) -> list[ReadRequest]:
    return plan_reads(
        profile.points if points is None else points,
        max_gap=profile.max_gap,
        max_registers=profile.max_registers,
        max_bits=profile.max_bits,
    )


def point(profile: ModbusDevice, name: str) -> ModbusPoint:
    (found,) = [p for p in profile.points if p.name == name]
    return found


# -- decoded values become readings ------------------------------------------------------------


def test_non_finite_floats_are_bad_not_published_as_values() -> None:
    p = ModbusPoint(name="u", address=0, type="float32", order="CDAB")
    block = Block(ReadRequest(Function.HOLDING, 0, 2, (p,)))
    low, high = struct.unpack(">HH", struct.pack(">f", math.nan))
    (reading,) = block.readings([high, low], time.time())  # CDAB: low word first
    assert reading.quality is Quality.BAD
    assert reading.value is None
    assert "not a finite number" in reading.reason


# -- reading the simulator -----------------------------------------------------------------------


async def test_reads_every_type_and_order_over_tcp() -> None:
    async with Substation(port=0, devices=2, period=None, seed=7) as sim:
        for unit in sim.units:
            profile = quick(sim.profile_for(unit))
            driver = driver_for(profile)
            assert isinstance(driver, ModbusDriver)
            try:
                values = good_values(await driver.read_once())
            finally:
                await driver.close()
            assert len(values) == len(profile.points)
            for p in profile.points:
                assert values[p.name] == await expected_value(sim, unit, p), p.name
            assert driver.stats.requests == len(plan_of(profile))
        # the two bays are different devices, not one datastore under two ids
        assert await sim.read_registers(1, Function.INPUT, 0, 28) != await sim.read_registers(
            2, Function.INPUT, 0, 28
        )


async def test_reads_every_type_and_order_over_rtu(tmp_path) -> None:
    async with (
        pty_pair(tmp_path) as (server_tty, agent_tty),
        Substation(port=0, serial_port=server_tty, period=None, seed=3) as sim,
    ):
        endpoint = f"rtu://{agent_tty}?baudrate=19200&parity=N&stopbits=1&bytesize=8"
        profile = quick(sim.profile_for(1, endpoint=endpoint), timeout=1.0, retries=1)
        driver = ModbusDriver(profile)
        try:
            values = good_values(await driver.read_once())
        finally:
            await driver.close()
        for p in profile.points:
            assert values[p.name] == await expected_value(sim, 1, p), p.name
        assert driver.stats.requests == len(plan_of(profile))


async def test_devices_on_one_rtu_line_share_the_port(tmp_path) -> None:
    async with (
        pty_pair(tmp_path) as (server_tty, agent_tty),
        Substation(port=0, devices=2, serial_port=server_tty, period=None, seed=8) as sim,
    ):
        line = f"rtu://{agent_tty}?baudrate=19200"
        drivers = [
            ModbusDriver(quick(sim.profile_for(unit, endpoint=line), timeout=1.0, retries=1))
            for unit in sim.units
        ]
        try:
            results = await asyncio.gather(*(driver.read_once() for driver in drivers))
            for unit, readings in zip(sim.units, results, strict=True):
                values = good_values(readings)
                for p in sim.profile.points:
                    assert values[p.name] == await expected_value(sim, unit, p), (unit, p.name)
            await drivers[0].close()  # one device leaves the line; the port stays open
            assert good_values(await drivers[1].read_once())
            other_speed = sim.profile_for(1, endpoint=f"rtu://{agent_tty}?baudrate=9600")
            stranger = ModbusDriver(quick(other_speed))
            reasons = {r.reason for r in await stranger.read_once()}
            await stranger.close()
            assert reasons == {
                f"serial port {agent_tty} is already open at 19200 baud, 8N1 "
                "for another device on the line"
            }
        finally:
            for driver in drivers:
                await driver.close()


async def test_requests_per_cycle_follow_the_plan() -> None:
    async with Substation(port=0, period=None) as sim:
        profile = quick(sim.profile_for(1), slow_poll_interval=60.0)
        fast = [p for p in profile.points if p.poll == "fast" and p.interval is None]
        per_cycle: list[int] = []
        driver = ModbusDriver(profile)
        sink = Collector(on_batch=lambda _: per_cycle.append(driver.stats.requests))
        async with running(driver, sink):
            await sink.wait_for(lambda: len(per_cycle) >= 5, what="five poll cycles")
        counts = [b - a for a, b in itertools.pairwise([0, *per_cycle[:5]])]
        # first cycle: every point is due; then only the fast class
        assert counts == [len(plan_of(profile))] + [len(plan_of(profile, fast))] * 4
        assert len(plan_of(profile)) < len(profile.points) / 10  # merging did its job


async def test_merged_read_across_a_refused_gap_is_replanned() -> None:
    async with Substation(port=0, period=None) as sim:
        base = sim.profile_for(1)
        names = ["energy_import", "tap_position", "voltage_setpoint"]  # 0..3, 21, 100..101
        points = [point(base, name) for name in names]
        profile = quick(base, points=points, max_gap=125)
        assert len(plan_of(profile)) == 1  # one read of 0..101 across unmapped 26..99
        driver = ModbusDriver(profile)
        try:
            first = good_values(await driver.read_once())
            assert driver.refusals.in_force == {Function.HOLDING: {100}}
            refused_then_replanned = driver.stats.requests
            second = good_values(await driver.read_once())
        finally:
            await driver.close()
        for p in points:
            assert first[p.name] == second[p.name] == await expected_value(sim, 1, p)
        # the refused read, then its two sides, split at the widest gap (22..99)
        assert refused_then_replanned == 1 + 2
        assert driver.stats.requests - refused_then_replanned == 2  # 0..21 and 100..101


async def test_one_wrong_address_costs_one_point_not_the_block() -> None:
    async with Substation(port=0, period=None) as sim:
        base = sim.profile_for(1)
        wrong = ModbusPoint(name="not_mapped", address=26, type="uint16")  # right after 22..25
        points = [point(base, "tap_position"), point(base, "breaker_operations"), wrong]
        driver = ModbusDriver(quick(base, points=points))
        try:
            readings = {r.metric: r for r in await driver.read_once()}
            again = {r.metric: r for r in await driver.read_once()}
        finally:
            await driver.close()
        for name in ("tap_position", "breaker_operations"):
            assert readings[name].quality is Quality.GOOD
            assert readings[name].value == await expected_value(sim, 1, point(base, name))
            assert again[name].value == readings[name].value
        for result in (readings, again):
            assert result["not_mapped"].quality is Quality.BAD
            assert result["not_mapped"].reason == "modbus exception 2: illegal data address"
        # 21..25 stay one read; 26 is cut out on both sides
        assert driver.refusals.in_force == {Function.HOLDING: {26, 27}}
        assert len(driver._plan(driver.profile.points)) == 2


# -- outages and recovery ------------------------------------------------------------------------


async def test_silent_device_is_bad_then_recovers_without_slowing_its_neighbour() -> None:
    # two endpoints: devices behind one endpoint share its connection and so its delays
    async with (
        Substation(port=0, period=0.05) as sim,
        Substation(port=0, period=0.05) as neighbour,
    ):
        faulty = ModbusDriver(quick(sim.profile_for(1), poll_interval=0.1))
        healthy = ModbusDriver(quick(neighbour.profile_for(1), poll_interval=0.1))
        faulty_sink, healthy_sink = Collector(), Collector()
        async with (
            reading(faulty, faulty_sink, breaker=fast_breaker()) as faulty_task,
            running(healthy, healthy_sink),
        ):
            await faulty_sink.wait_for(lambda: len(faulty_sink.batches) >= 2, what="first polls")
            outage = 1.5
            sim.inject(Fault.NO_ANSWER, outage, unit=1)
            started = time.monotonic()
            await faulty_sink.wait_for(
                lambda: any("unreachable" in r.reason for r in faulty_sink.readings(started)),
                what="the breaker to open",
            )
            ended = started + outage
            await faulty_sink.wait_for(
                lambda: (
                    faulty_sink.latest(ended).get("voltage_hv_an", None) is not None
                    and faulty_sink.latest(ended)["voltage_hv_an"].quality is Quality.GOOD
                ),
                within=10,
                what="GOOD readings after the device came back",
            )
            assert not faulty_task.done()  # the same driver, never restarted

        during = [
            r
            for at, batch in faulty_sink.batches
            if started + 0.05 < at < ended - 0.1
            for r in batch
        ]
        assert during
        assert all(r.quality is Quality.BAD for r in during)
        reasons = {r.reason.split(",")[0] for r in during}
        assert "timeout after 0.25 s" in reasons
        assert "device unreachable" in reasons
        assert faulty.stats.last_error

        healthy_cycles = [at for at, _ in healthy_sink.batches if started < at < ended]
        assert len(healthy_cycles) >= 0.7 * outage / 0.1  # kept its poll rate
        assert all(r.quality is Quality.GOOD for r in healthy_sink.readings())


async def test_open_breaker_sends_nothing_until_the_probe() -> None:
    async with Substation(port=0, period=None) as sim:
        sim.inject(Fault.NO_ANSWER, 60, unit=1)
        # the probe is 30 s away: the jitter draws the ceiling
        breaker = CircuitBreaker(threshold=2, backoff=Backoff(initial=30.0, rng=Ceiling()))
        driver = ModbusDriver(quick(sim.profile_for(1)))
        sink = Collector()
        async with reading(driver, sink, breaker=breaker):
            await sink.wait_for(lambda: breaker.state == "open", what="the breaker to open")
            sent = driver.stats.requests
            polls = driver.stats.polls
            await sink.wait_for(lambda: driver.stats.polls >= polls + 5, what="five more cycles")
            assert driver.stats.requests == sent
            last = sink.batches[-1][1]
            assert {r.quality for r in last} == {Quality.BAD}
            assert all(r.reason.startswith("device unreachable, retry in") for r in last)


async def test_refused_connection_is_reported_as_such() -> None:
    async with Substation(port=0, period=None) as sim:
        port = sim.port
        profile = quick(sim.profile_for(1))
    driver = ModbusDriver(profile)  # the simulator is gone: nothing listens on the port
    try:
        readings = await driver.read_once()
    finally:
        await driver.close()
    assert {r.quality for r in readings} == {Quality.BAD}
    assert (
        readings[0].reason
        == f"cannot connect to 127.0.0.1:{port}: connection refused or unreachable"
    )
    assert driver.stats.connected is False


# -- report by exception -------------------------------------------------------------------------


async def test_deadband_reports_moves_quality_changes_and_keepalives() -> None:
    async with Substation(port=0, period=None) as sim:
        base = sim.profile_for(1)
        setpoint = point(base, "voltage_setpoint").model_copy(
            update={"deadband": 0.3, "poll": "fast"}
        )
        marker = point(base, "tap_position")  # no deadband: published every cycle
        driver = ModbusDriver(quick(base, points=[setpoint, marker]))
        sink = Collector()

        def published() -> list[float]:
            return [r.value for r in sink.readings() if r.metric == "voltage_setpoint"]

        async with serving(driver, sink, keepalive=0.6):
            await sink.wait_for(lambda: len(published()) == 1, what="the first value")
            assert await driver.write(setpoint, 23.2) == pytest.approx(23.2)  # within 0.3
            cycles = len(sink.batches)
            await sink.wait_for(lambda: len(sink.batches) >= cycles + 4, what="four cycles")
            assert published() == [23.0]
            await driver.write(setpoint, 22.5)  # moved 0.5 from the last published 23.0
            await sink.wait_for(lambda: len(published()) == 2, what="the move to be published")
            assert published()[-1] == pytest.approx(22.5)
            moved = time.monotonic()
            await sink.wait_for(lambda: len(published()) == 3, what="the keep-alive")
            assert time.monotonic() - moved >= 0.4
        markers = [r for r in sink.readings() if r.metric == "tap_position"]
        assert len(markers) == len(sink.batches)


# -- writes --------------------------------------------------------------------------------------


async def test_writes_float32_cdab_setpoint_and_coil_and_reads_them_back() -> None:
    async with Substation(port=0, period=None) as sim:
        profile = quick(sim.profile_for(1))
        driver = ModbusDriver(profile)
        setpoint, feeder = (
            point(profile, "voltage_setpoint"),
            point(profile, "feeder_03_breaker_closed"),
        )
        try:
            assert await driver.write(setpoint, 22.25) == 22.25
            assert await expected_value(sim, 1, setpoint) == 22.25
            assert sim.bays[1].voltage_setpoint == 22.25
            assert await driver.write(feeder, False) is False
            assert await expected_value(sim, 1, feeder) is False
            assert sim.bays[1].breakers["feeder_03_breaker_closed"] is False
            assert await driver.write(feeder, True) is True
        finally:
            await driver.close()


async def test_device_refusals_raise_and_change_nothing() -> None:
    async with Substation(port=0, period=None) as sim:
        base = sim.profile_for(1)
        # the device's own range (20..25 kV) is narrower than this profile claims
        setpoint = point(base, "voltage_setpoint").model_copy(update={"min": None, "max": None})
        counter = point(base, "energy_export").model_copy(update={"writable": True})
        driver = ModbusDriver(quick(base, points=[setpoint, counter]))
        before = {p.name: await expected_value(sim, 1, p) for p in (setpoint, counter)}
        try:
            with pytest.raises(WriteRefusedError, match="modbus exception 3: illegal data value"):
                await driver.write(setpoint, 30.0)
            with pytest.raises(WriteRefusedError, match="modbus exception 2: illegal data address"):
                await driver.write(counter, 1)
            with pytest.raises(WriteRefusedError, match="outside uint32"):
                await driver.write(counter, -5)
            with pytest.raises(WriteRefusedError, match="not a point of device"):
                await driver.write(point(base, "frequency"), 1.0)
        finally:
            await driver.close()
        assert {p.name: await expected_value(sim, 1, p) for p in (setpoint, counter)} == before


async def test_write_to_a_silent_device_says_so() -> None:
    async with Substation(port=0, period=None) as sim:
        profile = quick(sim.profile_for(1))
        driver = ModbusDriver(profile)
        sim.inject(Fault.NO_ANSWER, 30, unit=1)
        try:
            with pytest.raises(WriteRefusedError, match=r"timeout after 0\.25 s"):
                await driver.write(point(profile, "voltage_setpoint"), 22.0)
        finally:
            await driver.close()
