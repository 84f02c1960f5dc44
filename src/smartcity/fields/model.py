"""The vocabulary a field plugin speaks to the platform.

Every value a hook returns is one of these frozen dataclasses. Each checks itself when it is
built, so a mistake in a plugin's catalogue surfaces as a ``ValueError`` (or ``TypeError``)
raised inside the plugin's own hook, with the offending name in the message, long before a
reading or an alert depends on it. Checks that need more than one object (a KPI naming a
metric of the same field, a record type name used by two fields) are the host's, in
:mod:`smartcity.fields.validation`.

The types are deliberately independent of the protobuf API: plugins are written against
plain Python, and the services translate at their edges.
"""

from __future__ import annotations

import copy
import math
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple, TypeVar

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
"""snake_case: what a metric, KPI, rule or record type is called. It is also a valid NATS
subject token and a valid device-profile point name."""
MAX_NAME_LENGTH = 63
PROFILE_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")

_E = TypeVar("_E", bound=StrEnum)


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


_GOOD = Quality.GOOD
_BAD = Quality.BAD
_NUMBER = (int, float)


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


def _enum(kind: type[_E], value: Any, what: str) -> _E:
    if isinstance(value, kind):
        return value
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise ValueError(f"{what}: {value!r} is not one of {allowed}") from None


def _set(obj: object, name: str, value: Any) -> None:
    """Normalise an attribute of a frozen dataclass during ``__post_init__``."""
    object.__setattr__(obj, name, value)


