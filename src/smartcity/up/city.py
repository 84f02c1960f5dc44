"""``smartcity up``: the whole city on one machine, started in order and kept running.

The order, each step waiting for what it needs (:mod:`smartcity.up.processes` says how
each process is started and when it counts as ready):

1. the plan: the sites, every port (a taken one is an error before anything starts), the
   NATS authorization with one user per service and per agent (passwords kept across runs),
   and on the first run the accounts (:mod:`smartcity.up.seed`, in a short-lived process:
   :mod:`smartcity.up.seeding`);
2. ``nats-server`` and the simulators (one process for every site), together; once NATS
   serves, a short-lived ``smartcity streams ensure`` makes the streams;
3. identity, records, monitoring and alerts, together, once NATS has its streams; the
   others serve once identity has announced its key set;
4. each site's agent once its site says it is ready (its profile needs the simulator's
   certificates or register map), the agents of ``--profiles`` once NATS is;
5. the console alongside the services; on the first run, the alert rules and site records
   (:mod:`smartcity.up.seeding` again) once every site's profile is known;
6. "ready", the endpoints, ``city.json``; the fault schedule; then the supervisor keeps
   everything running until Ctrl-C, SIGTERM or ``--duration``, and stops it in reverse.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from smartcity.runtime.errors import FailedPrecondition, InvalidArgument
from smartcity.runtime.nats_auth.plan import platform_principals
from smartcity.runtime.nats_auth.render import write_authorization
from smartcity.runtime.nats_server import NatsServerError, find_nats_server
from smartcity.up import faults, processes, profiles, seed, seeding, steps
from smartcity.up.plan import SIM_COMMANDS, SITES, Layout, Site, resolve_ports, wanted_ports
from smartcity.up.report import CityReport, Reporter
from smartcity.up.supervisor import (
    ChildEvent,
    ChildFailedError,
    ChildSpec,
    EventKind,
    Readiness,
    Supervisor,
)

__all__ = ["StartError", "UpOptions", "run_city"]

OPTIONAL = "console", "sim air"
"""Commands whose absence is a "skipped" line rather than an error."""


@dataclass(frozen=True)
class UpOptions:
    data_dir: Path
    profiles: Path | None = None
    simulate: bool = True
    duration: float | None = None
    host: str = "127.0.0.1"
    auto_ports: bool = False
    """Every port not given below is picked free; otherwise it is its default."""
    nats_port: int | None = None
    console_port: int | None = None
    grpc_port: int | None = None
    identity_http_port: int | None = None
    sim_port: int | None = None
    faults: bool = True
    fault_interval: float = 120.0
    ready_timeout: float = 60.0
    stop_timeout: float = 10.0


class StartError(RuntimeError):
    """A process the city needs did not start; the message has its log's last lines."""


