"""``smartcity up``: the whole city on one machine, started in order and kept running.

The order, each step waiting for what it needs (:mod:`smartcity.up.processes` says how
each process is started and when it counts as ready):

1. the plan (:mod:`.prepare`): the sites, every port (a taken one is an error before
   anything starts), the NATS authorization with one user per service and per agent
   (passwords kept across runs), and on the first run the accounts (:mod:`.resume`, which
   keeps what a data folder holds across runs; :mod:`.seed`, in a short-lived process:
   :mod:`.seeding`);
2. ``nats-server`` and the simulators (one process for every site), together; once NATS
   serves, a short-lived ``smartcity streams ensure`` makes the streams (steps 2 to 5:
   :mod:`.startup`);
3. identity, records, monitoring and alerts, together, once NATS has its streams; the
   others serve once identity has announced its key set;
4. each site's agent once its site says it is ready (its profile needs the simulator's
   certificates or register map), the agents of ``--profiles`` once NATS is;
5. the console alongside the services; on the first run, the alert rules and site records
   (:mod:`.seeding` again) once every site's profile is known;
6. "ready", the endpoints, ``city.json`` (:mod:`.report`); the fault schedule; then the
   supervisor keeps everything running until Ctrl-C, SIGTERM or ``--duration``, and stops
   it in reverse (here).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from rich.console import Console

from smartcity.up import faults, seed
from smartcity.up.plan import SITES, Layout
from smartcity.up.prepare import Prepared, UpOptions, prepare
from smartcity.up.report import Reporter
from smartcity.up.resume import locked
from smartcity.up.startup import StartError, Startup
from smartcity.up.supervisor import ChildEvent, EventKind, Supervisor

__all__ = ["StartError", "UpOptions", "run_city"]


async def run_city(options: UpOptions, out: Console, stop: asyncio.Event) -> int:
    """Run the city until ``stop`` is set or ``options.duration`` has passed; the exit code.

    Raises :class:`InvalidArgument` or :class:`FailedPrecondition` (a taken port, a second
    ``up`` on the folder) before anything starts.
    """
    layout = Layout(options.data_dir.expanduser().absolute())
    with locked(layout):
        return await _City(options, layout, out).run(stop)


class _City:
    def __init__(self, options: UpOptions, layout: Layout, out: Console) -> None:
        self.options = options
        self.layout = layout
        self.reporter = Reporter(out)
        self.supervisor = Supervisor(
            layout.logs, on_event=self._on_event, stop_timeout=options.stop_timeout
        )
        self.prepared: Prepared

    def _on_event(self, event: ChildEvent) -> None:
        self.reporter.event(event)
        if not self.reporter.starting and event.kind in (EventKind.READY, EventKind.EXITED):
            self.prepared.report.write(self.supervisor.children)

    async def run(self, stop: asyncio.Event) -> int:
        began = time.monotonic()
        self.prepared = await prepare(self.options, self.layout, self.reporter)
        startup = Startup(
            self.prepared, self.layout, self.supervisor, self.reporter, self.options.ready_timeout
        )
        try:
            with self.reporter.progress:
                starting = asyncio.create_task(startup.start())
                stopped = asyncio.create_task(stop.wait())
                await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
                stopped.cancel()
            if not starting.done():
                starting.cancel()
                await asyncio.gather(starting, return_exceptions=True)
                self.reporter.line("interrupted while starting", "yellow")
                return 1
            try:
                starting.result()
            except StartError as exc:
                self.reporter.line(f"error: {exc}", "red")
                return 1
            return await self._serve(stop, startup.targets, time.monotonic() - began)
        finally:
            self.reporter.stopping = True
            self.reporter.line("stopping the city ...")
            await self.supervisor.stop()
            left = [c.name for c in self.supervisor.children.values() if c.pid is not None]
            self.prepared.report.write(self.supervisor.children, running=False)
            self.reporter.line(
                "stopped; nothing left running" if not left else f"still running: {left}"
            )

    async def _serve(
        self, stop: asyncio.Event, targets: list[faults.FaultTarget], seconds: float
    ) -> int:
        report, state = self.prepared.report, self.prepared.state
        self.reporter.starting = False
        report.ready_seconds = round(seconds, 2)
        order = [site.id for site in SITES]  # the schedule goes round in the table's order
        targets.sort(key=lambda target: order.index(target.site))
        report.faults = tuple(targets)
        report.login = {
            "identity": self.prepared.endpoints.address("identity"),
            "admin": seed.ADMIN.username,
            "operator": seed.OPERATOR.username,
        }
        report.write(self.supervisor.children)
        self.reporter.summary(report, state.accounts, state.notes, seconds)
        schedule = None
        if self.options.faults and targets:
            interval = self.options.fault_interval
            self.reporter.line(f"faults: one every {interval:g} s, in turn at each site")
            schedule = asyncio.create_task(
                faults.run_schedule(
                    targets,
                    interval,
                    lambda text, ok: self.reporter.line(text, "" if ok else "yellow"),
                )
            )
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.options.duration)
        finally:
            if schedule is not None:
                schedule.cancel()
                await asyncio.gather(schedule, return_exceptions=True)
        return 0
