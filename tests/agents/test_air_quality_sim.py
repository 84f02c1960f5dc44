"""The simulated air-quality station: the environment field's register map served over Modbus
TCP, read by the agent's own driver through the profile ``smartcity sim air`` writes; its day
in Da Nang on a clock the test controls; faults through the shared control block; and its
registers decoded by an implementation that shares nothing with the project's codec."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from modbus_fixtures import SettableClock
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.constants import ExcCodes
from pyModbusTCP.client import ModbusClient
from pyModbusTCP.constants import MB_EXCEPT_ERR

from smartcity.agents.driver import driver_for
from smartcity.agents.modbus.driver import ModbusDriver
from smartcity.agents.profile import Function, ModbusDevice, load_profile
from smartcity.agents.reading import Quality
from smartcity.agents.sim.air_quality import EPISODE_PM25, AirQualityStation
from smartcity.agents.sim.modbus_control import (
    CONTROL_ADDRESS,
    KIND_ADDRESS,
    Fault,
    SimulatorKind,
)
from smartcity.plugins import environment, profiles, vn_aqi

DA_NANG = timezone(timedelta(hours=7))
POLLUTANTS = ("pm2_5", "pm10", "no2", "so2", "co", "o3")
SMARTCITY = [sys.executable, "-m", "smartcity.cli.main"]
ENV = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}


def at(month: int, hour: float) -> float:
    return (datetime(2026, month, 15, tzinfo=DA_NANG) + timedelta(hours=hour)).timestamp()


async def read(profile: ModbusDevice) -> dict[str, float]:
    """Every point once through the agent's driver, as ``smartcity agent check`` reads."""
    driver = driver_for(profile)
    try:
        readings = await driver.read_once()
    finally:
        await driver.close()
    bad = [(r.metric, r.reason) for r in readings if r.quality is not Quality.GOOD]
    assert not bad, bad
    return {r.metric: float(r.value) for r in readings}  # type: ignore[arg-type]


# -- the register map ------------------------------------------------------------------------


def test_the_station_serves_the_shipped_template() -> None:
    (template,) = [t for t in profiles.load("environment") if t.name == "air-quality-station"]
    station = AirQualityStation(port=0, period=None, seed=1)
    served = [(p.name, p.function, p.address, p.type.value) for p in station.profile.points]
    assert served == [(p["name"], Function.INPUT, p["address"], "float32") for p in template.points]
    names = [*POLLUTANTS, "air_temperature", "relative_humidity"]
    assert [p.name for p in station.profile.points] == names
    assert {(p.byte_order, p.word_order) for p in station.profile.points} == {("big", "big")}


async def test_the_agent_reads_good_values_in_range_through_the_written_profile(
    tmp_path: Path,
) -> None:
    async with AirQualityStation(port=0, period=None, seed=7, site="hai-chau-air") as station:
        path = tmp_path / "air-quality-station.yaml"
        path.write_text(yaml.safe_dump(station.document()), encoding="utf-8")
        profile = load_profile(path, known_fields=["environment"])
        assert isinstance(profile, ModbusDevice)
        assert (profile.site, profile.field, profile.poll_interval) == (
            "hai-chau-air",
            "environment",
            5.0,
        )
        values = await read(profile)
    catalogue = {metric.name: metric for metric in environment.metrics()}
    for name, value in values.items():
        metric = catalogue[name]
        assert metric.check(value, metric.unit) is None, (name, value)  # GOOD for monitoring
    plausible = {
        "pm2_5": (3, 80),
        "pm10": (5, 150),
        "no2": (5, 120),
        "so2": (1, 40),
        "co": (100, 3000),
        "o3": (1, 160),
        "air_temperature": (15, 38),
        "relative_humidity": (40, 100),
    }
    assert set(values) == set(plausible)
    for name, (low, high) in plausible.items():
        assert low <= values[name] <= high, (name, values[name])
    assert values["pm10"] > values["pm2_5"]  # PM2.5 is part of PM10


