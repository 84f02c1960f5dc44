"""The vocabulary a field plugin speaks to the platform.

Every value a hook returns is one of these frozen dataclasses. Each checks itself when it is
built, so a mistake in a plugin's catalogue surfaces as a ``ValueError`` (or ``TypeError``)
raised inside the plugin's own hook, with the offending name in the message, long before a
reading or an alert depends on it. Checks that need more than one object (a KPI naming a
metric of the same field, a record type name used by two fields) are the host's, in
:mod:`smartcity.fields.validation`.

The types are deliberately independent of the protobuf API: plugins are written against
plain Python, and the services translate at their edges.

Each kind of type lives in its own module, and every name is importable from here too:

* :mod:`~smartcity.fields.enums`: the enumerations (pillar, metric kind, quality, ...);
* :mod:`~smartcity.fields.checks`: what a name, a text, a number must be;
* :mod:`~smartcity.fields.metric`: :class:`Metric` and its :class:`Verdict` on a reading;
* :mod:`~smartcity.fields.reading`: :class:`Reading` and the :class:`HourlyHistory`
  ``derive`` is handed;
* :mod:`~smartcity.fields.catalogue`: :class:`FieldInfo`, :class:`AlertRuleTemplate`,
  :class:`DeviceProfileTemplate`, :class:`Kpi`;
* :mod:`~smartcity.fields.derivation`: :class:`Derivation`, a metric computed from one
  reading of another;
* :mod:`~smartcity.fields.records`: :class:`RecordType`, its :class:`RecordWorkflow` and
  :data:`GEO_POINT_SCHEMA`.

:func:`to_jsonable`, here, turns any of them into plain JSON-compatible data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from smartcity.fields.catalogue import AlertRuleTemplate, DeviceProfileTemplate, FieldInfo, Kpi
from smartcity.fields.checks import (
    MAX_NAME_LENGTH,
    NAME_PATTERN,
    PROFILE_NAME_PATTERN,
    check_name,
)
from smartcity.fields.derivation import Derivation
from smartcity.fields.enums import (
    Aggregation,
    Comparison,
    ConditionKind,
    Direction,
    MetricKind,
    Pillar,
    Quality,
    RecordAccess,
    Severity,
    ValueType,
)
from smartcity.fields.metric import Metric, Verdict
from smartcity.fields.reading import HourlyHistory, Reading
from smartcity.fields.records import GEO_POINT_SCHEMA, RecordType, RecordWorkflow

__all__ = [
    "GEO_POINT_SCHEMA",
    "MAX_NAME_LENGTH",
    "NAME_PATTERN",
    "PROFILE_NAME_PATTERN",
    "Aggregation",
    "AlertRuleTemplate",
    "Comparison",
    "ConditionKind",
    "Derivation",
    "DeviceProfileTemplate",
    "Direction",
    "FieldInfo",
    "HourlyHistory",
    "Kpi",
    "Metric",
    "MetricKind",
    "Pillar",
    "Quality",
    "Reading",
    "RecordAccess",
    "RecordType",
    "RecordWorkflow",
    "Severity",
    "ValueType",
    "Verdict",
    "check_name",
    "to_jsonable",
]


def to_jsonable(value: Any) -> Any:
    """Plain JSON-compatible data (dicts, lists, str, numbers, None) for any of the types
    above, for APIs and the command line."""
    if isinstance(value, StrEnum):
        return value.value
    if is_dataclass(value) and not isinstance(value, type):
        return {item.name: to_jsonable(getattr(value, item.name)) for item in fields(value)}
    if isinstance(value, Mapping):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value
