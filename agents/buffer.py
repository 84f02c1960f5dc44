"""The agent's write-ahead buffer: every batch is on disk before it is sent.

A batch is appended here (one SQLite transaction, WAL mode) the moment it is built, and
deleted only after JetStream has acknowledged it. When the uplink is down batches pile up and
are replayed oldest first when it returns; when the agent is killed they are still here on
the next start. The per-device sequence counters live in the same database and advance in the
same transaction as the append, so a restarted agent never reuses a message id (JetStream
would silently drop the new batch as a duplicate of the old one) and the sequence of a device
only ever grows.

The buffer is capped in bytes. When an append would pass the cap, the oldest batches are
dropped, counted and logged; the loss is never silent, and the count survives restarts.

Durability: ``synchronous=NORMAL`` (the default here) survives a crash or kill of the agent
process; ``synchronous=FULL`` also survives power loss at the cost of an fsync per batch.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subject TEXT NOT NULL,
    msg_id TEXT NOT NULL,
    headers TEXT NOT NULL DEFAULT '{}',
    readings INTEGER NOT NULL DEFAULT 0,
    payload BLOB NOT NULL,
    created REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0)
);
CREATE TABLE IF NOT EXISTS sequences (
    device TEXT PRIMARY KEY,
    next INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class Entry:
    id: int
    subject: str
    msg_id: str
    headers: dict[str, str]
    readings: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class BufferStats:
    batches: int
    bytes: int
    dropped_batches: int
    dropped_bytes: int


class DiskBuffer:
    """A FIFO of (subject, message id, payload) on disk, capped in bytes."""

    def __init__(
        self,
        path: str | Path,
        *,
        max_bytes: int = 512 * 1024 * 1024,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
    ) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.executescript(_SCHEMA)
        row = self._db.execute("SELECT count(*), coalesce(sum(length(payload)), 0) FROM batches")
        self._batches, self._bytes = row.fetchone()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def append(
        self,
        subject: str,
        build: Callable[[int], tuple[str, bytes]],
        *,
        device: str,
        count: int,
        headers: Mapping[str, str] | None = None,
    ) -> int:
        """Number ``count`` readings of ``device`` and store their batch, atomically.

        ``build(first_sequence)`` returns ``(msg_id, payload)``; it runs inside the
        transaction, so either the batch and its sequence numbers are both on disk or
        neither is, and a crash can leave no gap that looks like lost readings. Returns the
        first sequence number. ``headers`` (the trace context of the read) are sent with
        the batch. Drops the oldest batches first if the cap requires.
        """
        with self._lock:
            with self._transaction():
                first = self._reserve(device, count)
                msg_id, payload = build(first)
                size = len(payload)
                if size > self.max_bytes:
                    raise ValueError(
                        f"a batch of {size} bytes exceeds the buffer cap of {self.max_bytes}"
                    )
                dropped, dropped_bytes = self._make_room(size)
                self._db.execute(
                    "INSERT INTO batches(subject, msg_id, headers, readings, payload) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (subject, msg_id, json.dumps(dict(headers or {})), count, payload),
                )
            self._batches += 1 - dropped
            self._bytes += size - dropped_bytes
        if dropped:
            log.error(
                "disk buffer full: dropped the %d oldest batch(es), %d bytes, to keep %s "
                "under %d bytes",
                dropped,
                dropped_bytes,
                self.path,
                self.max_bytes,
            )
        return first

    def _reserve(self, device: str, count: int) -> int:
        row = self._db.execute("SELECT next FROM sequences WHERE device = ?", (device,)).fetchone()
        # A device new to this buffer starts at the clock in microseconds, not at 1: if the
        # buffer file is ever lost, the new sequence still lies above everything this device
        # published before, and consumers that drop "already seen" sequences keep working.
        first = row[0] if row else time.time_ns() // 1000
        self._db.execute(
            "INSERT INTO sequences(device, next) VALUES (?, ?) "
            "ON CONFLICT(device) DO UPDATE SET next = excluded.next",
            (device, first + count),
        )
        return first

    def _make_room(self, size: int) -> tuple[int, int]:
        """Delete the oldest batches until ``size`` more bytes fit; returns what went."""
        if self._bytes + size <= self.max_bytes:
            return 0, 0
        dropped = dropped_bytes = 0
        last_id = None
        cursor = self._db.execute("SELECT id, length(payload) FROM batches ORDER BY id")
        for batch_id, length in cursor:
            if self._bytes - dropped_bytes + size <= self.max_bytes:
                break
            last_id = batch_id
            dropped += 1
            dropped_bytes += length
        if last_id is None:
            return 0, 0
        self._db.execute("DELETE FROM batches WHERE id <= ?", (last_id,))
        for name, value in (("dropped_batches", dropped), ("dropped_bytes", dropped_bytes)):
            self._db.execute(
                "INSERT INTO counters(name, value) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                (name, value),
            )
        return dropped, dropped_bytes

    def peek(self, limit: int = 100, after: int = 0) -> list[Entry]:
        """The oldest ``limit`` batches with id greater than ``after``, in order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, subject, msg_id, headers, readings, payload FROM batches "
                "WHERE id > ? ORDER BY id LIMIT ?",
                (after, limit),
            ).fetchall()
        return [
            Entry(batch_id, subject, msg_id, json.loads(headers), readings, payload)
            for batch_id, subject, msg_id, headers, readings, payload in rows
        ]

    def remove(self, ids: Iterable[int]) -> None:
        """Forget batches that JetStream has acknowledged."""
        ids = list(ids)
        if not ids:
            return
        placeholders = ",".join("?" * len(ids))
        with self._lock:
            with self._transaction():
                row = self._db.execute(
                    f"SELECT count(*), coalesce(sum(length(payload)), 0) FROM batches "
                    f"WHERE id IN ({placeholders})",
                    ids,
                ).fetchone()
                self._db.execute(f"DELETE FROM batches WHERE id IN ({placeholders})", ids)
            self._batches -= row[0]
            self._bytes -= row[1]

    def depth_by_subject(self) -> dict[str, int]:
        """Batches waiting per subject, i.e. per device."""
        with self._lock:
            rows = self._db.execute("SELECT subject, count(*) FROM batches GROUP BY subject")
            return dict(rows.fetchall())

    def stats(self) -> BufferStats:
        with self._lock:
            counters = dict(self._db.execute("SELECT name, value FROM counters").fetchall())
            return BufferStats(
                batches=self._batches,
                bytes=self._bytes,
                dropped_batches=counters.get("dropped_batches", 0),
                dropped_bytes=counters.get("dropped_bytes", 0),
            )

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
