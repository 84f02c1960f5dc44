"""The ``derive`` hook: its hourly-history extension, and what water supply and electricity
derive from a batch."""

from __future__ import annotations

import cmath
import logging
import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone

import pytest

from smartcity.fields import TRACE_LOGGER, FieldHost, Quality, Reading, load_fields
from smartcity.fields.model import HourlyHistory
from smartcity.runtime.config import PluginSettings

Install = Callable[..., str]
Source = Callable[..., str]

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
HOUR_END = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def day_of(value: float | None) -> list[float | None]:
    return [value] * HourlyHistory.HOURS


@pytest.fixture(scope="module")
def host() -> FieldHost:
    return load_fields()


# -- HourlyHistory ---------------------------------------------------------------------------


def test_history_reads_newest_first_and_freezes_its_means() -> None:
    oldest_first = [float(hour) for hour in range(24)]
    oldest_first[-2] = None
    source = {"tank_level": oldest_first}
    hourly = HourlyHistory(HOUR_END, source)
    assert hourly.recent("tank_level", 3) == (23.0, None, 21.0)
    assert hourly.recent("tank_level", 24)[-1] == 0.0
    assert hourly.recent("pressure", 2) == (None, None)
    source["tank_level"][-1] = 99.0
    assert hourly.recent("tank_level", 1) == (23.0,), "a copy, not a view of the caller's list"
    with pytest.raises(TypeError):
        hourly.means["pressure"] = day_of(1.0)  # type: ignore[index]
    assert repr(hourly) == "HourlyHistory(hour_end=2026-11-22T09:00:00+00:00, metrics=[tank_level])"


