"""Rules through the domain API: validation that names every wrong field and changes
nothing, versioned updates that restart a changed rule's alerts, and the field plugins'
default rules (from a template list made here, as a plugin's ``alert_rules`` hook returns)."""

from __future__ import annotations

import pytest
from alerts_support import SECOND, T0, Clock, batch, city_fields, evaluator, reading, rule

from smartcity.fields import AlertRuleTemplate
from smartcity.fields.model import Comparison as TemplateComparison
from smartcity.fields.model import ConditionKind
from smartcity.fields.model import Severity as TemplateSeverity
from smartcity.runtime.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from smartcity.services.alerts.defaults import plugin_rules, rule_from_template
from smartcity.services.alerts.model import AlertState, Matcher, Origin, Severity
from smartcity.services.alerts.rules import (
    Band,
    Comparison,
    EscalationStep,
    Inhibition,
    NoData,
    RateOfChange,
    Threshold,
)
from smartcity.services.alerts.service import AlertsService
from smartcity.services.alerts.store import AlertStore

TURBIDITY = AlertRuleTemplate(
    name="turbidity_above_limit",
    metric="turbidity",
    condition=ConditionKind.THRESHOLD,
    severity=TemplateSeverity.CRITICAL,
    summary="Turbidity above 2 NTU",
    comparison=TemplateComparison.GT,
    threshold=2.0,
    hysteresis=0.2,
    for_seconds=60,
    standard="QCVN 01-1:2018/BYT",
)


