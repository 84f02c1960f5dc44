"""Children in their own processes, kept running, and stopped without leaving anything behind.

Every child runs in its own process group (so a signal reaches it and whatever it forks,
and Ctrl-C in the terminal reaches only ``smartcity up``, which then stops the children in
order) and writes its stdout and stderr to ``<log_dir>/<name>.log``, appended across restarts
under a header line. On Linux a child also gets SIGKILL from the kernel if the supervisor
itself is killed outright (the same trampoline as the embedded nats-server), so not even a
``kill -9`` of ``smartcity up`` leaves children behind.

A child is *ready* when its condition says so (:mod:`smartcity.up.readiness`). A child that
exits while the supervisor is not stopping is reported with its exit status and the last
lines of its log, and started again after a back-off that doubles with each consecutive
crash up to a cap; a child that ran for ``stable_seconds`` starts over at the first delay.
:meth:`Supervisor.stop` stops the children stage by stage, the last started first: SIGTERM
to the group, a bounded wait for the whole group to go, then SIGKILL to what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import shlex
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from smartcity.runtime.nats_server import die_with_parent

__all__ = [
    "Child",
    "ChildEvent",
    "ChildFailedError",
    "ChildSpec",
    "EventKind",
    "Readiness",
    "Supervisor",
    "describe_status",
]

_TAIL_LINES = 15
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


class EventKind(enum.StrEnum):
    STARTED = "started"
    READY = "ready"
    EXITED = "exited"
    RESTARTING = "restarting"
    STOPPED = "stopped"


@dataclass(frozen=True)
class ChildEvent:
    kind: EventKind
    child: Child
    status: int | None = None
    """Exit status (negative: the signal that ended it)."""
    tail: str = ""
    """The last lines of the child's log, for an unexpected exit."""
    delay: float = 0.0
    """Seconds until the restart."""


class ChildFailedError(RuntimeError):
    """A child ended, or was not ready in time, before it ever became ready."""

    def __init__(self, child: Child, reason: str) -> None:
        super().__init__(f"{child.name} {reason}")
        self.child = child
        self.reason = reason


def describe_status(status: int | None) -> str:
    """``exit status 3`` or ``killed by SIGKILL`` for an exit status."""
    if status is None:
        return "still running"
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exit status {status}"


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
    """Stopped for good by :meth:`Supervisor.retire`: not restarted."""
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

    def tail(self, lines: int = _TAIL_LINES) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def _notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


