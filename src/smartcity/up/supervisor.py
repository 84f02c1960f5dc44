"""Children in their own processes, kept running, and stopped without leaving anything behind.

Every child runs in its own process group (:mod:`smartcity.up.process_group`: a signal reaches
it and whatever it forks, and it dies with ``smartcity up``) and writes its stdout and stderr
to ``<log_dir>/<name>.log``, appended across restarts under a header line (what the
supervisor knows of a child, its log included, is in :mod:`smartcity.up.child`).

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
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from smartcity.up.child import Child, ChildSpec, Readiness
from smartcity.up.process_group import describe_status, spawn_in_group, sweep, terminate_group

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
            child.process = await spawn_in_group(spec.argv, log, env=spec.env, cwd=spec.cwd)
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
                sweep(process.pid)  # anything the child left in its group goes with it
            child.ready = False
            child.last_status = status if status is not None else 127
            if self._stopping or child.retired:
                child.notify()
                return
            ran = time.monotonic() - child.started_at
            crashes = 1 if ran >= self._stable_seconds else crashes + 1
            delay = min(self._backoff_initial * 2 ** (crashes - 1), self._backoff_max)
            self._emit(
                ChildEvent(EventKind.EXITED, child, status=child.last_status, tail=child.tail())
            )
            child.notify()
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
        child.notify()

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
                sweep(process.pid)
            return
        await terminate_group(process, self._stop_timeout)
        self._emit(ChildEvent(EventKind.STOPPED, child, status=process.returncode))

    def _emit(self, event: ChildEvent) -> None:
        if self._on_event is not None:
            self._on_event(event)
