"""Hourly VN_AQI against Decision 1459/QD-TCMT (2019), worked out by hand.

Every expected value below is computed in the test from the Decision's own formula and its
Table 2 breakpoints, written out here independently of the plugin:

    I = (I_high - I_low) / (BP_high - BP_low) * (C - BP_low) + I_low

and the environment plugin, loaded through its entry point like in production, must return
the same through the ``derive`` hook.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone

import pytest

from smartcity.fields import FieldHost, Quality, Reading, load_fields
from smartcity.fields.model import HourlyHistory
from smartcity.plugins import vn_aqi

ICT = timezone(timedelta(hours=7))  # Vietnam, UTC+7
HOUR_END = datetime(2026, 11, 22, 20, 0, tzinfo=ICT)

# Table 2 of the Decision (ug/m3), the hourly columns.
LEVELS = (0, 50, 100, 150, 200, 300, 400, 500)
TABLE_2 = {
    "o3": (0, 160, 200, 300, 400, 800, 1000, 1200),
    "co": (0, 10000, 30000, 45000, 60000, 90000, 120000, 150000),
    "so2": (0, 125, 350, 550, 800, 1600, 2100, 2630),
    "no2": (0, 100, 200, 700, 1200, 2350, 3100, 3850),
    "pm10": (0, 50, 150, 250, 350, 420, 500, 600),
    "pm2_5": (0, 25, 50, 80, 150, 250, 350, 500),
}


def by_hand(pollutant: str, c: float) -> float:
    """Formula 1 (2 for a NowCast) on the row pair around ``c``; 500 from row 8 up."""
    bp = TABLE_2[pollutant]
    if c >= bp[-1]:
        return 500.0
    i = max(k for k in range(len(bp) - 1) if bp[k] <= c)
    i_low, i_high, bp_low, bp_high = LEVELS[i], LEVELS[i + 1], bp[i], bp[i + 1]
    return (i_high - i_low) / (bp_high - bp_low) * (c - bp_low) + i_low


def half_up(x: float) -> int:
    return math.floor(x + 0.5)


@pytest.fixture(scope="module")
def host() -> FieldHost:
    return load_fields()


def history(
    newest_first: Mapping[str, Sequence[float | None]], hour_end: datetime = HOUR_END
) -> HourlyHistory:
    """A day of hourly means from the most recent hours given newest first (c1, c2, ...),
    earlier hours without data."""
    means = {}
    for metric, recent in newest_first.items():
        day = [None] * (HourlyHistory.HOURS - len(recent)) + list(reversed(recent))
        means[metric] = day
    return HourlyHistory(hour_end, means)


def derive(
    host: FieldHost, hourly: HourlyHistory | None, batch: Sequence[Reading] = ()
) -> dict[str, Reading]:
    derived = host.derive("environment", "lien-chieu", "aqm-1", list(batch), hourly)
    by_metric = {reading.metric: reading for reading in derived}
    assert len(by_metric) == len(derived), "one reading per metric and hour"
    return by_metric


# -- sub-indices, one pollutant at a time ----------------------------------------------------

CONCENTRATIONS = {
    # at zero, inside the bands, on breakpoints (both bands meet there), beyond row 8
    "pm2_5": (0, 12.5, 25, 25.25, 37.5, 50, 65, 80, 100, 150, 200, 300, 425, 500, 700),
    "pm10": (0, 30, 50, 100, 150, 200, 250, 300, 385, 420, 460, 550, 600, 1000),
    "o3": (0, 136.1, 160, 180, 200, 250, 350, 600, 800, 900, 1100, 1200, 1500),
    "no2": (0, 118.7, 100, 200, 450, 700, 1000, 2000, 2350, 3500, 3850, 4000),
    "so2": (0, 62.5, 125, 200, 450, 550, 700, 1200, 1600, 2365, 2630),
    "co": (0, 5000, 10000, 20000, 37500, 52500, 75000, 105000, 135000, 150000),
}


@pytest.mark.parametrize(
    ("pollutant", "concentration"),
    [(p, c) for p, values in CONCENTRATIONS.items() for c in values],
)
def test_sub_index_is_table_2_interpolated(pollutant: str, concentration: float) -> None:
    assert vn_aqi.sub_index(pollutant, concentration) == pytest.approx(
        by_hand(pollutant, concentration), abs=1e-9
    )


def test_a_few_sub_indices_written_out() -> None:
    # PM2.5 at 65: band 50..80 -> 100..150: (150 - 100) / (80 - 50) * (65 - 50) + 100 = 125
    assert vn_aqi.sub_index("pm2_5", 65) == pytest.approx(125)
    # PM10 at 385: band 350..420 -> 200..300: (300 - 200) / (420 - 350) * (385 - 350) + 200
    assert vn_aqi.sub_index("pm10", 385) == pytest.approx(250)
    # CO at 52 500: band 45 000..60 000 -> 150..200
    assert vn_aqi.sub_index("co", 52500) == pytest.approx(175)
    # On a breakpoint both bands give its level.
    assert vn_aqi.sub_index("no2", 200) == pytest.approx(100)
    # Row 8 reads "at least": from there up, 500.
    assert vn_aqi.sub_index("so2", 2630) == vn_aqi.sub_index("so2", 9000) == 500


def test_sub_index_refuses_what_is_not_a_concentration() -> None:
    with pytest.raises(ValueError, match="not a concentration"):
        vn_aqi.sub_index("pm2_5", -1)
    with pytest.raises(ValueError, match="not a concentration"):
        vn_aqi.sub_index("o3", math.nan)
    with pytest.raises(ValueError, match="'tsp' has no VN_AQI breakpoints"):
        vn_aqi.sub_index("tsp", 10)


@pytest.mark.parametrize("row", range(len(CONCENTRATIONS["pm2_5"])))
def test_plugin_returns_the_hand_computed_index(host: FieldHost, row: int) -> None:
    """Steady concentrations: every NowCast equals the hourly mean (w* = 1), so each
    sub-index is formula 1 of the concentration and VN_AQI the largest, rounded."""
    steady = {p: values[row % len(values)] for p, values in CONCENTRATIONS.items()}
    out = derive(host, history({p: [c] * 12 for p, c in steady.items()}))
    expected = {p: by_hand(p, c) for p, c in steady.items()}
    for pollutant, value in expected.items():
        assert out[f"aqi_{pollutant}"].value == half_up(value), pollutant
        assert out[f"aqi_{pollutant}"].quality is Quality.GOOD
    assert out["vn_aqi"].value == half_up(max(expected.values()))
    assert out["vn_aqi"].quality is Quality.GOOD
    assert out["vn_aqi"].timestamp == HOUR_END
    assert out["pm2_5_nowcast"].value == pytest.approx(steady["pm2_5"])


def test_rounding_is_half_up_as_the_decision_rounds() -> None:
    # PM2.5 NowCast 25.25: (50 - 0) / (25 - 0) * 25.25 = 50.5 -> 51 (Python's round: 50).
    assert vn_aqi.sub_index("pm2_5", 25.25) == 50.5
    assert vn_aqi.round_index(50.5) == 51
    assert vn_aqi.round_index(50.49) == 50
    assert vn_aqi.aqi_category(50.5).index == 2


# -- NowCast -------------------------------------------------------------------------------

# Section 2.3 a of the Decision: PM2.5 hourly means from 09:00 to 20:00.
DECISION_PM25 = (26.9, 24.7, 20.5, 23.5, 19.5, 16.5, 19.0, 16.5, 20.3, 22.4, 19.6, 20.6)
DECISION_C = tuple(reversed(DECISION_PM25))  # c1 = 20:00, c12 = 09:00


def test_nowcast_of_the_decisions_worked_example() -> None:
    c = DECISION_C
    w = min(c) / max(c)  # 16.5 / 26.9 = 0.61 > 1/2, so w = w*
    assert w == pytest.approx(0.61, abs=0.005)
    expected = sum(w ** (i - 1) * c[i - 1] for i in range(1, 13)) / sum(
        w ** (i - 1) for i in range(1, 13)
    )
    result = vn_aqi.nowcast(c)
    assert result == pytest.approx(expected)
    assert round(result, 1) == 20.3  # the Decision's result


def test_nowcast_with_the_weight_floored_at_one_half() -> None:
    # A morning peak: Cmin / Cmax = 10 / 80 < 1/2, so w = 1/2.
    c = (80.0, 60.0, 30.0, 20.0, 15.0, 10.0, 10.0, 12.0, 15.0, 20.0, 25.0, 30.0)
    weighted_mean = sum(0.5 ** (i - 1) * c[i - 1] for i in range(1, 13)) / sum(
        0.5 ** (i - 1) for i in range(1, 13)
    )
    decision_form = sum(0.5**i * c[i - 1] for i in range(1, 13))  # as the Decision prints it
    result = vn_aqi.nowcast(c)
    assert result == pytest.approx(weighted_mean)
    assert decision_form == pytest.approx(result * (1 - 2**-12))
    assert abs(decision_form - result) / result < 0.00025
    assert half_up(by_hand("pm2_5", decision_form)) == half_up(by_hand("pm2_5", result))


def test_nowcast_gives_a_missing_hour_no_weight() -> None:
    c = (40.0, None, 36.0, 30.0, None, 28.0, 26.0, 30.0, 32.0, 30.0, 29.0, 27.0)
    present = [(i, x) for i, x in enumerate(c, start=1) if x is not None]
    w = max(min(x for _, x in present) / max(x for _, x in present), 0.5)  # 26 / 40 = 0.65
    expected = sum(w ** (i - 1) * x for i, x in present) / sum(w ** (i - 1) for i, _ in present)
    assert vn_aqi.nowcast(c) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("first_three", "computable"),
    [
        ((10.0, 10.0, 10.0), True),
        ((None, 10.0, 10.0), True),
        ((10.0, None, 10.0), True),
        ((10.0, 10.0, None), True),
        ((10.0, None, None), False),
        ((None, 10.0, None), False),
        ((None, None, 10.0), False),
        ((None, None, None), False),
    ],
)
def test_nowcast_needs_two_of_the_last_three_hours(
    first_three: tuple[float | None, ...], computable: bool
) -> None:
    c = (*first_three, *([12.0] * 9))
    assert (vn_aqi.nowcast(c) is not None) is computable


def test_nowcast_of_clean_air_and_of_wrong_input() -> None:
    assert vn_aqi.nowcast((0.0,) * 12) == 0.0
    with pytest.raises(ValueError, match="12 hourly means, not 11"):
        vn_aqi.nowcast((1.0,) * 11)
    with pytest.raises(ValueError, match="not an hourly mean"):
        vn_aqi.nowcast((1.0, -2.0, *([1.0] * 10)))


# -- the hourly index through the plugin -----------------------------------------------------


def test_decisions_worked_hourly_example(host: FieldHost) -> None:
    """Section 2.3 b: O3 136.1, NO2 118.7 and the PM2.5 NowCast above (20.3).

    The Decision prints AQI(NO2) = 60 and so AQI^h = 60, but its own numbers give
    (100 - 50) / (200 - 100) * (118.7 - 100) + 50 = 59.35, which rounds to 59; no rounding
    rule reproduces all of its examples (rounding up would turn its daily NO2 example,
    65.4, into 66 instead of the 65 it prints). The formula is what is implemented.
    """
    out = derive(host, history({"o3": [136.1], "no2": [118.7], "pm2_5": DECISION_C}))
    o3 = (50 - 0) / (160 - 0) * (136.1 - 0) + 0
    no2 = (100 - 50) / (200 - 100) * (118.7 - 100) + 50
    pm25 = (50 - 0) / (25 - 0) * (vn_aqi.nowcast(DECISION_C) - 0) + 0
    assert (half_up(o3), half_up(no2), half_up(pm25)) == (43, 59, 41)
    assert out["aqi_o3"].value == 43
    assert out["aqi_no2"].value == 59
    assert out["aqi_pm2_5"].value == 41
    assert out["vn_aqi"].value == 59
    assert out["vn_aqi_category"].value == 2  # moderate, yellow
    dominant = host["environment"].metrics["vn_aqi_dominant"].states[out["vn_aqi_dominant"].value]
    assert dominant == "no2"
    assert round(out["pm2_5_nowcast"].value, 1) == 20.3
    assert {"aqi_so2", "aqi_co", "aqi_pm10", "pm10_nowcast"}.isdisjoint(out)
    for reading in out.values():
        assert reading.timestamp == HOUR_END
        assert reading.quality is Quality.GOOD
        assert host["environment"].metrics[reading.metric].in_range(reading.value)


def test_decisions_daily_example_sub_indices_agree_with_table_2() -> None:
    # Section 2.3 c (daily index), whose sub-indices use the same Table 2 and formula 1.
    assert half_up(vn_aqi.sub_index("o3", 114.6)) == 36
    assert half_up(vn_aqi.sub_index("no2", 130.8)) == 65
    assert half_up(vn_aqi.sub_index("pm2_5", 55.7)) == 110


def test_plugin_uses_the_nowcast_for_particles_and_the_last_hour_for_gases(
    host: FieldHost,
) -> None:
    """A haze building up: PM10 weighed by the NowCast, O3 taken from the last hour only."""
    pm10 = (180.0, 150.0, 110.0, 90.0, 80.0, 70.0, 70.0, 65.0, 60.0, 60.0, 55.0, 50.0)
    o3 = (120.0, 300.0, 300.0)  # only c1 counts for a gas
    out = derive(host, history({"pm10": pm10, "o3": o3}))
    w = max(min(pm10) / max(pm10), 0.5)  # 50 / 180 < 1/2 -> 1/2
    now = sum(w ** (i - 1) * pm10[i - 1] for i in range(1, 13)) / sum(
        w ** (i - 1) for i in range(1, 13)
    )
    expected_pm10 = (150 - 100) / (250 - 150) * (now - 150) + 100
    assert 150 < now < 250
    assert out["pm10_nowcast"].value == pytest.approx(now)
    assert out["aqi_pm10"].value == half_up(expected_pm10)
    assert out["aqi_o3"].value == half_up((50 - 0) / (160 - 0) * 120)
    assert out["vn_aqi"].value == half_up(expected_pm10)
    assert out["vn_aqi_category"].value == 3  # 101..150: poor, orange


def test_insufficient_particle_data_gives_no_index(host: FieldHost) -> None:
    # PM2.5 only in c1 (1 of the last 3 hours), no PM10: no NowCast, so no VN_AQI,
    # although O3 and NO2 have their sub-indices.
    out = derive(
        host,
        history({"pm2_5": [30.0, None, None, 30.0, 30.0], "o3": [90.0], "no2": [40.0]}),
    )
    assert "aqi_pm2_5" not in out
    assert "pm2_5_nowcast" not in out
    assert out["aqi_o3"].value == half_up(90 * 50 / 160)
    assert out["aqi_no2"].value == half_up(40 * 50 / 100)
    aqi = out["vn_aqi"]
    assert aqi.quality is Quality.BAD
    assert math.isnan(aqi.value)
    assert "PM2.5 or PM10" in aqi.reason
    assert "2 of the last 3 hours" in aqi.reason
    assert aqi.timestamp == HOUR_END
    assert "vn_aqi_category" not in out
    assert "vn_aqi_dominant" not in out


def test_pm10_alone_is_enough(host: FieldHost) -> None:
    out = derive(host, history({"pm10": [None, 80.0, 70.0], "pm2_5": [None, None, 20.0]}))
    assert out["vn_aqi"].quality is Quality.GOOD
    assert out["vn_aqi"].value == out["aqi_pm10"].value
    assert "aqi_pm2_5" not in out


def test_nothing_to_derive_without_the_hourly_history(host: FieldHost) -> None:
    batch = [Reading("pm2_5", 35.0, "ug/m3", HOUR_END), Reading("o3", 80.0, "ug/m3", HOUR_END)]
    assert derive(host, None, batch) == {}


def test_a_water_station_of_the_field_has_no_air_index(host: FieldHost) -> None:
    out = derive(host, history({"dissolved_oxygen": [6.1] * 12, "ph": [7.2] * 12}))
    assert out == {}


def test_bad_readings_in_the_batch_never_reach_the_index(host: FieldHost) -> None:
    """The index comes from the hourly means of GOOD readings only; a bad reading in the
    batch that brings the history changes nothing."""
    hourly = history({"pm2_5": [20.0] * 12, "o3": [50.0]})
    clean = derive(host, hourly)
    poisoned = derive(
        host,
        hourly,
        [
            Reading("pm2_5", 900.0, "ug/m3", HOUR_END, Quality.BAD, "analyser fault"),
            Reading("o3", math.nan, "ug/m3", HOUR_END, Quality.BAD, "not a number"),
        ],
    )
    assert poisoned == clean
    assert clean["vn_aqi"].value == half_up(20 * 50 / 25)


def test_history_refuses_a_non_finite_mean() -> None:
    with pytest.raises(ValueError, match="'pm2_5', hour 24 must be finite"):
        history({"pm2_5": [math.nan]})


def test_hour_end_in_another_zone_gives_the_same_instant(host: FieldHost) -> None:
    in_utc = HOUR_END.astimezone(UTC)
    out = derive(host, history({"pm2_5": [40.0] * 12}, hour_end=in_utc))
    assert out["vn_aqi"].timestamp == HOUR_END
    assert out["vn_aqi"].value == half_up((100 - 50) / (50 - 25) * (40 - 25) + 50)


# -- Table 1: categories and colours ---------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "index", "name", "rgb"),
    [
        (0, 1, "Good", (0, 228, 0)),
        (50, 1, "Good", (0, 228, 0)),
        (50.4, 1, "Good", (0, 228, 0)),
        (51, 2, "Moderate", (255, 255, 0)),
        (100, 2, "Moderate", (255, 255, 0)),
        (101, 3, "Poor", (255, 126, 0)),
        (150, 3, "Poor", (255, 126, 0)),
        (151, 4, "Bad", (255, 0, 0)),
        (200, 4, "Bad", (255, 0, 0)),
        (201, 5, "Very bad", (143, 63, 151)),
        (300, 5, "Very bad", (143, 63, 151)),
        (301, 6, "Hazardous", (126, 0, 35)),
        (500, 6, "Hazardous", (126, 0, 35)),
        (650, 6, "Hazardous", (126, 0, 35)),
    ],
)
def test_categories_and_colours_of_table_1(
    value: float, index: int, name: str, rgb: tuple[int, int, int]
) -> None:
    category = vn_aqi.aqi_category(value)
    assert (category.index, category.name, category.rgb) == (index, name, rgb)
    assert category.low <= min(vn_aqi.round_index(value), 500) <= category.high


def test_category_table_in_the_decisions_words() -> None:
    table = [(c.low, c.high, c.name_vi, c.colour_vi, c.colour, c.hex) for c in vn_aqi.CATEGORIES]
    assert table == [
        (0, 50, "Tốt", "Xanh", "green", "#00E400"),
        (51, 100, "Trung bình", "Vàng", "yellow", "#FFFF00"),
        (101, 150, "Kém", "Da cam", "orange", "#FF7E00"),
        (151, 200, "Xấu", "Đỏ", "red", "#FF0000"),
        (201, 300, "Rất xấu", "Tím", "purple", "#8F3F97"),
        (301, 500, "Nguy hại", "Nâu", "brown", "#7E0023"),
    ]


def test_category_refuses_what_is_not_an_index() -> None:
    for wrong in (-1, math.nan, math.inf, True):
        with pytest.raises(ValueError, match="AQI value"):
            vn_aqi.aqi_category(wrong)


def test_category_metric_states_follow_table_1(host: FieldHost) -> None:
    metric = host["environment"].metrics["vn_aqi_category"]
    assert dict(metric.states) == {
        1: "good",
        2: "moderate",
        3: "poor",
        4: "bad",
        5: "very bad",
        6: "hazardous",
    }
