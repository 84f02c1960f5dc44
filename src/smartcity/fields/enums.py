"""The enumerations of the field contract, as plugins and the services spell them.

Each is a ``StrEnum`` whose values are what the catalogue, the API and the subjects carry:
pillars, how a metric's values behave (kind, value type), a reading's quality, an alert
rule's condition, comparison and severity, who may read a record type, and which way a KPI
should move and how it is computed.
"""

from __future__ import annotations

from enum import StrEnum


class Pillar(StrEnum):
    """The six task groups (pillars) of Da Nang's smart-city architecture for 2018-2025."""

    GOVERNANCE = "governance"
    CITIZEN = "citizen"
    MOBILITY = "mobility"
    LIVING = "living"
    ENVIRONMENT = "environment"
    ECONOMY = "economy"


class MetricKind(StrEnum):
    """How a metric's values relate over time; aggregations and alert rules depend on it."""

    GAUGE = "gauge"
    """A level that goes up and down (voltage, PM2.5, queue length)."""
    COUNTER = "counter"
    """A cumulative total that only grows, except when the source resets (kWh, calls)."""
    STATE = "state"
    """One of a few enumerated integer states (breaker open/closed, signal phase)."""


class ValueType(StrEnum):
    FLOAT = "float"
    INT = "int"
    BOOL = "bool"


class Quality(StrEnum):
    """The three quality classes field devices report (as OPC UA's status codes do)."""

    GOOD = "good"
    UNCERTAIN = "uncertain"
    BAD = "bad"


class ConditionKind(StrEnum):
    THRESHOLD = "threshold"
    """The value compared with ``threshold``; clears only past ``hysteresis``."""
    RATE = "rate"
    """The change per second compared with ``threshold``."""
    NO_DATA = "no_data"
    """No reading of the metric for ``for_seconds``."""


class Comparison(StrEnum):
    GT = "gt"
    GE = "ge"
    LT = "lt"
    LE = "le"
    EQ = "eq"
    NE = "ne"


class Severity(StrEnum):
    """Alert severities; each is a token of the alert subject ``city.alerts.<field>.<sev>``."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class RecordAccess(StrEnum):
    OWNER = "owner"
    """The citizen the record is about, plus staff holding a role in the owning field."""
    FIELD = "field"
    """Only staff holding a role in the owning field."""
    PUBLIC = "public"
    """Anyone may read; writing still needs a role in the owning field."""


class Direction(StrEnum):
    """Which way a KPI should move."""

    HIGHER = "higher"
    LOWER = "lower"


class Aggregation(StrEnum):
    """How a KPI is computed from the field's metrics over its window."""

    MEAN = "mean"
    MIN = "min"
    MAX = "max"
    LAST = "last"
    INCREASE = "increase"
    """Growth of a counter over the window, source resets accounted for."""
    SHARE_AT_MOST = "share_at_most"
    """Share of the window (in %) during which the value was at most ``threshold``."""
    SHARE_AT_LEAST = "share_at_least"
    """Share of the window (in %) during which the value was at least ``threshold``."""
    RATIO = "ratio"
    """``metric`` over ``denominator``; a counter contributes its increase over the window,
    a gauge its mean."""
