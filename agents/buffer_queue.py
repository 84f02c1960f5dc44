"""The sending side of the agent's disk buffer: what the uplink reads (oldest first), removes
once JetStream has acknowledged it, merges into fewer messages, and moves to the quarantine.

:class:`~smartcity.agents.buffer.DiskBuffer` is this queue, opened on its file, plus the
appending side: it owns the connection, the lock and the counters these methods keep up to
date.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence

from smartcity.agents.buffer_records import Entry, Transaction


class SendQueue:
    """Batches on disk in the order they were appended, as the uplink takes them.

    Thread-safe: every method holds the buffer's lock while it touches the database.
    """

    _db: sqlite3.Connection
    _lock: threading.Lock
    _batches: int
    _bytes: int
    _quarantined: int

    def peek(self, limit: int = 100, after: int = 0) -> list[Entry]:
        """The oldest ``limit`` batches with id greater than ``after``, in order."""
        return self._entries("WHERE id > ? ORDER BY id LIMIT ?", (after, limit))

    def _entries(self, where: str, args: Sequence[object]) -> list[Entry]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT id, subject, msg_id, headers, readings, payload FROM batches {where}",
                args,
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

    def merge(self, groups: Sequence[tuple[Sequence[Entry], bytes, int]]) -> list[Entry | None]:
        """For each group ``(entries, payload, readings)``: replace consecutive batches of one
        device, never sent, by one batch in the place (and with the id) of the first; all
        groups in one transaction. Fewer, larger messages for a backlog.

        A group whose batches are no longer all on disk as they were read (another merge or
        a removal got there first) is left alone, and None stands for it."""
        merged: list[Entry | None] = []
        with self._lock:
            changes = []
            with self._transaction():
                for entries, payload, readings in groups:
                    ids = [entry.id for entry in entries]
                    marks = ",".join("?" * len(ids))
                    stored = self._db.execute(
                        f"SELECT id, length(payload) FROM batches WHERE id IN ({marks})", ids
                    ).fetchall()
                    if sorted(stored) != sorted((e.id, len(e.payload)) for e in entries):
                        merged.append(None)
                        continue
                    first = entries[0]
                    self._db.execute(
                        "UPDATE batches SET payload = ?, readings = ? WHERE id = ?",
                        (payload, readings, first.id),
                    )
                    self._db.execute(f"DELETE FROM batches WHERE id IN ({marks[2:]})", ids[1:])
                    merged.append(
                        Entry(
                            first.id, first.subject, first.msg_id, first.headers, readings, payload
                        )
                    )
                    changes.append(
                        (len(entries) - 1, len(payload) - sum(length for _, length in stored))
                    )
            for batches, size in changes:
                self._batches -= batches
                self._bytes += size
        return merged

    def quarantine(self, entry: Entry, reason: str) -> None:
        """Move a batch that must not be sent again as it is out of the queue, kept on disk
        with the reason, so that it neither blocks the uplink nor disappears."""
        with self._lock:
            with self._transaction():
                deleted = self._db.execute("DELETE FROM batches WHERE id = ?", (entry.id,))
                if deleted.rowcount:
                    self._db.execute(
                        "INSERT INTO quarantine(id, subject, msg_id, headers, readings, payload, "
                        "reason) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (
                            entry.id,
                            entry.subject,
                            entry.msg_id,
                            json.dumps(entry.headers),
                            entry.readings,
                            entry.payload,
                            reason,
                        ),
                    )
            if deleted.rowcount:
                self._batches -= 1
                self._bytes -= len(entry.payload)
                self._quarantined += 1

    def _transaction(self) -> Transaction:
        return Transaction(self._db)
