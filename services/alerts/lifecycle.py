"""The life of an alert, pure: inactive → pending → firing → resolved, and what people and
other alerts do to it.

Every function takes the alert as it is and the time, changes the alert, and returns the
events the change makes (an empty list: nothing happened). The evaluator
(:mod:`.evaluator`) persists the alert and its events in one transaction.

* :func:`advance`: the condition holds or not (from :mod:`.engine`): a new occurrence starts
  PENDING (or FIRING at once with no ``for``); PENDING fires once the condition held for
  ``for``; a FIRING alert whose condition cleared keeps firing for ``keep_firing_for``, then
  RESOLVES; a PENDING one resolves at once.
* :func:`acknowledge`, :func:`unacknowledge`, :func:`assign`: by a named person.
* :func:`suppress`: silences and inhibitions that apply now; a suppressed alert is neither
  notified nor escalated.
* :func:`escalate`: a FIRING alert nobody acknowledged, past a step's ``after``, reaches the
  step: its severity rises.
* :func:`due`: when the clock alone next changes the alert, so that timers survive restarts
  and hand-overs as a column, not as a task.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from smartcity.runtime.errors import FailedPrecondition
from smartcity.services.alerts.engine import Evaluation, alert_labels
from smartcity.services.alerts.model import (
    Alert,
    AlertState,
    Event,
    EventType,
    Severity,
    Silence,
    matches_all,
)
from smartcity.services.alerts.rules import EscalationStep, Rule

__all__ = [
    "acknowledge",
    "advance",
    "assign",
    "due",
    "escalate",
    "event",
    "inhibitors",
    "silencers",
    "suppress",
    "unacknowledge",
]


def event(
    kind: EventType, alert: Alert, now: int, actor: str | None = None, comment: str = ""
) -> Event:
    """An event carrying a snapshot of ``alert`` as it is now."""
    alert.update_time = now
    snapshot = replace(alert, labels=dict(alert.labels), annotations=dict(alert.annotations))
    return Event(uuid.uuid4().hex, now, kind, snapshot, actor, comment)


def _new_occurrence(rule: Rule, evaluation: Evaluation, now: int) -> Alert:
    return Alert(
        fingerprint=evaluation.fingerprint,
        rule_id=rule.id,
        state=AlertState.PENDING,
        severity=rule.severity,
        rule_severity=rule.severity,
        field=rule.field,
        labels=alert_labels(rule, evaluation.site, evaluation.device, evaluation.metric),
        annotations=dict(rule.annotations),
        active_time=now,
        value=evaluation.value,
    )


def advance(
    rule: Rule, alert: Alert | None, evaluation: Evaluation, now: int
) -> tuple[Alert | None, list[Event]]:
    """Move the alert of ``evaluation`` along with whether its condition holds at ``now``."""
    holds = evaluation.holds
    if alert is None or not alert.is_open:
        if not holds:
            return alert, []
        alert = _new_occurrence(rule, evaluation, now)
        if rule.for_duration > 0:
            return alert, [event(EventType.PENDING, alert, now)]
        alert.state, alert.start_time = AlertState.FIRING, now
        return alert, [event(EventType.FIRING, alert, now)]
    alert.value = evaluation.value
    if alert.state is AlertState.PENDING:
        if not holds:
            return alert, [_resolve(alert, now)]
        if now - alert.active_time >= rule.for_duration:
            alert.state, alert.start_time = AlertState.FIRING, now
            return alert, [event(EventType.FIRING, alert, now)]
        return alert, []
    # FIRING
    if holds:
        alert.cleared_time = None
        return alert, []
    if alert.cleared_time is None:
        alert.cleared_time = now
    if now - alert.cleared_time >= rule.keep_firing_for:
        return alert, [_resolve(alert, now)]
    return alert, []


def _resolve(alert: Alert, now: int) -> Event:
    alert.state, alert.end_time, alert.cleared_time = AlertState.RESOLVED, now, None
    return event(EventType.RESOLVED, alert, now)


def resolve(alert: Alert, now: int, reason: str) -> list[Event]:
    """Resolve an open alert whose rule was disabled, changed or deleted."""
    if not alert.is_open:
        return []
    result = _resolve(alert, now)
    return [replace(result, comment=reason)]


def acknowledge(alert: Alert, user: str, comment: str, now: int) -> list[Event]:
    if alert.state is not AlertState.FIRING:
        raise FailedPrecondition(
            f"alert {alert.fingerprint} is {alert.state.value}; only a firing alert can be "
            "acknowledged"
        )
    if alert.acknowledged_by is not None:
        raise FailedPrecondition(
            f"alert {alert.fingerprint} is already acknowledged by {alert.acknowledged_by}"
        )
    alert.acknowledged_by, alert.acknowledge_time, alert.acknowledge_comment = user, now, comment
    return [event(EventType.ACKNOWLEDGED, alert, now, user, comment)]


def unacknowledge(alert: Alert, user: str, comment: str, now: int) -> list[Event]:
    if alert.acknowledged_by is None or not alert.is_open:
        raise FailedPrecondition(f"alert {alert.fingerprint} is not acknowledged")
    alert.acknowledged_by, alert.acknowledge_time, alert.acknowledge_comment = None, None, ""
    return [event(EventType.UNACKNOWLEDGED, alert, now, user, comment)]


def assign(alert: Alert, assignee: str | None, user: str, comment: str, now: int) -> list[Event]:
    if not alert.is_open:
        raise FailedPrecondition(f"alert {alert.fingerprint} is resolved; it cannot be assigned")
    if alert.assignee == assignee:
        return []
    alert.assignee = assignee
    return [event(EventType.ASSIGNED, alert, now, user, comment)]


def silencers(silences: Iterable[Silence], labels: Mapping[str, str], now: int) -> tuple[str, ...]:
    """Ids of the silences active at ``now`` that match ``labels``."""
    return tuple(
        sorted(s.id for s in silences if s.active(now) and matches_all(s.matchers, labels))
    )


def inhibitors(alert: Alert, sources: Sequence[tuple[Alert, Rule]]) -> tuple[str, ...]:
    """Fingerprints of the firing alerts whose rules' inhibitions cover ``alert``."""
    found = set()
    for source, rule in sources:
        if source.fingerprint == alert.fingerprint or source.state is not AlertState.FIRING:
            continue
        for inhibition in rule.inhibitions:
            if matches_all(inhibition.target_matchers, alert.labels) and all(
                source.labels.get(name, "") == alert.labels.get(name, "")
                for name in inhibition.equal_labels
            ):
                found.add(source.fingerprint)
    return tuple(sorted(found))