def check_name(value: Any, what: str) -> str:
    """``value`` if it is a snake_case name, else a ``ValueError`` that says ``what`` it is."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if len(value) > MAX_NAME_LENGTH or not NAME_PATTERN.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} is not snake_case (lower-case letters, digits and single "
            f"underscores, starting with a letter, at most {MAX_NAME_LENGTH} characters)"
        )
    return value


def _text(value: Any, what: str, *, required: bool = True) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if required and not value.strip():
        raise ValueError(f"{what} is empty")
    return value.strip()


def _number(value: Any, what: str, *, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{what} must be a number, not {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{what} must be finite, not {value!r}")
    return float(value)


def _required_number(value: Any, what: str) -> float:
    number = _number(value, what)
    if number is None:
        raise TypeError(f"{what} must be a number, not None")
    return number


@dataclass(frozen=True, slots=True)
class FieldInfo:
    """Who a field is. ``id`` equals the plugin's entry-point name and is the ``<field>``
    token of NATS subjects, so it is snake_case and never changes once data exists."""

    id: str
    pillar: Pillar
    title: str
    description: str

    def __post_init__(self) -> None:
        check_name(self.id, "field id")
        _set(self, "pillar", _enum(Pillar, self.pillar, f"field {self.id!r}: pillar"))
        _set(self, "title", _text(self.title, f"field {self.id!r}: title"))
        _set(self, "description", _text(self.description, f"field {self.id!r}: description"))


class Verdict(NamedTuple):
    """Why a reading cannot stand as it was reported, and the quality it is kept with."""

    quality: Quality
    reason: str


_NO_BOUND = sys.float_info.max
"""The bound of an unbounded side: the largest finite float, so that the one comparison of
the common case also keeps ±inf out."""


@dataclass(frozen=True, slots=True)
class Metric:
    """One quantity a field measures, as devices publish it.

    ``minimum``/``maximum`` bound the physically plausible values (``None``: unbounded on
    that side). A reading outside them is stored with bad quality, never dropped, so the
    range should be what the sensor or the process can produce, not an alarm limit: alarm
    limits are alert rules. ``unit`` follows UCUM where a symbol exists (``kV``, ``m3/h``,
    ``ug/m3``, ``%``), in its plain ASCII form (``degC``, ``m3``); counts of things use a
    UCUM annotation such as ``{vehicle}``, as OpenTelemetry does.
    ``states`` names the values of a ``state`` metric.
    """

    name: str
    unit: str
    description: str
    minimum: float | None = None
    maximum: float | None = None
    kind: MetricKind = MetricKind.GAUGE
    value_type: ValueType = ValueType.FLOAT
    states: Mapping[int, str] = field(default_factory=dict, hash=False)
    _low: float = field(default=-_NO_BOUND, init=False, repr=False, compare=False)
    _high: float = field(default=_NO_BOUND, init=False, repr=False, compare=False)
    _real: bool = field(default=True, init=False, repr=False, compare=False)
    """Whether any value in range is valid (a float metric): the common case's test."""

    def __post_init__(self) -> None:
        name = check_name(self.name, "metric name")
        what = f"metric {name!r}"
        _set(self, "unit", _text(self.unit, f"{what}: unit"))
        _set(self, "description", _text(self.description, f"{what}: description"))
        kind = _enum(MetricKind, self.kind, f"{what}: kind")
        value_type = _enum(ValueType, self.value_type, f"{what}: value_type")
        _set(self, "kind", kind)
        _set(self, "value_type", value_type)
        low = _number(self.minimum, f"{what}: minimum", optional=True)
        high = _number(self.maximum, f"{what}: maximum", optional=True)
        if low is not None and high is not None and low >= high:
            raise ValueError(f"{what}: minimum {low:g} is not below maximum {high:g}")
        _set(self, "minimum", low)
        _set(self, "maximum", high)
        _set(self, "_low", -_NO_BOUND if low is None else low)
        _set(self, "_high", _NO_BOUND if high is None else high)
        _set(self, "_real", value_type is ValueType.FLOAT)
        if kind is MetricKind.COUNTER and low is not None and low < 0:
            raise ValueError(f"{what}: a counter cannot have a negative minimum ({low:g})")
        if value_type is ValueType.BOOL and (low not in (None, 0.0) or high not in (None, 1.0)):
            raise ValueError(f"{what}: a bool metric's range is 0..1")
        if not isinstance(self.states, Mapping):
            raise TypeError(f"{what}: states must be a mapping of int to label")
        states: dict[int, str] = {}
        for value, label in sorted(self.states.items()):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{what}: state value {value!r} is not an int")
            states[value] = _text(label, f"{what}: label of state {value}")
            if (low is not None and value < low) or (high is not None and value > high):
                raise ValueError(f"{what}: state {value} lies outside the metric's range")
        if kind is MetricKind.STATE:
            if value_type is ValueType.FLOAT:
                raise ValueError(f"{what}: a state metric has int or bool values")
            if not states:
                raise ValueError(f"{what}: a state metric names its states")
        elif states:
            raise ValueError(f"{what}: only a state metric has states (kind is {kind})")
        _set(self, "states", MappingProxyType(states))

    def check(
        self, value: float | None, unit: str, quality: Quality = Quality.GOOD
    ) -> Verdict | None:
        """The platform's verdict on a reading of this metric: ``None`` when it stands as
        reported, else the quality it must be kept with and why.

        This is the one place where a reading is judged against its metric; ingest, alert
        evaluation and anything else that takes readings from a wire call it. The rules,
        first match wins:

        * the unit must be the metric's: a value in another unit is another quantity, so
          the reading is BAD whatever the device said of it;
        * a value that is not finite (NaN, ±inf) is BAD (a reading already BAD keeps its
          reason); the caller keeps the reading without its value, since no aggregate can
          use it;
        * a GOOD reading needs a value, within ``minimum``..``maximum``, integral for an
          ``int`` metric and one of the ``states`` of a state metric; otherwise it is BAD;
        * a reading the device already marked UNCERTAIN or BAD keeps its quality and its
          own reason: the device knows better why it doubts the value.

        The common case (a GOOD value in range, in the right unit) costs two comparisons.
        """
        if (
            quality is _GOOD
            and unit == self.unit
            and value is not None
            and self._low <= value <= self._high
            and (self._real or (value == int(value) and not self.states))
        ):
            return None
        if unit != self.unit:
            return Verdict(Quality.BAD, f"unit {unit!r} is not the metric's {self.unit!r}")
        if value is not None and not math.isfinite(value) and quality is not Quality.BAD:
            return Verdict(Quality.BAD, f"not a finite value ({value})")
        if quality is not Quality.GOOD:
            return None
        if value is None:
            return Verdict(Quality.BAD, "marked good but carries no value")
        if value < self._low:
            return Verdict(Quality.BAD, f"out of range: {value:g} < {self._low:g}")
        if value > self._high:
            return Verdict(Quality.BAD, f"out of range: {value:g} > {self._high:g}")
        if self.value_type is not ValueType.FLOAT and value != int(value):
            return Verdict(Quality.BAD, f"{value:g} is not a whole number ({self.value_type})")
        if self.states and int(value) not in self.states:
            known = ", ".join(f"{number} ({label})" for number, label in self.states.items())
            return Verdict(Quality.BAD, f"state {int(value)} is not one of {known}")
        return None

    def in_range(self, value: float) -> bool:
        """Whether a GOOD reading of ``value`` in the metric's unit stands (NaN never does)."""
        return self.check(value, self.unit) is None


