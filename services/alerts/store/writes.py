"""What a transaction reads and writes, in domain terms, the same statements on both
backends. Opened by :meth:`~.base.AlertStore.transaction`, which holds the partition locks."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence

from smartcity.services.alerts.model import Alert, Event, Silence
from smartcity.services.alerts.rules import Rule
from smartcity.services.alerts.store.codec import (
    alert_from_json,
    alert_json,
    event_json,
    rule_json,
    silence_json,
)
from smartcity.services.alerts.store.state import EvaluationState
from smartcity.services.alerts.store.transaction import EVENTS_LOCK, Transaction, partition_of

__all__ = ["Writes"]


class Writes(EvaluationState):
    """Domain reads and writes inside one transaction."""

    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self._stored = {}

    async def save_alerts(self, rows: Iterable[tuple[Alert, int | None, str]]) -> None:
        """Alerts with when the clock next changes them and their notification group."""
        await self.tx.executemany(
            "INSERT INTO alerts (fingerprint, rule_id, part, field, state, severity, "
            "active_time, due, group_key, body) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
            "ON CONFLICT (fingerprint) DO UPDATE SET state = excluded.state, "
            "severity = excluded.severity, active_time = excluded.active_time, "
            "due = excluded.due, group_key = excluded.group_key, body = excluded.body",
            [
                (
                    a.fingerprint,
                    a.rule_id,
                    partition_of(a.field, a.labels.get("site", ""), a.labels.get("device", "")),
                    a.field,
                    a.state.value,
                    int(a.severity),
                    a.active_time,
                    due,
                    group,
                    alert_json(a),
                )
                for a, due, group in rows
            ],
        )

    async def append_events(self, events: Sequence[Event]) -> None:
        if not events:
            return
        await self.tx.lock(EVENTS_LOCK)
        await self.tx.executemany(
            "INSERT INTO events (event_id, fingerprint, time, field, severity, body) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            [
                (
                    e.event_id,
                    e.alert.fingerprint,
                    e.time,
                    e.alert.field,
                    int(e.alert.severity),
                    event_json(e),
                )
                for e in events
            ],
        )

    # -- rules, silences, requests ----------------------------------------------------------

    async def put_rule(self, rule: Rule) -> None:
        await self.tx.execute(
            "INSERT INTO rules (id, field, origin, body) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (id) DO UPDATE SET field = excluded.field, origin = excluded.origin, "
            "body = excluded.body",
            rule.id,
            rule.field,
            rule.origin.value,
            rule_json(rule),
        )
        await self._bump_rules()

    async def delete_rule(self, rule_id: str) -> None:
        await self.tx.execute("DELETE FROM rules WHERE id = $1", rule_id)
        await self._bump_rules()

    async def _bump_rules(self) -> None:
        await self.tx.execute(
            "INSERT INTO meta (key, value) VALUES ('rules', 1) "
            "ON CONFLICT (key) DO UPDATE SET value = meta.value + 1"
        )

    async def put_request(self, kind: str, request_id: str, target: str) -> None:
        await self.tx.execute(
            "INSERT INTO requests (kind, request_id, target) VALUES ($1, $2, $3)",
            kind,
            request_id,
            target,
        )

    async def put_silence(self, silence: Silence) -> None:
        await self.tx.execute(
            "INSERT INTO silences (id, start_time, end_time, body) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (id) DO UPDATE SET start_time = excluded.start_time, "
            "end_time = excluded.end_time, body = excluded.body",
            silence.id,
            silence.start_time,
            silence.end_time,
            silence_json(silence),
        )

    # -- notifications ----------------------------------------------------------------------

    async def mark_groups(self, groups: Mapping[str, Mapping[str, str]], now: int) -> None:
        """Note that the alerts of these groups changed: the next flush looks at them."""
        await self.tx.executemany(
            "INSERT INTO alert_groups (group_key, labels, first_time, last_flush, dirty) "
            "VALUES ($1, $2, $3, NULL, 1) ON CONFLICT (group_key) DO UPDATE SET dirty = 1",
            [(key, json.dumps(labels, sort_keys=True), now) for key, labels in groups.items()],
        )

    async def dirty_groups(self) -> list[tuple[str, dict[str, str], int, int | None]]:
        rows = await self.tx.fetch(
            "SELECT group_key, labels, first_time, last_flush FROM alert_groups WHERE dirty = 1"
        )
        return [(key, json.loads(labels), first, last) for key, labels, first, last in rows]

    async def group_alerts(self, group_key: str) -> list[Alert]:
        rows = await self.tx.fetch("SELECT body FROM alerts WHERE group_key = $1", group_key)
        return [alert_from_json(row[0]) for row in rows]

    async def flushed(self, group_key: str, now: int) -> None:
        await self.tx.execute(
            "UPDATE alert_groups SET last_flush = $2, dirty = 0 WHERE group_key = $1",
            group_key,
            now,
        )

    async def notified(self, fingerprints: Sequence[str]) -> dict[str, tuple[int, int, bool]]:
        """(occurrence's active time, last notified as firing, resolution notified)."""
        rows = await self._by_fingerprint(
            "SELECT fingerprint, active_time, notified_time, resolved_sent FROM notified",
            fingerprints,
        )
        return {fp: (int(a), int(n), bool(r)) for fp, a, n, r in rows}

    async def set_notified(self, rows: Iterable[tuple[str, int, int, bool]]) -> None:
        await self.tx.executemany(
            "INSERT INTO notified (fingerprint, active_time, notified_time, resolved_sent) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT (fingerprint) DO UPDATE SET "
            "active_time = excluded.active_time, notified_time = excluded.notified_time, "
            "resolved_sent = excluded.resolved_sent",
            [(fp, active, when, int(resolved)) for fp, active, when, resolved in rows],
        )

    async def reminders_due(self, before: int) -> list[str]:
        """Group keys of firing alerts last notified before ``before``."""
        rows = await self.tx.fetch(
            "SELECT DISTINCT a.group_key FROM alerts a JOIN notified n "
            "ON n.fingerprint = a.fingerprint AND n.active_time = a.active_time "
            "WHERE a.state = 'firing' AND n.notified_time <= $1",
            before,
        )
        return [row[0] for row in rows]

    async def queue_notification(self, body: str, now: int) -> None:
        await self.tx.execute(
            "INSERT INTO notifications (created, body) VALUES ($1, $2)", now, body
        )
