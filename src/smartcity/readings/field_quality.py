"""A stored reading's quality against the field plugins' :class:`smartcity.fields.Quality`:
the wire and storage know four classes (GOOD, BAD, UNCERTAIN, STALE), the plugins three.
Both the decoder and the derived readings translate with these tables."""

from __future__ import annotations

from smartcity.fields import Quality as FieldQuality
from smartcity.readings.model import Quality

__all__ = ["AS_FIELD_QUALITY", "FROM_FIELD_QUALITY"]

AS_FIELD_QUALITY = {
    Quality.GOOD: FieldQuality.GOOD,
    Quality.BAD: FieldQuality.BAD,
    Quality.UNCERTAIN: FieldQuality.UNCERTAIN,
    Quality.STALE: FieldQuality.UNCERTAIN,  # the plugins know three classes
}
FROM_FIELD_QUALITY = {
    FieldQuality.GOOD: Quality.GOOD,
    FieldQuality.BAD: Quality.BAD,
    FieldQuality.UNCERTAIN: Quality.UNCERTAIN,
}
