"""What evaluating a fetch reads and writes back: the devices' sequences and series times,
the evaluations and the alerts of the rules their readings meet (a :class:`Snapshot`, read
in one go). An evaluation is written back only where it changed, and a rule at rest keeps
no row up to date at all (see :mod:`~smartcity.services.alerts.lanes`): its series' time,
in the device's row, stands in."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from smartcity.services.alerts.engine import Evaluation
from smartcity.services.alerts.model import Alert
from smartcity.services.alerts.store.codec import alert_from_json
from smartcity.services.alerts.store.transaction import (
    CHUNK,
    Query,
    Transaction,
    keyed,
    partition_of,
    tuples,
)

__all__ = ["RULES_REVISION", "DeviceKey", "DeviceState", "EvaluationState", "Snapshot"]

DeviceKey = tuple[str, str, str]

RULES_REVISION = "SELECT value FROM meta WHERE key = 'rules'"
_EVALUATION_COLUMNS = (
    "@fingerprint, @rule_id, @field, @site, @device, @metric, @holds, @value, @last_time, "
    "@last_seen, @samples, @deadline"
)
_EVALUATIONS = f"SELECT {_EVALUATION_COLUMNS.replace('@', '')} FROM evaluations"
_ALERTS = "SELECT body FROM alerts"


@dataclass(slots=True)
class DeviceState:
    """What a device's row keeps for evaluation."""

    sequence: int
    """The last sequence evaluated (-1: none yet): a reading not above it is a replay."""
    times: dict[str, int]
    """The time of the last reading evaluated, by metric: a reading older than its series'
    is not evaluated."""


@dataclass(slots=True)
class Snapshot:
    """What an evaluation reads before it applies a fetch's readings."""

    rules_revision: int
    devices: dict[DeviceKey, DeviceState]
    evaluations: dict[str, Evaluation]
    alerts: dict[str, Alert]


_Stored = tuple[bool, float, int, int, str, int | None]
"""An evaluation row as read: holds, value, last_time, last_seen, samples (JSON), deadline."""


class EvaluationState:
    """The evaluation state's reads and writes inside one transaction (part of
    :class:`~.writes.Writes`)."""

    tx: Transaction
    _stored: dict[str, _Stored]
    """The evaluations this transaction read (or wrote), as they are in the store: a save
    writes only what differs from them."""

    async def snapshot(self, devices: Iterable[DeviceKey], fingerprints: Sequence[str]) -> Snapshot:
        """The rules' revision, the state of ``devices``, and the :meth:`evaluations` and
        :meth:`alerts` of ``fingerprints``, read together (two statements)."""
        keys = sorted(set(devices))
        device_queries = _device_queries(keys) or [(RULES_REVISION, ())]
        found = await self.tx.fetch_many([*device_queries, *_series_queries(fingerprints)])
        states = [row for rows in found[: len(device_queries)] for row in rows]
        series = [row for rows in found[len(device_queries) :] for row in rows]
        return Snapshot(
            int(states[0][-1] or 0) if states else 0,
            _devices(keys, states if keys else ()),
            self._evaluations(row for row in series if row[0] is not None),
            _alerts((row[-1],) for row in series if row[-1] is not None),
        )

    # -- devices: replay protection ---------------------------------------------------------

    async def set_devices(self, devices: Mapping[DeviceKey, DeviceState]) -> None:
        await self.tx.executemany(
            "INSERT INTO devices (field, site, device, last_sequence, times) VALUES ($1, $2, "
            "$3, $4, $5) ON CONFLICT (field, site, device) DO UPDATE SET last_sequence = "
            "excluded.last_sequence, times = excluded.times",
            [
                (*key, state.sequence, json.dumps(state.times, separators=(",", ":")))
                for key, state in devices.items()
            ],
        )

    # -- evaluations ------------------------------------------------------------------------

    async def _by_fingerprint(self, select: str, fingerprints: Sequence[str]) -> list[Any]:
        """Rows of ``select … WHERE fingerprint IN (…)``, a chunk of keys per statement."""
        found = await self.tx.fetch_many(keyed(select, fingerprints))
        return [row for rows in found for row in rows]

    async def evaluations(self, fingerprints: Sequence[str]) -> dict[str, Evaluation]:
        return self._evaluations(await self._by_fingerprint(_EVALUATIONS, fingerprints))

    def _evaluations(self, rows: Iterable[Sequence[Any]]) -> dict[str, Evaluation]:
        found = {}
        for row in rows:
            evaluation = found[row[0]] = _evaluation(row)
            self._stored[row[0]] = (
                evaluation.holds,
                evaluation.value,
                evaluation.last_time,
                evaluation.last_seen,
                str(row[10]),
                row[11],
            )
        return found

    async def save_evaluations(self, rows: Iterable[tuple[Evaluation, int | None]]) -> None:
        """Evaluations with their deadlines (when the clock alone changes them). Only what
        changed is written: an evaluation as it was read not at all, one whose reading
        moved only its value and times (a threshold not crossed, the common case) by a
        narrow update."""
        whole, moved = [], []
        for e, deadline in rows:
            value = e.value if math.isfinite(e.value) else 0.0
            samples = json.dumps(e.samples) if e.samples else "[]"
            now = (e.holds, value, e.last_time, e.last_seen, samples, deadline)
            before = self._stored.get(e.fingerprint)
            if now == before:
                continue
            self._stored[e.fingerprint] = now
            if before is not None and before[0] == e.holds and before[4] == samples:
                moved.append((e.fingerprint, value, e.last_time, e.last_seen, deadline))
                continue
            whole.append(
                (
                    e.fingerprint,
                    e.rule_id,
                    partition_of(e.field, e.site, e.device),
                    e.field,
                    e.site,
                    e.device,
                    e.metric,
                    int(e.holds),
                    value,
                    e.last_time,
                    e.last_seen,
                    samples,
                    deadline,
                )
            )
        await self.tx.executemany(
            "UPDATE evaluations SET value = $2, last_time = $3, last_seen = $4, deadline = $5 "
            "WHERE fingerprint = $1",
            moved,
        )
        await self.tx.executemany(
            "INSERT INTO evaluations (fingerprint, rule_id, part, field, site, device, metric, "
            "holds, value, last_time, last_seen, samples, deadline) VALUES ($1, $2, $3, $4, $5, "
            "$6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT (fingerprint) DO UPDATE SET "
            "holds = excluded.holds, value = excluded.value, last_time = excluded.last_time, "
            "last_seen = excluded.last_seen, samples = excluded.samples, "
            "deadline = excluded.deadline",
            whole,
        )

    async def forget_rule(self, rule_id: str) -> None:
        await self.tx.execute("DELETE FROM evaluations WHERE rule_id = $1", rule_id)
        self._stored.clear()  # what was read may be gone: a later save writes it whole

    async def alerts(self, fingerprints: Sequence[str]) -> dict[str, Alert]:
        return _alerts(await self._by_fingerprint(_ALERTS, fingerprints))


