"""The city's processes started in order, each step waiting only for what it needs.

NATS and the simulators together; once NATS serves, the streams (:mod:`.steps`); the four
services; each simulated site's agent once its site says it is ready and its profile is
written, the agents of ``--profiles`` at once, the console alongside; on the first run, the
alert rules and site records once every site's profile is known (:mod:`.resume`). A process
the city needs that does not start ends it all with :class:`StartError`; an optional one
(the console, the air station's agent) is retired with a "skipped" line.
"""

from __future__ import annotations

import asyncio

from smartcity.runtime.errors import InvalidArgument
from smartcity.up import faults, processes, profiles, steps
from smartcity.up.child import ChildSpec, Readiness
from smartcity.up.plan import Layout, Site
from smartcity.up.prepare import Prepared
from smartcity.up.report import Reporter
from smartcity.up.supervisor import ChildFailedError, Supervisor

__all__ = ["StartError", "Startup"]


class StartError(RuntimeError):
    """A process the city needs did not start; the message has its log's last lines."""


class Startup:
    """One start of the city: :meth:`start` returns once every process is ready (or
    skipped); :attr:`targets` are then the sites that take faults."""

    def __init__(
        self,
        prepared: Prepared,
        layout: Layout,
        supervisor: Supervisor,
        reporter: Reporter,
        ready_timeout: float,
    ) -> None:
        self.prepared = prepared
        self.layout = layout
        self.supervisor = supervisor
        self.reporter = reporter
        self.ready_timeout = ready_timeout
        self.targets: list[faults.FaultTarget] = []
        self.air_metrics: list[str] = []
        self.profiled: dict[str, asyncio.Event] = {}
        """Per simulated site: set once its profile is written, or its agent skipped."""
        self.fields: asyncio.Task[object]
        """The field plugins, loading while the first processes start."""

    async def start(self) -> None:
        layout, supervisor = self.layout, self.supervisor
        endpoints, report = self.prepared.endpoints, self.prepared.report
        sites, external = self.prepared.sites, self.prepared.external
        names = ["nats", *([processes.SIM] if sites else []), *processes.SERVICES]
        names += [f"agent-{site.id}" for site in sites]
        names += [f"agent-{agent.id}" for agent in external]
        if "console" not in report.skipped:
            names.append("console")
        self.reporter.expect(names)
        # The agents' profiles need the field plugins: loaded meanwhile, off the event loop.
        self.fields = asyncio.create_task(asyncio.to_thread(profiles.installed_fields))
        nats = processes.nats_spec(layout, endpoints, self.prepared.nats_binary)
        await supervisor.start(nats)
        if sites:
            await supervisor.start(processes.sims_spec(sites, layout, endpoints))
        await self._ready("nats")
        try:
            await steps.ensure_streams(layout, endpoints, self.ready_timeout)
        except steps.StepError as exc:
            raise StartError(str(exc)) from None
        for name in processes.SERVICES:
            await supervisor.start(processes.service_spec(name, layout, endpoints))
        self.profiled = {site.id: asyncio.Event() for site in sites}
        work = [asyncio.create_task(self._site(site)) for site in sites]
        if "console" not in report.skipped:
            # Alongside the services: it dials them only when a browser asks, and its own
            # start (seconds of imports on a busy machine) is then off the critical path.
            spec = processes.console_spec(layout, endpoints)
            work.append(asyncio.create_task(self._run(spec, optional=True)))
        for agent in external:
            report.agents[agent.id] = [str(path) for path in agent.profiles]
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
        try:
            if part is None:
                await self.supervisor.wait_ready(name, self.ready_timeout)
            else:
                await self.supervisor.wait_condition(name, part, self.ready_timeout)
        except ChildFailedError as exc:
            tail = "\n".join(f"  {line}" for line in exc.child.tail().splitlines())
            message = f"{exc}; last lines of {exc.child.log}:\n{tail or '  (nothing)'}"
            if not optional:
                raise StartError(message) from None
            await self.supervisor.retire(name)
            self.reporter.drop(name)
            self.prepared.report.skipped[name] = (
                f"did not start ({exc.reason}), see {exc.child.log}"
            )
            self.reporter.line(f"  ✗ {message}", "yellow")
            return False
        return True

    async def _run(self, spec: ChildSpec, *, optional: bool = False) -> bool:
        await self.supervisor.start(spec)
        return await self._ready(spec.name, optional=optional)

    async def _site(self, site: Site) -> None:
        """The site's agent, once its simulator serves (and wrote what the agent needs)."""
        optional = site.simulator == "air"  # `sim air` is young: the city starts without it
        endpoints, report = self.prepared.endpoints, self.prepared.report
        host, port = endpoints.host, endpoints.sim_port(site)
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
            report.skipped[f"agent-{site.id}"] = str(exc)
            self.reporter.drop(f"agent-{site.id}")
            self.reporter.skipped(f"agent-{site.id}", str(exc))
            self.profiled[site.id].set()
            return
        if site.simulator == "air":
            self.air_metrics = [str(point.get("name")) for point in document.get("points", [])]
        self.profiled[site.id].set()
        self.targets += faults.fault_targets([site], self.layout, {site.id: endpoint})
        report.agents[site.id] = [str(path) for path in files.profiles]
        spec = processes.agent_spec(site.id, list(files.profiles), self.layout, endpoints)
        await self._run(spec, optional=optional)

    async def _seed_once_profiled(self) -> None:
        """Seed once every site's profile is known (the air station's rule depends on what
        its profile reads), while the agents start."""
        await asyncio.gather(*(event.wait() for event in self.profiled.values()))
        skipped = self.prepared.report.skipped
        sites = [s for s in self.prepared.sites if f"agent-{s.id}" not in skipped]
        await self.prepared.state.seed_city(self.prepared.endpoints, sites, self.air_metrics)