class Supervisor:
    """Starts children, restarts the ones that end, and stops them all (module docstring)."""

    def __init__(
        self,
        log_dir: Path,
        *,
        on_event: Callable[[ChildEvent], None] | None = None,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
        stable_seconds: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        if backoff_initial <= 0 or backoff_max < backoff_initial or stop_timeout <= 0:
            raise ValueError("back-off and stop timeout must be positive, the cap >= the start")
        self.log_dir = log_dir
        self.children: dict[str, Child] = {}
        self._on_event = on_event
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._stable_seconds = stable_seconds
        self._stop_timeout = stop_timeout
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping = False

    # -- starting ----------------------------------------------------------------------------

    async def start(self, spec: ChildSpec) -> Child:
        """Start ``spec`` and keep it running until :meth:`stop`; returns once it is spawned."""
        if spec.name in self.children:
            raise ValueError(f"a child named {spec.name!r} is already supervised")
        if self._stopping:
            raise RuntimeError("the supervisor is stopping")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        child = Child(spec, self.log_dir / f"{spec.name}.log")
        self.children[spec.name] = child
        await self._spawn(child)
        self._tasks[spec.name] = asyncio.create_task(self._keep(child), name=f"keep {spec.name}")
        return child

    async def wait_ready(self, name: str, timeout: float) -> float:  # noqa: ASYNC109
        """Wait until child ``name`` is ready; the seconds its current run took to get there.

        Raises :class:`ChildFailedError` when it exits before it was ever ready, or is not ready
        within ``timeout`` seconds.
        """
        child = self.children[name]
        deadline = time.monotonic() + timeout
        while not child.ready:
            if child.last_status is not None and not child.ever_ready:
                raise ChildFailedError(child, f"ended ({describe_status(child.last_status)})")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                what = child.spec.ready.description if child.spec.ready else "running"
                raise ChildFailedError(
                    child, f"was not ready within {timeout:g} s (waiting for {what})"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(child.changed.wait(), remaining)
        return time.monotonic() - child.started_at

    async def wait_condition(
        self,
        name: str,
        condition: Readiness,
        timeout: float,  # noqa: ASYNC109
    ) -> None:
        """Wait until ``condition`` holds for child ``name``, or the child is ready: a part of
        what its readiness covers (one site of a process that serves several).

        Raises :class:`ChildFailedError` as :meth:`wait_ready` does.
        """
        child = self.children[name]
        deadline = time.monotonic() + timeout
        while not child.ready:
            if child.last_status is not None and not child.ever_ready:
                raise ChildFailedError(child, f"ended ({describe_status(child.last_status)})")
            try:
                if child.pid is not None and await condition.check(child):
                    return
            except Exception:  # a probe that fails is "not yet"
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ChildFailedError(
                    child,
                    f"was not ready within {timeout:g} s (waiting for {condition.description})",
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(child.changed.wait(), min(condition.interval, remaining))

    async def _spawn(self, child: Child) -> None:
        spec = child.spec
        with child.log.open("ab") as log:
            header = f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} start {child.starts + 1}: "
            log.write(f"{header}{shlex.join(spec.argv)}\n".encode())
            log.flush()
            child.log_offset = log.tell()
            child.process = await asyncio.create_subprocess_exec(
                *die_with_parent(list(spec.argv)),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=dict(spec.env) if spec.env is not None else None,
                cwd=spec.cwd,
                process_group=0,
            )
        child.starts += 1
        child.ready = False
        child.last_status = None
        child.started_at = time.monotonic()
        self._emit(ChildEvent(EventKind.STARTED, child))

    async def _keep(self, child: Child) -> None:
        """Watch ``child``: readiness, then its exit, then a restart after the back-off."""
        crashes = 0
        while True:
            process = child.process
            status: int | None = None
            if process is not None:
                watcher = asyncio.create_task(self._watch_ready(child, process))
                status = await process.wait()
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)
                _sweep(process.pid)  # anything the child left in its group goes with it
            child.ready = False
            child.last_status = status if status is not None else 127
            if self._stopping or child.retired:
                child._notify()
                return
            ran = time.monotonic() - child.started_at
            crashes = 1 if ran >= self._stable_seconds else crashes + 1
            delay = min(self._backoff_initial * 2 ** (crashes - 1), self._backoff_max)
            self._emit(
                ChildEvent(EventKind.EXITED, child, status=child.last_status, tail=child.tail())
            )
            child._notify()
            self._emit(ChildEvent(EventKind.RESTARTING, child, status=status, delay=delay))
            await asyncio.sleep(delay)
            if self._stopping or child.retired:
                return
            try:
                await self._spawn(child)
            except OSError as exc:  # cannot even start (no memory, a deleted binary)
                with child.log.open("a", encoding="utf-8") as log:
                    log.write(f"--- cannot start: {exc}\n")
                child.process = None
                child.started_at = time.monotonic()

    async def _watch_ready(self, child: Child, process: asyncio.subprocess.Process) -> None:
        readiness = child.spec.ready
        while readiness is not None and process.returncode is None:
            try:
                if await readiness.check(child):
                    break
            except Exception:  # a probe that fails is "not yet"
                pass
            await asyncio.sleep(readiness.interval)
        if process.returncode is not None:
            return
        child.ready = child.ever_ready = True
        self._emit(ChildEvent(EventKind.READY, child))
        child._notify()

    # -- stopping ----------------------------------------------------------------------------

    async def retire(self, name: str) -> None:
        """Stop child ``name`` for good (one that is not needed after all)."""
        child = self.children[name]
        child.retired = True
        await self._stop_child(child)

    async def stop(self) -> None:
        """Stop every child, the highest stage first; returns when all are gone."""
        self._stopping = True
        stages = sorted({child.spec.stage for child in self.children.values()}, reverse=True)
        for stage in stages:
            group = [c for c in self.children.values() if c.spec.stage == stage]
            await asyncio.gather(*(self._stop_child(child) for child in group))
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        # A restart that was under way when the stop began has a process of its own.
        for child in self.children.values():
            if child.process is not None and child.process.returncode is None:
                await self._stop_child(child)

    async def _stop_child(self, child: Child) -> None:
        process = child.process
        task = self._tasks.get(child.name)
        if process is None or process.returncode is not None:
            if task is not None:
                task.cancel()  # waiting out a back-off: nothing runs
            if process is not None:
                _sweep(process.pid)
            return
        group = process.pid
        _signal_group(group, signal.SIGTERM)
        deadline = time.monotonic() + self._stop_timeout
        while time.monotonic() < deadline:
            if process.returncode is not None and not _group_alive(group):
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 0.05)
        else:
            _signal_group(group, signal.SIGKILL)
        await process.wait()
        _sweep(group)
        self._emit(ChildEvent(EventKind.STOPPED, child, status=process.returncode))

    def _emit(self, event: ChildEvent) -> None:
        if self._on_event is not None:
            self._on_event(event)


def _signal_group(group: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signum)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _sweep(group: int) -> None:
    """SIGKILL whatever is left in the process group of a child that has ended."""
    if _group_alive(group):
        _signal_group(group, signal.SIGKILL)
