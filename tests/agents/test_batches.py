"""The uplink's reshaping of stored batches, over arbitrary readings and bytes: parts that fit
a limit and a backlog merged into one keep every reading, in order, with the right identity;
a stored payload that is not a batch gets a verdict, never a crash."""

from __future__ import annotations

from google.protobuf.message import DecodeError
from hypothesis import example, given, settings
from hypothesis import strategies as st

from smartcity.agents.batches import encode_batch, merged_payload, split_batch
from smartcity.agents.buffer import Entry
from smartcity.agents.reading import Reading
from smartcity.telemetry.v1 import telemetry_pb2

readings = st.lists(
    st.builds(
        Reading.good,
        st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=40),
        st.floats(allow_nan=False, allow_infinity=False) | st.booleans() | st.integers(),
        st.sampled_from(["", "kV", "m3/h"]),
        read_time=st.floats(0, 2e9),
    )
    | st.builds(
        Reading.bad,
        st.text("abc", min_size=1, max_size=5),
        st.just(""),
        st.text(max_size=300),
        read_time=st.floats(0, 2e9),
    ),
    min_size=1,
    max_size=60,
)


def entry(batch_readings: list[Reading], first: int, row: int = 1) -> Entry:
    ident, payload = encode_batch(
        "electricity", "s1", "d1", agent_id="a", epoch="e0", first=first, readings=batch_readings
    )
    return Entry(row, "city.telemetry.electricity.s1.d1", ident, {}, len(batch_readings), payload)


@settings(max_examples=150, deadline=None)
@given(readings, st.integers(0, 2**52), st.integers(200, 5000))
def test_parts_fit_and_keep_every_reading_in_order(batch, first, limit) -> None:
    whole = entry(batch, first)
    try:
        parts, refused = split_batch(whole, limit), ""
    except ValueError as exc:
        parts, refused = [], str(exc)
    if refused:
        assert "alone takes" in refused  # one reading bigger than the limit
        return
    decoded = [telemetry_pb2.TelemetryBatch.FromString(part.payload) for part in parts]
    assert all(len(part.payload) <= limit for part in parts)
    assert [r.sequence for d in decoded for r in d.readings] == list(
        range(first, first + len(batch))
    )
    assert [part.readings for part in parts] == [len(d.readings) for d in decoded]
    for part, d in zip(parts, decoded, strict=True):
        assert d.first_sequence == d.readings[0].sequence
        assert d.last_sequence == d.readings[-1].sequence
        offset = d.first_sequence - first
        assert part.msg_id == d.batch_id == f"{whole.msg_id}+{offset}"
    assert split_batch(whole, limit) == parts  # the same ids on every attempt


@settings(max_examples=100, deadline=None)
@given(st.lists(readings, min_size=2, max_size=5), st.integers(0, 2**52))
def test_a_merged_backlog_is_one_batch_with_the_first_ones_identity(batches, first) -> None:
    entries, start = [], first
    for row, batch in enumerate(batches, 1):
        entries.append(entry(batch, start, row))
        start += len(batch)
    payload = merged_payload(entries)
    assert payload is not None
    merged = telemetry_pb2.TelemetryBatch.FromString(payload)
    assert [r.sequence for r in merged.readings] == list(range(first, start))
    assert (merged.batch_id, merged.first_sequence, merged.last_sequence) == (
        entries[0].msg_id,
        first,
        start - 1,
    )
    assert (merged.site, merged.device, merged.agent_id) == ("s1", "d1", "a")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000), st.integers(1, 4000), st.text(max_size=30))
@example(b"\x00", 1, "/0")  # a first sequence of 0 on bytes that do not decode
def test_any_stored_bytes_get_a_verdict(payload, limit, msg_id) -> None:
    stored = Entry(1, "city.telemetry.x.y.z", msg_id, {}, 1, payload)
    try:
        parts = split_batch(stored, limit)
    except (ValueError, DecodeError):
        pass
    else:
        assert all(len(part.payload) <= limit for part in parts)
    assert merged_payload([stored, stored]) is None or msg_id.rsplit("/", 1)[-1].strip()
