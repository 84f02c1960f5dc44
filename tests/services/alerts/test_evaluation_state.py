"""What evaluation keeps between fetches, on both backends: a rule at rest keeps no row of its
own, its series' time (with the device) still orders the readings across fetches and
restarts, an evaluation is written back only where it changed, and however a stream is cut
into fetches, and however often the evaluator restarts, it raises the very events that
applying each reading in turn to every rule raises."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import pytest
from alerts_support import SECOND, T0, Clock, batch, evaluator, install, kinds, reading, rule
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smartcity.services.alerts import lifecycle
from smartcity.services.alerts.engine import Evaluation, fingerprint, observe
from smartcity.services.alerts.model import Comparison, Event
from smartcity.services.alerts.rules import Band, NoData, QualityBad, RateOfChange, Rule, Threshold
from smartcity.services.alerts.store import AlertStore, DeviceState, StoreError
from smartcity.services.alerts.store.transaction import CHUNK, Transaction
from smartcity.services.alerts.store.writes import Writes
from smartcity.services.monitoring.model import IngestBatch, Quality

FP = fingerprint("turbidity_high", "water_supply", "cau-do", "tb-1", "turbidity")


async def _stored(store: AlertStore, fp: str = FP) -> Evaluation | None:
    async with store.transaction() as w:
        return (await w.evaluations([fp])).get(fp)


async def test_a_rule_at_rest_keeps_no_row_until_its_condition_holds(store: AlertStore) -> None:
    await install(store, rule(condition=Threshold(Comparison.GT, 2.0)))
    ev = evaluator(store, Clock())
    quiet = [reading("turbidity", 1.0 + n / 10, T0 + n * SECOND, n + 1) for n in range(5)]
    assert await ev.evaluate([batch(quiet)]) == []
    assert await _stored(store) is None
    crossed = await ev.evaluate([batch([reading("turbidity", 3.0, T0 + 5 * SECOND, 6)])])
    assert kinds(crossed) == ["firing:tb-1"]
    assert (await _stored(store)).holds  # type: ignore[union-attr]
    cleared = await ev.evaluate([batch([reading("turbidity", 1.0, T0 + 6 * SECOND, 7)])])
    assert kinds(cleared) == ["resolved:tb-1"]
    kept = await _stored(store)
    assert kept is not None
    assert (kept.holds, kept.last_time) == (False, T0 + 6 * SECOND)
    await ev.evaluate([batch([reading("turbidity", 1.5, T0 + 7 * SECOND, 8)])])
    assert await _stored(store) == kept  # at rest again: the row is left as it was
    # The row is behind its series: a reading older than the series' last one is still
    # not evaluated.
    late = batch([reading("turbidity", 3.0, T0 + 6 * SECOND + SECOND // 2, 9)])
    assert await evaluator(store, Clock()).evaluate([late]) == []


@pytest.mark.parametrize("restart", [False, True])
async def test_a_reading_older_than_its_series_last_one_is_not_evaluated(
    store: AlertStore, restart: bool
) -> None:
    await install(store, rule(condition=Threshold(Comparison.GT, 2.0)))
    clock = Clock()
    ev = evaluator(store, clock)
    assert await ev.evaluate([batch([reading("turbidity", 1.0, T0 + 10 * SECOND, 1)])]) == []
    if restart:
        ev = evaluator(store, clock)
    # Newer by sequence, older by time than the series' last reading: not evaluated.
    assert await ev.evaluate([batch([reading("turbidity", 3.0, T0 + 5 * SECOND, 2)])]) == []
    later = await ev.evaluate([batch([reading("turbidity", 3.0, T0 + 11 * SECOND, 3)])])
    assert kinds(later) == ["firing:tb-1"]


async def test_a_rule_created_between_fetches_meets_the_next_one(store: AlertStore) -> None:
    await install(store, rule("ph_low", Threshold(Comparison.LT, 6.0), metric="ph"))
    ev = evaluator(store, Clock())
    assert await ev.evaluate([batch([reading("turbidity", 3.0, T0, 1)])]) == []
    await install(store, rule())
    fired = await ev.evaluate([batch([reading("turbidity", 3.0, T0 + SECOND, 2)])])
    assert [e.alert.rule_id for e in fired] == ["turbidity_high"]


async def test_the_devices_of_a_fetch_are_read_whatever_their_number(store: AlertStore) -> None:
    devices = {("water_supply", "cau-do", f"d{n}"): DeviceState(n, {"ph": n}) for n in range(2050)}
    async with store.transaction() as w:
        await w.set_devices(devices)
    unknown = ("water_supply", "cau-do", "nobody")
    async with store.transaction() as w:
        state = await w.snapshot([*devices, unknown], [])
    assert state.devices == {**devices, unknown: DeviceState(-1, {})}
    assert len(devices) > CHUNK


async def test_a_transaction_reads_its_own_writes_and_a_failed_write_undoes_it(
    store: AlertStore,
) -> None:
    async with store.transaction() as w:
        await w.put_request("rule", "req-1", "first")

    async def again() -> None:
        async with store.transaction() as w:
            await w.put_rule(rule())
            assert await w.tx.fetch("SELECT id FROM rules") == [("turbidity_high",)]
            await w.put_request("rule", "req-1", "again")  # the key is taken

    with pytest.raises(StoreError):
        await again()
    assert await store.rules() == []
    assert await store.request("rule", "req-1") == "first"


class _Recorder(Transaction):
    """A transaction over one stored evaluation row that records what is written."""

    def __init__(self, row: Sequence[Any]) -> None:
        self.row = row
        self.written: list[tuple[str, list[Sequence[Any]]]] = []

    async def fetch(self, sql: str, *args: Any) -> Sequence[Sequence[Any]]:
        return [self.row]

    async def execute(self, sql: str, *args: Any) -> None:
        self.written.append((sql, [args]))

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.written.append((sql, list(rows)))

    async def lock(self, number: int) -> None:
        return None


async def test_an_evaluation_is_written_only_where_it_changed() -> None:
    row = (FP, "turbidity_high", "water_supply", "cau-do", "tb-1", "turbidity", 1, 3.0, T0, T0,
           "[]", None)  # fmt: skip
    tx = _Recorder(row)
    w = Writes(tx)
    evaluation = (await w.evaluations([FP]))[FP]
    await w.save_evaluations([(evaluation, None)])
    assert tx.written == []
    evaluation.value, evaluation.last_time = 3.5, T0 + SECOND
    await w.save_evaluations([(evaluation, None)])
    [(sql, rows)] = tx.written
    assert sql.startswith("UPDATE evaluations SET value")
    assert rows == [(FP, 3.5, T0 + SECOND, T0, None)]
    evaluation.holds = False
    await w.save_evaluations([(evaluation, None)])
    assert tx.written[-1][0].startswith("INSERT INTO evaluations")
    await w.save_evaluations([(evaluation, None)])
    assert len(tx.written) == 2  # what was written is what the store now has


# -- any stream, any cut into fetches -----------------------------------------------------------

RULES = (
    rule(condition=Threshold(Comparison.GT, 2.0, 0.5), for_duration=2 * SECOND,
         keep_firing_for=3 * SECOND),
    rule("sensor_fault", QualityBad()),
    rule("ph_band", Band(6.0, 8.5, 0.2), metric="ph"),
    rule("level_rising", RateOfChange(4 * SECOND, Threshold(Comparison.GT, 0.5)),
         metric="tank_level"),
    rule("offline", NoData(30 * SECOND), metric=""),
)  # fmt: skip
VALUES = {"turbidity": [0.5, 1.6, 2.0, 2.1, 3.0], "ph": [5.5, 6.1, 7.0, 8.4, 9.0],
          "tank_level": [1.0, 1.5, 3.0, 4.0]}  # fmt: skip
SITES = itertools.count()


@st.composite
def streams(draw: st.DrawFn) -> list[IngestBatch]:
    """Batches of two devices of one site, in publishing order: mostly moving on in time,
    sometimes back; some readings bad, uncertain or stale; some batches sent twice."""
    site = f"s{next(SITES)}"
    sequences = {"tb-1": 0, "tb-2": 0}
    when = T0
    batches = []
    for _ in range(draw(st.integers(1, 8))):
        device = draw(st.sampled_from(["tb-1", "tb-2"]))
        items = []
        for _ in range(draw(st.integers(1, 5))):
            metric = draw(st.sampled_from(sorted(VALUES)))
            quality = draw(st.sampled_from([Quality.GOOD] * 5 + [Quality.BAD, Quality.UNCERTAIN,
                                                                 Quality.STALE]))  # fmt: skip
            value = draw(st.sampled_from(VALUES[metric]))
            when += draw(st.sampled_from([SECOND, SECOND, 2 * SECOND, -3 * SECOND]))
            sequences[device] += 1
            value_or_none = None if quality is Quality.BAD and draw(st.booleans()) else value
            items.append(reading(metric, value_or_none, when, sequences[device], quality))
        batches.append(batch(items, site=site, device=device))
        if draw(st.integers(0, 4)) == 0:
            batches.append(batches[-1])  # delivered again
    return batches


def _reference(rules: Sequence[Rule], batches: Sequence[IngestBatch]) -> list[Event]:
    """Each new reading applied in turn to every rule that selects it, in memory: what the
    rules mean, without storage, fetches or shortcuts."""
    evaluations: dict[str, Evaluation] = {}
    alerts: dict[str, Any] = {}
    floors: dict[tuple[str, str, str], int] = {}
    events: list[Event] = []
    for item in batches:
        key = (item.field, item.site, item.device)
        floor = top = floors.get(key, -1)
        for r in item.readings:
            if r.sequence and r.sequence <= floor:
                continue
            top = max(top, r.sequence)
            for each in (x for x in rules if x.selects(*key, r.metric)):
                fp = fingerprint(each.id, *key, each.metric)
                evaluation = evaluations.setdefault(
                    fp, Evaluation(fp, each.id, *key, each.metric, last_seen=r.time)
                )
                if observe(each, evaluation, r):
                    alert, raised = lifecycle.advance(each, alerts.get(fp), evaluation, r.time)
                    alerts[fp] = alert
                    events += raised
        floors[key] = top
    return events


def _summary(events: Sequence[Event]) -> list[tuple[str, str, int, float]]:
    return [(e.type.value, e.alert.fingerprint, e.time, round(e.alert.value, 9)) for e in events]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(stream=streams(), cuts=st.lists(st.integers(0, 20)), restarts=st.booleans())
async def test_any_cut_into_fetches_raises_what_each_reading_in_turn_raises(
    store: AlertStore, stream: list[IngestBatch], cuts: list[int], restarts: bool
) -> None:
    if not await store.rules():
        await install(store, *RULES)
    clock = Clock()
    ev = evaluator(store, clock)
    bounds = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    events = []
    for start, end in itertools.pairwise(bounds):
        events += await ev.evaluate(stream[start:end])
        if restarts:
            ev = evaluator(store, clock)  # what it knows comes from the store alone
    assert _summary(events) == _summary(_reference(await store.rules(), stream))
