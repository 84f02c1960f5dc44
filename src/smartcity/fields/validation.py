"""The checks a plugin's catalogue must pass before the platform uses it.

The data types check themselves one by one (:mod:`smartcity.fields.model`); what is checked
here needs the whole catalogue or all plugins at once: what each hook returned, references
between a field's KPIs, rules and profiles and its metrics, uniqueness within a field and
across fields. Every function returns problems as sentences rather than raising at the
first, so a plugin author sees every mistake in one run.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TypeVar

from smartcity.fields.model import (
    Aggregation,
    AlertRuleTemplate,
    ConditionKind,
    Derivation,
    DeviceProfileTemplate,
    FieldInfo,
    Kpi,
    Metric,
    MetricKind,
    RecordType,
)

CATALOGUE_HOOKS = (
    "field_info",
    "metrics",
    "kpis",
    "alert_rules",
    "record_types",
    "device_profiles",
    "derivations",
)
"""The hooks called once per plugin at load time, in this order."""

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Catalogue:
    """What one plugin declared, type-checked; not yet checked for consistency."""

    info: FieldInfo
    metrics: Mapping[str, Metric]
    kpis: tuple[Kpi, ...]
    alert_rules: tuple[AlertRuleTemplate, ...]
    record_types: tuple[RecordType, ...]
    device_profiles: tuple[DeviceProfileTemplate, ...]
    derivations: tuple[Derivation, ...] = ()


def collect(
    call: Callable[[str], list[object]], implemented: Collection[str]
) -> tuple[Catalogue | None, list[str]]:
    """Call every catalogue hook through ``call`` and type-check what comes back.

    ``implemented`` names the hooks the plugin implements: pluggy leaves ``None`` results
    out of its result list, so an empty list from an implemented hook means it returned
    ``None``.
    """
    problems: list[str] = []
    results: dict[str, list[object]] = {}
    for hook in CATALOGUE_HOOKS:
        try:
            results[hook] = call(hook)
        except Exception as exc:
            problems.append(f"{hook}() raised {type(exc).__name__}: {exc}")
            results[hook] = []
            continue
        if hook in implemented and not results[hook]:
            problems.append(f"{hook}() returned None")

    info = _single_info(results["field_info"], "field_info" in implemented, problems)
    metrics = _items("metrics", results["metrics"], Metric, problems)
    kpis = _items("kpis", results["kpis"], Kpi, problems)
    rules = _items("alert_rules", results["alert_rules"], AlertRuleTemplate, problems)
    records = _items("record_types", results["record_types"], RecordType, problems)
    profiles = _items(
        "device_profiles", results["device_profiles"], DeviceProfileTemplate, problems
    )
    derivations = _items("derivations", results["derivations"], Derivation, problems)

    by_name: dict[str, Metric] = {}
    for metric in metrics:
        if metric.name in by_name:
            problems.append(f"metric {metric.name!r} is declared more than once")
        else:
            by_name[metric.name] = metric
    if info is None:
        return None, problems
    catalogue = Catalogue(
        info=info,
        metrics=MappingProxyType(by_name),
        kpis=tuple(kpis),
        alert_rules=tuple(rules),
        record_types=tuple(records),
        device_profiles=tuple(profiles),
        derivations=tuple(derivations),
    )
    return catalogue, problems


def _single_info(results: list[object], implemented: bool, problems: list[str]) -> FieldInfo | None:
    if not implemented:
        problems.append("does not implement field_info(), which every field plugin must")
        return None
    infos = [result for result in results if isinstance(result, FieldInfo)]
    for result in results:
        if not isinstance(result, FieldInfo):
            problems.append(f"field_info() returned {type(result).__name__}, not a FieldInfo")
    if len(infos) > 1:
        problems.append("field_info() is implemented more than once")
    return infos[0] if infos else None


def _items(hook: str, results: list[object], kind: type[_T], problems: list[str]) -> list[_T]:
    items: list[_T] = []
    for result in results:
        if not isinstance(result, list | tuple):
            problems.append(
                f"{hook}() returned {type(result).__name__}, not a list of {kind.__name__}"
            )
            continue
        for index, item in enumerate(result):
            if isinstance(item, kind):
                items.append(item)
            else:
                problems.append(
                    f"{hook}() item {index} is a {type(item).__name__}, not a {kind.__name__}"
                )
    return items


def check_catalogue(entry_point: str, catalogue: Catalogue) -> list[str]:
    """Consistency of one field's catalogue with itself and with its entry-point name."""
    problems: list[str] = []
    info = catalogue.info
    if info.id != entry_point:
        problems.append(
            f"field id {info.id!r} differs from the entry-point name {entry_point!r}; "
            "they must be equal"
        )
    if not catalogue.metrics:
        problems.append("declares no metrics")
    if not catalogue.kpis:
        problems.append("declares no KPI; every field declares at least one")
    problems += _check_kpis(catalogue.kpis, catalogue.metrics)
    problems += _check_rules(catalogue.alert_rules, catalogue.metrics)
    problems += _duplicates("record type", (record.name for record in catalogue.record_types))
    problems += _check_profiles(info.id, catalogue.device_profiles, catalogue.metrics)
    problems += _check_derivations(catalogue.derivations, catalogue.metrics)
    return problems


