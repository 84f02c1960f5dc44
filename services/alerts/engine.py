"""Where a rule fires: the evaluation of one rule's condition on one series, pure.

For every reading a rule selects, :func:`observe` updates the series' :class:`Evaluation`
(does the condition hold now, on what value); for a no-data rule, :func:`silence_check`
asks the clock instead. What follows from "holds" or "does not hold" (pending, firing,
resolved) is the lifecycle's business (:mod:`.lifecycle`); nothing here touches storage,
NATS or the wall clock.

* **threshold** and **band**: :meth:`~.model.Threshold.holds`, :meth:`~.model.Band.holds`,
  with hysteresis once holding;
* **rate of change**: (latest value - the value one window earlier) / window, from the
  samples the evaluation keeps over the window, compared like a threshold;
* **no data**: a good or uncertain reading of the series (or of the device, without a
  metric) refreshes ``last_seen``; the condition holds once ``timeout`` passed without one;
* **quality bad**: holds while the series' readings are BAD (the device's verdict or the
  spine's, :meth:`smartcity.fields.Metric.check`).

An alert is identified by its fingerprint: a hash of the rule id and the identifying labels
(field, site, device, metric), so the same condition on the same series always meets the
same alert.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from smartcity.readings.model import Quality, StoredReading
from smartcity.services.alerts.model import MICROS
from smartcity.services.alerts.rules import Band, NoData, QualityBad, RateOfChange, Rule, Threshold

__all__ = [
    "Evaluation",
    "RuleIndex",
    "alert_labels",
    "at_rest",
    "fingerprint",
    "observe",
    "silence_check",
]

_BAD = Quality.BAD
_STALE = Quality.STALE
MAX_SAMPLES = 512
"""Samples a rate-of-change evaluation keeps at most; enough for a window of minutes at one
reading a second, thinned beyond that."""


def fingerprint(rule_id: str, field_id: str, site: str, device: str, metric: str) -> str:
    """Stable id of a rule's alert on one series: 16 hex digits of SHA-256."""
    key = "\x1f".join((rule_id, field_id, site, device, metric))
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def alert_labels(rule: Rule, site: str, device: str, metric: str) -> dict[str, str]:
    """The series' labels, then ``rule``, ``alertname`` and ``severity``, then the rule's."""
    labels = {"field": rule.field, "site": site, "device": device}
    if metric:
        labels["metric"] = metric
    labels.update(rule=rule.id, alertname=rule.display_name, severity=rule.severity.name.lower())
    for key, value in rule.labels.items():
        labels.setdefault(key, value)
    return labels


@dataclass(slots=True)
class Evaluation:
    """What a rule knows about one series between readings; persisted when it changes,
    unless it is :func:`at_rest`."""

    fingerprint: str
    rule_id: str
    field: str
    site: str
    device: str
    metric: str
    holds: bool = False
    value: float = 0.0
    last_time: int = 0
    """Time of the last reading evaluated (µs)."""
    last_seen: int = 0
    """Time of the last good or uncertain reading (µs), for no-data."""
    samples: list[tuple[int, float]] = field(default_factory=list)
    """(time, value) over the rate window, oldest first."""

    def deadline(self, rule: Rule) -> int | None:
        """When the clock alone next changes this evaluation: a no-data timeout."""
        if isinstance(rule.condition, NoData) and not self.holds:
            return self.last_seen + rule.condition.timeout
        return None


_AT_REST = (Threshold, Band, QualityBad)


def at_rest(rule: Rule, evaluation: Evaluation | None) -> bool:
    """Whether ``evaluation`` (``None``: none is kept) holds nothing but the time of its
    last reading: a threshold, band or quality rule whose condition does not hold. Such an
    evaluation need not be stored: one made afresh with its series' last time evaluates the
    next reading alike (a value is read only once the condition holds; the time a reading
    was last seen, and samples, are the no-data and rate rules' business)."""
    return (evaluation is None or not evaluation.holds) and type(rule.condition) in _AT_REST


