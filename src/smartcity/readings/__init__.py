"""Telemetry as the services receive it, judged once for all of them.

A message on ``city.telemetry.<field>.<site>.<device>`` becomes an :class:`IngestBatch` of
:class:`StoredReading`\\ s, each with a verdict (quality and reason), in one place,
:class:`TelemetryDecoder`, so that monitoring, which stores readings, and alerts, which
evaluates rules on them, can never judge one reading differently. The checks against a
field's metric catalogue are :meth:`smartcity.fields.Metric.check`; what only the wire can
get wrong (subjects, ids, timestamps, quality numbers) is checked here.
"""

from smartcity.readings.decode import TelemetryDecoder, tune_for_ingest
from smartcity.readings.model import MICROS, IngestBatch, Quality, StoredReading

__all__ = [
    "MICROS",
    "IngestBatch",
    "Quality",
    "StoredReading",
    "TelemetryDecoder",
    "tune_for_ingest",
]
