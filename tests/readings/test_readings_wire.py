"""The view of a telemetry batch that ingest parses (its readings' timestamps kept encoded)
against the real ``TelemetryBatch``: the same schema but for those two fields, the same
instants for any timestamps, and the same refusal of bytes that are not a timestamp."""

from __future__ import annotations

import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.message import DecodeError
from hypothesis import given
from hypothesis import strategies as st
from nats.aio.msg import Msg

from smartcity.fields import load_fields
from smartcity.readings.decode import TelemetryDecoder
from smartcity.readings.wire import RAW_TIMESTAMPS, TelemetryBatchView, TimestampCache
from smartcity.runtime.consumer import Rejected
from smartcity.telemetry.v1 import telemetry_pb2

SUBJECT = "city.telemetry.water_supply.cau-do.station-1"


def fields_of(descriptor) -> dict[str, tuple[int, int, bool, bool]]:
    return {f.name: (f.number, f.type, f.is_repeated, f.has_presence) for f in descriptor.fields}


def test_the_view_is_the_real_schema_but_for_the_two_timestamps() -> None:
    real_batch = telemetry_pb2.TelemetryBatch.DESCRIPTOR
    view_batch = TelemetryBatchView.DESCRIPTOR
    assert fields_of(view_batch) == fields_of(real_batch)
    real_reading = real_batch.fields_by_name["readings"].message_type
    view_reading = view_batch.fields_by_name["readings"].message_type
    expected = fields_of(real_reading)
    for name in RAW_TIMESTAMPS:
        number, _, repeated, _ = expected[name]
        # A bytes field of proto3 has no presence; unset and empty read the same, b"".
        expected[name] = (number, descriptor_pb2.FieldDescriptorProto.TYPE_BYTES, repeated, False)
    assert fields_of(view_reading) == expected
    assert [o.name for o in view_reading.oneofs] == [o.name for o in real_reading.oneofs]


stamps = st.tuples(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=-(2**31), max_value=2**31 - 1),
)


@given(st.lists(st.tuples(st.one_of(st.none(), stamps), st.one_of(st.none(), stamps)), max_size=8))
def test_any_timestamps_read_through_the_view_are_those_of_a_full_parse(times) -> None:
    batch = telemetry_pb2.TelemetryBatch(field="water_supply")
    for source, read in times:
        reading = batch.readings.add(metric="ph")
        for name, stamp in (("source_time", source), ("read_time", read)):
            if stamp is not None:
                getattr(reading, name).seconds, getattr(reading, name).nanos = stamp
    data = batch.SerializeToString()
    real = telemetry_pb2.TelemetryBatch.FromString(data)
    view = TelemetryBatchView.FromString(data)
    cache = TimestampCache()
    for full, raw in zip(real.readings, view.readings, strict=True):
        for name in RAW_TIMESTAMPS:
            stamp = getattr(full, name)
            assert cache[getattr(raw, name)] == (stamp.seconds, stamp.nanos)


def test_bytes_that_are_not_a_timestamp_refuse_the_batch_as_a_full_parse_does() -> None:
    view = TelemetryBatchView(field="water_supply", site="cau-do", device="station-1")
    view.batch_id = "cau-do/station-1/1"
    reading = view.readings.add(metric="ph", unit="pH", value=7.0, quality=1, sequence=1)
    reading.read_time = b"\x08\xff"  # field 1, a varint that never ends
    data = view.SerializeToString()
    with pytest.raises(DecodeError):
        telemetry_pb2.TelemetryBatch.FromString(data)
    decoder = TelemetryDecoder(load_fields())
    with pytest.raises(Rejected, match="not a TelemetryBatch"):
        decoder.decode(Msg(None, subject=SUBJECT, data=data))  # type: ignore[arg-type]
