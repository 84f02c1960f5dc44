"""Rules on crafted reading sequences, without a network: the exact events each sequence
makes, on both storage backends."""

from __future__ import annotations

import json

import pytest
from alerts_support import (
    SECOND,
    T0,
    Clock,
    batch,
    evaluator,
    install,
    kinds,
    reading,
    rule,
)

from smartcity.runtime.errors import InvalidArgument
from smartcity.services.alerts.model import Comparison
from smartcity.services.alerts.rules import Band, NoData, QualityBad, RateOfChange, Threshold
from smartcity.services.alerts.store import AlertStore
from smartcity.services.monitoring.model import Quality


async def _feed(ev, values, *, start=T0, step=SECOND, first=1, metric="turbidity", **where):  # type: ignore[no-untyped-def]
    events = []
    for index, value in enumerate(values):
        item = reading(metric, value, start + index * step, first + index)
        events += await ev.evaluate([batch([item], **where)])
    return events


async def test_hysteresis_keeps_a_hovering_value_from_flapping(store: AlertStore) -> None:
    await install(store, rule(condition=Threshold(Comparison.GT, 2.0, 0.5)))
    ev = evaluator(store, Clock())
    # Crosses 2.0, hovers between 1.6 and 2.4 (never back below 1.5), then clears.
    events = await _feed(ev, [1.0, 2.1, 1.9, 2.4, 1.6, 2.2, 1.7, 1.4, 1.9, 2.01])
    assert kinds(events) == ["firing:tb-1", "resolved:tb-1", "firing:tb-1"]
    assert [e.time for e in events] == [T0 + SECOND, T0 + 7 * SECOND, T0 + 9 * SECOND]


async def test_without_hysteresis_the_same_values_flap(store: AlertStore) -> None:
    await install(store, rule(condition=Threshold(Comparison.GT, 2.0, 0.0)))
    events = await _feed(evaluator(store, Clock()), [1.0, 2.1, 1.9, 2.4, 1.6])
    assert kinds(events) == ["firing:tb-1", "resolved:tb-1", "firing:tb-1", "resolved:tb-1"]


async def test_for_delays_firing_and_a_short_spike_never_fires(store: AlertStore) -> None:
    await install(store, rule(for_duration=3 * SECOND))
    ev = evaluator(store, Clock())
    events = await _feed(ev, [3.0, 3.0, 1.0, 3.0, 3.0, 3.0, 3.0])
    assert kinds(events) == [
        "pending:tb-1",
        "resolved:tb-1",
        "pending:tb-1",
        "firing:tb-1",
    ]
    assert events[-1].time == T0 + 6 * SECOND  # pending at 3 s, firing 3 s later
    assert events[-1].alert.active_time == T0 + 3 * SECOND


async def test_a_pending_alert_fires_on_the_clock_when_readings_stop(store: AlertStore) -> None:
    await install(store, rule(for_duration=10 * SECOND))
    clock = Clock()
    ev = evaluator(store, clock)
    assert kinds(await _feed(ev, [3.0])) == ["pending:tb-1"]
    clock.at(T0 + 9 * SECOND)
    assert await ev.tick() == []
    clock.at(T0 + 10 * SECOND)
    assert kinds(await ev.tick()) == ["firing:tb-1"]


