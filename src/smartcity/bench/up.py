"""``smartcity bench up``: how long the whole city takes to start, and what it costs idling.

``smartcity up --ports auto`` runs in a process of its own, in a new data folder, exactly as a
user starts it. Measured in that run:

1. **ready**: from starting the command until ``city.json`` records ``ready_seconds`` (the
   command's own figure, printed beside it, runs from its start inside the process; the
   difference is the interpreter's and the command's imports);
2. **idle cost**: after ``settle`` seconds, for a window of ``seconds``, the CPU time of the
   supervisor and every process below it (services, nats-server, the one process of all the
   simulators, agents, console), as cores (CPU seconds / wall seconds), and their memory
   (proportional set size, see :mod:`.processes`) at the end of the window, in total and per
   process. The city's polling, heartbeats and scheduled faults run during the window, as
   they do in a control room;
3. a clean stop: SIGINT, as Ctrl-C sends it, and the time until the command exits with every
   process it started gone.

Limits (issue 13): ready in under 20 s on a 2-core machine; idle under one core and 1 GiB.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smartcity.bench.processes import ProcessSample, cpu_between, descendants, sample, tree

READY_LIMIT_SECONDS = 20.0
CPU_LIMIT_CORES = 1.0
MEMORY_LIMIT_BYTES = 1 << 30

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ProcessCost:
    name: str
    processes: int
    cores: float
    memory_bytes: int


@dataclass(frozen=True)
class UpFigures:
    ready_seconds: float
    """From starting the command until city.json says ready."""
    reported_ready_seconds: float
    """What the command itself printed."""
    window_seconds: float
    cores: float
    memory_bytes: int
    processes: int
    stop_seconds: float
    left_behind: list[int]
    by_process: list[ProcessCost] = field(default_factory=list)


def _city(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # not written yet, or being replaced


def _named_pids(city: dict[str, Any]) -> dict[int, str]:
    """The pid of each process city.json names, with its name."""
    named: dict[int, str] = {}
    for group in ("services", "agents"):
        for name, entry in (city.get(group) or {}).items():
            if isinstance(entry, dict) and entry.get("pid"):
                prefix = "agent-" if group == "agents" else ""
                named[int(entry["pid"])] = f"{prefix}{name}"
    sites = len(city.get("simulators") or {})
    # Every simulated site runs in the one process "sim".
    alone = {"nats": "nats", "console": "console", "sim": f"sim ({sites} sites)"}
    for key, name in alone.items():
        entry = city.get(key)
        if isinstance(entry, dict) and entry.get("pid"):
            named[int(entry["pid"])] = name
    return named


def _by_process(
    root: int,
    named: dict[int, str],
    before: dict[int, ProcessSample],
    after: dict[int, ProcessSample],
    window: float,
) -> list[ProcessCost]:
    """Each named process with everything below it; the rest counts as the supervisor."""
    parents = {pid: s.parent for pid, s in after.items()}
    owner: dict[int, str] = {}
    for pid in descendants(root, parents):
        walk = pid
        while walk not in named and walk != root and walk in parents:
            walk = parents[walk]
        owner[pid] = named.get(walk, "supervisor (smartcity up)")
    costs: dict[str, list[Any]] = {}
    for pid, name in owner.items():
        entry = costs.setdefault(name, [0, 0.0, 0])
        entry[0] += 1
        entry[1] += cpu_between({pid: before[pid]} if pid in before else {}, {pid: after[pid]})
        entry[2] += after[pid].memory_bytes
    return [ProcessCost(name, n, cpu / window, memory) for name, (n, cpu, memory) in costs.items()]


def run_up_bench(
    *, seconds: float = 30.0, settle: float = 10.0, progress: Progress = lambda message: None
) -> UpFigures:
    with tempfile.TemporaryDirectory(prefix="smartcity-bench-up-") as folder:
        root = Path(folder) / "city"
        city_file = root / "city.json"
        command = [
            sys.executable, "-m", "smartcity.cli.main", "up", "--data-dir", str(root),
            "--ports", "auto", "--duration", str(settle + seconds + 120),
        ]  # fmt: skip
        log = (Path(folder) / "up.log").open("wb")
        progress("starting smartcity up")
        started = time.perf_counter()
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "COLUMNS": "160"},
        )  # fmt: skip
        try:
            city = wait_until_ready(process, city_file, Path(folder) / "up.log")
            ready = time.perf_counter() - started
            progress(f"ready after {ready:.1f} s; settling for {settle:g} s")
            time.sleep(settle)  # the measurement's own window, not a wait for a condition
            city = _city(city_file) or city
            before = tree(process.pid)
            progress(f"measuring the idle city for {seconds:g} s")
            began = time.perf_counter()
            time.sleep(seconds)
            after = tree(process.pid)
            window = time.perf_counter() - began
            by_process = _by_process(process.pid, _named_pids(city), before, after, window)
            progress("stopping (SIGINT)")
            everything = set(after)
            stop_started = time.perf_counter()
            process.send_signal(signal.SIGINT)
            code = process.wait(timeout=120)
            stop = time.perf_counter() - stop_started
            if code != 0:
                raise RuntimeError(f"smartcity up exited with {code}; its output is in the log")
            left = sorted(pid for pid in sample(everything - {process.pid}))
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            log.close()
        return UpFigures(
            ready_seconds=ready,
            reported_ready_seconds=float(city.get("ready_seconds") or 0.0),
            window_seconds=window,
            cores=cpu_between(before, after) / window,
            memory_bytes=sum(s.memory_bytes for s in after.values()),
            processes=len(after),
            stop_seconds=stop,
            left_behind=left,
            by_process=sorted(by_process, key=lambda cost: -cost.cores),
        )


def wait_until_ready(
    process: subprocess.Popen[bytes], city_file: Path, log: Path | None = None, within: float = 180
) -> dict[str, Any]:
    """``city.json`` once the ``smartcity up`` in ``process`` has recorded that it is ready;
    a ``RuntimeError`` (with the end of its ``log``) if it exits first or takes longer than
    ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        city = _city(city_file)
        if city is not None and city.get("ready_seconds") is not None:
            return city
        if process.poll() is not None:
            tail = log.read_text(encoding="utf-8", errors="replace")[-3000:] if log else ""
            raise RuntimeError(f"smartcity up exited with {process.returncode}:\n{tail}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"smartcity up was not ready within {within:g} s")
        time.sleep(0.1)
