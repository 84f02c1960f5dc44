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
"""

from __future__ import annotations

import gc
import math
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any

from google.protobuf.message import DecodeError
from nats.aio.msg import Msg

from smartcity.fields import Derivation, FieldHost, Metric
from smartcity.fields import Quality as FieldQuality
from smartcity.fields import Reading as FieldReading
from smartcity.fields.errors import DeriveError
from smartcity.fields.model import MAX_NAME_LENGTH, NAME_PATTERN
from smartcity.readings.model import MICROS, IngestBatch, Quality, StoredReading
from smartcity.readings.wire import TelemetryBatchView, TimestampCache
from smartcity.runtime.consumer import Rejected
from smartcity.runtime.logs import get_logger
from smartcity.runtime.subjects import parse_telemetry_subject

__all__ = ["MAX_SEQUENCE", "TelemetryDecoder", "derived_readings"]

_log = get_logger(__name__)

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
_AS_FIELD_QUALITY = {
    Quality.GOOD: FieldQuality.GOOD,
    Quality.BAD: FieldQuality.BAD,
    Quality.UNCERTAIN: FieldQuality.UNCERTAIN,
    Quality.STALE: FieldQuality.UNCERTAIN,  # the plugins know three classes
}
_FROM_FIELD_QUALITY = {
    FieldQuality.GOOD: Quality.GOOD,
    FieldQuality.BAD: Quality.BAD,
    FieldQuality.UNCERTAIN: Quality.UNCERTAIN,
}
_NO_METRICS: dict[str, Metric] = {}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_new = tuple.__new__
_SEQUENCE = itemgetter(6)  # StoredReading.sequence


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
        self._derives = {
            field.id for field in fields if field.derive_reads_batches and field.derive_caller
        }
        # Plain dicts: asked once per reading, and a mapping proxy answers slower.
        self._each = {field.id: dict(field.derivations) for field in fields if field.derivations}

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
        if batch.field in self._derives or batch.field in self._each:
            return self._with_derived(decoded)
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
                verdict = metric.check(value, unit, _AS_FIELD_QUALITY[quality])
                if verdict is not None:
                    quality, reason = _FROM_FIELD_QUALITY[verdict.quality], verdict.reason
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

    def _with_derived(self, batch: IngestBatch) -> IngestBatch:
        """The batch plus what its field derives from it: its derivations, reading by
        reading, then its ``derive`` hook."""
        each = self._each.get(batch.field)
        extra = self._apply_each(batch, each) if each else []
        if batch.field in self._derives:
            extra += self._from_hook(batch, max(map(_SEQUENCE, batch.readings), default=0))
        if not extra:
            return batch
        return IngestBatch(
            batch.batch_id,
            batch.field,
            batch.site,
            batch.device,
            batch.agent_id,
            [*batch.readings, *extra],
            batch.received,
        )

    def _apply_each(
        self, batch: IngestBatch, each: Mapping[str, tuple[Derivation, ...]]
    ) -> list[StoredReading]:
        """The field's derivations applied to the readings of their sources, straight
        from stored reading to stored reading (see :meth:`Derivation.apply`). A derived
        reading has its source's sequence, as it stands for the same measurement."""
        catalogue = self._metrics[batch.field]
        derived = []
        for reading in [r for r in batch.readings if r[0] in each]:
            quality = _AS_FIELD_QUALITY[reading[3]]
            for derivation in each[reading[0]]:
                applied = derivation.apply(reading[2], quality, reading[4])
                if applied is not None:
                    value, verdict, reason = applied
                    metric = catalogue[derivation.metric]
                    derived.append(
                        _judged(metric, metric.unit, value, verdict, reason, reading[5], reading[6])
                    )
        return derived

    def _from_hook(self, batch: IngestBatch, sequence: int) -> list[StoredReading]:
        """What the field's ``derive`` hook makes of the batch."""
        field = self.fields[batch.field]
        wanted = field.derive_inputs
        inputs = []
        moments: dict[int, datetime] = {}
        readings = (
            batch.readings if wanted is None else [r for r in batch.readings if r.metric in wanted]
        )
        build = FieldReading.checked_elsewhere
        for r in readings:
            if r.value is None:
                continue
            moment = moments.get(r.time)
            if moment is None:
                # Whole seconds apart: a timedelta of microseconds alone is normalised
                # through slow arithmetic on large numbers.
                seconds, micros = divmod(r.time, MICROS)
                moment = moments[r.time] = _EPOCH + timedelta(0, seconds, micros)
            inputs.append(
                build(
                    r.metric,
                    r.value,
                    r.unit,
                    moment,
                    _AS_FIELD_QUALITY.get(r.quality, FieldQuality.BAD),
                    r.reason,
                )
            )
        if not inputs:
            return []
        try:
            derived = field.derive_hook(batch.site, batch.device, inputs)
        except DeriveError:
            _log.exception("derive failed", field=batch.field, site=batch.site, device=batch.device)
            return []
        # By identity, as hashing a datetime is slow: these objects live until the end of
        # the call, and a plugin hands its input's timestamp on as it is.
        times = {id(moment): time for time, moment in moments.items()}
        return derived_readings(field.metrics, derived, sequence, times)


