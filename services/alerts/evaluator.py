"""Rules applied to the telemetry stream and to the clock, persisted transaction by
transaction.

:meth:`Evaluator.evaluate` takes the checked batches of one fetch (decoded by monitoring's
:class:`~smartcity.readings.decode.TelemetryDecoder`, so every reading carries the
spine's verdict) and, in one transaction holding the partitions of their devices:

1. reads, in one go, the rules' revision (reloading the rules when another replica or a
   person changed them), the devices' last sequences and series times, and the evaluations
   and alerts of the (rule, series) pairs the readings meet (:class:`~.store.Snapshot`);
2. applies each reading in order (:mod:`.lanes`): one whose sequence is not above the
   device's last evaluated one is skipped, so a redelivered or replayed batch changes
   nothing; the others go to :func:`.engine.observe`, then, where the condition holds or an
   alert is open, to :func:`.lifecycle.advance`;
3. writes what changed (evaluations, alerts, events, the devices' rows) together; a rule at
   rest writes nothing of its own. The consumer acknowledges the messages only after this
   commit.

:meth:`Evaluator.tick` (:mod:`.clock`) does what the clock does: no-data timeouts, ``for`` and
``keep_firing_for`` timers, silences and inhibitions, escalation; then :mod:`.notify` flushes
the notification groups. Timers are columns (``deadline``, ``due``), so any replica ticks
any partition and a restart resumes them.

:meth:`Evaluator.change` applies what a person does (acknowledge, assign) and
:meth:`Evaluator.retire` what a rule change does, under the same partition locks;
:meth:`Evaluator.heartbeat` starts the no-data timers of devices only their agent knows.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence

from smartcity.readings.model import IngestBatch
from smartcity.runtime.config import AlertsSettings
from smartcity.runtime.errors import NotFound
from smartcity.services.alerts import lifecycle
from smartcity.services.alerts.clock import ClockDuties
from smartcity.services.alerts.engine import Evaluation, RuleIndex, fingerprint
from smartcity.services.alerts.lanes import DeviceKey, Lane, Lanes, Plan, SeriesKey, apply
from smartcity.services.alerts.model import MICROS, Alert, Event
from smartcity.services.alerts.notify import Grouping
from smartcity.services.alerts.rules import NoData, Rule
from smartcity.services.alerts.store import (
    PARTITIONS,
    AlertFilter,
    AlertStore,
    Writes,
    partition_of,
)
from smartcity.services.alerts.work import NOTIFIED, Work, gone

__all__ = ["Evaluator"]


PLANS_KEPT = 50_000
"""Series whose rules are remembered before starting over (a few hundred bytes each; working
one out again costs a few microseconds)."""


class Evaluator(ClockDuties):
    def __init__(
        self,
        store: AlertStore,
        settings: AlertsSettings,
        *,
        clock: Callable[[], float] = time.time,
        on_events: Callable[[Sequence[Event]], None] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.on_events = on_events
        self.grouping = Grouping(settings)
        self.index = RuleIndex(())
        self._rules_revision = -1
        self._plans: dict[SeriesKey, Plan] = {}
        self.readings_evaluated = 0
        """Readings evaluated against a rule (a reading two rules see counts twice)."""
        self.busy_seconds = 0.0
        """Time spent evaluating fetches, transactions included."""
        self.ticks = 0

    def now(self) -> int:
        return int(self.clock() * MICROS)

    async def refresh_rules(self) -> None:
        """Reload the rules when any replica changed them."""
        revision = await self.store.rules_revision()
        if revision != self._rules_revision:
            await self._load_rules(revision)

    async def _load_rules(self, revision: int) -> None:
        self.index = RuleIndex(await self.store.rules())
        self._rules_revision = revision
        self._plans = {}

    # -- readings ---------------------------------------------------------------------------

    async def evaluate(self, batches: Sequence[IngestBatch]) -> list[Event]:
        started = time.perf_counter()
        try:
            return await self._evaluate(batches)
        finally:
            self.busy_seconds += time.perf_counter() - started

    async def _evaluate(self, batches: Sequence[IngestBatch]) -> list[Event]:
        devices = {(b.field, b.site, b.device) for b in batches}
        async with self.store.transaction([partition_of(*d) for d in devices]) as w:
            while True:
                # The rules' revision is read with the state: when it moved, the rules are
                # loaded and the state read again for them.
                plans = self._plans_of(batches)
                touched = sorted({fp for plan in plans.values() for _, fp in plan})
                state = await w.snapshot(devices, touched)
                if state.rules_revision == self._rules_revision:
                    break
                await self._load_rules(state.rules_revision)
            work = Work()
            lanes = Lanes(plans, state)
            alerts = state.alerts

            def advance(lane: Lane, now: int) -> bool:
                assert lane.evaluation is not None
                return self._advance(lane.rule, alerts, lane.evaluation, now, work)

            floors = {key: device.sequence for key, device in state.devices.items()}
            tops, evaluated = apply(batches, lanes, floors, advance)
            self.readings_evaluated += evaluated
            work.evaluations.update(lanes.kept())
            await self._write(w, work)
            await w.set_devices(lanes.devices(state, tops))
        self._emit(work.events)
        return work.events

    def _plans_of(self, batches: Sequence[IngestBatch]) -> dict[SeriesKey, Plan]:
        """Which rules (and alerts) each (device, metric) of ``batches`` meets, worked out
        once per rule set: the evaluation loop runs once per reading."""
        plans: dict[SeriesKey, Plan] = {}
        for batch in batches:
            key = (batch.field, batch.site, batch.device)
            for metric in {reading.metric for reading in batch.readings}:
                if (*key, metric) not in plans:
                    plans[(*key, metric)] = self._plan(key, metric)
        return plans

    def _plan(self, device: DeviceKey, metric: str) -> Plan:
        """The rules a reading of ``metric`` of ``device`` meets, with their fingerprints."""
        series = (*device, metric)
        plan = self._plans.get(series)
        if plan is None:
            if len(self._plans) >= PLANS_KEPT:
                self._plans.clear()
            plan = self._plans[series] = tuple(
                (rule, fingerprint(rule.id, *device, rule.metric))
                for rule in self.index.for_reading(*device, metric)
            )
        return plan

    def _advance(
        self, rule: Rule, alerts: dict[str, Alert], evaluation: Evaluation, now: int, work: Work
    ) -> bool:
        """Move the evaluation's alert along; whether it is open afterwards."""
        alert, events = lifecycle.advance(rule, alerts.get(evaluation.fingerprint), evaluation, now)
        if alert is None:
            return False
        if events or alert.is_open:
            # An open alert changes without an event too (its value, a cleared time).
            alerts[alert.fingerprint] = alert
            work.alerts[alert.fingerprint] = (rule, alert)
            work.events += events
        return alert.is_open

    async def _write(self, w: Writes, work: Work) -> None:
        now = self.now()
        await w.save_evaluations(
            (evaluation, evaluation.deadline(rule))
            for rule, evaluation in work.evaluations.values()
        )
        await w.save_alerts(
            (alert, lifecycle.due(rule, alert), self.grouping.key(alert.labels)[0])
            for rule, alert in work.alerts.values()
        )
        await w.append_events(work.events)
        groups = dict(self.grouping.key(e.alert.labels) for e in work.events if e.type in NOTIFIED)
        if groups:
            await w.mark_groups(groups, now)
        for body in work.notices:
            await w.queue_notification(body, now)

    def _emit(self, events: Sequence[Event]) -> None:
        if events and self.on_events is not None:
            self.on_events(events)

    # -- agent heartbeats --------------------------------------------------------------------

    async def heartbeat(self, site: str, devices: Sequence[tuple[str, str, int | None]]) -> int:
        """Devices an agent reports, as (field, device, last success µs or None): a device
        known to its agent starts its device-wide no-data timers even if it never sent a
        reading, counting from its last successful poll (or from now). How many started."""
        await self.refresh_rules()
        now = self.now()
        wanted: dict[str, Evaluation] = {}
        for field_id, device, last_success in devices:
            for rule in self.index.for_reading(field_id, site, device, ""):
                if isinstance(rule.condition, NoData) and not rule.metric:
                    fp = fingerprint(rule.id, field_id, site, device, "")
                    seen = min(last_success or now, now)
                    wanted[fp] = Evaluation(fp, rule.id, field_id, site, device, "", last_seen=seen)
        if not wanted:
            return 0
        async with self.store.transaction(
            [partition_of(e.field, e.site, e.device) for e in wanted.values()]
        ) as w:
            known = await w.evaluations(list(wanted))
            fresh = [e for fp, e in wanted.items() if fp not in known]
            rules = self.index.rules
            await w.save_evaluations((e, e.deadline(rules[e.rule_id])) for e in fresh)
        return len(fresh)

    # -- people and rule changes -------------------------------------------------------------

    async def change(self, fingerprint: str, action: Callable[[Alert, int], list[Event]]) -> Alert:
        """Apply ``action`` (acknowledge, assign …) to an alert, under its partition lock."""
        current = await self.store.alert(fingerprint)
        if current is None:
            raise NotFound(f"no alert has fingerprint {fingerprint!r}")
        await self.refresh_rules()
        labels = current.labels
        part = partition_of(current.field, labels.get("site", ""), labels.get("device", ""))
        now = self.now()
        async with self.store.transaction([part]) as w:
            alert = (await w.alerts([fingerprint]))[fingerprint]
            work = Work(events=action(alert, now))
            if work.events:
                work.alerts[fingerprint] = (
                    self.index.rules.get(alert.rule_id) or gone(alert),
                    alert,
                )
                await self._write(w, work)
        self._emit(work.events)
        return alert

    async def retire(
        self, rule_id: str, reason: str, write: Callable[[Writes], Awaitable[None]]
    ) -> None:
        """Resolve the open alerts of a rule and forget its evaluations, in the transaction
        that ``write`` changes the rule in, so that the rule starts afresh.

        The transaction holds every partition, and the rule's alerts are listed only once
        it does: every change to an alert holds its device's partition, so no replica can
        open an alert of the old rule that this misses, and an evaluation that waited for
        the locks reads the rules' new revision before it evaluates anything."""
        now = self.now()
        async with self.store.transaction(range(PARTITIONS)) as w:
            found = await self.store.alerts(AlertFilter(rule_id=rule_id), None, 100_000)
            fingerprints = [a.fingerprint for a in found]
            await write(w)
            work = Work()
            for fp, alert in (await w.alerts(fingerprints)).items():
                events = lifecycle.resolve(alert, now, reason)
                if events:
                    work.alerts[fp] = (gone(alert), alert)
                    work.events += events
            await w.forget_rule(rule_id)
            await self._write(w, work)
        self._emit(work.events)
