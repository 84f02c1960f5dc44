"""A telemetry message as a checked batch: every reading gets a verdict.

What arrives on ``city.telemetry.<field>.<site>.<device>`` is judged in two layers:

* the **message**: a subject that is not a telemetry subject, bytes that are not a
  ``TelemetryBatch``, a payload naming another device than its subject, no batch id, or a
  reading that cannot be kept at all (a metric name that cannot name a series, a sequence
  beyond what storage can key on) make the message :class:`~smartcity.runtime.consumer.
  Rejected`: the consumer dead-letters it whole, with the reason;
* each **reading** of an accepted message is stored, never dropped, with the quality it
  deserves: the device's own, unless :meth:`smartcity.fields.Metric.check` (the one place
  where a reading is judged against its metric) or the checks below say otherwise, and
  then with the reason.

What this module adds to ``Metric.check`` is what only the wire can get wrong:

* the quality number: ``QUALITY_UNSPECIFIED`` and numbers this version does not know are
  kept UNCERTAIN with the reason, as ``common.proto`` tells consumers to treat them;
* the time: a reading dated more than ``max_future_skew`` ahead of the receiving clock, or
  not a valid timestamp at all, is kept at its arrival time, UNCERTAIN (BAD stays BAD),
  with the claimed time in the reason, so that a device with a wrong clock can never pin a
  series' latest value to a date that has not come;
* a value that is not finite is kept without its value (BAD, by ``Metric.check``).

The plugins' derived readings are added by :mod:`.derived`; the interpreter settings for a
process that decodes telemetry are in :mod:`.tuning`. Both are importable from here too.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import DecodeError
from nats.aio.msg import Msg

from smartcity.fields import FieldHost, Metric
from smartcity.fields.model import MAX_NAME_LENGTH, NAME_PATTERN
from smartcity.readings.derived import BatchDeriver, derived_readings
from smartcity.readings.field_quality import AS_FIELD_QUALITY, FROM_FIELD_QUALITY
from smartcity.readings.model import MICROS, IngestBatch, Quality, StoredReading
from smartcity.readings.tuning import INGEST_GC_THRESHOLDS, INGEST_SWITCH_INTERVAL, tune_for_ingest
from smartcity.readings.wire import TelemetryBatchView, TimestampCache
from smartcity.runtime.consumer import Rejected
from smartcity.runtime.subjects import parse_telemetry_subject

__all__ = [
    "INGEST_GC_THRESHOLDS",
    "INGEST_SWITCH_INTERVAL",
    "MAX_SEQUENCE",
    "TelemetryDecoder",
    "derived_readings",
    "tune_for_ingest",
]

MAX_SEQUENCE = 2**63 - 1
"""Sequences are keys in both databases, which keep signed 64-bit integers."""
MAX_ID_LENGTH = 200
MAX_UNIT_LENGTH = 32
MAX_REASON_LENGTH = 500
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
"""Control characters: no device sends them in a name, PostgreSQL cannot store NUL in text,
and SQLite's JSON functions cut a string at it."""
MIN_TIME = -62_135_596_800 * MICROS
"""0001-01-01T00:00:00Z, the first instant a protobuf Timestamp may hold."""
MAX_TIME = 253_402_300_800 * MICROS - 1
"""9999-12-31T23:59:59.999999Z, the last."""

_GOOD = Quality.GOOD
_KNOWN = {int(member): member for member in Quality if member is not Quality.UNSPECIFIED}
_NO_METRICS: dict[str, Metric] = {}
_new = tuple.__new__


