"""What one evaluator transaction changes, written at its end, and the stand-in rule of an
alert whose rule is gone: shared by the evaluation of readings (:mod:`.evaluator`) and of
the clock (:mod:`.clock`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from smartcity.services.alerts.engine import Evaluation
from smartcity.services.alerts.model import Alert, Event, EventType
from smartcity.services.alerts.rules import NoData, Rule

__all__ = ["NOTIFIED", "Work", "gone"]

NOTIFIED = frozenset(
    {
        EventType.FIRING,
        EventType.RESOLVED,
        EventType.SILENCE_CHANGED,
        EventType.INHIBITION_CHANGED,
    }
)
"""Events that change what a group's next notification says (an escalation notifies its
step's receiver at once instead)."""


@dataclass
class Work:
    """What one transaction changes, written at its end."""

    evaluations: dict[str, tuple[Rule, Evaluation]] = field(default_factory=dict)
    alerts: dict[str, tuple[Rule, Alert]] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)


def gone(alert: Alert) -> Rule:
    """A stand-in for the rule of an alert whose rule no longer exists (nothing is due)."""
    return Rule(alert.rule_id, alert.rule_id, alert.field, NoData(1), alert.rule_severity)
