"""Rules, alerts, silences and events as JSON text, the form both backends store them in:
one column holds the whole object, beside the columns that queries filter and order on."""

from __future__ import annotations

import json
from typing import Any

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
    Condition,
    EscalationStep,
    Inhibition,
    NoData,
    QualityBad,
    RateOfChange,
    Rule,
    Threshold,
)

__all__ = [
    "alert_from_json",
    "alert_json",
    "event_from_json",
    "event_json",
    "rule_from_json",
    "rule_json",
    "silence_from_json",
    "silence_json",
]


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _threshold(t: Threshold) -> dict[str, Any]:
    return {"comparison": t.comparison.value, "threshold": t.threshold, "hysteresis": t.hysteresis}


def _threshold_of(d: dict[str, Any]) -> Threshold:
    return Threshold(Comparison(d["comparison"]), d["threshold"], d["hysteresis"])


def _condition(c: Condition) -> dict[str, Any]:
    if isinstance(c, Threshold):
        return {"threshold": _threshold(c)}
    if isinstance(c, Band):
        return {"band": [c.low, c.high, c.hysteresis]}
    if isinstance(c, RateOfChange):
        return {"rate_of_change": {"window": c.window, "rate": _threshold(c.rate)}}
    if isinstance(c, NoData):
        return {"no_data": {"timeout": c.timeout}}
    return {"quality_bad": {}}


def _condition_of(d: dict[str, Any]) -> Condition:
    if "threshold" in d:
        return _threshold_of(d["threshold"])
    if "band" in d:
        return Band(*d["band"])
    if "rate_of_change" in d:
        rate = d["rate_of_change"]
        return RateOfChange(rate["window"], _threshold_of(rate["rate"]))
    if "no_data" in d:
        return NoData(d["no_data"]["timeout"])
    return QualityBad()


def _matchers(matchers: tuple[Matcher, ...]) -> list[list[str]]:
    return [[m.name, m.type.value, m.value] for m in matchers]


def _matchers_of(rows: list[list[str]]) -> tuple[Matcher, ...]:
    return tuple(Matcher(name, value, MatchType(kind)) for name, kind, value in rows)


def rule_json(rule: Rule) -> str:
    return _dumps(
        {
            "id": rule.id,
            "display_name": rule.display_name,
            "field": rule.field,
            "site": rule.site,
            "device": rule.device,
            "metric": rule.metric,
            "severity": int(rule.severity),
            "condition": _condition(rule.condition),
            "for": rule.for_duration,
            "keep_firing_for": rule.keep_firing_for,
            "labels": dict(rule.labels),
            "annotations": dict(rule.annotations),
            "inhibitions": [
                {"target": _matchers(i.target_matchers), "equal": list(i.equal_labels)}
                for i in rule.inhibitions
            ],
            "escalation": [
                [s.after, s.notify, None if s.severity is None else int(s.severity)]
                for s in rule.escalation
            ],
            "enabled": rule.enabled,
            "origin": rule.origin.value,
            "created": rule.created,
            "updated": rule.updated,
            "version": rule.version,
        }
    )


def rule_from_json(text: str) -> Rule:
    d = json.loads(text)
    return Rule(
        id=d["id"],
        display_name=d["display_name"],
        field=d["field"],
        site=d["site"],
        device=d["device"],
        metric=d["metric"],
        severity=Severity(d["severity"]),
        condition=_condition_of(d["condition"]),
        for_duration=d["for"],
        keep_firing_for=d["keep_firing_for"],
        labels=d["labels"],
        annotations=d["annotations"],
        inhibitions=tuple(
            Inhibition(_matchers_of(i["target"]), tuple(i["equal"])) for i in d["inhibitions"]
        ),
        escalation=tuple(
            EscalationStep(after, notify, None if sev is None else Severity(sev))
            for after, notify, sev in d["escalation"]
        ),
        enabled=d["enabled"],
        origin=Origin(d["origin"]),
        created=d["created"],
        updated=d["updated"],
        version=d["version"],
    )


def _alert(a: Alert) -> dict[str, Any]:
    return {
        "fingerprint": a.fingerprint,
        "rule_id": a.rule_id,
        "state": a.state.value,
        "severity": int(a.severity),
        "rule_severity": int(a.rule_severity),
        "field": a.field,
        "labels": a.labels,
        "annotations": a.annotations,
        "active_time": a.active_time,
        "start_time": a.start_time,
        "end_time": a.end_time,
        "value": a.value,
        "acknowledged_by": a.acknowledged_by,
        "acknowledge_time": a.acknowledge_time,
        "acknowledge_comment": a.acknowledge_comment,
        "assignee": a.assignee,
        "silenced_by": list(a.silenced_by),
        "inhibited_by": list(a.inhibited_by),
        "escalation_level": a.escalation_level,
        "update_time": a.update_time,
        "cleared_time": a.cleared_time,
    }


def _alert_of(d: dict[str, Any]) -> Alert:
    return Alert(
        **{
            **d,
            "state": AlertState(d["state"]),
            "severity": Severity(d["severity"]),
            "rule_severity": Severity(d["rule_severity"]),
            "silenced_by": tuple(d["silenced_by"]),
            "inhibited_by": tuple(d["inhibited_by"]),
        }
    )


def alert_json(alert: Alert) -> str:
    # A rate can be infinite when two readings share a time; JSON cannot hold it.
    data = _alert(alert)
    if data["value"] != data["value"] or abs(data["value"]) == float("inf"):
        data["value"] = 0.0
    return _dumps(data)


def alert_from_json(text: str) -> Alert:
    return _alert_of(json.loads(text))


def event_json(event: Event) -> str:
    data = json.loads(alert_json(event.alert))
    return _dumps(
        {
            "event_id": event.event_id,
            "time": event.time,
            "type": event.type.value,
            "alert": data,
            "actor": event.actor,
            "comment": event.comment,
        }
    )


def event_from_json(text: str, revision: int) -> Event:
    d = json.loads(text)
    return Event(
        d["event_id"],
        d["time"],
        EventType(d["type"]),
        _alert_of(d["alert"]),
        d["actor"],
        d["comment"],
        revision,
    )


def silence_json(s: Silence) -> str:
    return _dumps(
        {
            "id": s.id,
            "matchers": _matchers(s.matchers),
            "start_time": s.start_time,
            "end_time": s.end_time,
            "comment": s.comment,
            "created_by": s.created_by,
            "create_time": s.create_time,
        }
    )


def silence_from_json(text: str) -> Silence:
    d = json.loads(text)
    return Silence(
        d["id"],
        _matchers_of(d["matchers"]),
        d["start_time"],
        d["end_time"],
        d["comment"],
        d["created_by"],
        d["create_time"],
    )