@dataclass(frozen=True, slots=True)
class Reading:
    """One value of one metric at one instant, with its quality.

    A value that is not finite is only acceptable with bad quality: the platform keeps
    such readings (so that a failing sensor is visible) but never computes with them.
    ``reason`` says why the quality is not good.
    """

    metric: str
    value: float | int | bool
    unit: str
    timestamp: datetime
    quality: Quality = Quality.GOOD
    reason: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.metric, str) or not self.metric:
            raise ValueError(f"a reading needs a metric name, not {self.metric!r}")
        if not isinstance(self.value, _NUMBER):
            raise TypeError(
                f"reading {self.metric!r}: value must be a number or bool, "
                f"not {type(self.value).__name__}"
            )
        timestamp = self.timestamp
        if not isinstance(timestamp, datetime) or (
            timestamp.tzinfo is not UTC and timestamp.utcoffset() is None
        ):
            raise ValueError(
                f"reading {self.metric!r}: timestamp must be a timezone-aware datetime"
            )
        quality = self.quality
        if type(quality) is not Quality:
            quality = _enum(Quality, quality, f"reading {self.metric!r}: quality")
            _set(self, "quality", quality)
        if quality is not _BAD and not math.isfinite(self.value):
            raise ValueError(
                f"reading {self.metric!r}: value {self.value!r} is only valid with bad quality"
            )

    @classmethod
    def checked_elsewhere(
        cls,
        metric: str,
        value: float,
        unit: str,
        timestamp: datetime,
        quality: Quality,
        reason: str = "",
    ) -> Reading:
        """A reading the host has already validated (decoded from a stored batch), built
        without repeating the checks: the host hands a plugin thousands per second, and
        the checks are for what plugins return."""
        reading = object.__new__(cls)
        _READING_SLOTS[0](reading, metric)
        _READING_SLOTS[1](reading, value)
        _READING_SLOTS[2](reading, unit)
        _READING_SLOTS[3](reading, timestamp)
        _READING_SLOTS[4](reading, quality)
        _READING_SLOTS[5](reading, reason)
        return reading


# The slots' own setters: a frozen dataclass refuses plain assignment, and going through
# object.__setattr__ costs a name lookup per field.
_READING_SLOTS = tuple(
    Reading.__dict__[name].__set__
    for name in ("metric", "value", "unit", "timestamp", "quality", "reason")
)


@dataclass(frozen=True, slots=True, repr=False)
class HourlyHistory:
    """The hourly means of one device's metrics over the last day, handed to ``derive``
    once per completed hour.

    Some derived values are defined on hourly means rather than on readings: VN_AQI, for
    one, weighs the last twelve hourly means of PM2.5 (the NowCast). A batch cannot supply
    them and ``derive`` must not fetch them, so the monitoring service, which keeps hourly
    roll-ups anyway, hands them over with the first batch of a device after each hour
    boundary (and ``None`` with every other batch).

    ``hour_end`` is the end of the hour that has just completed, a timezone-aware
    ``datetime`` on a whole hour of UTC (and so of Vietnam's UTC+7): the hour from 09:00 to
    10:00 ends at 10:00. It is the timestamp of whatever is derived for that hour.

    ``means`` maps each metric of the device to its last :attr:`HOURS` hourly means,
    **oldest first**, the last entry being the hour that ends at ``hour_end``. A mean is
    that of the hour's GOOD readings only, ``None`` for an hour without one, so that a bad
    reading can never reach a value derived from the history. A metric missing from the
    mapping has no good reading in the whole window.
    """

    HOURS: ClassVar[int] = 24
    """Hours of history: a day, enough for the NowCast's twelve and for 8-hour means."""

    hour_end: datetime
    means: Mapping[str, Sequence[float | None]] = field(hash=False)

    def __post_init__(self) -> None:
        end = self.hour_end
        if not isinstance(end, datetime) or end.utcoffset() is None:
            raise ValueError(
                f"hourly history: hour_end must be a timezone-aware datetime, not {end!r}"
            )
        utc = end.astimezone(UTC)
        if (utc.minute, utc.second, utc.microsecond) != (0, 0, 0):
            raise ValueError(
                f"hourly history: hour_end {end.isoformat()} is not on a whole hour of UTC"
            )
        if not isinstance(self.means, Mapping):
            raise TypeError("hourly history: means must be a mapping of metric to hourly means")
        means: dict[str, tuple[float | None, ...]] = {}
        for metric, values in self.means.items():
            what = f"hourly history of {check_name(metric, 'hourly history: metric')!r}"
            if isinstance(values, str | bytes) or not isinstance(values, Sequence):
                raise TypeError(f"{what} must be a sequence of hourly means")
            if len(values) != self.HOURS:
                raise ValueError(
                    f"{what} has {len(values)} hourly means, not {self.HOURS} (oldest first, "
                    "None for an hour without a good reading)"
                )
            means[metric] = tuple(
                None if value is None else _number(value, f"{what}, hour {index + 1}")
                for index, value in enumerate(values)
            )
        _set(self, "means", MappingProxyType(means))

    def recent(self, metric: str, hours: int) -> tuple[float | None, ...]:
        """The last ``hours`` hourly means of ``metric``, **newest first** (the hour ending
        at ``hour_end`` first), which is how indices such as the NowCast number them;
        all ``None`` for a metric without history."""
        if isinstance(hours, bool) or not isinstance(hours, int) or not 1 <= hours <= self.HOURS:
            raise ValueError(f"hours must be an int from 1 to {self.HOURS}, not {hours!r}")
        values = self.means.get(metric)
        if values is None:
            return (None,) * hours
        return values[: -hours - 1 : -1]

    def __repr__(self) -> str:
        # A day of means per metric would drown a traced hook call; the shape says enough.
        return (
            f"HourlyHistory(hour_end={self.hour_end.isoformat()}, "
            f"metrics=[{', '.join(sorted(self.means))}])"
        )