def derived_readings(
    catalogue: Mapping[str, Metric],
    derived: Sequence[FieldReading],
    sequence: int,
    times: Mapping[int, int] | None = None,
) -> list[StoredReading]:
    """A plugin's derived readings as stored readings, judged like any other reading.
    ``times`` maps the ``id()`` of each datetime handed to the plugin (alive while this
    runs) back to its microseconds."""
    stored = []
    times = times or {}
    for reading in derived:
        moment = reading.timestamp
        time = times.get(id(moment))
        if time is None:
            time = (moment - _EPOCH) // _MICROSECOND
        stored.append(
            _judged(
                catalogue[reading.metric], reading.unit, reading.value, reading.quality,
                reading.reason, time, sequence,
            )
        )  # fmt: skip
    return stored


def _judged(
    metric: Metric,
    unit: str,
    value: float | None,
    quality: FieldQuality,
    reason: str,
    time: int,
    sequence: int,
) -> StoredReading:
    """A derived value as a stored reading, judged by its metric like any other reading."""
    if value is not None:
        value = float(value)
    verdict = metric.check(value, unit, quality)
    stored_quality = _FROM_FIELD_QUALITY[quality]
    if verdict is not None:
        stored_quality, reason = _FROM_FIELD_QUALITY[verdict.quality], verdict.reason
    if value is not None and not math.isfinite(value):
        value, stored_quality = None, Quality.BAD
    return _new(
        StoredReading,
        (metric.name, unit, value, stored_quality, reason, time, sequence, True),
    )


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


INGEST_SWITCH_INTERVAL = 0.00025
"""Seconds between the interpreter's thread switches in a process that decodes telemetry
(monitoring, alerts). Storage writes run in their own thread while the event loop decodes
the next fetch, and every statement that thread runs must take the interpreter back when
the database returns: up to one interval of waiting each, while the loop is busy. At
Python's default 5 ms that thread waits for the busy loop most of the time; at 1 ms a
write of one fetch still spent as long waiting as working, enough to hold the loop up
once decoding got faster. Switches happen only when a thread asks, a few dozen times per
write, so a shorter interval costs nothing else."""

INGEST_GC_THRESHOLDS = (50_000, 20, 20)
"""Ingest allocates a few tuples per reading, hundreds of thousands a second, nearly all of
them gone within one fetch and none of them in reference cycles. With Python's default
(700 allocations) the cyclic collector runs thousands of times a second for nothing; it
measured as a fifth of ingest's time."""


def tune_for_ingest() -> None:
    """Interpreter settings for a process whose hot path is decoding telemetry and writing it
    (see the constants)."""
    sys.setswitchinterval(INGEST_SWITCH_INTERVAL)
    gc.set_threshold(*INGEST_GC_THRESHOLDS)
