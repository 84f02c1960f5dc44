"""A ``TelemetryBatch`` as the agent builds and ships it: readings encoded, the batch's id,
and the reshaping the uplink may do on the way (parts that fit the server's ``max_payload``,
a device's backlog merged into one message, the ``sent_time`` stamped at each send).

Merging and stamping never decode a stored batch: protobuf merges a serialized message with
the bytes of further messages appended (repeated fields append, the last scalar wins).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp

from smartcity.agents.buffer import Entry
from smartcity.agents.reading import Quality, Reading
from smartcity.agents.wire import BatchEncoder
from smartcity.common.v1 import common_pb2
from smartcity.telemetry.v1 import telemetry_pb2

_QUALITY = {
    Quality.GOOD: common_pb2.QUALITY_GOOD,
    Quality.BAD: common_pb2.QUALITY_BAD,
    Quality.UNCERTAIN: common_pb2.QUALITY_UNCERTAIN,
    Quality.STALE: common_pb2.QUALITY_STALE,
}
_INT64 = range(-(2**63), 2**63)
_ENCODER = BatchEncoder()


class _Stamps(dict[float, Timestamp]):
    """Timestamps by Unix time: the readings of one poll share their read time, so a batch
    converts each distinct time once."""

    def __missing__(self, seconds: float) -> Timestamp:
        whole = int(seconds)
        stamp = self[seconds] = Timestamp(seconds=whole, nanos=int((seconds - whole) * 1e9))
        return stamp


def add_reading(
    batch: telemetry_pb2.TelemetryBatch, reading: Reading, sequence: int, stamps: _Stamps
) -> None:
    """Append ``reading`` to ``batch``; ``value`` is always the numeric view (see
    docs/architecture.md, "NATS subjects"). The reference for what a reading is on the
    wire: :func:`encode_batch` writes the same bytes faster."""
    value = reading.value
    if value.__class__ is float and reading.source_time is None and not reading.reason:
        # The common case, a good analogue value read directly from a device: no dict.
        batch.readings.add(
            metric=reading.metric,
            unit=reading.unit,
            quality=_QUALITY[reading.quality],
            sequence=sequence,
            read_time=stamps[reading.read_time],
            value=value,
        )
        if reading.server_time is not None:
            batch.readings[-1].server_time.CopyFrom(stamps[reading.server_time])
        return
    fields: dict[str, object] = {
        "metric": reading.metric,
        "unit": reading.unit,
        "quality": _QUALITY[reading.quality],
        "sequence": sequence,
        "read_time": stamps[reading.read_time],
    }
    if isinstance(value, bool):
        fields["bool_value"] = value
        fields["value"] = 1.0 if value else 0.0
    elif isinstance(value, int):
        if value in _INT64:
            fields["int_value"] = value
        fields["value"] = float(value)
    elif value is not None:
        fields["value"] = value
    if reading.reason:
        fields["quality_reason"] = reading.reason
    if reading.source_time is not None:
        fields["source_time"] = stamps[reading.source_time]
    if reading.server_time is not None:
        fields["server_time"] = stamps[reading.server_time]
    batch.readings.add(**fields)


def to_proto(reading: Reading, sequence: int) -> telemetry_pb2.Reading:
    """One reading as it travels (the batch builder uses :func:`add_reading` directly)."""
    batch = telemetry_pb2.TelemetryBatch()
    add_reading(batch, reading, sequence, _Stamps())
    return batch.readings[0]


def batch_id(site: str, device: str, epoch: str, first_sequence: int) -> str:
    """The batch's identity: the same readings always get the same id, on every replay;
    ``epoch`` (the buffer's incarnation) keeps two incarnations from ever sharing one."""
    return f"{site}/{device}/{epoch}/{first_sequence}"


def encode_batch(
    field: str,
    site: str,
    device: str,
    *,
    agent_id: str,
    epoch: str,
    first: int,
    readings: Sequence[Reading],
) -> tuple[str, bytes]:
    """``readings`` numbered from ``first`` as a serialized batch; returns its id too. The
    bytes are written directly (:mod:`smartcity.agents.wire`); they parse to the batch
    :func:`add_reading` builds."""
    ident = batch_id(site, device, epoch, first)
    payload = _ENCODER.encode(
        field=field,
        site=site,
        device=device,
        agent_id=agent_id,
        batch_id=ident,
        first=first,
        readings=readings,
    )
    return ident, payload


def sent_time_suffix(now: float) -> bytes:
    """Serialized ``TelemetryBatch`` holding only ``sent_time``, to append to a payload:
    protobuf merges a message with the bytes of one more field appended, so the stored
    payload plus this is the batch with ``sent_time`` set, without decoding it."""
    suffix = telemetry_pb2.TelemetryBatch()
    whole = int(now)
    suffix.sent_time.seconds = whole
    suffix.sent_time.nanos = int((now - whole) * 1e9)
    return suffix.SerializeToString()


@dataclass(frozen=True, slots=True)
class Part:
    msg_id: str
    payload: bytes
    readings: int


def split_batch(entry: Entry, limit: int) -> list[Part]:
    """``entry``'s batch as parts of at most ``limit`` bytes each, readings in order. The
    same batch and limit always give the same parts and ids. Raises ValueError when a single
    reading does not fit."""
    whole = telemetry_pb2.TelemetryBatch.FromString(entry.payload)
    readings = list(whole.readings)
    if not readings:
        raise ValueError("the batch holds no readings to split")
    del whole.readings[:]
    parts: list[Part] = []
    start = 0
    while start < len(readings):
        end = start
        size = whole.ByteSize() + 64  # the part's id and sequence bounds
        while end < len(readings):
            grown = size + readings[end].ByteSize() + 6  # field tag and length prefix
            if grown > limit and end > start:
                break
            size = grown
            end += 1
        part = telemetry_pb2.TelemetryBatch()
        part.CopyFrom(whole)
        part.readings.extend(readings[start:end])
        part.batch_id = f"{whole.batch_id}+{start}"
        part.first_sequence = readings[start].sequence
        part.last_sequence = readings[end - 1].sequence
        payload = part.SerializeToString()
        if len(payload) > limit:
            raise ValueError(
                f"reading {readings[start].sequence} alone takes {len(payload)} bytes, more "
                f"than the {limit} the server accepts in one message"
            )
        parts.append(Part(f"{entry.msg_id}+{start}", payload, end - start))
        start = end
    return parts


def headers_size(headers: dict[str, str]) -> int:
    """Bytes of a NATS header block, which counts against ``max_payload`` too."""
    return len("NATS/1.0\r\n\r\n") + sum(len(k) + len(v) + 4 for k, v in headers.items())


def merged_payload(entries: Sequence[Entry]) -> bytes | None:
    """One batch holding the readings of consecutive ``entries`` of a device, with the
    identity of the first; None when an id is not one this agent made, or the stored bytes
    do not decode (then each entry is sent, or refused, on its own)."""
    try:
        first = int(entries[0].msg_id.rsplit("/", 1)[1])
        last = int(entries[-1].msg_id.rsplit("/", 1)[1]) + entries[-1].readings - 1
    except (IndexError, ValueError):
        return None
    joined = b"".join(entry.payload for entry in entries)
    if first == 0:  # a zero is not serialized, so no trailer could restore it: decode
        try:
            merged = telemetry_pb2.TelemetryBatch.FromString(joined)
        except DecodeError:
            return None
        merged.batch_id, merged.first_sequence, merged.last_sequence = (
            entries[0].msg_id,
            first,
            last,
        )
        return merged.SerializeToString()
    # Parsing concatenated messages merges them: readings append, and the last value of a
    # scalar wins, so the trailer gives the merged batch the first batch's identity.
    trailer = telemetry_pb2.TelemetryBatch(
        batch_id=entries[0].msg_id, first_sequence=first, last_sequence=last
    )
    return joined + trailer.SerializeToString()
