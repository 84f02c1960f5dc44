"""One supervised child: what to run, what happened to it, and what its log says.

A child's stdout and stderr go to ``<log_dir>/<name>.log``, appended across restarts under a
header line; :meth:`Child.output` and :meth:`Child.tail` read only the current run's part of
it (the readiness conditions of :mod:`smartcity.up.readiness` and the report of an exit read
it there). The supervisor (:mod:`smartcity.up.supervisor`) keeps the state up to date.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

__all__ = ["TAIL_LINES", "Child", "ChildSpec", "Readiness"]

TAIL_LINES = 15
"""Lines of a log quoted when a process fails."""
_TAIL_BYTES = 32 * 1024


class Readiness(Protocol):
    """A condition that says a child is ready; polled every ``interval`` seconds."""

    description: str
    interval: float

    async def check(self, child: Child) -> bool: ...


@dataclass(frozen=True)
class ChildSpec:
    name: str
    """Also the log's name: ``<log_dir>/<name>.log``."""
    argv: Sequence[str]
    env: Mapping[str, str] | None = None
    """The child's whole environment (``None``: the supervisor's own)."""
    ready: Readiness | None = None
    """``None``: ready as soon as it runs."""
    stage: int = 0
    """Children stop by stage, highest first; within a stage, together."""
    cwd: Path | None = None


@dataclass(eq=False)
class Child:
    """One supervised child: its spec, its current process and what happened to it."""

    spec: ChildSpec
    log: Path
    process: asyncio.subprocess.Process | None = None
    log_offset: int = 0
    """Where the current run's output starts in the log."""
    starts: int = 0
    ready: bool = False
    ever_ready: bool = False
    last_status: int | None = None
    started_at: float = 0.0
    retired: bool = False
    """Stopped for good by :meth:`~smartcity.up.supervisor.Supervisor.retire`: not restarted."""
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int | None:
        process = self.process
        return process.pid if process is not None and process.returncode is None else None

    def output(self) -> str:
        """What the current run wrote to its log so far (at most the last 32 KiB)."""
        try:
            with self.log.open("rb") as file:
                size = file.seek(0, os.SEEK_END)
                file.seek(max(self.log_offset, size - _TAIL_BYTES))
                return file.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = TAIL_LINES) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def notify(self) -> None:
        """Wake whoever waits on :attr:`changed` (it is replaced by a fresh event)."""
        self.changed.set()
        self.changed = asyncio.Event()