@pytest.mark.parametrize(
    ("hour_end", "means", "error", "message"),
    [
        (datetime(2026, 11, 22, 9, 0), {}, ValueError, "timezone-aware"),
        (HOUR_END + timedelta(minutes=30), {}, ValueError, "not on a whole hour"),
        (HOUR_END + timedelta(microseconds=1), {}, ValueError, "not on a whole hour"),
        (HOUR_END, {"pm2_5": [1.0] * 23}, ValueError, "has 23 hourly means, not 24"),
        (HOUR_END, {"pm2_5": [math.inf] * 24}, ValueError, "must be finite"),
        (HOUR_END, {"pm2_5": [True] * 24}, TypeError, "must be a number"),
        (HOUR_END, {"pm2_5": ["1"] * 24}, TypeError, "must be a number"),
        (HOUR_END, {"pm2_5": "1" * 24}, TypeError, "must be a sequence"),
        (HOUR_END, {"PM2.5": [1.0] * 24}, ValueError, "not snake_case"),
        (HOUR_END, [("pm2_5", [1.0] * 24)], TypeError, "must be a mapping"),
    ],
)
def test_history_refuses_what_breaks_its_contract(
    hour_end: datetime, means: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        HourlyHistory(hour_end, means)  # type: ignore[arg-type]


def test_history_hour_end_on_a_whole_hour_of_vietnam_time() -> None:
    ict = timezone(timedelta(hours=7))
    hourly = HourlyHistory(datetime(2026, 11, 22, 16, 0, tzinfo=ict), {})
    assert hourly.hour_end == HOUR_END
    with pytest.raises(ValueError, match="hours must be an int from 1 to 24"):
        hourly.recent("pm2_5", 25)


# -- the hook extension ----------------------------------------------------------------------


def test_plugin_written_before_the_history_still_works(
    install: Install, good_plugin_source: str
) -> None:
    """The parking plugin implements ``derive(readings)`` only; pluggy calls it with the
    arguments it asks for, history or not."""
    install("danang-parking", good_plugin_source, entry_point="parking_guidance")
    host = load_fields(PluginSettings(enabled=["parking_guidance"]))
    readings = [
        Reading("spaces_free", 30, "{space}", T0),
        Reading("spaces_total", 120, "{space}", T0),
    ]
    hourly = HourlyHistory(HOUR_END, {"occupancy": day_of(70.0)})
    for given in (None, hourly):
        (occupancy,) = host.derive("parking_guidance", "han-market", "gate-1", readings, given)
        assert occupancy.value == pytest.approx(75.0)
    (occupancy,) = host["parking_guidance"].derive("han-market", "gate-1", readings)
    assert occupancy.value == pytest.approx(75.0)


def test_plugin_asking_for_the_history_receives_it(install: Install, plugin_source: Source) -> None:
    extra = """
from smartcity.fields import Reading

@hookimpl
def derive(device, hourly):
    if hourly is None:
        return []
    (last,) = hourly.recent("level", 1)
    return [Reading("level_hourly_max", last, "m", hourly.hour_end)] if last is not None else []
"""
    metrics = (
        'Metric("level", "m", "Water level", 0, 10), '
        'Metric("level_hourly_max", "m", "Highest hourly mean level", 0, 10)'
    )
    install("tides", plugin_source("tides", metrics=metrics, extra=extra), entry_point="tides")
    host = load_fields(PluginSettings(enabled=["tides"]))
    batch = [Reading("level", 2.0, "m", T0)]
    assert host.derive("tides", "son-tra", "gauge-1", batch) == []
    hourly = HourlyHistory(HOUR_END, {"level": [*day_of(1.0)[:-1], 3.5]})
    (derived,) = host.derive("tides", "son-tra", "gauge-1", batch, hourly)
    assert (derived.metric, derived.value, derived.timestamp) == ("level_hourly_max", 3.5, HOUR_END)


def test_history_of_the_wrong_type_is_the_callers_error(host: FieldHost) -> None:
    with pytest.raises(TypeError, match="hourly must be an HourlyHistory or None, not dict"):
        host.derive("environment", "s", "d", [], {"pm2_5": day_of(1.0)})  # type: ignore[arg-type]


def test_traced_derive_shows_the_history(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=TRACE_LOGGER)
    host = load_fields(PluginSettings(enabled=["environment"]), trace=True)
    try:
        caplog.clear()
        hourly = HourlyHistory(HOUR_END, {"pm2_5": day_of(12.0)})
        host.derive("environment", "lien-chieu", "aqm-1", [], hourly)
        (call,) = [r.getMessage() for r in caplog.records if "derive [hook]" in r.getMessage()]
        assert "device: aqm-1" in call
        assert "hourly: HourlyHistory(hour_end=2026-11-22T09:00:00+00:00, metrics=[pm2_5])" in call
        (finish,) = [r.getMessage() for r in caplog.records if "finish derive" in r.getMessage()]
        assert "vn_aqi" in finish
    finally:
        host.close()


# -- water supply: chlorine against QCVN 01-1:2018/BYT ---------------------------------------


def test_chlorine_compliance_per_reading(host: FieldHost) -> None:
    times = [T0 + timedelta(seconds=10 * k) for k in range(7)]
    batch = [
        Reading("residual_chlorine", 0.15, "mg/L", times[0]),  # under-dosed
        Reading("pressure", 3.2, "bar", times[0]),
        Reading("residual_chlorine", 0.2, "mg/L", times[1]),  # lower limit, inclusive
        Reading("residual_chlorine", 0.45, "mg/L", times[2]),
        Reading("residual_chlorine", 1.0, "mg/L", times[3]),  # upper limit, inclusive
        Reading("residual_chlorine", 1.35, "mg/L", times[4]),  # over-dosed
        Reading("residual_chlorine", 0.5, "mg/L", times[5], Quality.UNCERTAIN, "calibration due"),
        Reading("residual_chlorine", math.nan, "mg/L", times[6], Quality.BAD, "sensor fault"),
    ]
    derived = host.derive("water_supply", "cau-do", "analyser-1", batch)
    assert [(r.metric, r.value, r.timestamp) for r in derived] == [
        ("chlorine_compliant", False, times[0]),
        ("chlorine_compliant", True, times[1]),
        ("chlorine_compliant", True, times[2]),
        ("chlorine_compliant", True, times[3]),
        ("chlorine_compliant", False, times[4]),
        ("chlorine_compliant", True, times[5]),
    ]
    assert [r.quality for r in derived] == [Quality.GOOD] * 5 + [Quality.UNCERTAIN]
    assert derived[-1].reason == "calibration due"
    metric = host["water_supply"].metrics["chlorine_compliant"]
    assert all(metric.in_range(r.value) for r in derived)


def test_water_batch_without_chlorine_derives_nothing(host: FieldHost) -> None:
    batch = [Reading("flow_rate", 850.0, "m3/h", T0), Reading("tank_level", 4.2, "m", T0)]
    assert host.derive("water_supply", "cau-do", "station-1", batch) == []


# -- electricity: voltage unbalance ----------------------------------------------------------

A = cmath.exp(2j * math.pi / 3)  # the 120-degree operator of symmetrical components


def phase_phasors(v1: complex, v2: complex, v0: complex) -> tuple[complex, complex, complex]:
    """Phase voltages from their positive-, negative- and zero-sequence components
    (Fortescue): Va = V0 + V1 + V2, Vb = V0 + a^2 V1 + a V2, Vc = V0 + a V1 + a^2 V2."""
    return (v0 + v1 + v2, v0 + A * A * v1 + A * v2, v0 + A * v1 + A * A * v2)


def electricity_batch(
    when: datetime, names: Sequence[str], values: Sequence[float], quality: Quality = Quality.GOOD
) -> list[Reading]:
    return [Reading(n, v, "kV", when, quality) for n, v in zip(names, values, strict=True)]


LINE = ("voltage_ab", "voltage_bc", "voltage_ca")
PHASE = ("voltage_an", "voltage_bn", "voltage_cn")


@pytest.mark.parametrize("u2", [0.0, 0.004, 0.02, 0.065])
def test_iec_unbalance_equals_the_negative_sequence_ratio(host: FieldHost, u2: float) -> None:
    """A 22 kV busbar built from known sequence components: the unbalance derived from
    the three line-voltage magnitudes is |V2| / |V1|, whatever the zero sequence."""
    v1 = 22 / math.sqrt(3)
    va, vb, vc = phase_phasors(v1, u2 * v1 * cmath.exp(0.7j), 0.3 * cmath.exp(-1.1j))
    lines = (abs(va - vb), abs(vb - vc), abs(vc - va))
    phases = (abs(va), abs(vb), abs(vc))
    batch = electricity_batch(T0, LINE, lines) + electricity_batch(T0, PHASE, phases)
    derived = {r.metric: r for r in host.derive("electricity", "hoa-khanh", "bay-1", batch)}
    assert derived["voltage_unbalance"].value == pytest.approx(100 * u2, abs=1e-6)
    assert derived["voltage_unbalance"].quality is Quality.GOOD
    assert derived["voltage_unbalance"].timestamp == T0
    # The NEMA measure of the same bay, from the phase magnitudes, by hand.
    mean = sum(phases) / 3
    nema = 100 * max(abs(v - mean) for v in phases) / mean
    assert derived["phase_voltage_unbalance"].value == pytest.approx(nema)


def test_nema_unbalance_of_a_realistic_22kv_bay(host: FieldHost) -> None:
    # 12.70, 12.85, 12.40 kV: mean 12.65, largest deviation 0.25 -> 1.976 %
    batch = electricity_batch(T0, PHASE, (12.70, 12.85, 12.40))
    (derived,) = host.derive("electricity", "hoa-khanh", "bay-1", batch)
    assert derived.metric == "phase_voltage_unbalance"
    assert derived.value == pytest.approx(100 * 0.25 / 12.65)
    assert host["electricity"].metrics["phase_voltage_unbalance"].in_range(derived.value)


def test_a_lost_phase_shows_as_full_unbalance(host: FieldHost) -> None:
    # A blown fuse on a 0.4 kV feeder: 0.231, 0.229, 0 kV -> mean 0.1533, deviation 0.1533.
    (derived,) = host.derive(
        "electricity", "lien-chieu", "ts-12", electricity_batch(T0, PHASE, (0.231, 0.229, 0.0))
    )
    assert derived.value == pytest.approx(100.0)


def test_unbalance_holds_the_phases_a_meter_left_out(host: FieldHost) -> None:
    """Reporting by exception: at t1 only phase A moved; B and C keep their t0 values."""
    t1 = T0 + timedelta(seconds=1)
    batch = [
        *electricity_batch(T0, PHASE, (12.70, 12.70, 12.70)),
        Reading("current_a", 410.0, "A", T0),
        Reading("voltage_an", 12.20, "kV", t1),
        Reading("current_a", 415.0, "A", t1),
    ]
    derived = host.derive("electricity", "hoa-khanh", "bay-1", batch)
    assert [(r.timestamp, r.quality) for r in derived] == [(T0, Quality.GOOD), (t1, Quality.GOOD)]
    assert derived[0].value == pytest.approx(0.0)
    mean = (12.20 + 12.70 + 12.70) / 3
    assert derived[1].value == pytest.approx(100 * (mean - 12.20) / mean)


def test_incomplete_bad_and_uncertain_voltages(host: FieldHost) -> None:
    t1, t2 = T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)
    batch = [
        # T0: phase C not yet seen in this batch: nothing.
        *electricity_batch(T0, PHASE[:2], (12.7, 12.7)),
        # t1: phase C arrives bad: nothing; its bad reading is stored on its own.
        Reading("voltage_cn", math.nan, "kV", t1, Quality.BAD, "VT fuse"),
        # t2: phase C back, uncertain: an uncertain unbalance, saying why.
        Reading("voltage_cn", 12.5, "kV", t2, Quality.UNCERTAIN, "over-range"),
    ]
    (derived,) = host.derive("electricity", "hoa-khanh", "bay-1", batch)
    assert derived.timestamp == t2
    assert derived.quality is Quality.UNCERTAIN
    assert derived.reason == "voltage_cn uncertain: over-range"
    mean = (12.7 + 12.7 + 12.5) / 3
    assert derived.value == pytest.approx(100 * (mean - 12.5) / mean)


