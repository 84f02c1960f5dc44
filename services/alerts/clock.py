"""What the clock does to alerts: no-data timeouts, ``for`` and ``keep_firing_for``
timers, silences and inhibitions, escalation; then the notification flush (:mod:`.notify`).

Timers are columns (``deadline``, ``due``), so any replica ticks any partition, one
transaction per partition under its lock, and a restart resumes them. :class:`ClockDuties`
is the part of :class:`~.evaluator.Evaluator` that does this; what it uses of the evaluator
(the store, the rules, how a transaction's work is written) is declared below and defined
there.
"""

from __future__ import annotations

from collections.abc import Sequence

from smartcity.services.alerts import lifecycle
from smartcity.services.alerts.engine import Evaluation, RuleIndex, silence_check
from smartcity.services.alerts.model import Alert, AlertState, Event, EventType
from smartcity.services.alerts.notify import Grouping, escalation_notice, flush
from smartcity.services.alerts.rules import Rule
from smartcity.services.alerts.store import AlertStore, Writes
from smartcity.services.alerts.work import Work, gone

__all__ = ["ClockDuties"]


class ClockDuties:
    """:meth:`tick`, for :class:`~.evaluator.Evaluator`."""

    store: AlertStore
    grouping: Grouping
    index: RuleIndex
    ticks: int

    def now(self) -> int:
        raise NotImplementedError

    async def refresh_rules(self) -> None:
        raise NotImplementedError

    async def _write(self, w: Writes, work: Work) -> None:
        raise NotImplementedError

    def _emit(self, events: Sequence[Event]) -> None:
        raise NotImplementedError

    def _advance(
        self, rule: Rule, alerts: dict[str, Alert], evaluation: Evaluation, now: int, work: Work
    ) -> bool:
        raise NotImplementedError

    async def tick(self, now: int | None = None) -> list[Event]:
        """Everything the clock changes by ``now``, then the notification flush."""
        now = self.now() if now is None else now
        await self.refresh_rules()
        events = await self._timers(now)
        rules = self.index.rules
        if any(
            e.type in (EventType.FIRING, EventType.RESOLVED)
            and e.alert.rule_id in rules
            and rules[e.alert.rule_id].inhibitions
            for e in events
        ):
            # An inhibiting alert changed: apply it before anything is notified.
            events += await self._timers(now)
        await flush(self.store, self.grouping, now)
        self.ticks += 1
        return events

    async def _timers(self, now: int) -> list[Event]:
        rules = self.index.rules
        silences = await self.store.silences()
        open_alerts = await self.store.open_alerts()
        sources = [
            (alert, rules[alert.rule_id])
            for alert, _ in open_alerts
            if alert.state is AlertState.FIRING
            and alert.rule_id in rules
            and rules[alert.rule_id].inhibitions
        ]
        work_by_part: dict[int, set[str]] = {}
        for alert, part in open_alerts:
            if (
                lifecycle.silencers(silences, alert.labels, now) != alert.silenced_by
                or lifecycle.inhibitors(alert, sources) != alert.inhibited_by
                or alert.rule_id not in rules
                or not rules[alert.rule_id].enabled
            ):
                work_by_part.setdefault(part, set()).add(alert.fingerprint)
        for fp, part, _ in await self.store.due(now):
            work_by_part.setdefault(part, set()).add(fp)
        events: list[Event] = []
        for part, fingerprints in sorted(work_by_part.items()):
            async with self.store.transaction([part]) as w:
                work = await self._tick_partition(w, sorted(fingerprints), now, silences, sources)
                await self._write(w, work)
            self._emit(work.events)
            events += work.events
        return events

    async def _tick_partition(
        self,
        w: Writes,
        fingerprints: list[str],
        now: int,
        silences: Sequence[object],
        sources: Sequence[tuple[Alert, Rule]],
    ) -> Work:
        rules = self.index.rules
        evaluations = await w.evaluations(fingerprints)
        alerts = await w.alerts(fingerprints)
        work = Work()
        for fp in fingerprints:
            evaluation, alert = evaluations.get(fp), alerts.get(fp)
            rule_id = evaluation.rule_id if evaluation else alert.rule_id if alert else ""
            rule = rules.get(rule_id)
            if rule is None or not rule.enabled:
                if alert is not None and alert.is_open and rule_id:
                    events = lifecycle.resolve(alert, now, "the rule was deleted or disabled")
                    work.events += events
                    work.alerts[fp] = (rule or gone(alert), alert)
                continue
            if evaluation is not None:
                silence_check(rule, evaluation, now)
                work.evaluations[fp] = (rule, evaluation)
                self._advance(rule, alerts, evaluation, now, work)
                alert = alerts.get(fp)
            if alert is None or not alert.is_open:
                continue
            changes = lifecycle.suppress(
                alert,
                lifecycle.silencers(silences, alert.labels, now),  # type: ignore[arg-type]
                lifecycle.inhibitors(alert, sources),
                now,
            )
            escalated, steps = lifecycle.escalate(rule, alert, now)
            changes += escalated
            work.notices += [
                escalation_notice(step.notify, alert, self.grouping)
                for step in steps
                if step.notify
            ]
            work.alerts[fp] = (rule, alert)
            work.events += changes
        return work
