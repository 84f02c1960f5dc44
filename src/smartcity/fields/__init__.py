"""The field-plugin host: the contract a smart field implements and the loader that checks it.

A field plugin imports everything it needs from here::

    from smartcity.fields import FieldInfo, Kpi, Metric, hookimpl

and registers under the ``smartcity.fields`` entry-point group. Processes call
:func:`load_fields` once at start-up and use the :class:`FieldHost` it returns. See
``README.md`` beside this file for the plugin author's guide.
"""

from smartcity.fields.errors import DeriveError, FieldHostError, FieldLoadError, PluginError
from smartcity.fields.host import Field, FieldHost, PluginOrigin
from smartcity.fields.manager import load_fields
from smartcity.fields.markers import ENTRY_POINT_GROUP, hookimpl, hookspec
from smartcity.fields.model import (
    GEO_POINT_SCHEMA,
    Aggregation,
    AlertRuleTemplate,
    Comparison,
    ConditionKind,
    Derivation,
    DeviceProfileTemplate,
    Direction,
    FieldInfo,
    HourlyHistory,
    Kpi,
    Metric,
    MetricKind,
    Pillar,
    Quality,
    Reading,
    RecordAccess,
    RecordType,
    RecordWorkflow,
    Severity,
    ValueType,
    Verdict,
)
from smartcity.fields.tracing import TRACE_LOGGER

__all__ = [
    "ENTRY_POINT_GROUP",
    "GEO_POINT_SCHEMA",
    "TRACE_LOGGER",
    "Aggregation",
    "AlertRuleTemplate",
    "Comparison",
    "ConditionKind",
    "Derivation",
    "DeriveError",
    "DeviceProfileTemplate",
    "Direction",
    "Field",
    "FieldHost",
    "FieldHostError",
    "FieldInfo",
    "FieldLoadError",
    "HourlyHistory",
    "Kpi",
    "Metric",
    "MetricKind",
    "Pillar",
    "PluginError",
    "PluginOrigin",
    "Quality",
    "Reading",
    "RecordAccess",
    "RecordType",
    "RecordWorkflow",
    "Severity",
    "ValueType",
    "Verdict",
    "hookimpl",
    "hookspec",
    "load_fields",
]