# -- a day in Da Nang -----------------------------------------------------------------------


def day(month: int, seed: int = 3) -> dict[int, dict[str, float]]:
    """The station's values at each whole hour of the 15th of ``month``."""
    clock = SettableClock(at(month, 0))
    station = AirQualityStation(port=0, period=None, clock=clock, seed=seed)
    hours = {}
    for hour in range(24):
        clock.now = at(month, hour)
        station.step()
        hours[hour] = dict(station.logger.shown)
    return hours


def mean(hours: dict[int, dict[str, float]], name: str, which: range = range(24)) -> float:
    return sum(hours[hour][name] for hour in which) / len(which)


def test_values_follow_a_plausible_day_and_season() -> None:
    january, july = day(1), day(7)
    for hours in (january, july):
        rush, afternoon, night = range(7, 9), range(14, 16), range(2, 4)
        assert mean(hours, "pm2_5", rush) > 1.3 * mean(hours, "pm2_5", afternoon)
        assert mean(hours, "no2", rush) > 1.5 * mean(hours, "no2", afternoon)
        assert mean(hours, "co", rush) > 1.5 * mean(hours, "co", night)
        assert mean(hours, "o3", range(12, 15)) > 3 * mean(hours, "o3", night)
        assert mean(hours, "air_temperature", afternoon) > mean(hours, "air_temperature", night)
        assert mean(hours, "relative_humidity", night) > mean(hours, "relative_humidity", afternoon)
    assert mean(january, "pm2_5") > 1.3 * mean(july, "pm2_5")  # dry season against wet
    assert mean(july, "air_temperature") > mean(january, "air_temperature") + 4
    assert 20 < mean(january, "air_temperature") < 24
    assert 27 < mean(july, "air_temperature") < 31


def test_the_simulation_is_seedable() -> None:
    assert day(3, seed=11) == day(3, seed=11)
    assert day(3, seed=11) != day(3, seed=12)


# -- faults ----------------------------------------------------------------------------------


async def test_a_pollution_episode_injected_over_modbus_makes_the_default_rules_fire() -> None:
    clock = SettableClock(at(2, 10))
    async with AirQualityStation(port=0, period=None, clock=clock, seed=2) as station:
        profile = station.profile_for()
        normal = await read(profile)
        client = AsyncModbusTcpClient("127.0.0.1", port=station.port, timeout=1, retries=0)
        assert await client.connect()
        try:
            kind = await client.read_holding_registers(KIND_ADDRESS, count=1, device_id=1)
            assert kind.registers == [SimulatorKind.AIR_QUALITY_STATION]
            code = Fault.POLLUTION_EPISODE.code
            reply = await client.write_registers(CONTROL_ADDRESS, [code, 600], device_id=1)
            assert not reply.isError()
            mask = await client.read_holding_registers(CONTROL_ADDRESS + 2, count=1, device_id=1)
            assert mask.registers == [1 << (code - 1)]
        finally:
            client.close()
        episode = []
        for _ in range(5):
            clock.advance(60)
            station.step()
            episode.append(await read(profile))
        pm25 = [values["pm2_5"] for values in episode]
        assert min(pm25) > 0.9 * EPISODE_PM25[0]
        assert min(pm25) > 5 * normal["pm2_5"]
        assert all(v["pm10"] > v["pm2_5"] for v in episode)
        # The default rules judge the hourly VN_AQI: an hour of this against two clean ones
        hour = sum(pm25) / len(pm25)
        pm10 = sum(v["pm10"] for v in episode) / len(episode)
        aqi = vn_aqi.hourly_aqi(
            {
                "pm2_5": [hour, normal["pm2_5"], normal["pm2_5"], *[None] * 9],
                "pm10": [pm10, normal["pm10"], normal["pm10"], *[None] * 9],
            }
        )
        assert aqi.value is not None
        fired = {rule.name for rule in environment.alert_rules() if aqi.value >= rule.threshold}
        assert fired >= {"air_quality_poor", "air_quality_bad", "air_quality_very_bad"}, aqi
        clock.advance(600)
        station.step()
        after = await read(profile)
        assert after["pm2_5"] < 100


