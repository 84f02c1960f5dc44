"""What a rule is and what makes one wrong: its condition (threshold, band, rate of change,
no data, quality bad), its selector, timings, labels, inhibitions and escalation.

A :class:`Rule` checks itself: :meth:`Rule.problems` lists every problem at once, each
naming the rule field at fault (``rule.threshold.hysteresis``), and :meth:`Rule.check`
raises them together as one ``InvalidArgument``. How a condition holds on a value
(:meth:`Threshold.holds`, :meth:`Band.holds`) is here too; when a rule fires is
:mod:`.engine`'s business.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from smartcity.fields import FieldHost
from smartcity.runtime.errors import InvalidArgument
from smartcity.services.alerts.model import (
    LABEL,
    MAX_TEXT,
    MICROS,
    Comparison,
    Matcher,
    Origin,
    Severity,
)

__all__ = [
    "MAX_DURATION",
    "Band",
    "Condition",
    "EscalationStep",
    "Inhibition",
    "NoData",
    "QualityBad",
    "RateOfChange",
    "Rule",
    "Threshold",
]

_GT, _GE, _LT = Comparison.GT, Comparison.GE, Comparison.LT
_RULE_ID = re.compile(r"[a-z][a-z0-9_]{0,99}")
MAX_DURATION = 366 * 24 * 3600 * MICROS
"""Longest duration a rule may name: a year (and a leap day)."""


@dataclass(frozen=True, slots=True)
class Threshold:
    """Holds when the value crosses ``threshold``; once holding, clears only when the value
    is back past it by ``hysteresis``, so that a value hovering at the threshold cannot flap."""

    comparison: Comparison
    threshold: float
    hysteresis: float = 0.0

    def holds(self, value: float, held: bool) -> bool:
        # Once per reading: the members are module constants, as a lookup on the enum
        # class costs more than the comparison itself.
        margin = self.hysteresis if held else 0.0
        comparison = self.comparison
        if comparison is _GT:
            return value > self.threshold - margin
        if comparison is _GE:
            return value >= self.threshold - margin
        if comparison is _LT:
            return value < self.threshold + margin
        return value <= self.threshold + margin

    def problems(self, path: str) -> list[str]:
        problems = []
        if not isinstance(self.comparison, Comparison):
            problems.append(f"{path}.comparison: required (greater, less, or with equal)")
        for name, number in (("threshold", self.threshold), ("hysteresis", self.hysteresis)):
            if number != number or number in (float("inf"), float("-inf")):
                problems.append(f"{path}.{name}: must be a finite number")
        if self.hysteresis < 0:
            problems.append(f"{path}.hysteresis: must not be negative, not {self.hysteresis:g}")
        return problems


@dataclass(frozen=True, slots=True)
class Band:
    """Holds while the value is outside [low, high]; once holding, clears only when it is
    back inside by ``hysteresis``."""

    low: float
    high: float
    hysteresis: float = 0.0

    def holds(self, value: float, held: bool) -> bool:
        margin = self.hysteresis if held else 0.0
        return value < self.low + margin or value > self.high - margin

    def problems(self, path: str) -> list[str]:
        numbers = (self.low, self.high, self.hysteresis)
        if any(n != n or n in (float("inf"), float("-inf")) for n in numbers):
            return [f"{path}: low, high and hysteresis must be finite numbers"]
        problems = []
        if self.low >= self.high:
            problems.append(f"{path}.low: must be below high ({self.low:g} >= {self.high:g})")
        elif not 0 <= 2 * self.hysteresis < self.high - self.low:
            problems.append(f"{path}.hysteresis: from 0 to less than half the band's width")
        return problems


@dataclass(frozen=True, slots=True)
class RateOfChange:
    """Holds when (latest value - value one window ago) / window meets ``rate``."""

    window: int
    rate: Threshold


@dataclass(frozen=True, slots=True)
class NoData:
    """Holds when the series (or, without a metric, the device) gave no good or uncertain
    reading for ``timeout``."""

    timeout: int


@dataclass(frozen=True, slots=True)
class QualityBad:
    """Holds while the series reports BAD readings."""


Condition = Threshold | Band | RateOfChange | NoData | QualityBad


@dataclass(frozen=True, slots=True)
class Inhibition:
    target_matchers: tuple[Matcher, ...]
    equal_labels: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EscalationStep:
    after: int
    notify: str = ""
    severity: Severity | None = None
    """Severity reached at this step; ``None`` raises it one level."""


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    display_name: str
    field: str
    condition: Condition
    severity: Severity
    site: str = ""
    device: str = ""
    metric: str = ""
    for_duration: int = 0
    keep_firing_for: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    inhibitions: tuple[Inhibition, ...] = ()
    escalation: tuple[EscalationStep, ...] = ()
    enabled: bool = True
    origin: Origin = Origin.USER
    created: int = 0
    updated: int = 0
    version: int = 0

    def selects(self, field_id: str, site: str, device: str, metric: str) -> bool:
        return (
            self.field == field_id
            and (not self.site or self.site == site)
            and (not self.device or self.device == device)
            and (not self.metric or self.metric == metric)
        )

    def problems(self, fields: FieldHost | None) -> list[str]:
        """Everything wrong with the rule, each naming its field; empty when it is sound.
        ``fields`` is the installed catalogue the field and metric must belong to."""
        problems = []
        if not _RULE_ID.fullmatch(self.id):
            problems.append(f"rule.id: {self.id[:60]!r} is not lower snake_case (at most 100)")
        if not self.display_name.strip() or len(self.display_name) > 200:
            problems.append("rule.display_name: required, at most 200 characters")
        catalogue = None
        if fields is not None:
            known = {item.id: item for item in fields}
            if self.field not in known:
                problems.append(f"rule.field: unknown field {self.field[:60]!r}")
            else:
                catalogue = known[self.field].metrics
        if catalogue is not None and self.metric and self.metric not in catalogue:
            problems.append(
                f"rule.selector.metric: {self.metric[:60]!r} is not a metric of {self.field!r}"
            )
        if not isinstance(self.severity, Severity):
            problems.append("rule.severity: required (info, warning or critical)")
        problems += _condition_problems(self.condition, bool(self.metric))
        for name, span in (
            ("for_duration", self.for_duration),
            ("keep_firing_for", self.keep_firing_for),
        ):
            if not 0 <= span <= MAX_DURATION:
                problems.append(f"rule.{name}: must be from 0 to 366 days")
        if len(self.labels) > 64 or len(self.annotations) > 64:
            problems.append("rule.labels, rule.annotations: at most 64 each")
        for what, mapping in (("labels", self.labels), ("annotations", self.annotations)):
            for key, value in mapping.items():
                if not LABEL.fullmatch(key):
                    problems.append(f"rule.{what}: {key[:60]!r} is not a label name")
                if len(value) > MAX_TEXT:
                    problems.append(f"rule.{what}[{key}]: longer than {MAX_TEXT} characters")
        for index, inhibition in enumerate(self.inhibitions):
            path = f"rule.inhibitions[{index}]"
            if not inhibition.target_matchers:
                problems.append(f"{path}.target_matchers: at least one matcher is required")
            for position, matcher in enumerate(inhibition.target_matchers):
                problems += matcher.problems(f"{path}.target_matchers[{position}]")
            for label in inhibition.equal_labels:
                if not LABEL.fullmatch(label):
                    problems.append(f"{path}.equal_labels: {label[:60]!r} is not a label name")
        previous = 0
        for index, step in enumerate(self.escalation):
            if step.severity is not None and not isinstance(step.severity, Severity):
                problems.append(f"rule.escalation[{index}].severity: not a severity")
            if not previous < step.after <= MAX_DURATION:
                problems.append(
                    f"rule.escalation[{index}].after: must be positive and after the step before"
                )
            previous = step.after
        return problems

    def check(self, fields: FieldHost | None) -> Rule:
        problems = self.problems(fields)
        if problems:
            raise InvalidArgument("; ".join(problems))
        return self

    def changed(self, **values: object) -> Rule:
        return replace(self, **values)  # type: ignore[arg-type]


def _condition_problems(condition: object, has_metric: bool) -> list[str]:
    if isinstance(condition, Threshold):
        problems = condition.problems("rule.threshold")
        if not has_metric:
            problems.append("rule.selector.metric: a threshold rule needs a metric")
        return problems
    if isinstance(condition, Band):
        problems = condition.problems("rule.band")
        if not has_metric:
            problems.append("rule.selector.metric: a band rule needs a metric")
        return problems
    if isinstance(condition, RateOfChange):
        problems = condition.rate.problems("rule.rate_of_change.rate")
        if not 0 < condition.window <= MAX_DURATION:
            problems.append("rule.rate_of_change.window: must be positive, at most 366 days")
        if not has_metric:
            problems.append("rule.selector.metric: a rate-of-change rule needs a metric")
        return problems
    if isinstance(condition, NoData):
        if 0 < condition.timeout <= MAX_DURATION:
            return []
        return ["rule.no_data.timeout: must be positive, at most 366 days"]
    if isinstance(condition, QualityBad):
        return [] if has_metric else ["rule.selector.metric: a quality rule needs a metric"]
    return ["rule.condition: one of threshold, band, rate_of_change, no_data, quality_bad"]
