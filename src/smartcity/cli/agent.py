"""``smartcity agent``: read field devices and publish their readings to NATS.

``smartcity agent --profile FILE...`` runs an agent; ``agent check`` is the commissioning
tool (validate a profile, connect, read once, show what was decoded); ``agent cert`` makes
the OPC-UA application certificate an agent presents to secured servers.

This module runs an agent (alone, or its devices spread over worker processes) and makes
its certificate; ``agent check`` is :mod:`.agent_check`, the profiles given and the
templates :mod:`.agent_profiles`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from smartcity.cli.agent_check import agent_check
from smartcity.cli.agent_profiles import (
    ConfigOption,
    ProfileOption,
    agent_template,
    agent_templates,
    load_profiles,
)
from smartcity.cli.errors import fail
from smartcity.runtime.foreground import run_until_signalled

agent_app = typer.Typer(
    name="agent",
    invoke_without_command=True,
)

log = logging.getLogger(__name__)


@agent_app.callback()
def agent_run(
    ctx: typer.Context,
    profile: ProfileOption = None,
    nats: Annotated[
        str | None, typer.Option("--nats", help="NATS URL (default: nats.url).")
    ] = None,
    agent_id: Annotated[
        str | None,
        typer.Option(
            "--id",
            help="Agent id, which also names its disk buffer (default: agent.id, else the host "
            "name and a hash of the devices).",
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            max=64,
            help="Spread the devices over this many processes (one core each), each an agent "
            "of its own named <id>-<k>of<N>, with its own buffer and heartbeat.",
        ),
    ] = 1,
    config: ConfigOption = None,
) -> None:
    """Run an agent for the devices of --profile until Ctrl-C or SIGTERM.

    Readings go through an on-disk buffer (agent.buffer_dir) and are deleted only when
    JetStream has acknowledged them; what is not yet sent survives restarts.
    """
    if ctx.invoked_subcommand is not None:
        return
    if not profile:
        Console(stderr=True).print(ctx.get_help())
        fail("give at least one --profile FILE", 2)
    from smartcity import __version__
    from smartcity.agents.agent import Agent, AgentError
    from smartcity.runtime.config import ConfigError, load_settings
    from smartcity.runtime.logs import setup_logging
    from smartcity.runtime.observability import setup_observability

    try:
        settings = load_settings(config, agent={"id": agent_id} if agent_id else None)
    except ConfigError as exc:
        fail(exc, 2)
    profiles = load_profiles(profile)
    setup_logging(settings.logging, service="agent")
    try:
        agent = Agent(profiles, settings, nats_url=nats)
    except AgentError as exc:
        fail(exc, 2)
    if workers > 1:
        _run_workers(agent, profile, workers, nats, config)
        return
    telemetry = setup_observability(
        settings.telemetry, service_name="smartcity-agent", service_version=__version__
    )
    try:
        run_until_signalled(agent.run)
    except AgentError as exc:
        fail(exc, 2)
    finally:
        telemetry.shutdown()


def _run_workers(
    agent: Any, paths: list[Path], count: int, nats: str | None, config: Path | None
) -> None:
    """The devices spread over ``count`` agent processes under one supervisor."""
    from smartcity.agents.workers import Supervisor, Worker, split, worker_id

    groups = split(agent.profiles, count)
    pool = [
        Worker(worker_id(agent.agent_id, index, len(groups)), [paths[i] for i in group])
        for index, group in enumerate(groups, start=1)
    ]
    arguments = ["--nats", agent.url]
    if config is not None:
        arguments += ["--config", str(config)]
    log.info(
        "agent %s: %d device(s) in %d worker process(es): %s",
        agent.agent_id,
        len(paths),
        len(pool),
        ", ".join(f"{worker.agent_id} ({len(worker.profiles)})" for worker in pool),
    )
    supervisor = Supervisor(
        pool, arguments, drain_timeout=agent.settings.agent.drain_timeout_seconds
    )
    run_until_signalled(supervisor.run)
    if supervisor.failure is not None:
        fail(supervisor.failure, 2)


def agent_cert(
    out: Annotated[
        Path, typer.Option("--out", file_okay=False, help="Folder for agent.der and agent.pem.")
    ] = Path("certs"),
    uri: Annotated[
        str | None,
        typer.Option(help="Application URI (default: urn:<host>:smartcity:agent)."),
    ] = None,
    days: Annotated[int, typer.Option(min=1, max=3650, help="Validity in days.")] = 365,
    overwrite: Annotated[bool, typer.Option(help="Replace existing files.")] = False,
) -> None:
    """Create the agent's OPC-UA application certificate (DER) and private key (PEM).

    Give agent.der to the OPC-UA server's administrator to trust, and point the profile's
    security.cert and security.key at the two files.
    """
    from smartcity.agents.opcua.certificates import (
        CertificateError,
        default_application_uri,
        generate_certificate,
    )

    try:
        pair = generate_certificate(
            out / "agent.der",
            out / "agent.pem",
            application_uri=uri or default_application_uri("agent"),
            role="client",
            days=days,
            overwrite=overwrite,
        )
    except CertificateError as exc:
        fail(exc)
    Console().print(f"certificate {pair.cert}\nprivate key {pair.key}", highlight=False)


# Registered here, in the order `smartcity agent --help` lists them.
agent_app.command("cert")(agent_cert)
agent_app.command("check")(agent_check)
agent_app.command("templates")(agent_templates)
agent_app.command("template")(agent_template)
