"""The batch bytes the agent writes directly are the batch the protobuf runtime builds: over
arbitrary readings (every value type, quality, reason and timestamp, sequences up to 2^63),
the payload parses to the very message :func:`add_reading` makes, field for field."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from smartcity.agents.batches import _Stamps, add_reading, encode_batch
from smartcity.agents.reading import Quality, Reading
from smartcity.agents.wire import BatchEncoder, varint
from smartcity.telemetry.v1 import telemetry_pb2

times = st.floats(-1e10, 4e9, allow_nan=False) | st.integers(0, 4_000_000_000).map(float)
values = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64)
    | st.floats(allow_nan=True, allow_infinity=True)
)
readings = st.builds(
    Reading,
    st.text(max_size=30),
    values,
    st.sampled_from(["", "kV", "m3/h", "µS/cm"]),
    st.sampled_from(list(Quality)),
    st.text(max_size=40),
    st.none() | times,
    times,
    st.none() | times,
)
good_floats = st.builds(
    Reading.good,
    st.sampled_from(["voltage_an", "p000", "ph"]),
    st.floats(-1e6, 1e6),
    st.sampled_from(["kV", "V", ""]),
    read_time=st.sampled_from([1_795_305_600.0, 1_795_305_600.125, 1_795_305_601.99999]),
)


def reference(first: int, batch: list[Reading]) -> telemetry_pb2.TelemetryBatch:
    expected = telemetry_pb2.TelemetryBatch(
        field="electricity",
        site="s1",
        device="d1",
        agent_id="a",
        batch_id=f"s1/d1/e0/{first}",
        first_sequence=first,
        last_sequence=first + len(batch) - 1,
    )
    stamps = _Stamps()
    for offset, reading in enumerate(batch):
        add_reading(expected, reading, first + offset, stamps)
    return expected


@settings(max_examples=300, deadline=None)
@given(st.lists(readings | good_floats, min_size=1, max_size=40), st.integers(0, 2**63 - 50))
@example([Reading.good("p", 1.5, "V", read_time=1.0)], 0)
@example([Reading.good("p", 1.5, "V", read_time=1.0)] * 3, 126)  # crosses 128
@example([Reading.good("p", 2**63 + 5, "", read_time=1.0)], 2**60)  # beyond int64
@example([Reading("p", -1, "", Quality.BAD, "x", -1.5, 0.0, 0.25)], 1)
def test_written_bytes_parse_to_the_reference_batch(batch: list[Reading], first: int) -> None:
    try:
        expected = reference(first, batch)
    except OverflowError:  # an integer no double can hold: refused by both
        return
    _, payload = encode_batch(
        "electricity", "s1", "d1", agent_id="a", epoch="e0", first=first, readings=batch
    )
    assert telemetry_pb2.TelemetryBatch.FromString(payload) == expected


@given(st.integers(-(2**63), 2**63 - 1))
def test_varints_are_protobufs(value: int) -> None:
    # int_value is in a oneof: written even when 0, and a negative one as ten bytes
    assert telemetry_pb2.Reading(int_value=value).SerializeToString() == b"\x50" + varint(value)


def test_the_encoder_bounds_what_it_keeps() -> None:
    encoder = BatchEncoder(max_prefixes=10)
    for index in range(100):
        reading = Reading.good(f"point_{index}", 1.0, "V", read_time=1.0)
        payload = encoder.encode(
            field="f", site="s", device="d", agent_id="a", batch_id="b", first=1000,
            readings=[reading],
        )  # fmt: skip
        (decoded,) = telemetry_pb2.TelemetryBatch.FromString(payload).readings
        assert decoded.metric == f"point_{index}"
    assert sum(len(known) for known in encoder._prefixes.values()) <= 10
