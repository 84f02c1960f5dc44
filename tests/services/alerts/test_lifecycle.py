"""What people and other alerts do to an alert: acknowledgement, assignment, silences,
inhibition, reminders and escalation, with the exact events and notifications they make."""

from __future__ import annotations

import json

import pytest
from alerts_support import (
    SECOND,
    T0,
    Clock,
    batch,
    city_fields,
    evaluator,
    install,
    kinds,
    reading,
    rule,
)

from smartcity.runtime.errors import FailedPrecondition
from smartcity.services.alerts.model import (
    ANONYMOUS,
    EventType,
    Matcher,
    MatchType,
    PageRequest,
    Severity,
    Silence,
)
from smartcity.services.alerts.rules import EscalationStep, Inhibition, NoData
from smartcity.services.alerts.service import AlertsService
from smartcity.services.alerts.store import AlertStore

MINUTE = 60 * SECOND


async def _notified(store: AlertStore) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(body) for _, body, _ in await store.notifications()]


async def test_ack_stops_reminders_and_unack_resumes_them(store: AlertStore) -> None:
    await install(store, rule())
    clock = Clock()
    ev = evaluator(store, clock, repeat_interval_seconds=600)
    service = AlertsService(store, city_fields(), ev)
    [fired] = await ev.evaluate([batch([reading("turbidity", 3.0, T0, 1)])])
    await ev.tick()
    assert len(await _notified(store)) == 1
    clock.at(T0 + 600 * SECOND)
    await ev.tick()
    assert len(await _notified(store)) == 2  # a reminder: nobody acknowledged it
    acked = await service.acknowledge(fired.alert.fingerprint, "nguyen.van.a", "on my way")
    assert acked.acknowledged_by == "nguyen.van.a"
    for minutes in (20, 30, 60, 120):
        clock.at(T0 + minutes * MINUTE)
        await ev.tick()
    assert len(await _notified(store)) == 2  # no reminder while acknowledged
    with pytest.raises(FailedPrecondition, match=r"already acknowledged by nguyen\.van\.a"):
        await service.acknowledge(fired.alert.fingerprint, "tran.thi.b", "")
    await service.unacknowledge(fired.alert.fingerprint, None, "handed back")
    await ev.tick()
    assert len(await _notified(store)) == 3  # reminded again at once: overdue
    history = await service.history(fired.alert.fingerprint, _page())
    assert [(e.type, e.actor) for e in history.items] == [
        (EventType.FIRING, None),
        (EventType.ACKNOWLEDGED, "nguyen.van.a"),
        (EventType.UNACKNOWLEDGED, ANONYMOUS),
    ]
    assert history.items[1].comment == "on my way"


def _page() -> PageRequest:
    return PageRequest()


async def test_escalation_raises_severity_until_acknowledged(store: AlertStore) -> None:
    steps = (
        EscalationStep(5 * MINUTE, "operator:water_supply"),
        EscalationStep(15 * MINUTE, "duty-engineer", Severity.CRITICAL),
    )
    await install(store, rule(severity=Severity.INFO, escalation=steps))
    clock = Clock()
    ev = evaluator(store, clock)
    service = AlertsService(store, city_fields(), ev)
    [fired] = await ev.evaluate([batch([reading("turbidity", 3.0, T0, 1)])])
    clock.at(T0 + 5 * MINUTE)
    [first] = await ev.tick()
    assert (first.type, first.alert.severity, first.alert.escalation_level) == (
        EventType.ESCALATED,
        Severity.WARNING,
        1,
    )
    assert first.alert.labels["severity"] == "warning"
    assert first.alert.rule_severity is Severity.INFO
    notices = [n for n in await _notified(store) if n["receiver"] == "operator:water_supply"]
    assert len(notices) == 1
    await service.acknowledge(fired.alert.fingerprint, "le.van.c", "")
    clock.at(T0 + 30 * MINUTE)
    assert await ev.tick() == []  # acknowledged: no second step
    alert = await service.get_alert(fired.alert.fingerprint)
    assert (alert.severity, alert.escalation_level) == (Severity.WARNING, 1)


async def test_escalation_jumps_to_the_steps_severity(store: AlertStore) -> None:
    steps = (EscalationStep(MINUTE, "", Severity.CRITICAL),)
    await install(store, rule(severity=Severity.INFO, escalation=steps))
    clock = Clock()
    ev = evaluator(store, clock)
    await ev.evaluate([batch([reading("turbidity", 3.0, T0, 1)])])
    clock.at(T0 + MINUTE)
    [escalated] = await ev.tick()
    assert escalated.alert.severity is Severity.CRITICAL


