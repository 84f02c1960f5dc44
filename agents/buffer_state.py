"""The state of an agent's disk buffer around the data it holds: who owns it (an OS lock),
whether its operations currently work, and what ``smartcity agent check`` can tell about it
from outside the agent."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from smartcity.runtime.errors import FailedPrecondition

log = logging.getLogger("smartcity.agents.buffer")


@dataclass
class BufferHealth:
    """Whether the buffer's operations work, said once per change of state, not per try.

    The agent retries a failed operation with back-off and keeps polling meanwhile; this is
    what its heartbeat, metrics and log report.
    """

    path: Path
    failures: int = 0
    """Failed operations since the agent started."""
    errors: dict[str, str] = field(default_factory=dict)
    """The operations failing now, with their last error."""
    since: float | None = None

    @property
    def failing(self) -> bool:
        return bool(self.errors)

    @property
    def last_error(self) -> str:
        return "; ".join(f"{operation}: {error}" for operation, error in self.errors.items())

    def failed(self, operation: str, exc: BaseException) -> None:
        self.failures += 1
        if operation not in self.errors:
            log.error(
                "disk buffer %s: %s failed (%s: %s); retrying with back-off, devices are "
                "still polled",
                self.path,
                operation,
                type(exc).__name__,
                exc,
            )
        self.errors[operation] = f"{type(exc).__name__}: {exc}"
        self.since = self.since or time.time()

    def recovered(self, operation: str) -> None:
        if self.errors.pop(operation, None) is None:
            return
        log.warning(
            "disk buffer %s: %s works again after %.1f s",
            self.path,
            operation,
            time.time() - (self.since or time.time()),
        )
        if not self.errors:
            self.since = None


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def acquire_lock(path: Path) -> IO[str]:
    """The buffer's exclusive lock, held until :meth:`DiskBuffer.close` or process exit."""
    handle = open(lock_path(path), "a+", encoding="utf-8")  # noqa: SIM115 (held while open)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise FailedPrecondition(
            f"the disk buffer {path} is in use by another process (pid {holder})"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def holder(path: Path) -> str | None:
    """The process id of the agent holding the buffer at ``path``; None when none does."""
    with open(lock_path(path), "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            return handle.read().strip() or "unknown"
    return None


@dataclass(frozen=True, slots=True)
class BufferReport:
    """What ``smartcity agent check`` says about a buffer, read from outside its agent."""

    path: Path
    exists: bool
    owner: str | None = None
    """Process id of the agent holding the buffer, if one does."""
    batches: int = 0
    quarantined: int = 0
    dropped_batches: int = 0
    problem: str = ""
    """Why an agent could not write to it now (a lock held elsewhere, a full disk)."""


def inspect_buffer(path: Path, timeout: float = 0.5) -> BufferReport:
    """Read a buffer's state without taking it from the agent that may own it; the write
    probe (an empty write transaction) holds the write lock for microseconds."""
    if not path.exists():
        return BufferReport(path, exists=False)
    owner = holder(path)
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=timeout)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
            counts = [
                db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] if table in tables else 0
                for table in ("batches", "quarantine")
            ]
            dropped = 0
            if "counters" in tables:
                row = db.execute("SELECT value FROM counters WHERE name = 'dropped_batches'")
                dropped = (row.fetchone() or (0,))[0]
            db.execute("BEGIN IMMEDIATE")
            db.execute("ROLLBACK")
    except sqlite3.Error as exc:
        return BufferReport(path, True, owner, problem=f"{type(exc).__name__}: {exc}")
    return BufferReport(path, True, owner, counts[0], counts[1], dropped)