class TelemetryDecoder:
    """Turns telemetry messages into checked :class:`IngestBatch` es, with the plugins'
    per-batch derived readings added."""

    def __init__(
        self,
        fields: FieldHost,
        *,
        max_future_skew_seconds: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.fields = fields
        self.max_future_skew = int(max_future_skew_seconds * MICROS)
        self.clock = clock
        self._metrics = {field.id: dict(field.metrics) for field in fields}
        self._deriver = BatchDeriver(fields, self._metrics)
        self._deriving = self._deriver.deriving

    def decode(self, msg: Msg) -> IngestBatch:
        """The batch ``msg`` carries; :class:`Rejected` when it cannot be one."""
        try:
            where = parse_telemetry_subject(msg.subject)
        except ValueError as exc:
            raise Rejected(f"not a telemetry subject: {exc}") from None
        try:
            batch = TelemetryBatchView.FromString(msg.data)
        except DecodeError as exc:
            raise Rejected(f"not a TelemetryBatch: {exc}") from None
        said = (batch.field, batch.site, batch.device)
        if said != (where.field, where.site, where.device):
            raise Rejected(
                f"payload says {'/'.join(said)!r} but the subject says "
                f"{where.field}/{where.site}/{where.device}"
            )
        if not batch.batch_id:
            raise Rejected("batch_id is empty: a batch without an id cannot be de-duplicated")
        if len(batch.batch_id) > MAX_ID_LENGTH or len(batch.agent_id) > MAX_ID_LENGTH:
            raise Rejected(f"batch_id and agent_id must be at most {MAX_ID_LENGTH} characters")
        if _CONTROL.search(batch.batch_id) or _CONTROL.search(batch.agent_id):
            raise Rejected("batch_id and agent_id must not contain control characters")
        received = int(self.clock() * MICROS)
        try:
            readings = self._readings(batch, received)
        except DecodeError as exc:  # a reading's timestamp, parsed only now (see .wire)
            raise Rejected(f"not a TelemetryBatch: {exc}") from None
        decoded = IngestBatch(
            batch_id=batch.batch_id,
            field=batch.field,
            site=batch.site,
            device=batch.device,
            agent_id=batch.agent_id,
            readings=readings,
            received=received,
        )
        if batch.field in self._deriving:
            return self._deriver.with_derived(decoded)
        return decoded

    def _readings(self, batch: Any, received: int) -> list[StoredReading]:
        """The batch's readings, each with its verdict; ``batch`` is a
        :data:`~smartcity.readings.wire.TelemetryBatchView`."""
        metrics = self._metrics.get(batch.field)
        if metrics is None:
            metrics = _NO_METRICS
            unknown_field = f"unknown field {batch.field!r}: no installed plugin declares it"
        latest_allowed = received + self.max_future_skew
        readings: list[StoredReading] = []
        append = readings.append
        instants = TimestampCache()
        # The loop runs once per reading on the city's hot path: protobuf field access is
        # the largest cost, so each field is read once, and presence is asked for only when
        # a default value leaves it open. Every reading adds one stored reading or rejects
        # the message, so a reading's index is the number stored before it.
        for reading in batch.readings:
            name = reading.metric
            unit = reading.unit
            sequence = reading.sequence
            value: float | None = reading.value
            if not value and not reading.HasField("value"):
                value = None
            seconds, nanos = instants[reading.source_time]
            if not seconds:  # no source time (or the epoch): the agent's read time
                seconds, nanos = instants[reading.read_time]
            when = seconds * MICROS + nanos // 1000 or received
            wire = reading.quality
            metric = metrics.get(name)
            if (
                wire == 1
                and metric is not None
                and MIN_TIME <= when <= latest_allowed
                and 0 <= nanos < 1_000_000_000
                and sequence <= MAX_SEQUENCE
                and metric.check(value, unit) is None
            ):
                # The common case: checked, nothing to say. (tuple.__new__ skips the named
                # tuple's Python-level constructor.)
                append(_new(StoredReading, (name, unit, value, _GOOD, "", when, sequence, False)))
                continue
            index = len(readings)
            if sequence > MAX_SEQUENCE:
                raise Rejected(f"readings[{index}]: sequence {sequence} exceeds 2^63-1")
            quality = _KNOWN.get(wire)
            if len(unit) > MAX_UNIT_LENGTH or _CONTROL.search(unit):
                raise Rejected(
                    f"readings[{index}]: unit {unit[:40]!r} is not a unit (at most "
                    f"{MAX_UNIT_LENGTH} characters, no control characters)"
                )
            reason = _CONTROL.sub(" ", reading.quality_reason[:MAX_REASON_LENGTH])
            if metric is None:
                if len(name) > MAX_NAME_LENGTH or not NAME_PATTERN.fullmatch(name):
                    raise Rejected(
                        f"readings[{index}]: metric {name[:80]!r} is not a metric name "
                        "(snake_case, at most 63 characters)"
                    )
                quality, reason = (
                    Quality.BAD,
                    (
                        unknown_field
                        if metrics is _NO_METRICS
                        else f"unknown metric {name!r} of field {batch.field!r}"
                    ),
                )
            else:
                if quality is None:
                    quality = Quality.UNCERTAIN
                    reason = "no quality given" if wire == 0 else f"unknown quality number {wire}"
                verdict = metric.check(value, unit, AS_FIELD_QUALITY[quality])
                if verdict is not None:
                    quality, reason = FROM_FIELD_QUALITY[verdict.quality], verdict.reason
            if value is not None and not math.isfinite(value):
                value = None
                if quality is not Quality.BAD:
                    quality, reason = Quality.BAD, f"not a finite value ({reading.value})"
            if not (MIN_TIME <= when <= latest_allowed and 0 <= nanos < 1_000_000_000):
                quality, reason = _late_verdict(quality, reason, seconds, nanos, when, received)
                when = received
            if not reason and quality is not _GOOD:
                reason = f"reported {quality.name.lower()} without a reason"
            append(StoredReading(name, unit, value, quality, reason, when, sequence))
        return readings


def _late_verdict(
    quality: Quality, reason: str, seconds: int, nanos: int, when: int, received: int
) -> tuple[Quality, str]:
    """The verdict on a reading whose time cannot stand: it is kept at its arrival time."""
    if MIN_TIME <= when <= MAX_TIME and 0 <= nanos < 1_000_000_000:
        claimed = datetime.fromtimestamp(when / MICROS, UTC).isoformat().replace("+00:00", "Z")
        ahead = (when - received) / MICROS
        problem = (
            f"source time {claimed} is {_span(ahead)} ahead of the receiving clock; "
            "stored at its arrival time"
        )
    else:
        problem = (
            f"source time (seconds={seconds}, nanos={nanos}) is not a valid "
            "timestamp; "
            "stored at its arrival time"
        )
    if quality is Quality.BAD:
        return quality, f"{reason}; {problem}" if reason else problem
    return Quality.UNCERTAIN, problem


def _span(seconds: float) -> str:
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"
