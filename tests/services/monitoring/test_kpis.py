"""Field KPIs computed from a real SQLite store: every aggregation a plugin may ask for, each
checked against a value worked out by hand from the readings written."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from monitoring_support import SECOND, T0, batch, opened_store, reading

from smartcity.fields import (
    Aggregation,
    Direction,
    FieldHost,
    FieldInfo,
    Kpi,
    Metric,
    hookimpl,
    load_fields,
)
from smartcity.runtime.config import PluginSettings
from smartcity.services.monitoring.kpis import KpiCalculator, counter_increase, step_for
from smartcity.services.monitoring.model import (
    HOUR,
    MINUTE,
    Bucket,
    Quality,
    StoredReading,
)
from smartcity.services.monitoring.store.base import TimeSeriesStore

NOW = T0 + 30 * MINUTE
WINDOW = 3600


def kpi(kpi_id: str, aggregation: Aggregation, metric: str, **extra: object) -> Kpi:
    return Kpi(
        id=kpi_id,
        title=kpi_id.replace("_", " "),
        unit="1",
        description=f"{aggregation} of {metric}",
        direction=Direction.HIGHER,
        aggregation=aggregation,
        metric=metric,
        window_seconds=WINDOW,
        **extra,  # type: ignore[arg-type]
    )


class ReservoirField:
    """A small field whose KPIs use every aggregation."""

    @hookimpl
    def field_info(self) -> FieldInfo:
        return FieldInfo("reservoir", "environment", "Reservoirs", "Levels and volumes")

    @hookimpl
    def metrics(self) -> list[Metric]:
        return [
            Metric("level", "m", "Water level", 0, 100),
            Metric("volume", "m3", "Volume released", 0, None, kind="counter"),
            Metric("served", "{request}", "Requests served", 0, None, kind="counter"),
            Metric("expected", "{request}", "Requests expected", 0, None, kind="counter"),
            Metric("occupied", "{bay}", "Bays in use", 0, 1000),
            Metric("capacity", "{bay}", "Bays", 0, 1000),
            Metric("spare", "{bay}", "Spare bays", 0, 1000),
            Metric("silt", "m", "Silt depth", 0, 10),
        ]

    @hookimpl
    def kpis(self) -> list[Kpi]:
        return [
            kpi("mean_level", Aggregation.MEAN, "level"),
            kpi("lowest_level", Aggregation.MIN, "level"),
            kpi("highest_level", Aggregation.MAX, "level"),
            kpi("last_level", Aggregation.LAST, "level"),
            kpi("low_share", Aggregation.SHARE_AT_MOST, "level", threshold=3),
            kpi("high_share", Aggregation.SHARE_AT_LEAST, "level", threshold=10),
            kpi("released", Aggregation.INCREASE, "volume"),
            kpi("service_rate", Aggregation.RATIO, "served", denominator="expected", scale=100),
            kpi("occupancy", Aggregation.RATIO, "occupied", denominator="capacity", scale=100),
            kpi("per_spare", Aggregation.RATIO, "occupied", denominator="spare"),
            kpi("mean_silt", Aggregation.MEAN, "silt"),
        ]


@pytest.fixture(scope="module")
def fields() -> FieldHost:
    return load_fields(
        PluginSettings(enabled=["reservoir"]), extra_plugins=[("reservoir", ReservoirField())]
    )


def at(minutes: float) -> int:
    return T0 + round(minutes * MINUTE)


def one(device: str, item: StoredReading) -> object:
    return batch("reservoir", "dam-1", device, [item])


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[TimeSeriesStore]:
    async with opened_store(store_url) as opened:
        items = [
            # level: a at 1, 2, 3, 4 m; b at 10, 20 m; one BAD reading and one reading from
            # before the window, neither of which may count.
            one("a", reading("level", "m", 1000, T0 - 2 * HOUR, 1)),
            *(one("a", reading("level", "m", v, at(v - 1), 1 + v)) for v in (1, 2, 3, 4)),
            one("a", reading("level", "m", None, at(4), 6, Quality.BAD, "probe fault")),
            one("b", reading("level", "m", 10, at(5), 1)),
            one("b", reading("level", "m", 20, at(6), 2)),
            # volume: a grows 100 -> 125, is reset, grows 5 -> 15: 25 + 5 + 10 = 40;
            # b grows by 1; c grows by 10 inside one minute and by 10 into the next: 20.
            *(
                one("a", reading("volume", "m3", v, at(n), 10 + n))
                for n, v in enumerate((100, 110, 125, 5, 15))
            ),
            one("b", reading("volume", "m3", 1000, at(0), 10)),
            one("b", reading("volume", "m3", 1001, at(1), 11)),
            one("c", reading("volume", "m3", 50, at(2), 1)),
            one("c", reading("volume", "m3", 60, at(2.5), 2)),
            one("c", reading("volume", "m3", 70, at(3), 3)),
            # served 0 -> 90 of expected 0 -> 100: 90 %.
            one("a", reading("served", "{request}", 0, at(0), 20)),
            one("a", reading("served", "{request}", 90, at(9), 21)),
            one("a", reading("expected", "{request}", 0, at(0), 22)),
            one("a", reading("expected", "{request}", 100, at(9), 23)),
            # occupied: a means 30 of 100, b means 10 of 100: (30 + 10) / 200 = 20 %.
            one("a", reading("occupied", "{bay}", 20, at(1), 30)),
            one("a", reading("occupied", "{bay}", 40, at(2), 31)),
            one("b", reading("occupied", "{bay}", 10, at(1), 30)),
            one("a", reading("capacity", "{bay}", 100, at(1), 32)),
            one("b", reading("capacity", "{bay}", 100, at(1), 33)),
            one("a", reading("spare", "{bay}", 0, at(1), 34)),
        ]
        await opened.write(items)  # type: ignore[arg-type]
        yield opened


async def test_every_aggregation_gives_the_value_worked_out_by_hand(
    store: TimeSeriesStore, fields: FieldHost
) -> None:
    values = await KpiCalculator(store).compute(fields["reservoir"], NOW)
    found = {item.kpi.id: item.value for item in values}
    assert found == {
        "mean_level": pytest.approx(40 / 6),
        "lowest_level": 1,
        "highest_level": 20,
        "last_level": 20,
        "low_share": pytest.approx(100 * 3 / 6),
        "high_share": pytest.approx(100 * 2 / 6),
        "released": pytest.approx(40 + 1 + 20),
        "service_rate": pytest.approx(90),
        "occupancy": pytest.approx(20),
        "per_spare": None,  # the denominator is zero
        "mean_silt": None,  # nothing measured: no value, not zero
    }
    assert [item.kpi.id for item in values] == [k.id for k in fields["reservoir"].kpis]
    assert {item.computed_at for item in values} == {NOW}


async def test_the_window_ends_at_now(store: TimeSeriesStore, fields: FieldHost) -> None:
    calculator = KpiCalculator(store)
    level = fields["reservoir"].kpis[0]
    early = await calculator.compute_kpi("reservoir", level, fields["reservoir"].metrics, at(2))
    assert early.value == pytest.approx(1.5)  # only the readings at 1 and 2 m so far
    later = NOW + 2 * HOUR
    gone = await calculator.compute_kpi("reservoir", level, fields["reservoir"].metrics, later)
    assert gone.value is None


async def test_results_are_reused_within_the_refresh_period(
    store: TimeSeriesStore, fields: FieldHost
) -> None:
    calculator = KpiCalculator(store, refresh=60)
    field = fields["reservoir"]
    first = await calculator.compute(field, NOW)
    await store.write([batch("reservoir", "dam-1", "d", [reading("silt", "m", 2, at(20), 1)])])
    assert await calculator.compute(field, NOW + 59 * SECOND) is first
    fresh = {item.kpi.id: item.value for item in await calculator.compute(field, NOW + MINUTE)}
    assert fresh["mean_silt"] == 2


def test_steps_are_whole_minutes_or_hours_within_the_limit() -> None:
    assert step_for(86_400 * SECOND) == MINUTE
    assert step_for(3600 * SECOND) == MINUTE
    assert step_for(30 * 86_400 * SECOND) == 30 * MINUTE
    assert step_for(365 * 86_400 * SECOND) == 7 * HOUR
    for window in (SECOND, 90 * 86_400 * SECOND, 365 * 86_400 * SECOND):
        step = step_for(window)
        assert window / step <= 1440
        assert step % MINUTE == 0


def test_counter_increase_follows_resets() -> None:
    def steps(values: list[float]) -> list[Bucket]:
        return [Bucket(n * MINUTE, value, 1) for n, value in enumerate(values)]

    assert counter_increase([], []) is None
    assert counter_increase(steps([7]), steps([7])) == 0
    assert counter_increase(steps([10, 20, 30]), steps([5, 20, 30])) == 25
    # Reset between steps (the smallest value of step 2 is below the last of step 1).
    assert counter_increase(steps([10, 3, 8]), steps([10, 3, 8])) == 3 + 5
    # Reset within a step: its smallest value is below the previous last.
    assert counter_increase(steps([10, 12]), steps([10, 1])) == 12