@dataclass(frozen=True, slots=True)
class AlertRuleTemplate:
    """A default alert rule a field proposes; the alerts service instantiates it per device.

    For ``threshold`` rules, ``hysteresis`` is how far back past the threshold the value has
    to go before a firing alert resolves (so a value dithering on the limit does not flap).
    ``for_seconds`` is how long the condition must hold before the alert fires; for
    ``no_data`` it is the silence that counts as no data. ``rate`` thresholds are in the
    metric's unit per second. ``standard`` cites the regulation a limit comes from.
    """

    name: str
    metric: str
    condition: ConditionKind
    severity: Severity
    summary: str
    comparison: Comparison | None = None
    threshold: float | None = None
    hysteresis: float = 0.0
    for_seconds: float = 0.0
    standard: str = ""

    def __post_init__(self) -> None:
        name = check_name(self.name, "alert rule name")
        what = f"alert rule {name!r}"
        check_name(self.metric, f"{what}: metric")
        condition = _enum(ConditionKind, self.condition, f"{what}: condition")
        _set(self, "condition", condition)
        _set(self, "severity", _enum(Severity, self.severity, f"{what}: severity"))
        _set(self, "summary", _text(self.summary, f"{what}: summary"))
        _set(self, "standard", _text(self.standard, f"{what}: standard", required=False))
        hysteresis = _required_number(self.hysteresis, f"{what}: hysteresis")
        for_seconds = _required_number(self.for_seconds, f"{what}: for_seconds")
        if hysteresis < 0:
            raise ValueError(f"{what}: hysteresis cannot be negative")
        if for_seconds < 0:
            raise ValueError(f"{what}: for_seconds cannot be negative")
        _set(self, "hysteresis", hysteresis)
        _set(self, "for_seconds", for_seconds)
        if condition is ConditionKind.NO_DATA:
            if self.comparison is not None or self.threshold is not None:
                raise ValueError(f"{what}: a no_data rule has no comparison or threshold")
            if for_seconds <= 0:
                raise ValueError(f"{what}: a no_data rule needs for_seconds > 0")
            if hysteresis:
                raise ValueError(f"{what}: a no_data rule has no hysteresis")
            return
        if self.comparison is None or self.threshold is None:
            raise ValueError(f"{what}: a {condition} rule needs a comparison and a threshold")
        comparison = _enum(Comparison, self.comparison, f"{what}: comparison")
        _set(self, "comparison", comparison)
        _set(self, "threshold", _number(self.threshold, f"{what}: threshold"))
        if hysteresis and (
            condition is not ConditionKind.THRESHOLD or comparison in (Comparison.EQ, Comparison.NE)
        ):
            raise ValueError(f"{what}: hysteresis applies only to gt/ge/lt/le threshold rules")


