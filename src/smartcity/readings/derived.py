"""Derived readings: what a field makes of a decoded batch, judged like any other reading.

A field derives in two ways, and :class:`BatchDeriver` applies both to a batch, in this
order: its derivations (:class:`smartcity.fields.Derivation`), reading by reading, straight
from stored reading to stored reading; then its ``derive`` hook, which sees the batch's
readings as the plugins' :class:`smartcity.fields.Reading`\\ s.
:func:`derived_readings` turns what a plugin derived into stored readings, for the hook here
and for whatever else calls a plugin (monitoring's hourly values).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from operator import itemgetter

from smartcity.fields import Derivation, FieldHost, Metric
from smartcity.fields import Quality as FieldQuality
from smartcity.fields import Reading as FieldReading
from smartcity.fields.errors import DeriveError
from smartcity.readings.field_quality import AS_FIELD_QUALITY, FROM_FIELD_QUALITY
from smartcity.readings.model import MICROS, IngestBatch, Quality, StoredReading
from smartcity.runtime.logs import get_logger

__all__ = ["BatchDeriver", "derived_readings"]

# The decoder's logger: deriving is a step of decoding, and one logger's level tunes both.
_log = get_logger("smartcity.readings.decode")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_new = tuple.__new__
_SEQUENCE = itemgetter(6)  # StoredReading.sequence


class BatchDeriver:
    """Adds to a decoded batch what its field derives from it."""

    def __init__(self, fields: FieldHost, catalogues: Mapping[str, Mapping[str, Metric]]) -> None:
        self.fields = fields
        self._metrics = catalogues
        self._derives = {
            field.id for field in fields if field.derive_reads_batches and field.derive_caller
        }
        # Plain dicts: asked once per reading, and a mapping proxy answers slower.
        self._each = {field.id: dict(field.derivations) for field in fields if field.derivations}
        self.deriving = frozenset(self._derives | self._each.keys())
        """The fields that derive anything from a batch."""

    def with_derived(self, batch: IngestBatch) -> IngestBatch:
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
            quality = AS_FIELD_QUALITY[reading[3]]
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
                    AS_FIELD_QUALITY.get(r.quality, FieldQuality.BAD),
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
    stored_quality = FROM_FIELD_QUALITY[quality]
    if verdict is not None:
        stored_quality, reason = FROM_FIELD_QUALITY[verdict.quality], verdict.reason
    if value is not None and not math.isfinite(value):
        value, stored_quality = None, Quality.BAD
    return _new(
        StoredReading,
        (metric.name, unit, value, stored_quality, reason, time, sequence, True),
    )
