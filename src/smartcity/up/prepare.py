"""The options of ``smartcity up`` and what a run decides from them before anything starts.

:func:`prepare` settles the sites it simulates and the agents of ``--profiles``, finds
``nats-server``, resolves every port (a taken one is an error here, before anything
starts), writes the NATS authorization with one user per service and per agent, and opens
the data folder's state (:mod:`.resume`: on the first run, the accounts are made).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from smartcity.runtime.errors import FailedPrecondition, InvalidArgument
from smartcity.runtime.nats_auth.plan import platform_principals
from smartcity.runtime.nats_auth.render import write_authorization
from smartcity.runtime.nats_server import NatsServerError, find_nats_server
from smartcity.up import processes, profiles
from smartcity.up.plan import SIM_COMMANDS, SITES, Layout, Site
from smartcity.up.ports import Endpoints, resolve_ports, wanted_ports
from smartcity.up.report import CityReport, Reporter
from smartcity.up.resume import CityState

__all__ = ["OPTIONAL", "Prepared", "UpOptions", "prepare"]

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


@dataclass
class Prepared:
    """What a run starts: filled in by :func:`prepare`, then by the start (``report``, the
    state's notes)."""

    sites: list[Site]
    """The simulated sites whose simulator is installed."""
    external: list[profiles.AgentFiles]
    """The agents of ``--profiles``."""
    nats_binary: Path
    endpoints: Endpoints
    report: CityReport
    state: CityState


async def prepare(options: UpOptions, layout: Layout, reporter: Reporter) -> Prepared:
    """Everything decided before the first process starts.

    Raises :class:`InvalidArgument` or :class:`FailedPrecondition` (a taken port, agents of
    ``--profiles`` named as simulated sites, no ``nats-server``).
    """
    commands = processes.available_commands()
    optional_missing = {name for name in OPTIONAL if name not in commands}
    sites: list[Site] = []
    if options.simulate:
        for site in SITES:
            command = SIM_COMMANDS[site.simulator]
            if command in optional_missing:
                reporter.skipped(site.id, f"`smartcity {command}` is not installed")
                continue
            sites.append(site)
    external: list[profiles.AgentFiles] = []
    if options.profiles is not None:
        external = profiles.external_agents(options.profiles)
        clash = {a.id for a in external} & {s.id for s in sites}
        if clash:
            raise InvalidArgument(
                f"agent id(s) {', '.join(sorted(clash))} of --profiles are simulated sites; "
                "rename their folders, or run with --no-sim"
            )
    try:
        nats_binary = find_nats_server()
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
            sites=tuple(sites),
            auto=options.auto_ports,
            with_console=with_console,
        ),
    )
    endpoints = Endpoints(options.host, ports)
    report = CityReport(layout, endpoints, tuple(sites))
    if not with_console:
        report.skipped["console"] = "`smartcity console` is not installed"
        reporter.skipped("console", report.skipped["console"])
    agents = [profiles.planned_devices(site).plan for site in sites]
    agents += [agent.plan for agent in external]
    try:  # users whose credentials exist keep their passwords
        write_authorization(layout.nats_auth, platform_principals(agents))
    except OSError as exc:
        raise FailedPrecondition(f"cannot write {layout.nats_auth}: {exc}") from None
    state = await CityState.open(layout)
    return Prepared(sites, external, nats_binary, endpoints, report, state)