@dataclass(frozen=True, slots=True)
class RecordWorkflow:
    """The states a record moves through: ``property`` (a top-level string property of the
    schema) starts at one of ``initial`` and may only change along ``transitions`` (state →
    the states it may move to). The records service enforces it on every update."""

    property: str
    initial: tuple[str, ...]
    transitions: Mapping[str, tuple[str, ...]] = field(hash=False)

    def __post_init__(self) -> None:
        what = f"workflow of {self.property!r}"
        _set(self, "initial", tuple(self.initial))
        moves = {state: tuple(targets) for state, targets in dict(self.transitions).items()}
        states = set(moves) | {target for targets in moves.values() for target in targets}
        if not self.initial or not set(self.initial) <= states:
            raise ValueError(f"{what}: initial states must be states of its transitions")
        _set(self, "transitions", MappingProxyType(moves))

    def allows(self, before: str, after: str) -> bool:
        return before == after or after in self.transitions.get(before, ())


GEO_POINT_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["lat", "lon"],
    "properties": {
        "lat": {"type": "number", "minimum": -90, "maximum": 90},
        "lon": {"type": "number", "minimum": -180, "maximum": 180},
    },
}
"""The JSON Schema of a place on the map (WGS 84 degrees), for record types that have one:
one spelling, so that every type's location reads alike (the console draws them)."""


@dataclass(frozen=True, slots=True)
class RecordType:
    """A kind of record the records service stores for this field.

    ``schema`` is a JSON Schema (draft 2020-12) describing one record; its top level is an
    object. With ``access`` ``owner``, ``owner_property`` names the required string property
    holding the citizen's identity, which is what lets a citizen read their own records.
    The field that declares a record type owns it; names are unique across the platform
    because they are the ``<type>`` token of ``city.records.<type>.<event>``.

    ``version`` is raised whenever the schema changes; every stored record says the version
    it was written under. ``indexed`` names the dotted paths searches by value are indexed
    on; ``sensitive`` records (health data) are read only after a recent strong login with
    eID level 2, with a stated reason, and every read is audited; ``workflow`` constrains
    how a status property may change.
    """

    name: str
    title: str
    schema: Mapping[str, Any] = field(hash=False)
    access: RecordAccess = RecordAccess.FIELD
    owner_property: str | None = None
    version: int = 1
    description: str = ""
    indexed: tuple[str, ...] = ()
    sensitive: bool = False
    workflow: RecordWorkflow | None = None

    def __post_init__(self) -> None:
        name = check_name(self.name, "record type name")
        what = f"record type {name!r}"
        _set(self, "title", _text(self.title, f"{what}: title"))
        access = _enum(RecordAccess, self.access, f"{what}: access")
        _set(self, "access", access)
        if not isinstance(self.schema, Mapping):
            raise TypeError(f"{what}: schema must be a mapping (a JSON Schema object)")
        schema = copy.deepcopy(dict(self.schema))
        if schema.get("type") != "object":
            raise ValueError(f'{what}: schema must describe an object ("type": "object")')
        properties = schema.get("properties")
        if not isinstance(properties, Mapping) or not properties:
            raise ValueError(f"{what}: schema must declare its properties")
        required = schema.get("required", [])
        if not isinstance(required, list) or any(key not in properties for key in required):
            raise ValueError(f"{what}: schema's required list names undeclared properties")
        _set(self, "schema", MappingProxyType(schema))
        if access is RecordAccess.OWNER:
            owner = self.owner_property
            if owner is None:
                raise ValueError(f"{what}: access 'owner' needs owner_property")
            if owner not in properties or owner not in required:
                raise ValueError(
                    f"{what}: owner_property {owner!r} must be a required schema property"
                )
        elif self.owner_property is not None:
            raise ValueError(f"{what}: owner_property applies only to access 'owner'")
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise ValueError(f"{what}: version must be a whole number from 1")
        _set(self, "description", _text(self.description, f"{what}: description", required=False))
        _set(self, "indexed", tuple(self.indexed))
        for path in self.indexed:
            if not isinstance(path, str) or path.split(".")[0] not in properties:
                raise ValueError(f"{what}: indexed path {path!r} is not a schema property")
        workflow = self.workflow
        if workflow is not None and properties.get(workflow.property, {}).get("enum") is None:
            raise ValueError(f"{what}: workflow property {workflow.property!r} needs an enum")
        # Imported here: agents load this module too and never declare record types.
        from jsonschema import Draft202012Validator, SchemaError

        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            raise ValueError(f"{what}: not a valid JSON Schema: {exc.message}") from None


