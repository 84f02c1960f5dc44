"""The field plugins' default rules (their ``alert_rules`` hook) as rules of this service.

A template names a metric of its field; its rule selects that metric on every site and
device of the field, with id ``<field>_<template name>``, origin PLUGIN, and the standard a
limit comes from as the ``standard`` annotation. At every start the stored plugin rules are
brought up to what the installed plugins say, keeping the ``enabled`` an operator chose;
a changed definition resolves the rule's open alerts (they start afresh), as an edit through
the API does. A template this service cannot express (an ``eq``/``ne`` comparison) is
skipped and logged.
"""

from __future__ import annotations

from smartcity.fields import AlertRuleTemplate, FieldHost
from smartcity.fields.model import Comparison as TemplateComparison
from smartcity.fields.model import ConditionKind
from smartcity.runtime.logs import get_logger
from smartcity.services.alerts.model import MICROS, Comparison, Origin, Severity
from smartcity.services.alerts.rules import Condition, NoData, RateOfChange, Rule, Threshold

__all__ = ["RATE_WINDOW", "plugin_rules", "rule_from_template"]

_log = get_logger(__name__)

RATE_WINDOW = 60 * MICROS
"""Window of a template's rate rule (templates give the rate per second, not a window)."""
_COMPARISONS = {
    TemplateComparison.GT: Comparison.GT,
    TemplateComparison.GE: Comparison.GE,
    TemplateComparison.LT: Comparison.LT,
    TemplateComparison.LE: Comparison.LE,
}
_SEVERITIES = {"info": Severity.INFO, "warning": Severity.WARNING, "critical": Severity.CRITICAL}


def rule_from_template(field_id: str, template: AlertRuleTemplate) -> Rule | None:
    """The rule of ``template``; ``None`` when this service cannot express it."""
    condition: Condition
    for_duration = int(template.for_seconds * MICROS)
    if template.condition is ConditionKind.NO_DATA:
        condition, for_duration = NoData(for_duration), 0
    else:
        comparison = _COMPARISONS.get(template.comparison)  # type: ignore[arg-type]
        if comparison is None or template.threshold is None:
            _log.warning(
                "plugin rule skipped: comparison not supported",
                field=field_id,
                rule=template.name,
                comparison=str(template.comparison),
            )
            return None
        limit = Threshold(comparison, template.threshold, template.hysteresis)
        if template.condition is ConditionKind.RATE:
            condition = RateOfChange(RATE_WINDOW, limit)
        else:
            condition = limit
    annotations = {"summary": template.summary}
    if template.standard:
        annotations["standard"] = template.standard
    return Rule(
        id=f"{field_id}_{template.name}",
        display_name=template.name,
        field=field_id,
        metric=template.metric,
        condition=condition,
        severity=_SEVERITIES[str(template.severity)],
        for_duration=for_duration,
        annotations=annotations,
        origin=Origin.PLUGIN,
    )


def plugin_rules(fields: FieldHost) -> list[Rule]:
    """Every installed field's default rules that check out against the catalogue."""
    rules = []
    for field in fields:
        for template in field.alert_rules:
            rule = rule_from_template(field.id, template)
            if rule is None:
                continue
            problems = rule.problems(fields)
            if problems:
                _log.warning("plugin rule skipped", rule=rule.id, problems="; ".join(problems))
                continue
            rules.append(rule)
    return rules
