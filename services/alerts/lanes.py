"""One fetch's readings applied to the rules they meet, in memory, once per reading and rule.

A :class:`Lane` is one rule on one series for the length of a fetch: the rule, its
fingerprint, the series' :class:`~.engine.Evaluation` and whether its alert is open. The
evaluator reads the lanes' state (:class:`~.store.Snapshot`), :func:`apply` feeds each reading
to its lanes, and the evaluator writes back what changed, so the loop below is all that runs
per reading:

* a reading whose sequence is not above what its device's earlier fetches, and the earlier
  batches of this fetch, evaluated is skipped: a replay changes nothing;
* :func:`~.engine.observe` updates the evaluation; only when the condition holds, or the
  alert is open, has the lifecycle anything to do (the ``advance`` the evaluator passes);
* a lane at rest (:func:`~.engine.at_rest`: the condition does not hold and no alert is
  open) before and after the fetch keeps no row of its own: its series' time, kept with the
  device (:meth:`Lanes.devices`), is all its next reading needs. That is the common case, a
  reading inside its rule's band, and it costs the store nothing but the device's row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from smartcity.readings.model import IngestBatch
from smartcity.services.alerts.engine import Evaluation, at_rest, observe
from smartcity.services.alerts.rules import Rule
from smartcity.services.alerts.store import DeviceState, Snapshot
from smartcity.services.alerts.store.state import DeviceKey

__all__ = ["DeviceKey", "Lane", "Lanes", "Plan", "SeriesKey", "apply"]

SeriesKey = tuple[str, str, str, str]
Plan = tuple[tuple[Rule, str], ...]
"""The rules a series meets, with the fingerprint of each one's alert on it."""


@dataclass(slots=True, eq=False)
class Lane:
    """One rule on one series, during one fetch."""

    rule: Rule
    fingerprint: str
    device: DeviceKey
    evaluation: Evaluation | None
    """As stored; made afresh at the lane's first reading when no row is kept."""
    since: int
    """The series' last evaluated time, where a fresh evaluation starts."""
    open: bool
    """Whether the alert is open: only then, or once the condition holds, has a reading
    anything to advance."""
    kept: bool
    """Whether the evaluation is written back: not while the lane stays at rest."""


class Lanes:
    """The lanes of a fetch, by device and metric; a device-wide rule (no metric) is one lane
    that every metric of its device meets."""

    def __init__(self, plans: Mapping[SeriesKey, Plan], state: Snapshot) -> None:
        by_fingerprint: dict[str, Lane] = {}
        self.by_device: dict[DeviceKey, dict[str, list[Lane]]] = {}
        for (field_id, site, device, metric), plan in plans.items():
            if not plan:
                continue
            key = (field_id, site, device)
            times = state.devices[key].times
            meets = []
            for rule, fp in plan:
                lane = by_fingerprint.get(fp)
                if lane is None:
                    lane = by_fingerprint[fp] = _lane(rule, fp, key, times, state)
                meets.append(lane)
            self.by_device.setdefault(key, {})[metric] = meets
        self.all = list(by_fingerprint.values())

    def kept(self) -> Iterator[tuple[str, tuple[Rule, Evaluation]]]:
        """The evaluations to write back, by fingerprint."""
        for lane in self.all:
            if lane.kept and lane.evaluation is not None:
                yield lane.fingerprint, (lane.rule, lane.evaluation)

    def devices(
        self, state: Snapshot, tops: Mapping[DeviceKey, int]
    ) -> dict[DeviceKey, DeviceState]:
        """The devices whose row changed: a new last sequence, or a series' new time."""
        times = {key: dict(device.times) for key, device in state.devices.items()}
        for lane in self.all:
            metric = lane.rule.metric
            if metric and lane.evaluation is not None:
                series = times[lane.device]
                series[metric] = max(series.get(metric, 0), lane.evaluation.last_time)
        return {
            key: DeviceState(tops[key], times[key])
            for key, device in state.devices.items()
            if tops[key] != device.sequence or times[key] != device.times
        }


def _lane(
    rule: Rule, fp: str, device: DeviceKey, times: Mapping[str, int], state: Snapshot
) -> Lane:
    since = times.get(rule.metric, 0) if rule.metric else 0
    evaluation = state.evaluations.get(fp)
    if evaluation is not None:
        # A row not written while at rest is behind its series.
        evaluation.last_time = max(evaluation.last_time, since)
    alert = state.alerts.get(fp)
    is_open = alert is not None and alert.is_open
    return Lane(
        rule, fp, device, evaluation, since, is_open, is_open or not at_rest(rule, evaluation)
    )


def apply(
    batches: Sequence[IngestBatch],
    lanes: Lanes,
    floors: Mapping[DeviceKey, int],
    advance: Callable[[Lane, int], bool],
) -> tuple[dict[DeviceKey, int], int]:
    """Feed each new reading of ``batches`` to the lanes it meets, in order; ``advance``
    moves a lane's alert along at a reading's time and says whether it is open afterwards.
    The devices' last sequences afterwards, and how many (reading, rule) pairs were
    evaluated."""
    tops = dict(floors)
    evaluated = 0
    for batch in batches:
        key = (batch.field, batch.site, batch.device)
        floor = top = tops[key]
        of_metric = lanes.by_device.get(key)
        for reading in batch.readings:
            sequence = reading.sequence
            if sequence and sequence <= floor:
                continue  # evaluated before: a replay
            if sequence > top:
                top = sequence
            meets = of_metric.get(reading.metric) if of_metric else None
            if meets is None:
                continue
            for lane in meets:
                evaluation = lane.evaluation
                if evaluation is None:
                    rule = lane.rule
                    evaluation = lane.evaluation = Evaluation(
                        lane.fingerprint, rule.id, *key, rule.metric,
                        last_time=lane.since, last_seen=reading.time,
                    )  # fmt: skip
                if not observe(lane.rule, evaluation, reading):
                    continue  # kept (a rate's sample, a sign of life), nothing to decide
                evaluated += 1
                if evaluation.holds or lane.open:
                    lane.open = advance(lane, reading.time)
                    lane.kept = True
        tops[key] = top
    return tops, evaluated