def test_de_energised_bay_has_no_unbalance(host: FieldHost) -> None:
    batch = electricity_batch(T0, PHASE, (0.0, 0.0, 0.0)) + electricity_batch(
        T0, LINE, (0.002, 0.001, 0.0)
    )
    assert host.derive("electricity", "hoa-khanh", "bay-2", batch) == []


def test_line_voltages_no_system_can_have_are_flagged(host: FieldHost) -> None:
    batch = electricity_batch(T0, LINE, (22.0, 10.0, 5.0))  # 22 > 10 + 5
    (derived,) = host.derive("electricity", "hoa-khanh", "bay-1", batch)
    assert derived.metric == "voltage_unbalance"
    assert derived.quality is Quality.BAD
    assert math.isnan(derived.value)
    assert "cannot be the magnitudes of a three-phase system" in derived.reason


def test_electricity_history_alone_derives_nothing(host: FieldHost) -> None:
    hourly = HourlyHistory(HOUR_END, {"voltage_an": day_of(12.7)})
    assert host.derive("electricity", "hoa-khanh", "bay-1", [], hourly) == []


def test_declared_inputs_are_what_derive_is_handed() -> None:
    from smartcity.fields import load_fields

    host = load_fields()
    assert "voltage_an" in host["electricity"].derive_inputs
    assert host["electricity"].derive_reads_batches is True
    assert host["environment"].derive_inputs is None
    assert host["environment"].derive_reads_batches is False
    # Water supply's one derived value depends on one reading: a derivation, no hook.
    assert host["water_supply"].derive_caller is None
    assert host["water_supply"].derive_reads_batches is False
    (chlorine,) = host["water_supply"].derivations["residual_chlorine"]
    assert chlorine.metric == "chlorine_compliant"
