"""The outbox: notifications waiting for delivery and every attempt made, in one SQLite file.

The file is the dispatcher's own (its schema is versioned apart from the alerts store's),
opened through the runtime's :class:`~smartcity.runtime.storage.sqlite.SqliteDatabase`, so
writes run in one writer thread and the event loop never waits on disk. An attempt and the
notification's new state are written in one transaction: after a crash, either both are
there or neither is, and a notification still marked pending is simply tried again.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from smartcity.runtime.errors import InvalidArgument
from smartcity.runtime.storage.migrations import load_migrations
from smartcity.runtime.storage.sqlite import SqliteDatabase, transaction
from smartcity.services.alerts.receivers.model import (
    DeliveryAttempt,
    DeliveryState,
    DeliveryStatus,
    Notification,
    Outcome,
)

MICROS = 1_000_000


def to_micros(seconds: float) -> int:
    return round(seconds * MICROS)


def from_micros(micros: int) -> datetime:
    return datetime.fromtimestamp(micros / MICROS, UTC)


def store_url(location: str | Path) -> str:
    """A ``sqlite:`` URL for a file path (a URL is kept as it is)."""
    text = str(location)
    if text.startswith("sqlite:"):
        return text
    return f"sqlite:///{Path(text).absolute()}"


@dataclass(frozen=True, slots=True)
class Pending:
    """A notification still to be delivered, as the dispatcher resumes it."""

    notification_id: int
    notification: Notification
    submitted_at: float
    attempts: int
    next_attempt_at: float


class OutboxStore:
    def __init__(self, location: str | Path) -> None:
        self._database = SqliteDatabase(store_url(location), name="alerts-outbox")
        self.url = self._database.url
        self._migrations = load_migrations("smartcity.services.alerts.receivers.migrations")

    async def open(self) -> None:
        await self._database.open(self._migrations, lambda db: None)

    async def close(self) -> None:
        await self._database.close()

    async def add(self, notification: Notification, submitted_at: float) -> int:
        body = json.dumps(notification.to_dict(), ensure_ascii=False)
        at = to_micros(submitted_at)

        def insert() -> int:
            with transaction(self._database.db):
                cursor = self._database.db.execute(
                    "INSERT INTO notifications (receiver, body, submitted_at, state, "
                    "next_attempt_at) VALUES (?, ?, ?, 'pending', ?)",
                    (notification.receiver, body, at, at),
                )
                return int(cursor.lastrowid or 0)

        return await self._database.in_writer(insert)

    async def pending(self) -> list[Pending]:
        """What is still to be delivered. A row that no longer reads as a notification
        (written by a newer version, or damaged) is failed with the reason, not resumed."""
        rows = await self._database.read(
            lambda db: db.execute(
                "SELECT id, body, submitted_at, attempts, next_attempt_at FROM notifications "
                "WHERE state = 'pending' ORDER BY next_attempt_at, id"
            ).fetchall()
        )
        found, unreadable = [], []
        for row in rows:
            try:
                notification = Notification.from_dict(json.loads(row[1]))
            except (InvalidArgument, ValueError) as exc:  # json's errors are ValueErrors
                unreadable.append((str(exc), int(row[0])))
                continue
            found.append(
                Pending(int(row[0]), notification, row[2] / MICROS, int(row[3]), row[4] / MICROS)
            )
        if unreadable:
            await self._database.in_writer(self._fail, unreadable)
        return found

    def _fail(self, rows: list[tuple[str, int]]) -> None:
        db = self._database.db
        with transaction(db):
            db.executemany(
                "UPDATE notifications SET state = 'failed', next_attempt_at = NULL, "
                "error = 'unreadable: ' || ? WHERE id = ?",
                rows,
            )

    async def record(
        self,
        attempt: DeliveryAttempt,
        state: DeliveryState,
        next_attempt_at: float | None,
    ) -> None:
        """Store ``attempt`` and move its notification to ``state`` (pending with the time
        of the next attempt, or delivered, or failed with the attempt's error)."""
        started = attempt.started_at.timestamp()
        values = (
            attempt.notification_id,
            attempt.number,
            attempt.receiver,
            to_micros(started),
            to_micros(attempt.duration_seconds),
            str(attempt.outcome),
            attempt.code,
            attempt.error,
        )
        next_at = None if next_attempt_at is None else to_micros(next_attempt_at)

        def write() -> None:
            db = self._database.db
            with transaction(db):
                db.execute("INSERT INTO delivery_attempts VALUES (?, ?, ?, ?, ?, ?, ?, ?)", values)
                db.execute(
                    "UPDATE notifications SET state = ?, attempts = ?, next_attempt_at = ?, "
                    "error = ? WHERE id = ?",
                    (str(state), attempt.number, next_at, attempt.error, attempt.notification_id),
                )

        await self._database.in_writer(write)

    async def attempts(self, notification_id: int) -> list[DeliveryAttempt]:
        rows = await self._database.read(
            lambda db: db.execute(
                "SELECT notification_id, number, receiver, started_at, duration_us, outcome, "
                "code, error FROM delivery_attempts WHERE notification_id = ? ORDER BY number",
                (notification_id,),
            ).fetchall()
        )
        return [
            DeliveryAttempt(
                notification_id=int(row[0]),
                number=int(row[1]),
                receiver=row[2],
                started_at=from_micros(row[3]),
                duration_seconds=row[4] / MICROS,
                outcome=Outcome(row[5]),
                code=row[6],
                error=row[7],
            )
            for row in rows
        ]

    async def status(self, notification_id: int) -> DeliveryStatus | None:
        def select(db: sqlite3.Connection) -> tuple | None:
            return db.execute(
                "SELECT id, receiver, state, submitted_at, attempts, next_attempt_at, error "
                "FROM notifications WHERE id = ?",
                (notification_id,),
            ).fetchone()

        row = await self._database.read(select)
        if row is None:
            return None
        return DeliveryStatus(
            notification_id=int(row[0]),
            receiver=row[1],
            state=DeliveryState(row[2]),
            submitted_at=from_micros(row[3]),
            attempts=int(row[4]),
            next_attempt_at=None if row[5] is None else from_micros(row[5]),
            error=row[6],
        )
