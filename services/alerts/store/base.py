"""The alerts store: one interface, two backends chosen by URL.

``sqlite:///path/alerts.db`` (embedded, one replica) and ``postgresql://user@host/db``
(replicas share it). Both run the very same statements, written once with ``$n`` parameters
(SQLite reads them as ``?n``); a backend supplies only plain reads and transactions
(:class:`Transaction`). Failures are those of :mod:`smartcity.runtime.storage`.

Evaluation is partitioned by device (:func:`partition_of`): a transaction that changes
evaluations or alerts first locks the partitions of the devices it touches (PostgreSQL
transaction-scoped advisory locks, in ascending order so two transactions never deadlock;
SQLite's write lock covers everything), then reads their state afresh. Replicas therefore
evaluate any device, one at a time: an alert never fires twice, and nothing of a replica
that leaves is lost, because pending timers are columns (``due``, ``deadline``), not tasks.
Transactions that append events also take the events lock just before, so revisions become
visible in their order and a watcher never skips one.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from smartcity.runtime.storage import InvalidQuery, StoreError, StoreUnavailable
from smartcity.runtime.storage.base import Store
from smartcity.services.alerts.model import Alert, AlertState, Event, Severity, Silence
from smartcity.services.alerts.rules import Rule
from smartcity.services.alerts.store.codec import (
    alert_from_json,
    event_from_json,
    rule_from_json,
    silence_from_json,
)
from smartcity.services.alerts.store.state import RULES_REVISION, DeviceState, Snapshot
from smartcity.services.alerts.store.transaction import PARTITIONS, Transaction, partition_of
from smartcity.services.alerts.store.writes import Writes

__all__ = [
    "PARTITIONS",
    "AlertFilter",
    "AlertStore",
    "DeviceState",
    "InvalidQuery",
    "Snapshot",
    "StoreError",
    "StoreUnavailable",
    "Transaction",
    "Writes",
    "partition_of",
]


@dataclass(frozen=True, slots=True)
class AlertFilter:
    field: str = ""
    states: tuple[AlertState, ...] = (AlertState.PENDING, AlertState.FIRING)
    min_severity: Severity | None = None
    active_from: int | None = None
    active_to: int | None = None
    rule_id: str = ""


_ALERT_ORDER = "ORDER BY severity DESC, active_time DESC, fingerprint"


class AlertStore(Store):
    """Alert storage; a write happens in :meth:`transaction`, holding the locks of the
    partitions it evaluates."""

    @abc.abstractmethod
    async def _query(self, sql: str, *args: Any) -> Sequence[Sequence[Any]]: ...

    @abc.abstractmethod
    def _transaction(self) -> contextlib.AbstractAsyncContextManager[Transaction]: ...

    @contextlib.asynccontextmanager
    async def transaction(self, partitions: Sequence[int] = ()) -> AsyncIterator[Writes]:
        """A write transaction holding the locks of ``partitions``."""
        async with self._transaction() as tx:
            if partitions:
                await tx.lock_all(sorted(set(partitions)))
            yield Writes(tx)

    # -- reads --------------------------------------------------------------------------------

    async def rules(self) -> list[Rule]:
        rows = await self._query("SELECT body FROM rules ORDER BY field, id")
        return [rule_from_json(row[0]) for row in rows]

    async def rule(self, rule_id: str) -> Rule | None:
        rows = await self._query("SELECT body FROM rules WHERE id = $1", rule_id)
        return rule_from_json(rows[0][0]) if rows else None

    async def rules_revision(self) -> int:
        rows = await self._query(RULES_REVISION)
        return int(rows[0][0]) if rows else 0

    async def request(self, kind: str, request_id: str) -> str | None:
        rows = await self._query(
            "SELECT target FROM requests WHERE kind = $1 AND request_id = $2", kind, request_id
        )
        return str(rows[0][0]) if rows else None

    async def alert(self, fingerprint: str) -> Alert | None:
        rows = await self._query("SELECT body FROM alerts WHERE fingerprint = $1", fingerprint)
        return alert_from_json(rows[0][0]) if rows else None

    async def alerts(
        self, wanted: AlertFilter, after: tuple[int, int, str] | None, limit: int
    ) -> list[Alert]:
        """Alerts matching ``wanted`` in listing order (most severe, then newest), after the
        listing key ``after`` (severity, active time, fingerprint)."""
        clauses, args = [], []

        def arg(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        if wanted.states:
            clauses.append(f"state IN ({', '.join(arg(s.value) for s in wanted.states)})")
        if wanted.field:
            clauses.append(f"field = {arg(wanted.field)}")
        if wanted.rule_id:
            clauses.append(f"rule_id = {arg(wanted.rule_id)}")
        if wanted.min_severity is not None:
            clauses.append(f"severity >= {arg(int(wanted.min_severity))}")
        if wanted.active_from is not None:
            clauses.append(f"active_time >= {arg(wanted.active_from)}")
        if wanted.active_to is not None:
            clauses.append(f"active_time < {arg(wanted.active_to)}")
        if after is not None:
            s, t, f = arg(after[0]), arg(after[1]), arg(after[2])
            clauses.append(
                f"(severity < {s} OR (severity = {s} AND active_time < {t}) OR "
                f"(severity = {s} AND active_time = {t} AND fingerprint > {f}))"
            )
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = await self._query(
            f"SELECT body FROM alerts {where} {_ALERT_ORDER} LIMIT {arg(limit)}", *args
        )
        return [alert_from_json(row[0]) for row in rows]

    async def open_alerts(self) -> list[tuple[Alert, int]]:
        """Every PENDING or FIRING alert with its partition."""
        rows = await self._query(
            "SELECT body, part FROM alerts WHERE state IN ('pending', 'firing')"
        )
        return [(alert_from_json(body), int(part)) for body, part in rows]

    async def due(self, now: int) -> list[tuple[str, int, bool]]:
        """(fingerprint, partition, is an evaluation) of what the clock changes by ``now``."""
        evaluations = await self._query(
            "SELECT fingerprint, part FROM evaluations WHERE deadline <= $1", now
        )
        alerts = await self._query("SELECT fingerprint, part FROM alerts WHERE due <= $1", now)
        return [(fp, int(part), True) for fp, part in evaluations] + [
            (fp, int(part), False) for fp, part in alerts
        ]

    async def events_after(self, revision: int, limit: int, fingerprint: str = "") -> list[Event]:
        if fingerprint:
            rows = await self._query(
                "SELECT revision, body FROM events WHERE fingerprint = $1 AND revision > $2 "
                "ORDER BY revision LIMIT $3",
                fingerprint,
                revision,
                limit,
            )
        else:
            rows = await self._query(
                "SELECT revision, body FROM events WHERE revision > $1 ORDER BY revision LIMIT $2",
                revision,
                limit,
            )
        return [event_from_json(body, int(number)) for number, body in rows]

    async def revisions(self) -> tuple[int, int]:
        """The oldest and newest revision kept (0, 0 when there is none)."""
        rows = await self._query("SELECT min(revision), max(revision) FROM events")
        low, high = rows[0]
        return int(low or 0), int(high or 0)

    async def unpublished(self, limit: int) -> list[Event]:
        rows = await self._query(
            "SELECT revision, body FROM events WHERE published = 0 ORDER BY revision LIMIT $1",
            limit,
        )
        return [event_from_json(body, int(number)) for number, body in rows]

    async def flush_due(self, notified_before: int) -> bool:
        """Whether a notification group is marked, or a firing alert was last notified
        before ``notified_before`` (a reminder may be due)."""
        rows = await self._query(
            "SELECT EXISTS (SELECT 1 FROM alert_groups WHERE dirty = 1) OR EXISTS ("
            "SELECT 1 FROM alerts a JOIN notified n ON n.fingerprint = a.fingerprint "
            "AND n.active_time = a.active_time WHERE a.state = 'firing' "
            "AND n.notified_time <= $1)",
            notified_before,
        )
        return bool(rows[0][0])

    async def silences(self) -> list[Silence]:
        rows = await self._query("SELECT body FROM silences ORDER BY end_time, id")
        return [silence_from_json(row[0]) for row in rows]

    async def pending_notifications(self, limit: int) -> list[tuple[int, str]]:
        rows = await self._query(
            "SELECT id, body FROM notifications WHERE submitted = 0 ORDER BY id LIMIT $1", limit
        )
        return [(int(number), str(body)) for number, body in rows]

    async def notifications(self) -> list[tuple[int, str, bool]]:
        """Every notification queued, oldest first, and whether it was handed over."""
        rows = await self._query("SELECT id, body, submitted FROM notifications ORDER BY id")
        return [(int(number), str(body), bool(done)) for number, body, done in rows]

    # -- small writes of their own ------------------------------------------------------------

    async def mark_published(self, revisions: Sequence[int]) -> None:
        async with self.transaction() as w:
            await w.tx.executemany(
                "UPDATE events SET published = 1 WHERE revision = $1", [(r,) for r in revisions]
            )

    async def mark_submitted(self, ids: Sequence[int]) -> None:
        async with self.transaction() as w:
            await w.tx.executemany(
                "UPDATE notifications SET submitted = 1 WHERE id = $1", [(i,) for i in ids]
            )

    async def forget_events(self, before: int) -> None:
        """Drop events older than ``before`` (µs) that were published, and the alerts that
        resolved after becoming active before then."""
        async with self.transaction() as w:
            await w.tx.execute("DELETE FROM events WHERE time < $1 AND published = 1", before)
            await w.tx.execute(
                "DELETE FROM alerts WHERE state = 'resolved' AND active_time < $1", before
            )
