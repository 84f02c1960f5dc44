"""What the agent's disk buffer stores and hands back: its tables, the records that go in
(:class:`NewBatch`, :class:`Row`) and come out (:class:`Entry`), and its transaction."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

SCHEMA = """
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
CREATE TABLE IF NOT EXISTS reserved (
    epoch TEXT NOT NULL,
    device TEXT NOT NULL,
    first INTEGER NOT NULL,
    next INTEGER NOT NULL,
    PRIMARY KEY (epoch, device)
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY,
    subject TEXT NOT NULL,
    msg_id TEXT NOT NULL,
    headers TEXT NOT NULL,
    readings INTEGER NOT NULL,
    payload BLOB NOT NULL,
    reason TEXT NOT NULL,
    created REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0)
);
"""

Build = Callable[[int], tuple[str, bytes]]
"""``build(first_sequence) -> (msg_id, payload)``, called once the batch is numbered."""


@dataclass(frozen=True, slots=True)
class Entry:
    id: int
    subject: str
    msg_id: str
    headers: dict[str, str]
    readings: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class NewBatch:
    """A batch to append: ``count`` readings of ``device``, built once numbered."""

    subject: str
    device: str
    count: int
    build: Build
    headers: Mapping[str, str] = field(default_factory=dict)


class Row(NamedTuple):
    """A numbered batch, ready to store."""

    subject: str
    device: str
    first: int
    count: int
    msg_id: str
    headers: Mapping[str, str]
    payload: bytes


@dataclass(frozen=True, slots=True)
class BufferStats:
    batches: int
    bytes: int
    dropped_batches: int
    dropped_bytes: int
    quarantined: int = 0


class Transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on any error, the commit's included."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            try:
                self._db.execute("COMMIT")
            except BaseException:  # a full disk can fail the commit itself
                self._rollback()
                raise
        else:
            self._rollback()

    def _rollback(self) -> None:
        if self._db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
