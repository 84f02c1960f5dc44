"""What a tree of processes costs, read from Linux's ``/proc``: CPU time and memory.

Used by ``smartcity bench up`` to weigh a whole city (the supervisor and every process it
started) and usable for any process tree. CPU is the kernel's own accounting (``utime`` +
``stime`` of ``/proc/<pid>/stat``); memory is the proportional set size (``Pss`` of
``/proc/<pid>/smaps_rollup``), which shares each library page among the processes that map
it, so that the sum over a tree counts every page once (the resident set size would count
the Python interpreter's shared pages once per process). Where ``smaps_rollup`` cannot be
read, the resident set size stands in, an overestimate.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class ProcessSample:
    pid: int
    parent: int
    name: str
    cpu_seconds: float
    memory_bytes: int


def _stat(pid: int) -> tuple[str, int, float] | None:
    """``(name, parent pid, CPU seconds)`` of ``pid``; ``None`` if it is gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The name is in parentheses and may itself hold spaces and parentheses.
    name = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    # fields[0] is field 3 of proc(5): state; ppid is 4, utime 14, stime 15.
    parent = int(fields[1])
    ticks = int(fields[11]) + int(fields[12])
    return name, parent, ticks / TICKS_PER_SECOND


def _memory(pid: int) -> int:
    try:
        for line in (PROC / str(pid) / "smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int((PROC / str(pid) / "statm").read_text().split()[1]) * PAGE_BYTES
    except (OSError, ValueError, IndexError):
        return 0


def _all_parents() -> dict[int, int]:
    parents = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None:
                parents[int(entry.name)] = stat[1]
    return parents


def descendants(root: int, parents: Mapping[int, int] | None = None) -> list[int]:
    """``root`` and every process below it, parents before children."""
    parents = _all_parents() if parents is None else parents
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    found, queue = [], [root]
    while queue:
        pid = queue.pop(0)
        if pid in parents or pid == root:
            found.append(pid)
            queue.extend(sorted(children.get(pid, [])))
    return found


def sample(pids: Iterable[int]) -> dict[int, ProcessSample]:
    """The processes of ``pids`` still alive, each measured now."""
    samples = {}
    for pid in pids:
        stat = _stat(pid)
        if stat is not None:
            name, parent, cpu = stat
            samples[pid] = ProcessSample(pid, parent, name, cpu, _memory(pid))
    return samples


def tree(root: int) -> dict[int, ProcessSample]:
    """``root`` and its descendants, measured now."""
    return sample(descendants(root))


def cpu_between(before: Mapping[int, ProcessSample], after: Mapping[int, ProcessSample]) -> float:
    """CPU seconds the processes spent between two samples. A process that started in
    between counts from zero; one that ended in between is left out (its last share is
    unknown), which the caller sees as a change in the set of pids."""
    spent = 0.0
    for pid, now in after.items():
        then = before.get(pid)
        spent += now.cpu_seconds - (then.cpu_seconds if then is not None else 0.0)
    return spent
