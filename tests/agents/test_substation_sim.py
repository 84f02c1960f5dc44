"""The simulated 110/22 kV substation: its published register map, its physics on a clock the
test controls, and fault injection through the Modbus protocol itself (a plain pymodbus
client on 127.0.0.1, so these tests do not depend on the agent's driver)."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import pytest
from modbus_fixtures import (
    SettableClock,
    expected_value,
)
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException

from smartcity.agents.profile import DataType, Function, ModbusDevice, load_profile
from smartcity.agents.sim.substation import (
    SUBSTATION_PROFILE,
    UTC_OFFSET,
    Fault,
    Substation,
    load_curve,
    serve_substation,
)

MIDNIGHT = datetime(2026, 7, 1, tzinfo=timezone(timedelta(seconds=UTC_OFFSET))).timestamp()


def at_local(hour: float) -> float:
    return MIDNIGHT + hour * 3600


@contextlib.asynccontextmanager
async def client_of(sim: Substation) -> AsyncIterator[AsyncModbusTcpClient]:
    client = AsyncModbusTcpClient(
        "127.0.0.1", port=sim.port, timeout=0.3, retries=0, reconnect_delay=0
    )
    assert await client.connect()
    try:
        yield client
    finally:
        client.close()


async def values(sim: Substation, unit: int, *names: str) -> dict[str, object]:
    points = {p.name: p for p in sim.profile.points}
    return {name: await expected_value(sim, unit, points[name]) for name in names}


VOLTAGES = [f"voltage_{side}_{phase}n" for side in ("hv", "mv") for phase in "abc"]


# -- the published map -------------------------------------------------------------------------


def test_register_map_is_a_valid_profile_using_every_type_and_order() -> None:
    profile = load_profile(SUBSTATION_PROFILE)
    assert isinstance(profile, ModbusDevice)
    assert {p.type for p in profile.points} == set(DataType)
    assert {p.function for p in profile.points} == set(Function)
    for width in (2, 4):
        orders = {(p.byte_order, p.word_order) for p in profile.points if p.type.registers == width}
        assert len(orders) == 4, f"{width}-register values miss a byte/word order"
    assert {p.scale for p in profile.points} >= {0.1, 0.01, 0.001}
    assert any(p.type is DataType.BOOL and p.bit is not None for p in profile.points)


def test_load_curve_has_the_vietnamese_shape() -> None:
    hours = [h / 4 for h in range(96)]
    curve = [load_curve(h) for h in hours]
    assert hours[curve.index(max(curve))] == 19  # evening peak
    assert 2 <= hours[curve.index(min(curve))] <= 4  # night trough
    assert load_curve(10) > load_curve(8)  # morning peak
    assert load_curve(10) > load_curve(12.5)
    assert load_curve(23.999) == pytest.approx(load_curve(0), abs=0.01)  # continuous at midnight


# -- physics on a controlled clock ---------------------------------------------------------------


async def test_values_follow_the_daily_load_curve_with_plausible_physics() -> None:
    clock = SettableClock(at_local(3))
    async with Substation(port=0, period=None, clock=clock, seed=11) as sim:
        night = await values(sim, 1, "active_power", "current_mv_a", "oil_temperature")
        clock.now = at_local(19)
        sim.step()
        evening = await values(sim, 1, "active_power", "current_mv_a", "oil_temperature")
        assert evening["active_power"] > 1.5 * night["active_power"]
        assert evening["current_mv_a"] > 1.5 * night["current_mv_a"]
        # top oil has a two-hour time constant: it follows the load, slowly
        assert evening["oil_temperature"] > night["oil_temperature"]
        sample = await values(sim, 1, *VOLTAGES, "frequency", "power_factor", "tap_position")
        assert all(60 < sample[f"voltage_hv_{p}n"] < 70 for p in "abc")  # ~115 kV / sqrt(3)
        assert all(12.5 < sample[f"voltage_mv_{p}n"] < 14 for p in "abc")  # ~23 kV / sqrt(3)
        assert 49.8 <= sample["frequency"] <= 50.2
        assert 0.8 <= sample["power_factor"] <= 1.0
        assert -8 <= sample["tap_position"] <= 8
        power = await values(sim, 1, "active_power", "reactive_power", "power_factor")
        apparent = math.hypot(power["active_power"], power["reactive_power"])
        assert power["active_power"] / apparent == pytest.approx(power["power_factor"], abs=0.002)

        energy = (await values(sim, 1, "energy_import"))["energy_import"]
        clock.advance(3600)
        sim.step()
        after = await values(sim, 1, "energy_import", "active_power")
        assert 0.5 * after["active_power"] * 1000 < after["energy_import"] - energy
        assert after["energy_import"] - energy < 1.5 * after["active_power"] * 1000


async def test_several_devices_on_one_server_are_independent() -> None:
    async with Substation(port=0, devices=3, period=None, seed=5) as sim:
        assert sim.units == [1, 2, 3]
        readings = [await values(sim, unit, "active_power") for unit in sim.units]
        assert len({r["active_power"] for r in readings}) == 3
        async with client_of(sim) as client:
            sim.inject(Fault.VOLTAGE_SAG, 5, unit=2)
            answers = [
                await client.read_input_registers(0, count=2, device_id=unit) for unit in (1, 2)
            ]
        assert answers[0].registers != answers[1].registers


# -- faults and refusals through the protocol -----------------------------------------------------


async def test_voltage_sag_on_command_through_the_control_registers() -> None:
    clock = SettableClock(at_local(11))
    async with (
        Substation(port=0, period=None, clock=clock, seed=2) as sim,
        client_of(sim) as client,
    ):
        normal = await values(sim, 1, *VOLTAGES)
        assert not (await client.write_registers(200, [1, 5], device_id=1)).isError()
        sagged = await values(sim, 1, *VOLTAGES, "voltage_sag")
        for name in VOLTAGES:
            assert 0.68 < sagged[name] / normal[name] < 0.82, name
        assert sagged["voltage_sag"] is True
        assert (await client.read_holding_registers(202, count=1, device_id=1)).registers == [1]
        clock.advance(5.1)
        sim.step()
        recovered = await values(sim, 1, *VOLTAGES, "voltage_sag")
        for name in VOLTAGES:
            assert recovered[name] == pytest.approx(normal[name], rel=0.02), name
        assert recovered["voltage_sag"] is False


async def test_frozen_sensors_stop_changing_then_resume() -> None:
    clock = SettableClock(at_local(14))
    async with Substation(port=0, period=None, clock=clock, seed=4) as sim:
        watched = ("active_power", "frequency", "current_hv_a", "oil_temperature")
        sim.inject(Fault.FROZEN, 10)
        frozen = await values(sim, 1, *watched)
        for _ in range(3):
            clock.advance(2)
            sim.step()
            assert await values(sim, 1, *watched) == frozen
        clock.advance(5)
        sim.step()
        resumed = await values(sim, 1, *watched)
        assert all(resumed[name] != frozen[name] for name in ("active_power", "frequency"))


async def test_device_stops_answering_on_command_and_comes_back() -> None:
    clock = SettableClock(at_local(9))
    async with Substation(port=0, devices=2, period=None, clock=clock) as sim:
        async with client_of(sim) as client:
            # acknowledged (write multiple registers does not read back), then silence
            assert not (await client.write_registers(200, [3, 4], device_id=1)).isError()
            with pytest.raises(ModbusIOException, match="No response"):
                await client.read_input_registers(0, count=2, device_id=1)
            other = await client.read_input_registers(0, count=2, device_id=2)
            assert not other.isError()  # the neighbour on the same server still answers
        clock.advance(4.1)
        async with client_of(sim) as client:
            answer = await client.read_input_registers(0, count=2, device_id=1)
            assert not answer.isError()


async def test_invalid_commands_are_refused_and_change_nothing() -> None:
    async with Substation(port=0, period=None) as sim, client_of(sim) as client:
        before = await values(sim, 1, "voltage_setpoint", "energy_export", "voltage_hv_an")
        refusals = {
            "unknown fault code": await client.write_registers(200, [9, 5], device_id=1),
            "setpoint outside the device's range": await client.write_registers(
                100,
                [0, 0x4200],
                device_id=1,  # 32.0 kV, CDAB
            ),
            "a counter": await client.write_registers(4, [0, 0], device_id=1),
            "an unmapped register": await client.write_register(50, 1, device_id=1),
        }
        codes = {what: getattr(answer, "exception_code", None) for what, answer in refusals.items()}
        assert codes == {
            "unknown fault code": 3,
            "setpoint outside the device's range": 3,
            "a counter": 2,
            "an unmapped register": 2,
        }
        assert await values(sim, 1, "voltage_setpoint", "energy_export", "voltage_hv_an") == before
        assert not any(sim.bays[1].active(fault) for fault in Fault)


async def test_opening_breakers_de_energises_and_counts_operations() -> None:
    async with Substation(port=0, period=None, seed=9) as sim, client_of(sim) as client:
        before = await values(sim, 1, "feeder_05_current", "breaker_operations")
        assert before["feeder_05_current"] > 0
        await client.write_coil(6, False, device_id=1)  # feeder 5
        after = await values(sim, 1, "feeder_05_current", "feeder_06_current", "breaker_operations")
        assert after["feeder_05_current"] == 0
        assert after["feeder_06_current"] > 0
        assert after["breaker_operations"] == before["breaker_operations"] + 1
        await client.write_coil(1, False, device_id=1)  # 22 kV incomer
        dark = await values(sim, 1, "voltage_mv_an", "current_mv_a", "active_power")
        assert dark == {"voltage_mv_an": 0.0, "current_mv_a": 0.0, "active_power": 0.0}
        assert (await values(sim, 1, "voltage_hv_an"))["voltage_hv_an"] > 60  # line side live


# -- serving -------------------------------------------------------------------------------------


async def test_serve_until_stopped_on_a_free_port() -> None:
    stop = asyncio.Event()
    ready: list[Substation] = []
    started = asyncio.Event()

    def on_ready(sim: Substation) -> None:
        ready.append(sim)
        started.set()

    server = asyncio.create_task(
        serve_substation("127.0.0.1", 0, devices=2, period=0.05, stop_event=stop, on_ready=on_ready)
    )
    try:
        await asyncio.wait_for(started.wait(), 5)
        (sim,) = ready
        assert sim.port > 0
        async with client_of(sim) as client:
            first = await client.read_input_registers(24, count=4, device_id=2)
            deadline = asyncio.get_running_loop().time() + 5
            changed = False
            while not changed and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.02)  # the clock-driven updates move the frequency
                latest = await client.read_input_registers(24, count=4, device_id=2)
                changed = latest.registers != first.registers
            assert changed
    finally:
        stop.set()
        await asyncio.wait_for(server, 5)
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", sim.port)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="unit ids"):
        Substation(devices=0)
    with pytest.raises(ValueError, match="unit ids"):
        Substation(devices=10, first_unit=240)
    with pytest.raises(ValueError, match="period"):
        Substation(period=0)
    sim = Substation(port=0, period=None)
    with pytest.raises(ValueError, match="meteor strike"):
        sim.inject("meteor strike", 5)
    with pytest.raises(KeyError, match="unit 7"):
        sim.inject(Fault.FROZEN, 5, unit=7)