@dataclass(frozen=True, slots=True)
class DeviceProfileTemplate:
    """A ready device profile for a common device of this field, without the parts that
    depend on the deployment (``site``, ``endpoint``, ``device``); see docs/architecture.md,
    "Device profiles", for the format. The edge agent's profile loader checks a completed
    profile in full; here only the shape and the tie to the field's catalogue are checked.
    """

    name: str
    description: str
    profile: Mapping[str, Any] = field(hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not PROFILE_NAME_PATTERN.fullmatch(self.name):
            raise ValueError(
                f"device profile name {self.name!r} must be lower-case letters, digits, '-' "
                "or '_' (at most 63 characters)"
            )
        what = f"device profile {self.name!r}"
        _set(self, "description", _text(self.description, f"{what}: description"))
        if not isinstance(self.profile, Mapping):
            raise TypeError(f"{what}: profile must be a mapping")
        profile = copy.deepcopy(dict(self.profile))
        if profile.get("protocol") not in ("modbus", "opcua"):
            raise ValueError(f"{what}: protocol must be 'modbus' or 'opcua'")
        points = profile.get("points")
        if not isinstance(points, list) or not points:
            raise ValueError(f"{what}: points must be a non-empty list")
        for index, point in enumerate(points):
            if not isinstance(point, Mapping):
                raise TypeError(f"{what}: point {index} must be a mapping")
            if not point.get("name") or not point.get("unit"):
                raise ValueError(f"{what}: point {index} needs a name and a unit")
        _set(self, "profile", MappingProxyType(profile))

    @property
    def points(self) -> list[Mapping[str, Any]]:
        return list(self.profile["points"])

    def complete(self, **deployment: Any) -> dict[str, Any]:
        """A fresh, mutable profile document with ``site``, ``device``, ``endpoint`` (and any
        other deployment keys) filled in, ready to be written as YAML."""
        return {**copy.deepcopy(dict(self.profile)), **deployment}


@dataclass(frozen=True, slots=True)
class Kpi:
    """A key performance indicator of the field, computed by the monitoring service.

    The computation is ``aggregation`` of ``metric`` (a metric of the same field) over the
    last ``window_seconds``, multiplied by ``scale`` (100 turns a fraction into %).
    ``threshold`` belongs to the ``share_*`` aggregations, ``denominator`` to ``ratio``.
    ``target`` is the value the city aims for, reached when the KPI is at or beyond it in
    ``direction``.
    """

    id: str
    title: str
    unit: str
    description: str
    direction: Direction
    aggregation: Aggregation
    metric: str
    window_seconds: int = 24 * 3600
    target: float | None = None
    threshold: float | None = None
    denominator: str | None = None
    scale: float = 1.0
    standard: str = ""

    def __post_init__(self) -> None:
        kpi_id = check_name(self.id, "KPI id")
        what = f"KPI {kpi_id!r}"
        _set(self, "title", _text(self.title, f"{what}: title"))
        _set(self, "unit", _text(self.unit, f"{what}: unit"))
        _set(self, "description", _text(self.description, f"{what}: description"))
        _set(self, "standard", _text(self.standard, f"{what}: standard", required=False))
        _set(self, "direction", _enum(Direction, self.direction, f"{what}: direction"))
        aggregation = _enum(Aggregation, self.aggregation, f"{what}: aggregation")
        _set(self, "aggregation", aggregation)
        check_name(self.metric, f"{what}: metric")
        if isinstance(self.window_seconds, bool) or not isinstance(self.window_seconds, int):
            raise TypeError(f"{what}: window_seconds must be an int")
        if self.window_seconds <= 0:
            raise ValueError(f"{what}: window_seconds must be positive")
        _set(self, "target", _number(self.target, f"{what}: target", optional=True))
        scale = _required_number(self.scale, f"{what}: scale")
        if not scale:
            raise ValueError(f"{what}: scale cannot be 0")
        _set(self, "scale", scale)
        shares = (Aggregation.SHARE_AT_MOST, Aggregation.SHARE_AT_LEAST)
        if aggregation in shares:
            _set(self, "threshold", _number(self.threshold, f"{what}: threshold"))
        elif self.threshold is not None:
            raise ValueError(f"{what}: threshold applies only to share_at_most/share_at_least")
        if aggregation is Aggregation.RATIO:
            check_name(self.denominator, f"{what}: denominator")
        elif self.denominator is not None:
            raise ValueError(f"{what}: denominator applies only to ratio")

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metrics this KPI reads."""
        return (self.metric,) if self.denominator is None else (self.metric, self.denominator)


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