def suppress(
    alert: Alert, silenced_by: tuple[str, ...], inhibited_by: tuple[str, ...], now: int
) -> list[Event]:
    events = []
    if alert.silenced_by != silenced_by:
        alert.silenced_by = silenced_by
        events.append(event(EventType.SILENCE_CHANGED, alert, now))
    if alert.inhibited_by != inhibited_by:
        alert.inhibited_by = inhibited_by
        events.append(event(EventType.INHIBITION_CHANGED, alert, now))
    return events


def _escalating(alert: Alert) -> bool:
    return (
        alert.state is AlertState.FIRING
        and alert.acknowledged_by is None
        and not alert.suppressed
        and alert.start_time is not None
    )


def escalate(rule: Rule, alert: Alert, now: int) -> tuple[list[Event], list[EscalationStep]]:
    """Reach every escalation step due at ``now``; the events and the steps reached."""
    events: list[Event] = []
    reached: list[EscalationStep] = []
    while _escalating(alert) and alert.escalation_level < len(rule.escalation):
        step = rule.escalation[alert.escalation_level]
        assert alert.start_time is not None
        if now - alert.start_time < step.after:
            break
        alert.escalation_level += 1
        raised = step.severity or Severity(min(int(alert.severity) + 1, int(Severity.CRITICAL)))
        alert.severity = max(alert.severity, raised)
        alert.labels["severity"] = alert.severity.name.lower()
        events.append(event(EventType.ESCALATED, alert, now, comment=step.notify))
        reached.append(step)
    return events, reached


def due(rule: Rule, alert: Alert) -> int | None:
    """When the clock alone next changes ``alert``; ``None``: only a reading or a person."""
    if alert.state is AlertState.PENDING:
        return alert.active_time + rule.for_duration
    if alert.state is not AlertState.FIRING:
        return None
    times = []
    if alert.cleared_time is not None:
        times.append(alert.cleared_time + rule.keep_firing_for)
    if _escalating(alert) and alert.escalation_level < len(rule.escalation):
        assert alert.start_time is not None
        times.append(alert.start_time + rule.escalation[alert.escalation_level].after)
    return min(times) if times else None