def observe(rule: Rule, evaluation: Evaluation, reading: StoredReading) -> bool:
    """Update ``evaluation`` with ``reading`` of a series ``rule`` selects; whether the
    reading was evaluated (a reading older than the last one evaluated is not)."""
    # Once per reading and rule: the common case (a good reading, a threshold or a band)
    # asks each question once and leaves at the first answer.
    condition = rule.condition
    kind = type(condition)
    value, quality, when = reading.value, reading.quality, reading.time
    usable = value is not None and quality is not _BAD
    if usable and quality is not _STALE and when > evaluation.last_seen:
        # A stale reading repeats an old value: it is no sign that the device is alive.
        evaluation.last_seen = when
    if kind is NoData:
        alive = usable and quality is not _STALE
        if alive and evaluation.holds:
            evaluation.holds = False
        evaluation.value = 0.0
        evaluation.last_time = max(evaluation.last_time, when)
        return alive
    if when < evaluation.last_time:
        return False
    evaluation.last_time = when
    if kind is QualityBad:
        evaluation.holds = quality is _BAD
        evaluation.value = value if value is not None else 0.0
        return True
    if not usable:
        # A bad reading says nothing about the value: the condition stays as it was.
        return False
    value = float(value)  # type: ignore[arg-type]
    if kind is RateOfChange:
        return _rate(condition, evaluation, when, value)  # type: ignore[arg-type]
    evaluation.value = value
    evaluation.holds = condition.holds(value, evaluation.holds)  # type: ignore[union-attr]
    return True


def _rate(condition: RateOfChange, evaluation: Evaluation, when: int, value: float) -> bool:
    samples = evaluation.samples
    samples.append((when, value))
    horizon = when - condition.window
    # Keep one sample at or before the horizon: it is the "one window ago" value.
    while len(samples) > 1 and samples[1][0] <= horizon:
        samples.pop(0)
    if len(samples) > MAX_SAMPLES:
        del samples[1 : len(samples) - MAX_SAMPLES + 1]
    then, before = samples[0]
    if then > horizon or then == when:
        return False  # less than a window of history: no rate yet
    rate = (value - before) / ((when - then) / MICROS)
    evaluation.value = rate
    evaluation.holds = condition.rate.holds(rate, evaluation.holds)
    return True


def silence_check(rule: Rule, evaluation: Evaluation, now: int) -> bool:
    """For a no-data rule: whether the series has been quiet for the timeout at ``now``
    (updating ``holds`` and ``value``, the seconds without data)."""
    condition = rule.condition
    if not isinstance(condition, NoData):
        return evaluation.holds
    quiet = now - evaluation.last_seen
    evaluation.value = quiet / MICROS
    evaluation.holds = quiet >= condition.timeout
    return evaluation.holds


class RuleIndex:
    """The enabled rules by what they select, so that a reading meets only its own rules:
    by (field, metric, device), a device of "" standing for rules on every device; the
    device-wide no-data rules are those with the metric "". Ten thousand rules cost a
    reading two dictionary lookups, not ten thousand comparisons."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules = {rule.id: rule for rule in rules}
        self._by_key: dict[tuple[str, str, str], list[Rule]] = {}
        for rule in self.rules.values():
            if rule.enabled:
                key = (rule.field, rule.metric, rule.device)
                self._by_key.setdefault(key, []).append(rule)

    def for_reading(self, field_id: str, site: str, device: str, metric: str) -> list[Rule]:
        """The rules that evaluate a reading of ``metric``: those on the metric, and the
        no-data rules without a metric (any reading of the device is a sign of life)."""
        found = []
        get = self._by_key.get
        keys = ((field_id, metric, device), (field_id, metric, ""))
        if metric:
            keys += ((field_id, "", device), (field_id, "", ""))
        for key in keys:
            for rule in get(key, ()):
                if not rule.site or rule.site == site:
                    found.append(rule)
        return found
