"""One agent in several processes: ``smartcity agent --workers N``.

One Python process reads, encodes and ships on one core. Where its devices offer more than
that core can carry, the agent spreads them over ``N`` worker processes, each a complete
agent (``smartcity agent`` with part of the profiles) under a supervisor that starts them,
restarts one that dies, and stops them all in order.

What the agent's rules require of the split:

* **One buffer, one process.** Each worker is an agent of its own with its own id, hence its
  own disk buffer, buffer lock and heartbeat subject: worker ``k`` of ``N`` is
  ``<agent id>-<k>of<N>`` (the agent id as without workers: ``--id``, ``agent.id``, or the
  host name and a hash of all the devices). Two supervisors of the same devices give their
  workers the same ids, so the second one's workers are refused by the buffer locks and the
  supervisor stops with that error, as a second plain agent would.
* **A restart finds its backlog.** The split depends only on the set of devices and ``N``:
  the same profiles and the same ``N`` put every device in the same worker again, which
  finds the batches it left in its buffer. Another ``N`` gives other ids, so no worker ever
  inherits a buffer holding the batches of a device that another worker now reads (that
  would put a device's batches in the stream from two processes, out of order); the old
  buffers are named in a warning instead.
* **A shared link stays in one process.** Devices behind one Modbus TCP gateway or on one
  serial port share one connection (:mod:`~smartcity.agents.modbus.lines`), which works
  only within a process: a link's devices always go to the same worker.

Devices are spread by load (points per second), the busiest link first, each to the worker
with the least load so far.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import re
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from smartcity.agents.profile import ModbusDevice, OpcuaDevice
from smartcity.agents.resilience import Backoff
from smartcity.runtime.subjects import worker_agent_id

log = logging.getLogger(__name__)

Profile = ModbusDevice | OpcuaDevice

WORKER_ID = re.compile(r"^(?P<base>.+)-(?P<index>\d+)of(?P<count>\d+)$")
"""Ids of the workers of one agent: ``<agent id>-<k>of<N>``."""
USAGE_EXIT = 2
"""The exit code of an agent that cannot run as configured: restarting it cannot help."""
STABLE_AFTER = 60.0
"""A worker that ran this long before it died is restarted without delay growing."""


worker_id = worker_agent_id
"""The id of worker ``index`` (from 1) of ``count`` (:func:`smartcity.runtime.subjects.
worker_agent_id`, the rule the NATS authorization follows too)."""


def siblings(agent_id: str) -> re.Pattern[str] | None:
    """For a worker's id, the buffer file names of every worker of its agent."""
    match = WORKER_ID.match(agent_id)
    if match is None:
        return None
    base, count = re.escape(match["base"]), match["count"]
    return re.compile(rf"^{base}-\d+of{count}\.buffer\.db$")


def link_of(profile: Profile) -> str:
    """What devices sharing one connection have in common."""
    if isinstance(profile, ModbusDevice):
        from smartcity.agents.modbus.lines import line_key

        return line_key(profile.connection)
    return profile.endpoint


def load_of(profile: Profile) -> float:
    """Points per second the device is read at (a subscription counts as its sampling)."""
    return sum(1.0 / profile.interval_of(point) for point in profile.points)


def split(profiles: Sequence[Profile], count: int) -> list[list[int]]:
    """Indices of ``profiles`` per worker: at most ``count`` non-empty groups, links kept
    whole, balanced by load; the same set of profiles always gives the same split."""
    links: dict[str, list[int]] = {}
    for index in sorted(range(len(profiles)), key=lambda i: _key(profiles[i])):
        links.setdefault(link_of(profiles[index]), []).append(index)
    groups: list[list[int]] = [[] for _ in range(min(count, len(links)))]
    loads = [0.0] * len(groups)
    ordered = sorted(
        links.items(), key=lambda item: (-sum(load_of(profiles[i]) for i in item[1]), item[0])
    )
    for _, members in ordered:
        target = loads.index(min(loads))
        groups[target] += members
        loads[target] += sum(load_of(profiles[i]) for i in members)
    return groups