async def test_a_silence_suppresses_notifications_and_escalation(store: AlertStore) -> None:
    await install(store, rule(escalation=(EscalationStep(MINUTE, "duty"),)))
    clock = Clock()
    ev = evaluator(store, clock)
    service = AlertsService(store, city_fields(), ev)
    silence = await service.create_silence(
        Silence("", (Matcher("site", "cau-do"),), 0, T0 + 10 * MINUTE, "flushing the main", "", 0),
        "tran.thi.b",
        "",
    )
    assert silence.created_by == "tran.thi.b"
    await ev.evaluate([batch([reading("turbidity", 3.0, T0, 1)])])
    changed = await ev.tick()
    assert kinds(changed) == ["silence_changed:tb-1"]
    assert changed[0].alert.silenced_by == (silence.id,)
    clock.at(T0 + 5 * MINUTE)
    assert await ev.tick() == []  # no escalation while silenced
    assert await _notified(store) == []
    await service.expire_silence(silence.id)
    changed = await ev.tick()
    assert kinds(changed) == ["silence_changed:tb-1", "escalated:tb-1"]
    assert len(await _notified(store)) == 2  # the group, and the escalation step's receiver


async def test_an_offline_device_inhibits_its_threshold_alerts(store: AlertStore) -> None:
    offline = rule(
        "station_offline",
        NoData(30 * SECOND),
        metric="",
        severity=Severity.CRITICAL,
        inhibitions=(
            Inhibition((Matcher("metric", "turbidity|ph", MatchType.REGEX),), ("site", "device")),
        ),
    )
    await install(store, offline, rule())
    clock = Clock()
    ev = evaluator(store, clock, group_wait_seconds=10)
    await ev.evaluate(
        [
            batch([reading("turbidity", 3.0, T0, 1)], device="tb-1"),
            batch([reading("turbidity", 3.0, T0, 1)], device="tb-2"),
        ]
    )
    # tb-1 goes quiet; tb-2 keeps reporting.
    await ev.evaluate([batch([reading("turbidity", 3.0, T0 + 25 * SECOND, 2)], device="tb-2")])
    clock.at(T0 + 31 * SECOND)
    first, second = await ev.tick()
    assert kinds([first, second]) == ["firing:tb-1", "inhibition_changed:tb-1"]
    assert first.alert.rule_id == "station_offline"
    assert second.alert.rule_id == "turbidity_high"
    assert second.alert.inhibited_by == (first.alert.fingerprint,)
    assert await ev.tick() == []
    clock.at(T0 + 41 * SECOND)  # the offline alert's group has waited its 10 s
    await ev.tick()
    sent = await _notified(store)
    devices = sorted(
        (a["labels"]["device"], a["labels"]["rule"]) for n in sent for a in n["alerts"]
    )
    assert devices == [("tb-1", "station_offline"), ("tb-2", "turbidity_high")]


async def test_assignment_is_recorded_and_resolved_alerts_refuse_people(
    store: AlertStore,
) -> None:
    await install(store, rule())
    ev = evaluator(store, Clock())
    service = AlertsService(store, city_fields(), ev)
    [fired] = await ev.evaluate([batch([reading("turbidity", 3.0, T0, 1)])])
    fp = fired.alert.fingerprint
    assigned = await service.assign(fp, "pham.d", "nguyen.van.a", "check the filter")
    assert assigned.assignee == "pham.d"
    assert (await service.assign(fp, "pham.d", "nguyen.van.a", "")).assignee == "pham.d"
    await ev.evaluate([batch([reading("turbidity", 1.0, T0 + SECOND, 2)])])
    with pytest.raises(FailedPrecondition, match="resolved"):
        await service.acknowledge(fp, "x", "")
    with pytest.raises(FailedPrecondition, match="resolved"):
        await service.assign(fp, "x", "y", "")
    history = await service.history(fp, _page())
    assert [e.type for e in history.items] == [
        EventType.FIRING,
        EventType.ASSIGNED,
        EventType.RESOLVED,
    ]


async def test_groups_gather_open_alerts_by_labels(store: AlertStore) -> None:
    await install(store, rule(), rule("offline", NoData(30 * SECOND), metric=""))
    ev = evaluator(store, Clock())
    service = AlertsService(store, city_fields(), ev)
    fired = await ev.evaluate(
        [
            batch([reading("turbidity", 3.0, T0, 1)], device="tb-1"),
            batch([reading("turbidity", 3.0, T0, 1)], device="tb-2", site="hoa-lien"),
            batch([reading("turbidity", 5.0, T0, 1)], device="tb-3"),
        ]
    )
    await service.acknowledge(fired[0].alert.fingerprint, "a", "")
    groups = await service.groups(["site"], "", [])
    assert [(g.labels, len(g.alerts), g.unhandled) for g in groups] == [
        ({"site": "cau-do"}, 2, 1),
        ({"site": "hoa-lien"}, 1, 1),
    ]
