"""Building blocks of the alerts tests: readings and batches as the decoder hands them over,
rules, a settable clock, and stores on both backends."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from smartcity.fields import FieldHost, load_fields
from smartcity.runtime.config import AlertsSettings
from smartcity.services.alerts.evaluator import Evaluator
from smartcity.services.alerts.model import MICROS, Comparison, Event, Severity
from smartcity.services.alerts.rules import Condition, Rule, Threshold
from smartcity.services.alerts.store import AlertStore, open_store
from smartcity.services.monitoring.model import IngestBatch, Quality, StoredReading

SECOND = MICROS
T0 = 1_795_305_600 * MICROS
"""2026-11-22T00:00:00Z."""
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@cache
def city_fields() -> FieldHost:
    return load_fields()


@dataclass
class Clock:
    """A settable clock in seconds, for the evaluator's ``clock``."""

    now: float = T0 / MICROS

    def __call__(self) -> float:
        return self.now

    def at(self, micros: int) -> None:
        self.now = micros / MICROS


def backend_url(request: pytest.FixtureRequest, folder: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{folder / 'alerts.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@contextlib.asynccontextmanager
async def opened_store(url: str) -> AsyncIterator[AlertStore]:
    store = open_store(url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def reading(
    metric: str,
    value: float | None,
    time: int,
    sequence: int,
    quality: Quality = Quality.GOOD,
    unit: str = "NTU",
) -> StoredReading:
    return StoredReading(
        metric, unit, value, quality, "" if quality is Quality.GOOD else "bad", time, sequence
    )


def batch(
    readings: Iterable[StoredReading],
    *,
    field: str = "water_supply",
    site: str = "cau-do",
    device: str = "tb-1",
) -> IngestBatch:
    items = list(readings)
    first = min(item.sequence for item in items)
    return IngestBatch(
        f"{site}/{device}/{first}", field, site, device, "edge-1", items, max(r.time for r in items)
    )


def rule(
    rule_id: str = "turbidity_high",
    condition: Condition | None = None,
    *,
    metric: str = "turbidity",
    field: str = "water_supply",
    severity: Severity = Severity.WARNING,
    **values: object,
) -> Rule:
    return Rule(
        id=rule_id,
        display_name=rule_id.replace("_", " "),
        field=field,
        metric=metric,
        condition=condition or Threshold(Comparison.GT, 2.0, 0.5),
        severity=severity,
        **values,  # type: ignore[arg-type]
    )


def settings(**values: object) -> AlertsSettings:
    defaults: dict[str, object] = {
        "group_wait_seconds": 0,
        "group_interval_seconds": 60,
        "repeat_interval_seconds": 600,
    }
    return AlertsSettings(**{**defaults, **values})


async def install(store: AlertStore, *rules: Rule) -> None:
    async with store.transaction() as w:
        for item in rules:
            await w.put_rule(item.check(city_fields()))


def kinds(events: Iterable[Event]) -> list[str]:
    return [f"{event.type.value}:{event.alert.labels.get('device')}" for event in events]


def evaluator(store: AlertStore, clock: Clock, **values: object) -> Evaluator:
    return Evaluator(store, settings(**values), clock=clock)
