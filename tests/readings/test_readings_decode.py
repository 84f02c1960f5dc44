"""Telemetry messages into checked batches, without a network: every reading gets the verdict
the rules give (hand-worked cases), and arbitrary bytes and arbitrary batch contents either
decode with a verdict on every reading or are rejected with a reason, never anything else."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nats.aio.msg import Msg

from smartcity.fields import load_fields
from smartcity.readings.decode import MAX_SEQUENCE, TelemetryDecoder
from smartcity.readings.model import MICROS, Quality
from smartcity.runtime.consumer import Rejected
from smartcity.telemetry.v1 import telemetry_pb2

NOW = 1_795_305_600.0  # 2026-11-22T00:00:00Z
RECEIVED = int(NOW * MICROS)
SUBJECT = "city.telemetry.water_supply.cau-do.station-1"
DECODER = TelemetryDecoder(load_fields(), max_future_skew_seconds=300, clock=lambda: NOW)


def message(readings: list[dict[str, object]], subject: str = SUBJECT, **batch: object) -> Msg:
    payload = telemetry_pb2.TelemetryBatch(
        field="water_supply", site="cau-do", device="station-1", batch_id="cau-do/station-1/1"
    )
    for key, value in batch.items():
        setattr(payload, key, value)
    for number, fields in enumerate(readings, start=1):
        reading = payload.readings.add(sequence=number)
        for key, value in fields.items():
            if key == "time":
                reading.source_time.seconds = int(value)  # type: ignore[call-overload]
            else:
                setattr(reading, key, value)
    return Msg(None, subject=subject, data=payload.SerializeToString())  # type: ignore[arg-type]


def ph(**fields: object) -> dict[str, object]:
    return {"metric": "ph", "unit": "pH", "value": 7.2, "quality": 1, "time": NOW - 1, **fields}


@pytest.mark.parametrize(
    ("reading", "quality", "reason", "value", "time"),
    [
        (ph(), Quality.GOOD, "", 7.2, RECEIVED - MICROS),
        (ph(value=15.0), Quality.BAD, "out of range: 15 > 14", 15.0, RECEIVED - MICROS),
        (ph(value=math.nan), Quality.BAD, "not a finite value (nan)", None, RECEIVED - MICROS),
        (ph(value=-math.inf), Quality.BAD, "not a finite value (-inf)", None, RECEIVED - MICROS),
        (ph(quality=0), Quality.UNCERTAIN, "no quality given", 7.2, RECEIVED - MICROS),
        (ph(quality=17), Quality.UNCERTAIN, "unknown quality number 17", 7.2, RECEIVED - MICROS),
        (ph(quality=4), Quality.STALE, "reported stale without a reason", 7.2, RECEIVED - MICROS),
        (
            {"metric": "ph", "unit": "pH", "quality": 1, "time": NOW - 1},
            Quality.BAD,
            "marked good but carries no value",
            None,
            RECEIVED - MICROS,
        ),
        (
            ph(quality=2, quality_reason="sensor fault", value=math.nan),
            Quality.BAD,
            "sensor fault",
            None,
            RECEIVED - MICROS,
        ),
        (
            ph(unit="mg/L"),
            Quality.BAD,
            "unit 'mg/L' is not the metric's 'pH'",
            7.2,
            RECEIVED - MICROS,
        ),
        (
            {"metric": "colour", "unit": "TCU", "value": 3.0, "quality": 1, "time": NOW},
            Quality.BAD,
            "unknown metric 'colour' of field 'water_supply'",
            3.0,
            RECEIVED,
        ),
        # Within the allowed skew: kept as dated.
        (ph(time=NOW + 299), Quality.GOOD, "", 7.2, RECEIVED + 299 * MICROS),
        # A year ahead: kept at its arrival, UNCERTAIN, the claimed date in the reason.
        (
            ph(time=NOW + 365 * 86400),
            Quality.UNCERTAIN,
            "source time 2027-11-22T00:00:00Z is 365.0 days ahead of the receiving clock; "
            "stored at its arrival time",
            7.2,
            RECEIVED,
        ),
        (
            ph(time=1e15),
            Quality.UNCERTAIN,
            "source time (seconds=1000000000000000, nanos=0) is not a valid timestamp; "
            "stored at its arrival time",
            7.2,
            RECEIVED,
        ),
        (
            ph(time=NOW + 86400, quality=2, quality_reason="drift"),
            Quality.BAD,
            "drift; source time 2026-11-23T00:00:00Z is 1.0 days ahead of the receiving clock; "
            "stored at its arrival time",
            7.2,
            RECEIVED,
        ),
    ],
)
def test_each_reading_gets_its_verdict(
    reading: dict[str, object], quality: Quality, reason: str, value: float | None, time: int
) -> None:
    (stored,) = DECODER.decode(message([reading])).readings
    assert (stored.quality, stored.reason, stored.value, stored.time) == (
        quality,
        reason,
        value,
        time,
    )


def test_derived_readings_keep_their_inputs_time_and_follow_the_batch() -> None:
    """The water plugin flags every residual-chlorine reading: each flag has its reading's
    time to the microsecond (before 1970 as well) and its sequence, and comes after the
    batch's own readings."""
    times = [(int(NOW) - 2, 250_000_999), (int(NOW) - 1, 0), (-86_401, 750_000_000)]
    payload = telemetry_pb2.TelemetryBatch(
        field="water_supply", site="cau-do", device="station-1", batch_id="cau-do/station-1/1"
    )
    for number, (seconds, nanos) in enumerate(times, start=1):
        reading = payload.readings.add(
            metric="residual_chlorine", unit="mg/L", value=0.1 * number, quality=1, sequence=number
        )
        reading.source_time.seconds, reading.source_time.nanos = seconds, nanos
    payload.readings.add(metric="ph", unit="pH", value=7.0, quality=1, sequence=9)
    msg = Msg(None, subject=SUBJECT, data=payload.SerializeToString())  # type: ignore[arg-type]
    readings = DECODER.decode(msg).readings
    own, flags = readings[:4], readings[4:]
    assert [r.derived for r in own] == [False] * 4
    assert [(r.metric, r.time, r.sequence, r.derived) for r in flags] == [
        ("chlorine_compliant", seconds * MICROS + nanos // 1000, number, True)
        for number, (seconds, nanos) in enumerate(times, start=1)
    ]
    assert [r.value for r in flags] == [0.0, 1.0, 1.0]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    chlorine=st.lists(
        st.tuples(
            st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
            st.integers(min_value=0, max_value=7),
            st.text(max_size=5),
        ),
        max_size=6,
    )
)
def test_the_decoder_derives_what_the_field_derives(chlorine) -> None:
    """One rule, two callers: the decoder applies a field's derivations to stored readings
    directly, and what it stores is what ``Field.derive`` gives for the same readings
    (value, quality, reason), judged by the derived metric."""
    from datetime import UTC, datetime

    from smartcity.fields import Quality as FieldQuality
    from smartcity.fields import Reading

    readings = [
        {"metric": "residual_chlorine", "unit": "mg/L", "quality": quality,
         "quality_reason": reason, "time": NOW - 1, **({} if value is None else {"value": value})}
        for value, quality, reason in chlorine
    ]  # fmt: skip
    decoded = DECODER.decode(message(readings)).readings
    own = [r for r in decoded if not r.derived]
    as_fields = {
        Quality.GOOD: FieldQuality.GOOD,
        Quality.BAD: FieldQuality.BAD,
        Quality.UNCERTAIN: FieldQuality.UNCERTAIN,
        Quality.STALE: FieldQuality.UNCERTAIN,
    }
    moment = datetime.fromtimestamp(NOW - 1, UTC)
    inputs = [
        Reading(r.metric, math.nan if r.value is None else r.value, r.unit, moment,
                as_fields[r.quality], r.reason)
        for r in own
        if r.value is not None
    ]  # fmt: skip
    expected = DECODER.fields["water_supply"].derive("cau-do", "station-1", inputs)
    assert [
        (r.metric, None if r.value is None else bool(r.value), r.quality.name, r.reason)
        for r in decoded
        if r.derived
    ] == [(r.metric, r.value, r.quality.name, r.reason) for r in expected]


