"""Report by exception, the agent's one rule for every driver: a reading is published when its
point is new, changed quality, moved beyond its deadband, or has been quiet for a keep-alive."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from smartcity.agents.exception_report import ExceptionReport, within
from smartcity.agents.profile import parse_profile
from smartcity.agents.reading import Quality, Reading

START = 1_000_000.0


def device(**deadbands: float) -> Any:
    """A device polled every second (keep-alive: six slow intervals of 10 s, 60 s) with the
    points ``ph`` and ``flow``, the deadbands given."""
    points = [
        {"name": name, "unit": "u", "address": address}
        | ({"deadband": deadbands[name]} if name in deadbands else {})
        for address, name in enumerate(("ph", "flow"))
    ]
    return parse_profile(
        {
            "site": "cau-do",
            "field": "water_supply",
            "device": "station-1",
            "protocol": "modbus",
            "endpoint": "tcp://127.0.0.1:502",
            "points": points,
        }
    )


def good(value: float, at: float, metric: str = "ph") -> Reading:
    return Reading.good(metric, value, "u", read_time=START + at)


def bad(at: float, metric: str = "ph", reason: str = "timeout after 2.0 s") -> Reading:
    return Reading.bad(metric, "u", reason, read_time=START + at)


def published(report: ExceptionReport, readings: list[Reading]) -> list[tuple[Any, float]]:
    """(value or quality, seconds after START) of what ``report`` keeps, fed one by one."""
    kept = [r for reading in readings for r in report.keep([reading])]
    return [
        (r.value if r.quality is Quality.GOOD else r.quality.value, r.read_time - START)
        for r in kept
    ]


def test_the_default_keepalive_is_six_slow_intervals() -> None:
    assert ExceptionReport(device()).keepalive == 60.0


def test_deadband_moves_quality_changes_and_keepalive() -> None:
    report = ExceptionReport(device(ph=0.3))
    readings = [
        good(7.0, 0),  # first: published
        good(7.2, 1),  # 0.2 from 7.0: within
        good(7.3, 2),  # 0.3 from 7.0: within (the deadband is inclusive)
        good(6.6, 3),  # 0.4 from 7.0: published
        good(6.8, 4),  # 0.2 from 6.6: within
        bad(5),  # turned BAD: published
        bad(6),  # still BAD: not again
        good(6.7, 7),  # GOOD again, 0.1 from the last value published: quality changed
        good(6.7, 66),  # 59 s after 7: within the keep-alive
        good(6.7, 67),  # 60 s after 7: the keep-alive
        good(7.1, 100),  # 0.4 from 6.7
    ]
    assert published(report, readings) == [
        (7.0, 0),
        (6.6, 3),
        ("bad", 5),
        (6.7, 7),
        (6.7, 67),
        (7.1, 100),
    ]
    assert report.suppressed == 5


def test_a_point_without_deadband_is_published_on_every_read_and_bad_once() -> None:
    report = ExceptionReport(device())
    readings = [good(7.0, 0)]
    readings += [bad(cycle) for cycle in range(1, 50)]  # unreachable for 49 cycles of 1 s
    readings += [bad(61, reason="device unreachable"), bad(62, reason="device unreachable")]
    readings += [good(7.1, 63), good(7.1, 64), bad(65)]
    assert published(report, readings) == [
        (7.0, 0),
        ("bad", 1),
        ("bad", 61),  # the keep-alive of a point still BAD
        (7.1, 63),
        (7.1, 64),
        ("bad", 65),
    ]
    assert report.suppressed == 49


def test_points_are_judged_each_on_its_own_in_one_batch() -> None:
    report = ExceptionReport(device(ph=1.0))
    assert report.keep([good(7.0, 0), good(3.0, 0, "flow")]) == [
        good(7.0, 0),
        good(3.0, 0, "flow"),
    ]
    assert report.keep([good(7.5, 1), good(3.0, 1, "flow")]) == [good(3.0, 1, "flow")]
    assert report.keep([good(8.5, 2), bad(2, "flow")]) == [good(8.5, 2), bad(2, "flow")]


def test_a_bool_is_within_its_deadband_only_when_equal() -> None:
    assert within(True, True, 5.0)
    assert not within(True, False, 5.0)
    assert not within(1.0, None, 5.0)
    assert within(None, None, None)
    assert not within(7.0, 7.0, None)


def test_overdue_names_the_tracked_points_quiet_for_a_keepalive() -> None:
    report = ExceptionReport(device(), keepalive=10.0, every_point=True)
    report.keep([good(7.0, 0), good(3.0, 4, "flow")])
    assert report.overdue(START + 9) == []
    assert report.overdue(START + 10) == ["ph"]
    assert report.overdue(START + 14) == ["ph", "flow"]
    report.keep([good(7.0, 10)])  # the keep-alive read of a flat value is published
    assert report.overdue(START + 14) == ["flow"]


# -- the rule, for any sequence of readings -----------------------------------------------------

KEEPALIVE = 10.0
DEADBAND = 0.5

steps = st.lists(
    st.tuples(
        st.sampled_from(["ph", "flow"]),
        st.one_of(st.none(), st.floats(-3, 3, allow_nan=False), st.booleans()),
        st.sampled_from([Quality.GOOD, Quality.UNCERTAIN]),
        st.floats(0, 6, allow_nan=False),  # seconds since the previous reading
    ),
    max_size=60,
)


@given(steps=steps, every_point=st.booleans())
def test_a_reading_is_dropped_only_within_deadband_same_quality_and_younger_than_keepalive(
    steps: list[tuple[str, Any, Quality, float]], every_point: bool
) -> None:
    report = ExceptionReport(device(ph=DEADBAND), keepalive=KEEPALIVE, every_point=every_point)
    deadbands = {"ph": DEADBAND, "flow": None}
    last: dict[str, Reading] = {}
    at = START
    for metric, value, quality, gap in steps:
        at += gap
        if value is None:
            reading = Reading.bad(metric, "u", "no answer", read_time=at)
        else:
            reading = Reading(metric, value, "u", quality, read_time=at)
        kept = report.keep([reading])
        previous = last.get(metric)
        must_keep = (
            previous is None
            or previous.quality is not reading.quality
            or at - previous.read_time >= KEEPALIVE
            or not within(reading.value, previous.value, deadbands[metric])
        )
        if must_keep:
            assert kept == [reading]
        if kept:
            last[metric] = reading
        else:
            # dropped: the last published reading still stands for it
            assert previous is not None
            assert previous.quality is reading.quality
            assert at - previous.read_time < KEEPALIVE
            assert within(reading.value, previous.value, deadbands[metric])