async def test_keep_firing_for_bridges_a_short_dip(store: AlertStore) -> None:
    await install(store, rule(condition=Threshold(Comparison.GT, 2.0), keep_firing_for=5 * SECOND))
    clock = Clock()
    ev = evaluator(store, clock)
    events = await _feed(ev, [3.0, 1.0, 1.0, 3.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    # Cleared at 1 s, holds again at 3 s (same occurrence); cleared at 4 s, resolved at 9 s.
    assert kinds(events) == ["firing:tb-1", "resolved:tb-1"]
    assert events[1].time == T0 + 9 * SECOND


async def test_rate_of_change_over_a_window(store: AlertStore) -> None:
    rising = RateOfChange(4 * SECOND, Threshold(Comparison.GT, 0.5))
    await install(store, rule("level_rising", rising, metric="tank_level"))
    ev = evaluator(store, Clock())
    levels = [1.0, 1.1, 1.2, 1.3, 1.4, 2.0, 3.0, 4.0, 4.1, 4.1, 4.1, 4.1, 4.1]
    events = await _feed(ev, levels, metric="tank_level")
    assert kinds(events) == ["firing:tb-1", "resolved:tb-1"]
    # (3.0 - 1.2) / 4 s = 0.45 at 6 s; (4.0 - 1.3) / 4 = 0.675 at 7 s fires.
    assert events[0].time == T0 + 7 * SECOND
    assert round(events[0].alert.value, 3) == 0.675


async def test_no_data_fires_when_a_device_goes_quiet_and_resolves_on_data(
    store: AlertStore,
) -> None:
    await install(store, rule("offline", NoData(30 * SECOND), metric=""))
    clock = Clock()
    ev = evaluator(store, clock)
    assert await _feed(ev, [1.0, 1.0]) == []  # alive: nothing
    clock.at(T0 + 30 * SECOND)
    assert await ev.tick() == []  # 29 s since the last reading
    clock.at(T0 + 31 * SECOND)
    fired = await ev.tick()
    assert kinds(fired) == ["firing:tb-1"]
    assert fired[0].alert.value == 30.0
    assert "metric" not in fired[0].alert.labels
    back = await _feed(ev, [1.0], start=T0 + 40 * SECOND, first=3)
    assert kinds(back) == ["resolved:tb-1"]


async def test_bad_readings_say_nothing_to_a_threshold_but_fire_quality_bad(
    store: AlertStore,
) -> None:
    await install(store, rule(), rule("sensor_fault", QualityBad()))
    ev = evaluator(store, Clock())
    items = [
        reading("turbidity", 1.0, T0, 1),
        reading("turbidity", None, T0 + SECOND, 2, Quality.BAD),
        reading("turbidity", 150.0, T0 + 2 * SECOND, 3, Quality.BAD),
        reading("turbidity", 1.2, T0 + 3 * SECOND, 4),
    ]
    events = [e for item in items for e in await ev.evaluate([batch([item])])]
    assert [(e.type.value, e.alert.rule_id) for e in events] == [
        ("firing", "sensor_fault"),
        ("resolved", "sensor_fault"),
    ]


async def test_a_replayed_batch_changes_nothing(store: AlertStore) -> None:
    await install(store, rule(for_duration=0))
    ev = evaluator(store, Clock())
    first = batch([reading("turbidity", 3.0, T0, 1), reading("turbidity", 1.0, T0 + SECOND, 2)])
    assert kinds(await ev.evaluate([first])) == ["firing:tb-1", "resolved:tb-1"]
    _, before = await store.revisions()
    assert await ev.evaluate([first]) == []
    assert await ev.evaluate([first, first]) == []
    assert (await store.revisions())[1] == before
    # Two batches in one fetch, the second a replay of the first: evaluated once.
    second = batch([reading("turbidity", 3.0, T0 + 2 * SECOND, 3)])
    assert kinds(await ev.evaluate([second, second])) == ["firing:tb-1"]


async def test_devices_are_evaluated_apart(store: AlertStore) -> None:
    await install(store, rule())
    ev = evaluator(store, Clock())
    events = await ev.evaluate(
        [
            batch([reading("turbidity", 3.0, T0, 1)], device="tb-1"),
            batch([reading("turbidity", 1.0, T0, 1)], device="tb-2"),
            batch([reading("turbidity", 5.0, T0, 1)], device="tb-3"),
        ]
    )
    assert sorted(kinds(events)) == ["firing:tb-1", "firing:tb-3"]
    assert len({e.alert.fingerprint for e in events}) == 2


async def test_a_restarted_evaluator_resumes_a_pending_timer(store: AlertStore) -> None:
    await install(store, rule(for_duration=10 * SECOND))
    clock = Clock()
    assert kinds(await _feed(evaluator(store, clock), [3.0])) == ["pending:tb-1"]
    clock.at(T0 + 11 * SECOND)
    again = evaluator(store, clock)  # a new process on the same store
    assert kinds(await again.tick()) == ["firing:tb-1"]
    assert await again.tick() == []


async def test_notifications_group_wait_and_resolved(store: AlertStore) -> None:
    await install(store, rule())
    clock = Clock()
    ev = evaluator(store, clock, group_wait_seconds=5, group_interval_seconds=20)
    await ev.evaluate([batch([reading("turbidity", 3.0, T0, 1)], device="tb-1")])
    await ev.evaluate([batch([reading("turbidity", 4.0, T0, 1)], device="tb-2")])
    await ev.tick()
    assert await store.notifications() == []  # the group waits
    clock.at(T0 + 5 * SECOND)
    await ev.tick()
    sent = [json.loads(body) for _, body, _ in await store.notifications()]
    assert len(sent) == 1
    assert sent[0]["status"] == "firing"
    assert sorted(a["labels"]["device"] for a in sent[0]["alerts"]) == ["tb-1", "tb-2"]
    await ev.evaluate([batch([reading("turbidity", 1.0, T0 + 6 * SECOND, 2)], device="tb-1")])
    clock.at(T0 + 24 * SECOND)
    await ev.tick()
    assert len(await store.notifications()) == 1  # group interval not over
    clock.at(T0 + 25 * SECOND)
    await ev.tick()
    sent = [json.loads(body) for _, body, _ in await store.notifications()]
    assert len(sent) == 2
    statuses = {a["labels"]["device"]: a["status"] for a in sent[1]["alerts"]}
    assert statuses == {"tb-1": "resolved", "tb-2": "firing"}


async def test_a_band_fires_outside_and_clears_inside_by_its_hysteresis(store: AlertStore) -> None:
    await install(store, rule("ph_out_of_band", Band(6.0, 8.5, 0.2), metric="ph"))
    values = [7.0, 8.6, 8.4, 8.2, 5.9, 6.1, 6.3, 7.0]
    events = await _feed(evaluator(store, Clock()), values, metric="ph")
    # 8.6 fires; 8.4 is inside but not by 0.2; 8.2 clears; 5.9 fires; 6.3 clears.
    assert kinds(events) == ["firing:tb-1", "resolved:tb-1", "firing:tb-1", "resolved:tb-1"]
    assert [e.alert.value for e in events] == [8.6, 8.2, 5.9, 6.3]


async def test_an_inverted_band_is_refused(store: AlertStore) -> None:
    with pytest.raises(InvalidArgument, match=r"rule\.band\.low: must be below high"):
        await install(store, rule("inverted", Band(8.5, 6.0), metric="ph"))
    assert await store.rules() == []


async def test_a_device_its_agent_reports_goes_offline_without_ever_sending(
    store: AlertStore,
) -> None:
    await install(store, rule("offline", NoData(30 * SECOND), metric=""))
    clock = Clock()
    ev = evaluator(store, clock)
    assert await ev.heartbeat("cau-do", [("water_supply", "tb-9", T0 - 10 * SECOND)]) == 1
    assert await ev.heartbeat("cau-do", [("water_supply", "tb-9", T0)]) == 0  # known already
    assert await ev.heartbeat("cau-do", [("electricity", "bay-1", None)]) == 0  # no rule
    clock.at(T0 + 20 * SECOND)
    fired = await ev.tick()
    assert kinds(fired) == ["firing:tb-9"]
    assert fired[0].alert.value == 30.0