def _service(store: AlertStore) -> AlertsService:
    return AlertsService(store, city_fields(), evaluator(store, Clock()))


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        (rule(field="no_such_field"), "rule.field: unknown field"),
        (rule(metric="no_such_metric"), "rule.selector.metric"),
        (rule(condition=Band(8.5, 6.0), metric="ph"), "rule.band.low"),
        (rule(for_duration=-SECOND), "rule.for_duration"),
        (rule(keep_firing_for=-1), "rule.keep_firing_for"),
        (rule(condition=NoData(0), metric=""), "rule.no_data.timeout"),
        (rule(condition=RateOfChange(-1, Threshold(Comparison.GT, 1))), "rule.rate_of_change"),
        (rule(inhibitions=(Inhibition(()),)), "rule.inhibitions[0].target_matchers"),
        (rule(inhibitions=(Inhibition((Matcher("x", "(", "=~"),)),)), "matchers[0].type"),  # type: ignore[arg-type]
        (rule(escalation=(EscalationStep(0),)), "rule.escalation[0].after"),
        (rule("Not-An-Id"), "rule.id"),
    ],
)
async def test_a_bad_rule_is_refused_naming_the_field_and_changes_nothing(
    store: AlertStore, bad: object, named: str
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        await _service(store).rules.create(bad)  # type: ignore[arg-type]
    assert named in refused.value.message
    assert await store.rules() == []
    assert await store.rules_revision() == 0


async def test_every_problem_is_named_at_once(store: AlertStore) -> None:
    bad = rule("x", Threshold(Comparison.GT, float("nan"), -1), metric="nope", for_duration=-1)
    with pytest.raises(InvalidArgument) as refused:
        await _service(store).rules.create(bad)
    problems = refused.value.message.split("; ")
    assert [p.split(":")[0] for p in problems] == [
        "rule.selector.metric",
        "rule.threshold.threshold",
        "rule.threshold.hysteresis",
        "rule.for_duration",
    ]


async def test_updates_are_versioned_and_a_changed_condition_restarts_alerts(
    store: AlertStore,
) -> None:
    service = _service(store)
    created = await service.rules.create(rule(), "req-1")
    assert (created.version, created.origin) == (1, Origin.USER)
    assert await service.rules.create(rule(), "req-1") == created  # idempotent
    with pytest.raises(AlreadyExists):
        await service.rules.create(rule())
    [fired] = await service.evaluator.evaluate([batch([reading("turbidity", 3.0, T0, 1)])])
    labelled = await service.rules.update(
        created.changed(annotations={"runbook_url": "https://ioc/runbooks/turbidity"}),
        ["annotations"],
    )
    assert labelled.version == 2
    alert = await service.get_alert(fired.alert.fingerprint)
    assert alert.state is AlertState.FIRING  # an annotation does not restart anything
    stricter = await service.rules.update(
        created.changed(condition=Threshold(Comparison.GT, 5.0)), ["threshold"]
    )
    assert stricter.version == 3
    alert = await service.get_alert(fired.alert.fingerprint)
    assert alert.state is AlertState.RESOLVED
    with pytest.raises(InvalidArgument, match=r"rule\.field cannot be changed"):
        await service.rules.update(stricter, ["field"])
    with pytest.raises(InvalidArgument, match="unknown rule field 'colour'"):
        await service.rules.update(stricter, ["colour"])
    await service.rules.delete(created.id)
    assert await store.rule(created.id) is None


async def test_plugin_rules_are_installed_kept_and_cannot_be_deleted(store: AlertStore) -> None:
    service = _service(store)
    [first] = plugin_rules_of([TURBIDITY])
    assert first.id == "water_supply_turbidity_above_limit"
    assert first.annotations["standard"] == "QCVN 01-1:2018/BYT"
    assert (first.for_duration, first.severity) == (60 * SECOND, Severity.CRITICAL)
    assert await service.rules.install_plugin_rules([first]) == 1
    assert await service.rules.install_plugin_rules([first]) == 0  # unchanged: nothing to do
    await service.rules.update(first.changed(enabled=False), ["enabled"])
    changed = rule_from_template(
        "water_supply",
        AlertRuleTemplate(**{**_fields(TURBIDITY), "threshold": 1.5}),
    )
    assert changed is not None
    assert await service.rules.install_plugin_rules([changed]) == 1
    stored = await service.rules.get(first.id)
    assert stored.enabled is False  # the operator's choice survives the plugin's update
    assert stored.condition == Threshold(Comparison.GT, 1.5, 0.2)
    assert stored.version == 3
    with pytest.raises(FailedPrecondition, match="disable it instead"):
        await service.rules.delete(first.id)


def test_templates_become_rules_of_each_kind() -> None:
    quiet = AlertRuleTemplate(
        name="station_silent",
        metric="flow_rate",
        condition=ConditionKind.NO_DATA,
        severity=TemplateSeverity.WARNING,
        summary="No flow reading for 5 minutes",
        for_seconds=300,
    )
    rising = AlertRuleTemplate(
        name="level_rising",
        metric="tank_level",
        condition=ConditionKind.RATE,
        severity=TemplateSeverity.INFO,
        summary="Tank filling fast",
        comparison=TemplateComparison.GT,
        threshold=0.01,
    )
    equal = AlertRuleTemplate(
        name="pump_stopped",
        metric="pump_speed",
        condition=ConditionKind.THRESHOLD,
        severity=TemplateSeverity.INFO,
        summary="Pump at zero",
        comparison=TemplateComparison.EQ,
        threshold=0,
    )
    silent, fast, skipped = (rule_from_template("water_supply", t) for t in (quiet, rising, equal))
    assert silent is not None
    assert silent.condition == NoData(300 * SECOND)
    assert silent.for_duration == 0
    assert fast is not None
    assert isinstance(fast.condition, RateOfChange)
    assert skipped is None  # "equal to" has no place in a threshold with hysteresis


def plugin_rules_of(templates: list[AlertRuleTemplate]) -> list:  # type: ignore[type-arg]
    rules = [rule_from_template("water_supply", t) for t in templates]
    return [r for r in rules if r is not None and not r.problems(city_fields())]


def _fields(template: AlertRuleTemplate) -> dict:  # type: ignore[type-arg]
    return {name: getattr(template, name) for name in template.__dataclass_fields__}


def test_the_installed_plugins_rules_check_out() -> None:
    # Whatever the installed field plugins propose: every rule taken is sound.
    assert all(not r.problems(city_fields()) for r in plugin_rules(city_fields()))