@contextlib.contextmanager
def _locked(layout: Layout) -> Iterator[None]:
    """One ``smartcity up`` per data folder: a second would share stores and buffers."""
    layout.root.mkdir(parents=True, exist_ok=True)
    with layout.lock_file.open("a+", encoding="utf-8") as lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "?"
            raise FailedPrecondition(
                f"another smartcity up (pid {holder}) runs on {layout.root}; stop it first"
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        yield


async def run_city(options: UpOptions, out: Console, stop: asyncio.Event) -> int:
    """Run the city until ``stop`` is set or ``options.duration`` has passed; the exit code.

    Raises :class:`InvalidArgument` or :class:`FailedPrecondition` (a taken port, a second
    ``up`` on the folder) before anything starts.
    """
    layout = Layout(options.data_dir.expanduser().absolute())
    with _locked(layout):
        return await _City(options, layout, out).run(stop)


class _City:
    def __init__(self, options: UpOptions, layout: Layout, out: Console) -> None:
        self.options = options
        self.layout = layout
        self.out = out
        self.reporter = Reporter(out)
        self.supervisor = Supervisor(
            layout.logs, on_event=self._on_event, stop_timeout=options.stop_timeout
        )
        self.sites: list[Site] = []
        self.external: list[profiles.AgentFiles] = []
        self.targets: list[faults.FaultTarget] = []
        self.air_metrics: list[str] = []
        self.profiled: dict[str, asyncio.Event] = {}
        """Per simulated site: set once its profile is written, or its agent skipped."""
        self.accounts: list[seed.Account] = []
        self.notes: list[str] = []
        self.report: CityReport
        self.fields: asyncio.Task[object]
        """The field plugins, loading while the first processes start."""

    # -- the plan ----------------------------------------------------------------------------

    async def _prepare(self) -> None:
        options, layout = self.options, self.layout
        commands = processes.available_commands()
        optional_missing = {name for name in OPTIONAL if name not in commands}
        if options.simulate:
            for site in SITES:
                command = SIM_COMMANDS[site.simulator]
                if command in optional_missing:
                    reason = f"`smartcity {command}` is not installed"
                    self.reporter.skipped(site.id, reason)
                    continue
                self.sites.append(site)
        if options.profiles is not None:
            self.external = profiles.external_agents(options.profiles)
            clash = {a.id for a in self.external} & {s.id for s in self.sites}
            if clash:
                raise InvalidArgument(
                    f"agent id(s) {', '.join(sorted(clash))} of --profiles are simulated sites; "
                    "rename their folders, or run with --no-sim"
                )
        try:
            self.nats_binary = find_nats_server()
        except NatsServerError as exc:
            raise FailedPrecondition(str(exc)) from None
        with_console = "console" not in optional_missing
        ports = resolve_ports(
            options.host,
            wanted_ports(
                nats=options.nats_port,
                console=options.console_port,
                grpc_base=options.grpc_port,
                identity_http=options.identity_http_port,
                sim_base=options.sim_port,
                sites=tuple(self.sites),
                auto=options.auto_ports,
                with_console=with_console,
            ),
        )
        self.endpoints = processes.Endpoints(options.host, ports)
        self.report = CityReport(layout, self.endpoints, tuple(self.sites))
        if not with_console:
            self.report.skipped["console"] = "`smartcity console` is not installed"
            self.reporter.skipped("console", self.report.skipped["console"])
        agents = [profiles.planned_devices(site).plan for site in self.sites]
        agents += [agent.plan for agent in self.external]
        try:  # users whose credentials exist keep their passwords
            write_authorization(layout.nats_auth, platform_principals(agents))
        except OSError as exc:
            raise FailedPrecondition(f"cannot write {layout.nats_auth}: {exc}") from None
        layout.stores.mkdir(parents=True, exist_ok=True)
        self.state = seed.SeedState.load(layout.seed_file)
        if self.state.first_run:
            self.accounts = await seeding.make_accounts(layout.stores)
            self.state.accounts = [account.username for account in self.accounts]
            self.state.save()
        else:
            self.notes.append(
                f"resumed {layout.root}: its data, NATS credentials and accounts are kept"
            )

    # -- starting ----------------------------------------------------------------------------

    async def _start(self) -> None:
        layout, endpoints, supervisor = self.layout, self.endpoints, self.supervisor
        names = ["nats", *([processes.SIM] if self.sites else []), *processes.SERVICES]
        names += [f"agent-{site.id}" for site in self.sites]
        names += [f"agent-{agent.id}" for agent in self.external]
        if "console" not in self.report.skipped:
            names.append("console")
        self.reporter.expect(names)
        # The agents' profiles need the field plugins: loaded meanwhile, off the event loop.
        self.fields = asyncio.create_task(asyncio.to_thread(profiles.installed_fields))
        await supervisor.start(processes.nats_spec(layout, endpoints, self.nats_binary))
        if self.sites:
            await supervisor.start(processes.sims_spec(self.sites, layout, endpoints))
        await self._ready("nats")
        try:
            await steps.ensure_streams(layout, endpoints, self.options.ready_timeout)
        except steps.StepError as exc:
            raise StartError(str(exc)) from None
        for name in processes.SERVICES:
            await supervisor.start(processes.service_spec(name, layout, endpoints))
        self.profiled = {site.id: asyncio.Event() for site in self.sites}
        work = [asyncio.create_task(self._site(site)) for site in self.sites]
        if "console" not in self.report.skipped:
            # Alongside the services: it dials them only when a browser asks, and its own
            # start (seconds of imports on a busy machine) is then off the critical path.
            spec = processes.console_spec(layout, endpoints)
            work.append(asyncio.create_task(self._run(spec, optional=True)))
        for agent in self.external:
            self.report.agents[agent.id] = [str(path) for path in agent.profiles]
            spec = processes.agent_spec(agent.id, list(agent.profiles), layout, endpoints)
            work.append(asyncio.create_task(self._run(spec)))
        try:
            for name in processes.SERVICES:
                await self._ready(name)
            work.append(asyncio.create_task(self._seed_once_profiled()))
            await asyncio.gather(*work)
        finally:
            for task in work:
                task.cancel()

    async def _ready(
        self, name: str, *, optional: bool = False, part: Readiness | None = None
    ) -> bool:
        """Wait until child ``name`` is ready (or only ``part`` of it); ``False`` when an
        ``optional`` one failed and was retired."""
        timeout = self.options.ready_timeout
        try:
            if part is None:
                await self.supervisor.wait_ready(name, timeout)
            else:
                await self.supervisor.wait_condition(name, part, timeout)
        except ChildFailedError as exc:
            tail = "\n".join(f"  {line}" for line in exc.child.tail().splitlines())
            message = f"{exc}; last lines of {exc.child.log}:\n{tail or '  (nothing)'}"
            if not optional:
                raise StartError(message) from None
            await self.supervisor.retire(name)
            self.reporter.drop(name)
            self.report.skipped[name] = f"did not start ({exc.reason}), see {exc.child.log}"
            self.reporter.line(f"  ✗ {message}", "yellow")
            return False
        return True

    async def _run(self, spec: ChildSpec, *, optional: bool = False) -> bool:
        await self.supervisor.start(spec)
        return await self._ready(spec.name, optional=optional)

    async def _site(self, site: Site) -> None:
        """The site's agent, once its simulator serves (and wrote what the agent needs)."""
        optional = site.simulator == "air"  # `sim air` is young: the city starts without it
        host, port = self.endpoints.host, self.endpoints.sim_port(site)
        await self._ready(processes.SIM, part=processes.site_ready(site))
        endpoint = f"opc.tcp://{host}:{port}/station" if site.simulator == "opcua" else None
        endpoint = endpoint or f"tcp://{host}:{port}"
        await self.fields
        try:
            document = profiles.simulated_profile(site, self.layout, endpoint)
            files = profiles.write_profile(site, self.layout, document)
        except InvalidArgument as exc:
            if not optional:
                raise
            self.report.skipped[f"agent-{site.id}"] = str(exc)
            self.reporter.drop(f"agent-{site.id}")
            self.reporter.skipped(f"agent-{site.id}", str(exc))
            self.profiled[site.id].set()
            return
        if site.simulator == "air":
            self.air_metrics = [str(point.get("name")) for point in document.get("points", [])]
        self.profiled[site.id].set()
        self.targets += faults.fault_targets([site], self.layout, {site.id: endpoint})
        self.report.agents[site.id] = [str(path) for path in files.profiles]
        spec = processes.agent_spec(site.id, list(files.profiles), self.layout, self.endpoints)
        await self._run(spec, optional=optional)

    async def _seed_once_profiled(self) -> None:
        """Seed once every site's profile is known (the air station's rule depends on what
        its profile reads), while the agents start."""
        await asyncio.gather(*(event.wait() for event in self.profiled.values()))
        await self._seed()

    async def _seed(self) -> None:
        """The first run's alert rules and site records, as the administrator."""
        if self.state.city:
            return
        admin = next((a for a in self.accounts if a.username == seed.ADMIN.username), None)
        password = (
            admin.password
            if admin and admin.password
            else os.environ.get(seed.ADMIN.password_env, "")
        )
        if not password:
            self.notes.append(
                "alert rules and sites not seeded: the administrator's password is not known "
                f"to this run (set {seed.ADMIN.password_env})"
            )
            return
        endpoints = self.endpoints
        sites = [s for s in self.sites if f"agent-{s.id}" not in self.report.skipped]
        try:
            done = await seeding.seed_rules_and_sites(
                password,
                identity=endpoints.address("identity"),
                alerts=endpoints.address("alerts"),
                records=endpoints.address("records"),
                sites=sites,
                air_metrics=self.air_metrics,
            )
        except seeding.SeedError as exc:
            # The city runs without them; the next run tries again.
            self.notes.append(f"alert rules and sites not seeded: {exc}")
            return
        self.notes += done
        self.state.city = True
        self.state.notes = done
        self.state.save()

    # -- running -----------------------------------------------------------------------------

    def _on_event(self, event: ChildEvent) -> None:
        self.reporter.event(event)
        if not self.reporter.starting and event.kind in (EventKind.READY, EventKind.EXITED):
            self.report.write(self.supervisor.children)

    async def run(self, stop: asyncio.Event) -> int:
        began = time.monotonic()
        await self._prepare()
        try:
            with self.reporter.progress:
                starting = asyncio.create_task(self._start())
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
            return await self._serve(stop, time.monotonic() - began)
        finally:
            self.reporter.stopping = True
            self.reporter.line("stopping the city ...")
            await self.supervisor.stop()
            left = [c.name for c in self.supervisor.children.values() if c.pid is not None]
            self.report.write(self.supervisor.children, running=False)
            self.reporter.line(
                "stopped; nothing left running" if not left else f"still running: {left}"
            )

    async def _serve(self, stop: asyncio.Event, seconds: float) -> int:
        self.reporter.starting = False
        self.report.ready_seconds = round(seconds, 2)
        order = [site.id for site in SITES]  # the schedule goes round in the table's order
        self.targets.sort(key=lambda target: order.index(target.site))
        self.report.faults = tuple(self.targets)
        self.report.login = {
            "identity": self.endpoints.address("identity"),
            "admin": seed.ADMIN.username,
            "operator": seed.OPERATOR.username,
        }
        self.report.write(self.supervisor.children)
        self.reporter.summary(self.report, self.accounts, self.notes, seconds)
        schedule = None
        if self.options.faults and self.targets:
            interval = self.options.fault_interval
            self.reporter.line(f"faults: one every {interval:g} s, in turn at each site")
            schedule = asyncio.create_task(
                faults.run_schedule(
                    self.targets,
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
