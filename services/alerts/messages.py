"""Protobuf ↔ domain for the alerts API; nothing here decides anything.

Decoding never raises on a well-formed message: what the domain must refuse (an unknown
enum number, a missing condition) is carried over as ``None`` or as the raw number, and
:meth:`~.model.Rule.check` names it.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from smartcity.alerts.v1 import alerts_pb2 as pb
from smartcity.common.v1 import common_pb2
from smartcity.runtime.errors import InvalidArgument
from smartcity.services.alerts.model import (
    Alert,
    AlertState,
    Comparison,
    Event,
    EventType,
    Matcher,
    MatchType,
    Origin,
    Severity,
    Silence,
)
from smartcity.services.alerts.rules import (
    Band,
    EscalationStep,
    Inhibition,
    NoData,
    QualityBad,
    RateOfChange,
    Rule,
    Threshold,
)

__all__ = [
    "alert_message",
    "event_message",
    "matcher",
    "rule_from_message",
    "rule_message",
    "severity_of",
    "silence_from_message",
    "silence_message",
]

_COMPARISONS = {
    pb.COMPARISON_GREATER: Comparison.GT,
    pb.COMPARISON_GREATER_OR_EQUAL: Comparison.GE,
    pb.COMPARISON_LESS: Comparison.LT,
    pb.COMPARISON_LESS_OR_EQUAL: Comparison.LE,
}
_COMPARISON_NUMBERS = {value: key for key, value in _COMPARISONS.items()}
_MATCH_TYPES = {
    pb.Matcher.TYPE_EQUAL: MatchType.EQUAL,
    pb.Matcher.TYPE_NOT_EQUAL: MatchType.NOT_EQUAL,
    pb.Matcher.TYPE_REGEX: MatchType.REGEX,
    pb.Matcher.TYPE_NOT_REGEX: MatchType.NOT_REGEX,
}
_MATCH_NUMBERS = {value: key for key, value in _MATCH_TYPES.items()}
_STATES = {
    AlertState.PENDING: pb.ALERT_STATE_PENDING,
    AlertState.FIRING: pb.ALERT_STATE_FIRING,
    AlertState.RESOLVED: pb.ALERT_STATE_RESOLVED,
}
STATE_OF = {number: state for state, number in _STATES.items()}
_ORIGINS = {Origin.PLUGIN: pb.RULE_ORIGIN_PLUGIN, Origin.USER: pb.RULE_ORIGIN_USER}
_EVENTS = {kind: pb.AlertEvent.Type.Value(f"TYPE_{kind.name}") for kind in EventType}
SILENCE_STATES = {
    pb.SILENCE_STATE_PENDING: "pending",
    pb.SILENCE_STATE_ACTIVE: "active",
    pb.SILENCE_STATE_EXPIRED: "expired",
}
_SILENCE_NUMBERS = {value: key for key, value in SILENCE_STATES.items()}


def severity_of(number: int) -> Severity | None:
    return Severity(number) if number in Severity._value2member_map_ else None


def _micros(message: Duration | Timestamp) -> int:
    return int(message.seconds) * 1_000_000 + int(message.nanos) // 1000


def _duration(micros: int) -> Duration:
    span = Duration()
    span.FromMicroseconds(micros)
    return span


def _timestamp(micros: int | None) -> Timestamp | None:
    if micros is None:
        return None
    stamp = Timestamp()
    stamp.FromMicroseconds(micros)
    return stamp


def _threshold(message: pb.ThresholdCondition) -> Threshold:
    comparison = _COMPARISONS.get(message.comparison)
    return Threshold(comparison, message.threshold, message.hysteresis)  # type: ignore[arg-type]


def matcher(message: pb.Matcher) -> Matcher:
    kind = _MATCH_TYPES.get(message.type)
    return Matcher(message.name, message.value, kind)  # type: ignore[arg-type]


def _matcher_message(item: Matcher) -> pb.Matcher:
    return pb.Matcher(name=item.name, value=item.value, type=_MATCH_NUMBERS[item.type])


def rule_from_message(message: pb.Rule) -> Rule:
    which = message.WhichOneof("condition")
    condition: Any = None
    if which == "threshold":
        condition = _threshold(message.threshold)
    elif which == "band":
        band = message.band
        condition = Band(band.low, band.high, band.hysteresis)
    elif which == "rate_of_change":
        change = message.rate_of_change
        condition = RateOfChange(_micros(change.window), _threshold(change.rate))
    elif which == "no_data":
        condition = NoData(_micros(message.no_data.timeout))
    elif which == "quality_bad":
        condition = QualityBad()
    selector = message.selector
    if selector.field and selector.field != message.field:
        raise InvalidArgument("rule.selector.field: must be empty or equal rule.field")
    return Rule(
        id=message.id,
        display_name=message.display_name,
        field=message.field,
        site=selector.site,
        device=selector.device,
        metric=selector.metric,
        severity=severity_of(message.severity),  # type: ignore[arg-type]
        condition=condition,
        for_duration=_micros(message.for_duration),
        keep_firing_for=_micros(message.keep_firing_for),
        labels=dict(message.labels),
        annotations=dict(message.annotations),
        inhibitions=tuple(
            Inhibition(tuple(matcher(m) for m in i.target_matchers), tuple(i.equal_labels))
            for i in message.inhibitions
        ),
        escalation=tuple(
            EscalationStep(
                _micros(step.after),
                step.notify,
                severity_of(step.severity) if step.severity else None,
            )
            for step in message.escalation
        ),
        enabled=message.enabled,
    )


def _threshold_message(t: Threshold) -> pb.ThresholdCondition:
    return pb.ThresholdCondition(
        comparison=_COMPARISON_NUMBERS[t.comparison], threshold=t.threshold, hysteresis=t.hysteresis
    )


def rule_message(rule: Rule) -> pb.Rule:
    message = pb.Rule(
        id=rule.id,
        display_name=rule.display_name,
        field=rule.field,
        selector=common_pb2.SeriesSelector(
            field=rule.field, site=rule.site, device=rule.device, metric=rule.metric
        ),
        severity=int(rule.severity),
        for_duration=_duration(rule.for_duration),
        keep_firing_for=_duration(rule.keep_firing_for),
        labels=dict(rule.labels),
        annotations=dict(rule.annotations),
        inhibitions=[
            pb.Inhibition(
                target_matchers=[_matcher_message(m) for m in i.target_matchers],
                equal_labels=list(i.equal_labels),
            )
            for i in rule.inhibitions
        ],
        escalation=[
            pb.EscalationStep(
                after=_duration(s.after), notify=s.notify, severity=int(s.severity or 0)
            )
            for s in rule.escalation
        ],
        enabled=rule.enabled,
        origin=_ORIGINS[rule.origin],
        create_time=_timestamp(rule.created),
        update_time=_timestamp(rule.updated),
        version=rule.version,
    )
    condition = rule.condition
    if isinstance(condition, Threshold):
        message.threshold.CopyFrom(_threshold_message(condition))
    elif isinstance(condition, Band):
        message.band.CopyFrom(
            pb.BandCondition(
                low=condition.low, high=condition.high, hysteresis=condition.hysteresis
            )
        )
    elif isinstance(condition, RateOfChange):
        message.rate_of_change.window.CopyFrom(_duration(condition.window))
        message.rate_of_change.rate.CopyFrom(_threshold_message(condition.rate))
    elif isinstance(condition, NoData):
        message.no_data.timeout.CopyFrom(_duration(condition.timeout))
    else:
        message.quality_bad.SetInParent()
    return message


def _who(user: str | None) -> common_pb2.PrincipalRef | None:
    return None if user is None else common_pb2.PrincipalRef(id=user)


def alert_message(alert: Alert) -> pb.Alert:
    return pb.Alert(
        fingerprint=alert.fingerprint,
        rule_id=alert.rule_id,
        state=_STATES[alert.state],
        severity=int(alert.severity),
        rule_severity=int(alert.rule_severity),
        field=alert.field,
        labels=alert.labels,
        annotations=alert.annotations,
        active_time=_timestamp(alert.active_time),
        start_time=_timestamp(alert.start_time),
        end_time=_timestamp(alert.end_time),
        value=alert.value,
        acknowledged_by=_who(alert.acknowledged_by),
        acknowledge_time=_timestamp(alert.acknowledge_time),
        acknowledge_comment=alert.acknowledge_comment,
        silenced_by=list(alert.silenced_by),
        inhibited_by=list(alert.inhibited_by),
        escalation_level=alert.escalation_level,
        update_time=_timestamp(alert.update_time),
        assignee=_who(alert.assignee),
    )


def event_message(event: Event) -> pb.AlertEvent:
    return pb.AlertEvent(
        event_id=event.event_id,
        event_time=_timestamp(event.time),
        type=_EVENTS[event.type],
        alert=alert_message(event.alert),
        revision=event.revision,
        actor=_who(event.actor),
        comment=event.comment,
    )


def silence_from_message(message: pb.Silence) -> Silence:
    start = _micros(message.start_time) if message.HasField("start_time") else 0
    end = _micros(message.end_time) if message.HasField("end_time") else 0
    matchers = tuple(matcher(m) for m in message.matchers)
    return Silence("", matchers, start, end, message.comment, "", 0)


def silence_message(silence: Silence, now: int) -> pb.Silence:
    return pb.Silence(
        id=silence.id,
        matchers=[_matcher_message(m) for m in silence.matchers],
        start_time=_timestamp(silence.start_time),
        end_time=_timestamp(silence.end_time),
        comment=silence.comment,
        created_by=_who(silence.created_by),
        state=_SILENCE_NUMBERS[silence.state(now)],
        create_time=_timestamp(silence.create_time),
    )
