"""Notifications: alerts grouped by labels, sent after a group wait, batched by a group
interval, reminded of while nobody acknowledges them, and told when they resolve.

This is Alertmanager's dispatch model, on state the store keeps: a change that matters to
people (firing, resolved, escalated) marks its group; :func:`flush`, run after every tick
under a lock of its own, sends a marked group once ``group_wait`` passed since the group
appeared, or ``group_interval`` since its last notification. A firing alert that nobody
acknowledged and that is neither silenced nor inhibited is sent again every
``repeat_interval``; an acknowledged one is not reminded of. A notification is queued in the
same transaction that records it as sent (:mod:`.outbox` hands it to the receivers'
dispatcher), so a restart neither loses nor repeats one.

The queued notification is the receivers' ``Notification`` in its dictionary form
(:meth:`Notification.to_dict`), so that the outbox only has to hand it over.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from smartcity.runtime.config import AlertsSettings
from smartcity.services.alerts.model import MICROS, Alert, AlertState
from smartcity.services.alerts.store import AlertStore
from smartcity.services.alerts.store.transaction import PARTITIONS

__all__ = ["NOTIFY_LOCK", "Grouping", "escalation_notice", "flush", "notified_alert"]

NOTIFY_LOCK = PARTITIONS + 1
"""Lock number held by a flush, so that two replicas never send one group twice."""


class Grouping:
    def __init__(self, settings: AlertsSettings) -> None:
        self.by = tuple(settings.group_by)
        self.receiver = settings.receiver
        self.wait = int(settings.group_wait_seconds * MICROS)
        self.interval = int(settings.group_interval_seconds * MICROS)
        self.repeat = int(settings.repeat_interval_seconds * MICROS)

    def key(self, labels: Mapping[str, str]) -> tuple[str, dict[str, str]]:
        """The group of an alert with ``labels``: its key (Alertmanager's form,
        ``{field="water_supply",site="cau-do"}``) and its grouping labels."""
        chosen = {name: labels.get(name, "") for name in self.by}
        key = "{" + ",".join(f"{name}={json.dumps(value)}" for name, value in chosen.items()) + "}"
        return key, chosen


def _moment(micros: int) -> str:
    return datetime.fromtimestamp(micros / MICROS, UTC).isoformat()


def notified_alert(alert: Alert, status: str) -> dict[str, Any]:
    return {
        "fingerprint": alert.fingerprint,
        "status": status,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "starts_at": _moment(alert.start_time or alert.active_time),
        "ends_at": None if alert.end_time is None else _moment(alert.end_time),
        "generator_url": "",
    }


def _common(items: Sequence[Mapping[str, str]]) -> dict[str, str]:
    if not items:
        return {}
    first = items[0]
    return {k: v for k, v in first.items() if all(item.get(k) == v for item in items[1:])}


def notification(
    receiver: str, key: str, labels: Mapping[str, str], firing: list[Alert], resolved: list[Alert]
) -> str:
    alerts = [notified_alert(a, "firing") for a in firing] + [
        notified_alert(a, "resolved") for a in resolved
    ]
    everyone = firing + resolved
    return json.dumps(
        {
            "receiver": receiver,
            "group_key": key,
            "group_labels": dict(labels),
            "common_labels": _common([a.labels for a in everyone]),
            "common_annotations": _common([a.annotations for a in everyone]),
            "alerts": alerts,
            "status": "firing" if firing else "resolved",
            "truncated": 0,
        },
        ensure_ascii=False,
    )


def escalation_notice(receiver: str, alert: Alert, grouping: Grouping) -> str:
    """The notification an escalation step sends to its ``notify`` receiver at once."""
    key, labels = grouping.key(alert.labels)
    return notification(receiver, f"{key}:escalation", labels, [alert], [])


async def flush(store: AlertStore, grouping: Grouping, now: int) -> int:
    """Send every group that is due at ``now``; the number of notifications queued."""
    queued = 0
    if not await store.flush_due(now - grouping.repeat):
        return 0  # nothing marked, nothing to remind of: no write transaction
    async with store.transaction() as w:
        await w.tx.lock(NOTIFY_LOCK)
        marked = {key: (labels, first, last) for key, labels, first, last in await w.dirty_groups()}
        reminded = set(await w.reminders_due(now - grouping.repeat))
        for key in sorted(set(marked) | reminded):
            labels, first, last = marked.get(key, (None, now, None))
            if key in marked:
                ready = first + grouping.wait if last is None else last + grouping.interval
                if ready > now and key not in reminded:
                    continue
            alerts = await w.group_alerts(key)
            sent = await w.notified([a.fingerprint for a in alerts])
            firing, resolved, fresh = [], [], False
            for alert in alerts:
                past = sent.get(alert.fingerprint)
                this = past is not None and past[0] == alert.active_time
                if alert.state is AlertState.FIRING and not alert.suppressed:
                    firing.append(alert)
                    fresh |= not this or (
                        alert.acknowledged_by is None and past[1] <= now - grouping.repeat  # type: ignore[index]
                    )
                elif alert.state is AlertState.RESOLVED and this and not past[2]:  # type: ignore[index]
                    resolved.append(alert)
                    fresh = True
            if fresh:
                group_labels = labels if labels is not None else grouping.key(alerts[0].labels)[1]
                body = notification(grouping.receiver, key, group_labels, firing, resolved)
                await w.queue_notification(body, now)
                queued += 1
                await w.set_notified(
                    [(a.fingerprint, a.active_time, now, False) for a in firing]
                    + [(a.fingerprint, a.active_time, now, True) for a in resolved]
                )
            if key in marked:
                await w.flushed(key, now)
    return queued