@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        (Msg(None, subject="city.telemetry.x", data=b""), "not a telemetry subject"),  # type: ignore[arg-type]
        (Msg(None, subject=SUBJECT, data=b"\xff\xff\xff"), "not a TelemetryBatch"),  # type: ignore[arg-type]
        (message([ph()], subject="city.telemetry.water_supply.cau-do.other"), "payload says"),
        (message([ph()], batch_id=""), "batch_id is empty"),
        (message([ph(metric="")]), "readings[0]: metric '' is not a metric name"),
        (message([ph(), ph(metric="Ph Level")]), "readings[1]: metric 'Ph Level'"),
        (message([ph(sequence=MAX_SEQUENCE + 1)]), "exceeds 2^63-1"),
        (message([ph()], batch_id="a\x00b"), "must not contain control characters"),
        (message([ph(unit="pH\x00")]), "readings[0]: unit 'pH\\x00' is not a unit"),
    ],
)
def test_messages_that_cannot_be_batches_are_rejected_with_the_reason(
    msg: Msg, reason: str
) -> None:
    with pytest.raises(Rejected, match=re.escape(reason)):
        DECODER.decode(msg)


def test_a_batch_of_a_field_nobody_installed_is_kept_bad() -> None:
    msg = Msg(
        None,  # type: ignore[arg-type]
        subject="city.telemetry.parking.han-market.gate-1",
        data=telemetry_pb2.TelemetryBatch(
            field="parking",
            site="han-market",
            device="gate-1",
            batch_id="b1",
            readings=[telemetry_pb2.Reading(metric="free_spaces", value=3, quality=1)],
        ).SerializeToString(),
    )
    (reading,) = DECODER.decode(msg).readings
    assert reading.quality is Quality.BAD
    assert reading.reason == "unknown field 'parking': no installed plugin declares it"