def _device_queries(keys: Sequence[DeviceKey]) -> list[Query]:
    """Each device's row (or nulls), with the rules' revision: the key list is joined to the
    table, so that each device is looked up by the primary key (SQLite scans the whole
    table for a row-value IN list)."""
    return [
        (
            "SELECT k.column1, k.column2, k.column3, d.last_sequence, d.times, "
            f"({RULES_REVISION}) FROM (VALUES {tuples(len(chunk), 3)}) AS k "
            "LEFT JOIN devices d ON d.field = k.column1 AND d.site = k.column2 "
            "AND d.device = k.column3",
            [part for key in chunk for part in key],
        )
        for start in range(0, len(keys), CHUNK)
        if (chunk := keys[start : start + CHUNK])
    ]


def _series_queries(fingerprints: Sequence[str]) -> list[Query]:
    """The evaluation (its columns, or nulls) and the alert body (or null) of each
    fingerprint, in one statement per chunk of keys."""
    return [
        (
            f"SELECT {_EVALUATION_COLUMNS.replace('@', 'e.')}, a.body FROM "
            f"(VALUES {tuples(len(chunk), 1)}) AS k "
            "LEFT JOIN evaluations e ON e.fingerprint = k.column1 "
            "LEFT JOIN alerts a ON a.fingerprint = k.column1",
            chunk,
        )
        for start in range(0, len(fingerprints), CHUNK)
        if (chunk := fingerprints[start : start + CHUNK])
    ]


def _devices(
    keys: Sequence[DeviceKey], rows: Iterable[Sequence[Any]]
) -> dict[DeviceKey, DeviceState]:
    found = {key: DeviceState(-1, {}) for key in keys}
    for field, site, device, sequence, times, _ in rows:
        if sequence is not None:
            found[(field, site, device)] = DeviceState(int(sequence), json.loads(times))
    return found


def _alerts(rows: Iterable[Sequence[Any]]) -> dict[str, Alert]:
    alerts = (alert_from_json(row[0]) for row in rows)
    return {alert.fingerprint: alert for alert in alerts}


def _evaluation(row: Sequence[object]) -> Evaluation:
    fp, rule_id, field, site, device, metric, holds, value, last_time, last_seen, samples = row[:11]
    return Evaluation(
        str(fp),
        str(rule_id),
        str(field),
        str(site),
        str(device),
        str(metric),
        bool(holds),
        float(value),  # type: ignore[arg-type]
        int(last_time),  # type: ignore[call-overload]
        int(last_seen),  # type: ignore[call-overload]
        [(int(t), float(v)) for t, v in json.loads(str(samples))] if samples != "[]" else [],
    )