async def test_frozen_no_answer_and_clear() -> None:
    clock = SettableClock(at(11, 8))
    async with AirQualityStation(port=0, period=None, clock=clock, seed=4) as station:
        profile = station.profile_for(timeout=0.3, retries=0)
        station.inject(Fault.FROZEN, 30)
        frozen = await read(profile)
        clock.advance(10)
        station.step()
        assert await read(profile) == frozen
        station.inject("no_answer", 30)
        driver = ModbusDriver(profile)
        try:
            silent = await driver.read_once()
        finally:
            await driver.close()
        assert {r.quality for r in silent} == {Quality.BAD}
        station.clear()
        clock.advance(10)
        station.step()
        assert await read(profile) != frozen
        with pytest.raises(ValueError, match="has no fault 'voltage_sag'"):
            station.inject(Fault.VOLTAGE_SAG, 5)


async def test_the_device_refuses_what_it_does_not_know() -> None:
    async with AirQualityStation(port=0, period=None) as station:
        client = AsyncModbusTcpClient("127.0.0.1", port=station.port, timeout=1, retries=0)
        assert await client.connect()
        try:
            answers = {
                "a substation's fault": await client.write_registers(
                    CONTROL_ADDRESS, [Fault.VOLTAGE_SAG.code, 5], device_id=1
                ),
                "an unknown fault code": await client.write_register(
                    CONTROL_ADDRESS, 99, device_id=1
                ),
                "a measurement": await client.write_register(0, 1, device_id=1),
                "a coil": await client.read_coils(0, count=1, device_id=1),
                "past the map": await client.read_input_registers(14, count=4, device_id=1),
            }
        finally:
            client.close()
        codes = {what: getattr(answer, "exception_code", None) for what, answer in answers.items()}
        assert codes == {
            "a substation's fault": ExcCodes.ILLEGAL_VALUE,
            "an unknown fault code": ExcCodes.ILLEGAL_VALUE,
            "a measurement": ExcCodes.ILLEGAL_ADDRESS,
            "a coil": ExcCodes.ILLEGAL_ADDRESS,
            "past the map": ExcCodes.ILLEGAL_ADDRESS,
        }
        assert not any(station.logger.active(fault) for fault in Fault)


