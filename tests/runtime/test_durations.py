"""The platform's one rule for durations: what a profile and the command line both accept."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smartcity.runtime.durations import format_duration, parse_duration, parse_seconds


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("1m", 60),
        ("2min", 120),
        ("1h30m", 5400),
        ("7d", 7 * 86400),
        ("1w", 7 * 86400),
        ("500ms", 0.5),
        ("1.5h", 5400),
        ("0", 0),
        ("0s", 0),
        ("5", 5),
        ("2.5", 2.5),
        ("250 ms", 0.25),
        ("  1H30M ", 5400),
        ("1M5S", 65),
    ],
)
def test_what_is_accepted(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)
    assert parse_seconds(text) == seconds


@pytest.mark.parametrize(
    "text", ["", " ", "h", "1y", "1h 2m", "-1s", "1.s", ".5s", "1e3s", "1m30", "soon", "1ms2"]
)
def test_what_is_refused_is_named(text: str) -> None:
    for parse in (parse_duration, parse_seconds):
        with pytest.raises(ValueError, match="is not a duration") as refused:
            parse(text)
        assert repr(text) in str(refused.value)


def test_a_profile_duration_keeps_its_float_value() -> None:
    """Seconds are not rounded to the microsecond, as a timedelta would."""
    assert parse_seconds("0.3ms") == 0.3 * 0.001
    assert parse_seconds("0.0000001") == 1e-7
    assert parse_duration("0.0000001") == timedelta(0)


def test_a_span_too_long_for_a_timedelta_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'9999999999w' is too long a duration"):
        parse_duration("9999999999w")


@pytest.mark.parametrize(
    ("span", "text"),
    [
        (timedelta(0), "0"),
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(days=9, hours=3), "1w2d3h"),
        (timedelta(seconds=12.5), "12.5s"),
        (timedelta(milliseconds=250), "0.25s"),
        (timedelta(minutes=1, microseconds=1), "1m0.000001s"),
    ],
)
def test_format(span: timedelta, text: str) -> None:
    assert format_duration(span) == text


def test_a_negative_span_is_not_formatted() -> None:
    with pytest.raises(ValueError, match="negative"):
        format_duration(timedelta(seconds=-1))


@given(st.timedeltas(min_value=timedelta(0)))
def test_any_formatted_duration_parses_back_to_itself(span: timedelta) -> None:
    assert parse_duration(format_duration(span)) == span


_DURATION_LIKE = st.text(st.sampled_from("0123456789.msinhdwMSH \t\n\u00a0\u0663"), max_size=16)


def _outcome(text: str) -> timedelta | str:
    """The span ``text`` says, or the message of its ``ValueError`` (anything else escapes)."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        return str(exc)


@given(st.one_of(st.text(), _DURATION_LIKE))
def test_any_text_is_a_duration_or_a_value_error(text: str) -> None:
    outcome = _outcome(text)
    if isinstance(outcome, timedelta):
        assert outcome >= timedelta(0)
        assert parse_seconds(text) >= 0
        return
    assert repr(text) in outcome
    if "too long" not in outcome:
        with pytest.raises(ValueError, match="is not a duration"):
            parse_seconds(text)