def _key(profile: Profile) -> tuple[str, str]:
    return (profile.site, profile.device)


@dataclass
class Worker:
    agent_id: str
    profiles: list[Path]
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    started: float = 0.0


def _parent_death_signal() -> Callable[[], None]:
    """What a worker runs between fork and exec so that it gets SIGTERM (and drains its
    buffer) when its supervisor dies, even killed outright. The C function is looked up here,
    in the supervisor: the child only calls it."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: workers outlive a killed supervisor
        return lambda: None
    set_pdeathsig = 1  # PR_SET_PDEATHSIG

    def arm() -> None:  # pragma: no cover (runs in the child before exec)
        prctl(set_pdeathsig, int(signal.SIGTERM))

    return arm


class Supervisor:
    """Runs the workers until stopped; see the module documentation."""

    def __init__(
        self, workers: list[Worker], arguments: Sequence[str], *, drain_timeout: float = 5.0
    ) -> None:
        self.workers = workers
        self.arguments = list(arguments)
        """Options every worker gets (``--nats``, ``--config``)."""
        self.stop_timeout = drain_timeout + 30.0
        """How long a stopping worker may take (its drain, and its shutdown) before it is
        killed."""
        self.failure: str | None = None
        """Set when a worker could not run as configured; the supervisor then stops."""
        self._arm = _parent_death_signal()

    async def run(self, stop: asyncio.Event) -> None:
        for worker in self.workers:
            await self._start(worker)
        watchers = [asyncio.create_task(self._watch(worker, stop)) for worker in self.workers]
        try:
            await stop.wait()
        finally:
            for task in watchers:
                task.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
            await self._stop_all()

    async def _start(self, worker: Worker) -> None:
        command = [sys.executable, "-m", "smartcity.cli.main", "agent", "--id", worker.agent_id]
        for path in worker.profiles:
            command += ["--profile", str(path)]
        # A group of its own: a Ctrl-C in the terminal reaches the supervisor only, which
        # stops each worker once (a second signal would cut its drain short).
        worker.process = await asyncio.create_subprocess_exec(
            *command, *self.arguments, process_group=0, preexec_fn=self._arm
        )
        worker.started = time.monotonic()
        log.info(
            "agent worker %s started (pid %d, %d device(s))",
            worker.agent_id,
            worker.process.pid,
            len(worker.profiles),
        )

    async def _watch(self, worker: Worker, stop: asyncio.Event) -> None:
        """Restart the worker when it ends on its own, with back-off; stop everything when
        it cannot run as configured."""
        backoff = Backoff(initial=1.0, maximum=30.0)
        while True:
            assert worker.process is not None
            code = await worker.process.wait()
            if stop.is_set():
                return
            if code == USAGE_EXIT:
                self.failure = (
                    f"agent worker {worker.agent_id} cannot run as configured (its error is "
                    "above); all workers are stopped"
                )
                log.error("%s", self.failure)
                stop.set()
                return
            if time.monotonic() - worker.started > STABLE_AFTER:
                backoff.reset()  # it had been running fine: not a crash loop
            delay = backoff.next_delay()
            worker.restarts += 1
            log.error(
                "agent worker %s ended with exit code %d; restarting it in %.1f s",
                worker.agent_id,
                code,
                delay,
            )
            await asyncio.sleep(delay)
            await self._start(worker)

    async def _stop_all(self) -> None:
        running = [w.process for w in self.workers if w.process and w.process.returncode is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        for process in running:
            try:
                await asyncio.wait_for(process.wait(), self.stop_timeout)
            except TimeoutError:
                log.error("agent worker pid %d did not stop in time; killed", process.pid)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        failed = [w.agent_id for w in self.workers if w.process and w.process.returncode]
        if failed and self.failure is None:
            self.failure = f"agent worker(s) {', '.join(failed)} did not stop cleanly"
