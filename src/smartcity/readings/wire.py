"""A telemetry batch read for ingest: the schema of ``TelemetryBatch`` with each reading's
two timestamps left as their encoded bytes.

Reading a sub-message field through the protobuf runtime builds a Python object for it,
and a reading's ``source_time`` and ``read_time`` were the largest single cost of decoding
a batch (a third of it). A batch's readings share a few distinct instants (every metric of
one poll has the same one), so :class:`TimestampCache` parses each distinct encoding once,
with the real ``Timestamp``, and the rest is a dictionary lookup.

The view is made from the real descriptors when this module is imported, so it cannot
drift from ``telemetry.proto``: every field keeps its number, name and type, except that
``Reading.source_time`` and ``Reading.read_time`` are ``bytes``, which is the same wire
format as a message (length-delimited). One thing differs, and only for input no
protobuf serializer writes: a timestamp given twice in one reading counts as its last
occurrence, where a full parse would merge the two.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.timestamp_pb2 import Timestamp

from smartcity.telemetry.v1 import telemetry_pb2

__all__ = ["RAW_TIMESTAMPS", "TelemetryBatchView", "TimestampCache"]

RAW_TIMESTAMPS = ("source_time", "read_time")
"""The fields of ``Reading`` that the view keeps encoded."""
_PACKAGE = "smartcity.readings.view"


def _view_file() -> descriptor_pb2.FileDescriptorProto:
    real = descriptor_pb2.FileDescriptorProto()
    telemetry_pb2.DESCRIPTOR.CopyToProto(real)
    view = descriptor_pb2.FileDescriptorProto(
        name="smartcity/readings/telemetry_view.proto",
        package=_PACKAGE,
        syntax=real.syntax,
        dependency=real.dependency,
    )
    own = f".{real.package}."
    for message in real.message_type:
        if message.name not in ("TelemetryBatch", "Reading"):
            continue
        copy = view.message_type.add()
        copy.CopyFrom(message)
        for field in copy.field:
            if field.type_name.startswith(own):
                field.type_name = f".{_PACKAGE}.{field.type_name[len(own) :]}"
            if message.name == "Reading" and field.name in RAW_TIMESTAMPS:
                field.type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
                field.ClearField("type_name")
    return view


def _batch_class() -> type:
    pool = descriptor_pool.Default()
    try:
        descriptor = pool.FindMessageTypeByName(f"{_PACKAGE}.TelemetryBatch")
    except KeyError:
        pool.Add(_view_file())
        descriptor = pool.FindMessageTypeByName(f"{_PACKAGE}.TelemetryBatch")
    return message_factory.GetMessageClass(descriptor)


TelemetryBatchView = _batch_class()
"""``TelemetryBatch``, its readings' ``source_time`` and ``read_time`` as bytes."""


class TimestampCache(dict[bytes, tuple[int, int]]):
    """``(seconds, nanos)`` of each encoded ``Timestamp``, parsed once per distinct
    encoding; an empty encoding (unset, or the epoch) is ``(0, 0)``. Raises
    ``DecodeError`` for bytes that are not a ``Timestamp``, as a full parse of the batch
    would have."""

    def __init__(self) -> None:
        super().__init__({b"": (0, 0)})

    def __missing__(self, raw: bytes) -> tuple[int, int]:
        stamp = Timestamp.FromString(raw)
        parsed = self[raw] = (stamp.seconds, stamp.nanos)
        return parsed
