"""What a field declares about itself besides its metrics and record types: who it is
(:class:`FieldInfo`), its default alert rules, its ready device profiles and its KPIs.

Metrics are in :mod:`smartcity.fields.metric`, record types in :mod:`smartcity.fields.records`.
Checks that need more than one object (a KPI naming a metric of the same field) are the
host's, in :mod:`smartcity.fields.validation`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from smartcity.fields.checks import (
    PROFILE_NAME_PATTERN,
    check_member,
    check_name,
    check_number,
    check_required_number,
    check_text,
    normalise,
)
from smartcity.fields.enums import (
    Aggregation,
    Comparison,
    ConditionKind,
    Direction,
    Pillar,
    Severity,
)


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
        normalise(self, "pillar", check_member(Pillar, self.pillar, f"field {self.id!r}: pillar"))
        normalise(self, "title", check_text(self.title, f"field {self.id!r}: title"))
        normalise(
            self, "description", check_text(self.description, f"field {self.id!r}: description")
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
        condition = check_member(ConditionKind, self.condition, f"{what}: condition")
        normalise(self, "condition", condition)
        normalise(self, "severity", check_member(Severity, self.severity, f"{what}: severity"))
        normalise(self, "summary", check_text(self.summary, f"{what}: summary"))
        normalise(self, "standard", check_text(self.standard, f"{what}: standard", required=False))
        hysteresis = check_required_number(self.hysteresis, f"{what}: hysteresis")
        for_seconds = check_required_number(self.for_seconds, f"{what}: for_seconds")
        if hysteresis < 0:
            raise ValueError(f"{what}: hysteresis cannot be negative")
        if for_seconds < 0:
            raise ValueError(f"{what}: for_seconds cannot be negative")
        normalise(self, "hysteresis", hysteresis)
        normalise(self, "for_seconds", for_seconds)
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
        comparison = check_member(Comparison, self.comparison, f"{what}: comparison")
        normalise(self, "comparison", comparison)
        normalise(self, "threshold", check_number(self.threshold, f"{what}: threshold"))
        if hysteresis and (
            condition is not ConditionKind.THRESHOLD or comparison in (Comparison.EQ, Comparison.NE)
        ):
            raise ValueError(f"{what}: hysteresis applies only to gt/ge/lt/le threshold rules")


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
        normalise(self, "description", check_text(self.description, f"{what}: description"))
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
        normalise(self, "profile", MappingProxyType(profile))

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
        normalise(self, "title", check_text(self.title, f"{what}: title"))
        normalise(self, "unit", check_text(self.unit, f"{what}: unit"))
        normalise(self, "description", check_text(self.description, f"{what}: description"))
        normalise(self, "standard", check_text(self.standard, f"{what}: standard", required=False))
        normalise(self, "direction", check_member(Direction, self.direction, f"{what}: direction"))
        aggregation = check_member(Aggregation, self.aggregation, f"{what}: aggregation")
        normalise(self, "aggregation", aggregation)
        check_name(self.metric, f"{what}: metric")
        if isinstance(self.window_seconds, bool) or not isinstance(self.window_seconds, int):
            raise TypeError(f"{what}: window_seconds must be an int")
        if self.window_seconds <= 0:
            raise ValueError(f"{what}: window_seconds must be positive")
        normalise(self, "target", check_number(self.target, f"{what}: target", optional=True))
        scale = check_required_number(self.scale, f"{what}: scale")
        if not scale:
            raise ValueError(f"{what}: scale cannot be 0")
        normalise(self, "scale", scale)
        shares = (Aggregation.SHARE_AT_MOST, Aggregation.SHARE_AT_LEAST)
        if aggregation in shares:
            normalise(self, "threshold", check_number(self.threshold, f"{what}: threshold"))
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