@pytest.fixture(scope="module")
def station_in_a_thread() -> Iterator[tuple[AirQualityStation, ModbusClient, Callable[[], None]]]:
    """One station serving from its own event loop, a pyModbusTCP client on it, and a
    function that clears its faults (between examples)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    station = AirQualityStation(port=0, period=None, seed=1)
    asyncio.run_coroutine_threadsafe(station.start(), loop).result(10)

    async def clear() -> None:
        station.clear()

    client = ModbusClient(host="127.0.0.1", port=station.port, unit_id=1, timeout=2)
    try:
        yield station, client, lambda: asyncio.run_coroutine_threadsafe(clear(), loop).result(5)
    finally:
        client.close()
        asyncio.run_coroutine_threadsafe(station.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


DATA_FUNCTIONS = [1, 2, 3, 4, 5, 6, 15, 16, 22, 23]
"""Reads and writes; diagnostics (8) and the like are left out: they change the state of the
server process, not of the device."""


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    function=st.sampled_from(DATA_FUNCTIONS) | st.integers(0x41, 0x48),
    body=st.binary(max_size=40)
    | st.tuples(st.integers(195, 210), st.lists(st.integers(0, 0xFFFF), max_size=6)).map(
        lambda start_words: struct.pack(
            f">HHB{len(start_words[1])}H",
            start_words[0],
            len(start_words[1]),
            2 * len(start_words[1]),
            *start_words[1],
        )
    ),
)
def test_any_request_gets_an_answer_or_a_modbus_exception(
    station_in_a_thread, function: int, body: bytes
) -> None:
    """Whatever bytes a client sends as a request (the control block's writes included),
    the station answers it or refuses it with a Modbus exception, and keeps serving."""
    station, client, clear = station_in_a_thread
    answer = client.custom_request(bytes([function]) + body)
    if answer is None:
        assert client.last_error == MB_EXCEPT_ERR, client.last_error_as_txt
        assert client.last_except in (1, 2, 3, 4), client.last_except
    else:
        assert answer[0] == function, answer
    clear()
    assert len(client.read_input_registers(0, 16) or []) == 16
    assert all(value >= 0 for name, value in station.logger.shown.items() if name in POLLUTANTS)


# -- decoded by an independent implementation ------------------------------------------------


async def test_registers_decode_the_same_in_an_independent_client() -> None:
    """pyModbusTCP reads the raw words and ``struct`` decodes them as IEEE 754 big-endian
    floats (ABCD): neither pymodbus nor the project's codec takes part."""
    async with AirQualityStation(port=0, period=None, seed=9) as station:
        profile = station.profile_for()
        through_agent = await read(profile)

        def independent() -> tuple[list[int] | None, list[int] | None]:
            client = ModbusClient(host="127.0.0.1", port=station.port, unit_id=1, timeout=2)
            try:
                return client.read_input_registers(0, 16), client.read_holding_registers(203, 1)
            finally:
                client.close()

        words, kind = await asyncio.to_thread(independent)
    assert words is not None
    assert len(words) == 16
    assert kind == [2]
    names = [p.name for p in profile.points]
    decoded = {
        name: struct.unpack(">f", struct.pack(">HH", words[2 * i], words[2 * i + 1]))[0]
        for i, name in enumerate(names)
    }
    assert decoded == through_agent


# -- the commands ----------------------------------------------------------------------------


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SMARTCITY, *args], capture_output=True, text=True, timeout=60, env=ENV)


@pytest.fixture
def sim_air(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    out = tmp_path / "sim"
    process = subprocess.Popen(
        [*SMARTCITY, "sim", "air", "--port", "0", "--out", str(out), "--seed", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=ENV,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 30
    lines: list[str] = []
    while not any("fault:" in line for line in lines) and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        lines.append(line)
    endpoint = re.search(r"tcp://127\.0\.0\.1:\d+", "".join(lines))
    assert endpoint, "".join(lines)
    try:
        yield endpoint.group(0), out
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0


def test_sim_air_writes_a_profile_that_check_reads_and_faults_by_name(sim_air) -> None:
    endpoint, out = sim_air
    profile = out / "air-quality-station.yaml"
    document = yaml.safe_load(profile.read_text(encoding="utf-8"))
    assert (document["site"], document["endpoint"], document["poll_interval"]) == (
        "son-tra-air",
        endpoint,
        "5s",
    )
    wrong = run("sim", "fault", endpoint, "voltage_sag")
    assert wrong.returncode == 1
    assert (
        "the air-quality station at " + endpoint + " has no fault 'voltage_sag'; its faults: "
        "pollution_episode, frozen, no_answer, clear"
    ) in " ".join(wrong.stderr.split())
    fault = run("sim", "fault", endpoint, "pollution_episode", "--seconds", "60")
    assert fault.returncode == 0, fault.stderr
    assert "pollution_episode on unit 1 of the air-quality station" in fault.stdout
    check = run("agent", "check", "--profile", str(profile))
    assert check.returncode == 0, check.stdout + check.stderr
    row = next(line for line in check.stdout.splitlines() if "pm2_5" in line)
    assert float(re.search(r"\s(\d+\.\d+)\s+│ ug/m3", row).group(1)) > 250, row


def test_sim_air_refuses_a_site_that_cannot_be_a_subject_token(tmp_path: Path) -> None:
    done = run("sim", "air", "--port", "0", "--site", "Son Tra", "--out", str(tmp_path))
    assert done.returncode == 2
    assert "site" in done.stderr
    assert not (tmp_path / "air-quality-station.yaml").exists()