def _duplicates(what: str, names: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    problems = []
    for name in names:
        if name in seen:
            problems.append(f"{what} {name!r} is declared more than once")
        seen.add(name)
    return problems


def _check_kpis(kpis: Iterable[Kpi], metrics: Mapping[str, Metric]) -> list[str]:
    kpis = list(kpis)
    problems = _duplicates("KPI", (kpi.id for kpi in kpis))
    for kpi in kpis:
        for name in kpi.metrics:
            metric = metrics.get(name)
            if metric is None:
                problems.append(f"KPI {kpi.id!r} reads metric {name!r}, which is not declared")
            elif kpi.aggregation is Aggregation.INCREASE and metric.kind is not MetricKind.COUNTER:
                problems.append(
                    f"KPI {kpi.id!r} takes the increase of {name!r}, which is a "
                    f"{metric.kind}, not a counter"
                )
    return problems


def _check_rules(rules: Iterable[AlertRuleTemplate], metrics: Mapping[str, Metric]) -> list[str]:
    rules = list(rules)
    problems = _duplicates("alert rule", (rule.name for rule in rules))
    for rule in rules:
        metric = metrics.get(rule.metric)
        if metric is None:
            problems.append(
                f"alert rule {rule.name!r} watches metric {rule.metric!r}, which is not declared"
            )
            continue
        if rule.condition is ConditionKind.THRESHOLD and rule.threshold is not None:
            low, high = metric.minimum, metric.maximum
            if (low is not None and rule.threshold < low) or (
                high is not None and rule.threshold > high
            ):
                problems.append(
                    f"alert rule {rule.name!r}: threshold {rule.threshold:g} lies outside the "
                    f"range of {metric.name!r} [{_bound(low)}, {_bound(high)}] {metric.unit}"
                )
    return problems


def _bound(value: float | None) -> str:
    return "unbounded" if value is None else f"{value:g}"


def _check_profiles(
    field_id: str, profiles: Iterable[DeviceProfileTemplate], metrics: Mapping[str, Metric]
) -> list[str]:
    profiles = list(profiles)
    problems = _duplicates("device profile", (profile.name for profile in profiles))
    for profile in profiles:
        what = f"device profile {profile.name!r}"
        declared_field = profile.profile.get("field", field_id)
        if declared_field != field_id:
            problems.append(f"{what} is for field {declared_field!r}, not {field_id!r}")
        for point in profile.points:
            name, unit = point["name"], point["unit"]
            metric = metrics.get(name)
            if metric is None:
                problems.append(f"{what}: point {name!r} is not a metric of the field")
            elif unit != metric.unit:
                problems.append(
                    f"{what}: point {name!r} is in {unit!r}, the metric in {metric.unit!r}"
                )
    return problems


def _check_derivations(
    derivations: Iterable[Derivation], metrics: Mapping[str, Metric]
) -> list[str]:
    derivations = list(derivations)
    problems = _duplicates("derived metric", (derivation.metric for derivation in derivations))
    derived = {derivation.metric for derivation in derivations}
    for derivation in derivations:
        what = f"derivation {derivation.metric!r}"
        for role, name in (("metric", derivation.metric), ("source", derivation.source)):
            if name not in metrics:
                problems.append(f"{what}: {role} {name!r} is not a metric of the field")
        if derivation.source in derived:
            # One pass over a batch's readings: a derived value is not itself a source.
            problems.append(f"{what}: source {derivation.source!r} is itself derived")
    return problems


def check_across(catalogues: Mapping[str, Catalogue]) -> dict[str, list[str]]:
    """Uniqueness across plugins (keyed by entry-point name): field ids and record type
    names are platform-wide names, used in NATS subjects. Both sides of a clash are named."""
    problems: dict[str, list[str]] = defaultdict(list)
    owners: dict[str, list[str]] = defaultdict(list)
    record_owners: dict[str, list[str]] = defaultdict(list)
    for plugin, catalogue in catalogues.items():
        owners[catalogue.info.id].append(plugin)
        for record in catalogue.record_types:
            record_owners[record.name].append(plugin)
    for field_id, plugins in owners.items():
        if len(plugins) > 1:
            for plugin in plugins:
                others = ", ".join(repr(other) for other in plugins if other != plugin)
                problems[plugin].append(f"field id {field_id!r} is also declared by {others}")
    for record, plugins in record_owners.items():
        if len(set(plugins)) > 1:
            for plugin in set(plugins):
                others = ", ".join(sorted(repr(other) for other in set(plugins) - {plugin}))
                problems[plugin].append(f"record type {record!r} is also declared by {others}")
    return dict(problems)
