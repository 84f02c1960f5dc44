"""A metric a field measures, and the platform's verdict on a reading of it.

:meth:`Metric.check` is the one place where a reading is judged against its metric (unit,
finiteness, range, whole numbers, states); ingest, alert evaluation and anything else that
takes readings from a wire call it. The reading itself is :class:`smartcity.fields.reading.Reading`.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

from smartcity.fields.checks import check_member, check_name, check_number, check_text, normalise
from smartcity.fields.enums import MetricKind, Quality, ValueType

_GOOD = Quality.GOOD


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
        normalise(self, "unit", check_text(self.unit, f"{what}: unit"))
        normalise(self, "description", check_text(self.description, f"{what}: description"))
        kind = check_member(MetricKind, self.kind, f"{what}: kind")
        value_type = check_member(ValueType, self.value_type, f"{what}: value_type")
        normalise(self, "kind", kind)
        normalise(self, "value_type", value_type)
        low = check_number(self.minimum, f"{what}: minimum", optional=True)
        high = check_number(self.maximum, f"{what}: maximum", optional=True)
        if low is not None and high is not None and low >= high:
            raise ValueError(f"{what}: minimum {low:g} is not below maximum {high:g}")
        normalise(self, "minimum", low)
        normalise(self, "maximum", high)
        normalise(self, "_low", -_NO_BOUND if low is None else low)
        normalise(self, "_high", _NO_BOUND if high is None else high)
        normalise(self, "_real", value_type is ValueType.FLOAT)
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
            states[value] = check_text(label, f"{what}: label of state {value}")
            if (low is not None and value < low) or (high is not None and value > high):
                raise ValueError(f"{what}: state {value} lies outside the metric's range")
        if kind is MetricKind.STATE:
            if value_type is ValueType.FLOAT:
                raise ValueError(f"{what}: a state metric has int or bool values")
            if not states:
                raise ValueError(f"{what}: a state metric names its states")
        elif states:
            raise ValueError(f"{what}: only a state metric has states (kind is {kind})")
        normalise(self, "states", MappingProxyType(states))

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