NAMES = st.sampled_from(["ph", "turbidity", "flow_rate", "colour", "", "Ph", "ü", "a" * 70])
TIMES = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@st.composite
def readings(draw: st.DrawFn) -> telemetry_pb2.Reading:
    reading = telemetry_pb2.Reading(
        metric=draw(NAMES | st.text(max_size=10)),
        unit=draw(st.sampled_from(["pH", "NTU", "m3/h", ""]) | st.text(max_size=6)),
        quality=draw(st.integers(min_value=-(2**31), max_value=2**31 - 1)),  # type: ignore[arg-type]
        quality_reason=draw(st.text(max_size=20)),
        sequence=draw(st.integers(min_value=0, max_value=2**64 - 1)),
    )
    value = draw(st.none() | st.floats(allow_nan=True, allow_infinity=True))
    if value is not None:
        reading.value = value
    if draw(st.booleans()):
        reading.source_time.seconds = draw(TIMES)
        reading.source_time.nanos = draw(st.integers(-(2**31), 2**31 - 1))
    if draw(st.booleans()):
        reading.read_time.seconds = draw(TIMES)
    return reading


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(items=st.lists(readings(), max_size=20))
def test_arbitrary_contents_get_a_verdict_on_every_reading(
    items: list[telemetry_pb2.Reading],
) -> None:
    payload = telemetry_pb2.TelemetryBatch(
        field="water_supply", site="cau-do", device="station-1", batch_id="b", readings=items
    )
    msg = Msg(None, subject=SUBJECT, data=payload.SerializeToString())  # type: ignore[arg-type]
    try:
        batch = DECODER.decode(msg)
    except Rejected as exc:
        reason = str(exc)
        assert reason
        return
    assert len(batch.readings) == len(items)
    for stored in batch.readings:
        assert stored.quality in Quality
        assert stored.value is None or math.isfinite(stored.value)
        assert stored.time <= RECEIVED + 300 * MICROS, "never dated beyond the allowed skew"
        assert -(2**63) <= stored.time < 2**63
        assert 0 <= stored.sequence < 2**63
        if stored.quality is not Quality.GOOD:
            assert stored.reason, "every verdict but GOOD says why"


@given(data=st.binary(max_size=300), subject=st.sampled_from([SUBJECT, "city.telemetry.a.b.c"]))
def test_arbitrary_bytes_decode_or_are_rejected(data: bytes, subject: str) -> None:
    msg = Msg(None, subject=subject, data=data)  # type: ignore[arg-type]
    try:
        batch = DECODER.decode(msg)
    except Rejected as exc:
        reason = str(exc)
        assert reason
    else:
        assert batch.batch_id
