"""The agent's write-ahead buffer: every batch is on disk before it is sent.

Batches are appended here (one SQLite transaction per group, WAL mode) and deleted only
after JetStream has acknowledged them. When the uplink is down batches pile up and are
replayed oldest first when it returns; when the agent is killed they are still here on the
next start. Sequence numbers are handed out from memory (:meth:`DiskBuffer.reserve`, which
never waits for the disk) and made durable by the transaction that stores their batches:
the stored counters and the ``reserved`` ranges always cover every batch on disk.

Ids that survive a rollback. A power cut (with relaxed durability) or a restored copy of the
file (a VM snapshot) can bring back counters that were already used. Two things keep that
from reusing an identity:

* every opening of the buffer is an *incarnation* with a random ``epoch``, part of the id of
  every batch it creates, so an id can never be issued twice by two incarnations;
* the first reservation of each device in an incarnation starts no lower than the clock in
  microseconds, so sequences keep growing across a rollback (a device would need more than a
  million readings a second to outrun the clock). A restart therefore leaves a gap in a
  device's sequence; the ``reserved`` table records each incarnation's range.

One buffer, one process: the buffer holds an exclusive OS lock on ``<file>.lock`` for as long
as it is open, and a second opening is refused with the holder's process id.

The buffer is capped in bytes. When an append would pass the cap, the oldest batches are
dropped, counted and logged; the loss is never silent, and the count survives restarts.

Durability: ``synchronous=FULL`` (the default) makes each committed group survive power loss;
the agent commits once per tick for all its devices, so the fsync is paid per group, not per
batch. ``NORMAL`` survives a crash of the process only.

What lives where: opening, appending and numbering here; the sending side (peek, remove,
merge, quarantine) in :mod:`~smartcity.agents.buffer_queue`; the tables and records in
:mod:`~smartcity.agents.buffer_records`; the lock, the health and what ``smartcity agent
check`` reads from outside in :mod:`~smartcity.agents.buffer_state`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Literal

from smartcity.agents.buffer_queue import SendQueue
from smartcity.agents.buffer_records import (
    SCHEMA,
    BufferStats,
    Build,
    Entry,
    NewBatch,
    Row,
)
from smartcity.agents.buffer_state import BufferHealth, acquire_lock, lock_path

__all__ = [
    "BufferHealth",
    "BufferStats",
    "Build",
    "DiskBuffer",
    "Entry",
    "NewBatch",
    "Row",
    "lock_path",
]

log = logging.getLogger(__name__)


class DiskBuffer(SendQueue):
    """A FIFO of (subject, message id, payload) on disk, capped in bytes.

    Thread-safe: the agent calls it from worker threads so that a slow or locked disk never
    stalls its event loop. :meth:`stats` reads memory only and never waits for the disk.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        max_bytes: int = 512 * 1024 * 1024,
        synchronous: Literal["NORMAL", "FULL"] = "FULL",
        busy_timeout: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.epoch = secrets.token_hex(6)
        """This incarnation's id: in every message id it creates."""
        self._clock = clock
        self._lock = threading.Lock()
        self._lock_file = acquire_lock(self.path)
        try:
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=busy_timeout
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._db.executescript(SCHEMA)
            row = self._db.execute(
                "SELECT count(*), coalesce(sum(length(payload)), 0), coalesce(max(id), 0) "
                "FROM batches"
            ).fetchone()
            # Batches with an id up to ``opened_after`` were created by an earlier run.
            self._batches, self._bytes, self.opened_after = row
            counters = dict(self._db.execute("SELECT name, value FROM counters").fetchall())
            (self._quarantined,) = self._db.execute("SELECT count(*) FROM quarantine").fetchone()
            self._next = dict(self._db.execute("SELECT device, next FROM sequences").fetchall())
        except BaseException:
            self._release()
            raise
        self._dropped = counters.get("dropped_batches", 0)
        self._dropped_bytes = counters.get("dropped_bytes", 0)
        self._started: set[str] = set()
        self._sequence_lock = threading.Lock()  # never held across disk I/O

    def close(self) -> None:
        with self._lock:
            self._db.close()
            self._release()

    def _release(self) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
        self._lock_file.close()

    # -- appending ---------------------------------------------------------------------------

    def append(
        self,
        subject: str,
        build: Build,
        *,
        device: str,
        count: int,
        headers: Mapping[str, str] | None = None,
    ) -> int:
        """Number ``count`` readings of ``device`` and store their batch, atomically; returns
        the first sequence number (see :meth:`append_many`)."""
        (first,) = self.append_many([NewBatch(subject, device, count, build, headers or {})])
        return first

    def append_many(self, batches: Sequence[NewBatch]) -> list[int]:
        """Number and store ``batches`` in one transaction, in order; all or nothing.

        A failed append (a locked or full disk, a build that raises) stores nothing and gives
        its sequence numbers back, provided nobody reserved for the same devices meanwhile.
        Returns each batch's first sequence number.
        """
        with self._sequence_lock:
            saved = {batch.device: self._next.get(batch.device) for batch in batches}
            started = set(self._started)
        rows: list[Row] = []
        try:
            for batch in batches:
                first = self.reserve(batch.device, batch.count)
                msg_id, payload = batch.build(first)
                rows.append(
                    Row(
                        batch.subject,
                        batch.device,
                        first,
                        batch.count,
                        msg_id,
                        batch.headers,
                        payload,
                    )
                )
            self.append_rows(rows)
        except BaseException:
            with self._sequence_lock:
                for device, value in saved.items():
                    if value is None:
                        self._next.pop(device, None)
                    else:
                        self._next[device] = value
                self._started = started
            raise
        return [row.first for row in rows]

    def reserve(self, device: str, count: int) -> int:
        """The first of ``count`` new sequence numbers of ``device``, from memory: it never
        waits for the disk. They become durable with the :meth:`append_rows` that stores
        them; a crash before that leaves a gap, never a repeat."""
        with self._sequence_lock:
            first = self._next.get(device, 0)
            if device not in self._started:
                # The first reservation of this incarnation: never below the clock, so that
                # a counter brought back by a rollback cannot hand out a sequence used before.
                first = max(first, int(self._clock() * 1_000_000))
                self._started.add(device)
            self._next[device] = first + count
            return first

    def append_rows(self, rows: Sequence[Row]) -> None:
        """Store numbered batches in one transaction, in order, with their reservations;
        drops the oldest batches first if the cap requires. Thread-safe; meant for a worker
        thread, since it waits for the disk."""
        for row in rows:
            if len(row.payload) > self.max_bytes:
                raise ValueError(
                    f"a batch of {len(row.payload)} bytes exceeds the buffer cap of "
                    f"{self.max_bytes}"
                )
        ranges: dict[str, tuple[int, int]] = {}
        for row in rows:
            low, high = ranges.get(row.device, (row.first, row.first + row.count))
            ranges[row.device] = (min(low, row.first), max(high, row.first + row.count))
        size = sum(len(row.payload) for row in rows)
        with self._lock:
            with self._transaction():
                dropped, dropped_bytes = self._make_room(size)
                self._db.executemany(
                    "INSERT INTO batches(subject, msg_id, headers, readings, payload) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [
                        (r.subject, r.msg_id, json.dumps(dict(r.headers)), r.count, r.payload)
                        for r in rows
                    ],
                )
                self._db.executemany(
                    "INSERT INTO sequences(device, next) VALUES (?, ?) ON CONFLICT(device) "
                    "DO UPDATE SET next = max(next, excluded.next)",
                    [(device, high) for device, (_, high) in ranges.items()],
                )
                self._db.executemany(
                    "INSERT INTO reserved(epoch, device, first, next) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(epoch, device) DO UPDATE SET "
                    "first = min(first, excluded.first), next = max(next, excluded.next)",
                    [(self.epoch, device, low, high) for device, (low, high) in ranges.items()],
                )
            self._batches += len(rows) - dropped
            self._bytes += size - dropped_bytes
            self._dropped += dropped
            self._dropped_bytes += dropped_bytes
        if dropped:
            log.error(
                "disk buffer full: dropped the %d oldest batch(es), %d bytes, to keep %s "
                "under %d bytes",
                dropped,
                dropped_bytes,
                self.path,
                self.max_bytes,
            )

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

    # -- state -------------------------------------------------------------------------------

    def depth_by_subject(self) -> dict[str, int]:
        """Batches waiting per subject, i.e. per device."""
        with self._lock:
            rows = self._db.execute("SELECT subject, count(*) FROM batches GROUP BY subject")
            return dict(rows.fetchall())

    def reserved(self) -> dict[str, list[tuple[int, int]]]:
        """Per device, the ``[first, next)`` sequence range each incarnation reserved."""
        with self._lock:
            rows = self._db.execute(
                "SELECT device, first, next FROM reserved ORDER BY device, first"
            ).fetchall()
        ranges: dict[str, list[tuple[int, int]]] = {}
        for device, first, next_ in rows:
            ranges.setdefault(device, []).append((first, next_))
        return ranges

    def stats(self) -> BufferStats:
        """From memory: safe to call on the event loop while the disk is slow or locked."""
        return BufferStats(
            batches=self._batches,
            bytes=self._bytes,
            dropped_batches=self._dropped,
            dropped_bytes=self._dropped_bytes,
            quarantined=self._quarantined,
        )
